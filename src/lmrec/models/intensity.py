"""Interest intensity from review text, per group (department, scenario): rating and recommended flag.

A review's frozen sentence embedding ``e`` (any `lmrec.encoders.TextEncoder`, through the on-disk
embedding cache when ``cache_dir`` is set) feeds a small network with two heads: the rating,
regressed on ``log(1 + r)`` (reported back on the rating scale), and the recommended flag (a logit).
Three ways to treat the groups, all with the same trunk, heads and training budget:

- ``"adapter"``: one shared trunk ``h = GELU(W (e - mean) + b)`` and heads trained on every group
  (stage 1, exactly the ``"single"`` model), then, with the trunk and heads frozen, per group a
  bottleneck adapter ``h_g = h + U_g GELU(D_g h)`` (rank ``adapter_rank``; ``U_g`` starts at zero)
  and a correction of the heads (also starting at zero), trained jointly (stage 2). Each group keeps
  its adapter from the stage-2 epoch with its own best validation loss, and epoch 0 (no adapter, the
  shared model) is a candidate: a group moves away from the shared model only as far as its own
  validation rows support, so a small group borrows the large groups' strength and is not made
  worse by noise. A group unseen in training is scored by the shared path alone.
- ``"per_group"``: one independent network per group, each trained and early-stopped on its own rows.
- ``"single"``: one network that ignores the groups.

Rows whose text is empty (no title and no review text) carry nothing to encode: `fit` leaves them out
and counts them (``n_missing_text_``); `predict` gives them the group's training mean rating and
recommendation rate (the global ones for an unknown group) and counts them in ``last_missing_``.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file, save_file
from torch import nn

from lmrec.data.text import clean_text, join_sentences
from lmrec.encoders.base import TextEncoder
from lmrec.encoders.device import check_device, resolve_device, to_device
from lmrec.encoders.encode import encode_texts
from lmrec.encoders.factory import make_text_encoder

__all__ = ["IntensityModel", "review_texts"]

log = logging.getLogger(__name__)

Mode = Literal["adapter", "per_group", "single"]
_FORMAT = "lmrec.intensity/1"


def review_texts(titles: Sequence[object], bodies: Sequence[object]) -> list[str]:
    """``"<title>. <text>"`` per row; a missing (None, NaN, empty) part is left out, both missing give "".

    Raises:
        ValueError: the two sequences differ in length.
    """
    if len(titles) != len(bodies):
        raise ValueError(f"review_texts: {len(titles)} titles but {len(bodies)} review texts")
    return [join_sentences([clean_text(t), clean_text(b)]) for t, b in zip(titles, bodies)]


class _Net(nn.Module):
    """Trunk + two heads (rating, flag logit), optionally with per-group adapters and head corrections."""

    def __init__(self, in_dim: int, hidden: int, n_groups: int, rank: int, dropout: float) -> None:
        super().__init__()
        self.trunk = nn.Linear(in_dim, hidden)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, 2)  # column 0: log(1 + rating), column 1: flag logit
        self.n_groups = n_groups
        if n_groups > 0:
            # its own generator: the global RNG (dropout) then runs as in the group-free model, so stage 1
            # of "adapter" is step for step the "single" model
            gen = torch.Generator().manual_seed(n_groups * 7919 + rank)
            self.down = nn.Parameter(torch.randn(n_groups, hidden, rank, generator=gen) / math.sqrt(hidden))
            self.up = nn.Parameter(torch.zeros(n_groups, rank, hidden))
            self.head_delta = nn.Parameter(torch.zeros(n_groups, hidden, 2))
            self.bias_delta = nn.Parameter(torch.zeros(n_groups, 2))

    def forward(self, x: torch.Tensor, groups: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D) centred embeddings, (B,) group indices (-1: shared path only) -> (B, 2)."""
        h = self.dropout(F.gelu(self.trunk(x)))  # (B, hidden)
        out = self.head(h)
        if self.n_groups == 0 or groups is None:
            return out
        known = groups >= 0
        g = groups.clamp(min=0)
        z = F.gelu(torch.bmm(h.unsqueeze(1), self.down[g]))  # (B, 1, rank)
        h_g = h + torch.bmm(z, self.up[g]).squeeze(1)  # (B, hidden)
        adapted = self.head(h_g) + torch.bmm(h_g.unsqueeze(1), self.head_delta[g]).squeeze(1) + self.bias_delta[g]
        return torch.where(known.unsqueeze(1), adapted, out)


class IntensityModel:
    """Predicts a review's rating and recommended flag from its text, per group.

    Args:
        mode: ``"adapter"`` (shared trunk + per-group adapters), ``"per_group"`` (one network per
            group) or ``"single"`` (groups ignored); see the module docstring.
        hidden: trunk width.
        adapter_rank: bottleneck width of the per-group adapters (``"adapter"`` only).
        dropout: dropout after the trunk.
        rating_weight / flag_weight: loss weights of the rating (MSE on log(1 + r)) and the flag
            (binary cross-entropy) heads.
        lr / weight_decay / batch_size: AdamW optimisation.
        epochs / patience: at most ``epochs`` passes; stop after ``patience`` epochs without a better
            validation loss and keep the best weights.
        valid_fraction: share of each group's training rows held out for early stopping.
        encoder: a `TextEncoder` object (not saved; pass it again to `load`).
        encoder_model / encoder_backend / max_seq_length: how to build the encoder when ``encoder``
            is None (`lmrec.encoders.make_text_encoder`; the packaged MiniLM by default).
        cache_dir: on-disk embedding cache (None: none).
        num_threads: torch threads while fitting (None: leave torch's setting).
        show_progress: progress bar while encoding.
        random_state: seed of weights, splits and shuffling (the global RNG is untouched).
        device: where the networks train (`lmrec.encoders.device`: ``"auto"``, ``"cpu"``,
            ``"cuda"``, ``"cuda:N"``, ``"mps"``); the training rows move there once per network,
            and the fitted networks come back to the CPU for `predict` and `save`.

    Attributes (after `fit`):
        groups_: group names in index order.
        nets_: one `_Net` (``"adapter"``, ``"single"``) or one per group (``"per_group"``).
        mean_: (D,) embedding mean of the training rows.
        group_rating_ / group_flag_: (n_groups,) training mean rating and recommendation rate.
        rating_mean_ / flag_mean_: the same over all training rows.
        rating_range_: (min, max) of training ratings; predictions are clipped to it.
        n_missing_text_: training rows left out because their text is empty.
        history_: per network, the validation loss of every epoch (for ``"adapter"``: stage 1, then
            stage 2).
    """

    def __init__(
        self,
        mode: Mode = "adapter",
        hidden: int = 128,
        adapter_rank: int = 16,
        dropout: float = 0.1,
        rating_weight: float = 1.0,
        flag_weight: float = 1.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        batch_size: int = 256,
        epochs: int = 50,
        patience: int = 5,
        valid_fraction: float = 0.1,
        encoder: TextEncoder | None = None,
        encoder_model: str | None = None,
        encoder_backend: str = "torch",
        max_seq_length: int | None = None,
        cache_dir: str | None = None,
        num_threads: int | None = None,
        show_progress: bool = False,
        random_state: int = 0,
        device: str = "auto",
    ) -> None:
        self.mode, self.hidden, self.adapter_rank, self.dropout = mode, hidden, adapter_rank, dropout
        self.rating_weight, self.flag_weight = rating_weight, flag_weight
        self.lr, self.weight_decay, self.batch_size = lr, weight_decay, batch_size
        self.epochs, self.patience, self.valid_fraction = epochs, patience, valid_fraction
        self.encoder, self.encoder_model, self.encoder_backend = encoder, encoder_model, encoder_backend
        self.max_seq_length, self.cache_dir, self.num_threads = max_seq_length, cache_dir, num_threads
        self.show_progress, self.random_state = show_progress, random_state
        self.device = device

    _PARAMS = (
        "mode",
        "hidden",
        "adapter_rank",
        "dropout",
        "rating_weight",
        "flag_weight",
        "lr",
        "weight_decay",
        "batch_size",
        "epochs",
        "patience",
        "valid_fraction",
        "encoder_model",
        "encoder_backend",
        "max_seq_length",
        "cache_dir",
        "num_threads",
        "show_progress",
        "random_state",
        "device",
    )

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments except the encoder object."""
        return {name: getattr(self, name) for name in self._PARAMS}

    # ------------------------------------------------------------------ checks
    def _check_params(self) -> None:
        if self.mode not in get_args(Mode):
            raise ValueError(f"IntensityModel mode must be one of {list(get_args(Mode))}, got {self.mode!r}")
        for name in ("hidden", "adapter_rank", "batch_size", "epochs", "patience"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"IntensityModel {name} must be an integer >= 1, got {value!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"IntensityModel dropout must be in [0, 1), got {self.dropout!r}")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError(f"IntensityModel valid_fraction must be in (0, 1), got {self.valid_fraction!r}")
        if not self.lr > 0:
            raise ValueError(f"IntensityModel lr must be > 0, got {self.lr!r}")
        for name in ("rating_weight", "flag_weight", "weight_decay"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"IntensityModel {name} must be >= 0, got {getattr(self, name)!r}")
        if self.rating_weight == 0 and self.flag_weight == 0:
            raise ValueError("IntensityModel rating_weight and flag_weight are both 0: nothing to learn")
        check_device(self.device, "IntensityModel device")
        resolve_device(self.device)  # a device this machine lacks fails before the encoding

    @staticmethod
    def _check_rows(texts: Sequence[str], groups: Sequence[object], embeddings: np.ndarray | None) -> None:
        if isinstance(texts, str):
            raise ValueError("texts must be a sequence of strings, not one string")
        if len(groups) != len(texts):
            raise ValueError(f"IntensityModel: {len(texts)} texts but {len(groups)} groups")
        if embeddings is not None and (embeddings.ndim != 2 or len(embeddings) != len(texts)):
            raise ValueError(f"embeddings must be (n_texts={len(texts)}, D), got shape {embeddings.shape}")

    # ------------------------------------------------------------------ encoding
    def _get_encoder(self) -> TextEncoder:
        if self.encoder is None:
            self.encoder = make_text_encoder(
                self.encoder_model,
                self.encoder_backend,  # type: ignore[arg-type]
                max_seq_length=self.max_seq_length,
                num_threads=self.num_threads,
            )
        return self.encoder

    def _embed(self, texts: list[str], present: np.ndarray, embeddings: np.ndarray | None) -> np.ndarray:
        """(n_present, D) vectors of the rows with text."""
        if embeddings is not None:
            return np.asarray(embeddings, dtype=np.float32)[present]
        return encode_texts(
            self._get_encoder(),
            [t for t, p in zip(texts, present) if p],
            cache_dir=self.cache_dir,
            show_progress=self.show_progress,
        )

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        texts: Sequence[str],
        groups: Sequence[object],
        ratings: Sequence[float],
        recommended: Sequence[float] | None = None,
        *,
        embeddings: np.ndarray | None = None,
    ) -> IntensityModel:
        """Reset and train.

        Args:
            texts: n review texts (see `review_texts`); "" for none.
            groups: n group labels (department); compared as strings.
            ratings: n ratings (> -1; e.g. 1-5 stars).
            recommended: n flags in {0, 1}, or None to train the rating head only.
            embeddings: (n, D) precomputed text vectors, used instead of the encoder.

        Raises:
            ValueError: a bad hyper-parameter or input, named.
        """
        self._check_params()
        texts = [clean_text(t) for t in texts]
        self._check_rows(texts, groups, embeddings)
        y = np.asarray(ratings, dtype=np.float64)
        if y.shape != (len(texts),) or not np.all(np.isfinite(y)) or (y <= -1).any():
            raise ValueError(f"ratings must be {len(texts)} finite numbers > -1")
        if recommended is None:
            if self.flag_weight > 0 and self.rating_weight == 0:
                raise ValueError("IntensityModel: recommended is None but only the flag head has weight")
            flags = np.full(len(texts), np.nan)
        else:
            flags = np.asarray(recommended, dtype=np.float64)
            if flags.shape != (len(texts),) or not np.isin(flags, (0.0, 1.0)).all():
                bad = flags[~np.isin(flags, (0.0, 1.0))][:3].tolist() if flags.shape == (len(texts),) else flags.shape
                raise ValueError(f"recommended must be {len(texts)} values in {{0, 1}}; got {bad}")
        labels = np.asarray([str(g) for g in groups], dtype=object)
        present = np.array([bool(t) for t in texts], dtype=bool)
        self.n_missing_text_ = int((~present).sum())
        if self.n_missing_text_:
            log.info(
                "IntensityModel.fit: %d of %d rows have no text and are left out", self.n_missing_text_, len(texts)
            )
        if not present.any():
            raise ValueError("IntensityModel.fit: no row has text")
        x = self._embed(texts, present, embeddings)
        labels, y, flags = labels[present], y[present], flags[present]
        self.groups_ = sorted(set(labels.tolist()))
        g = np.searchsorted(np.asarray(self.groups_, dtype=object), labels).astype(np.int64)
        self.has_flag_ = recommended is not None
        self.mean_ = x.mean(axis=0).astype(np.float32)
        self.rating_mean_, self.rating_range_ = float(y.mean()), (float(y.min()), float(y.max()))
        self.flag_mean_ = float(flags.mean()) if self.has_flag_ else float("nan")
        self.group_rating_ = np.array([y[g == j].mean() for j in range(len(self.groups_))], dtype=np.float64)
        self.group_flag_ = np.array([flags[g == j].mean() for j in range(len(self.groups_))], dtype=np.float64)
        rng = np.random.default_rng(self.random_state)
        is_valid = np.zeros(len(y), dtype=bool)
        for j in range(len(self.groups_)):  # stratified by group
            rows = np.flatnonzero(g == j)
            n_valid = int(round(self.valid_fraction * len(rows))) if len(rows) >= 2 else 0
            is_valid[rng.permutation(rows)[:n_valid]] = True
        target = np.stack([np.log1p(y), flags], axis=1).astype(np.float32)  # (n, 2)
        xc = (x - self.mean_).astype(np.float32)
        old_threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(int(self.num_threads))
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.random_state)
                self._train_all(xc, g, target, is_valid)
        finally:
            torch.set_num_threads(old_threads)
        return self

    def _train_all(self, x: np.ndarray, g: np.ndarray, target: np.ndarray, is_valid: np.ndarray) -> None:
        n_groups = len(self.groups_)
        self.nets_: list[_Net] = []
        self.history_: list[list[float]] = []
        device = resolve_device(self.device)
        if self.mode == "per_group":
            parts = [g == j for j in range(n_groups)]
        else:
            parts = [np.ones(len(g), dtype=bool)]
        for k, rows in enumerate(parts):
            net = _Net(
                x.shape[1], self.hidden, n_groups if self.mode == "adapter" else 0, self.adapter_rank, self.dropout
            )
            tr, va = rows & ~is_valid, rows & is_valid
            if not va.any():  # a group too small to hold rows out: stop on its training loss
                va = tr
            with torch.no_grad():  # start the heads at the training means: small groups need no steps to get there
                net.head.bias[0] = float(target[tr, 0].mean())
                if self.has_flag_:
                    rate = float(np.clip(target[tr, 1].mean(), 1e-3, 1 - 1e-3))
                    net.head.bias[1] = math.log(rate / (1 - rate))
            data = (x[tr], g[tr], target[tr], x[va], g[va], target[va])
            net.to(device)
            hist = self._train_one(net, *data, seed=self.random_state + k, adapters=False)
            if self.mode == "adapter":
                hist += self._train_one(net, *data, seed=self.random_state + 1000, adapters=True)
            self.nets_.append(net.cpu().eval())
            self.history_.append(hist)

    def _loss(self, out: torch.Tensor, target: torch.Tensor, reduce: bool = True) -> torch.Tensor:
        rating = F.mse_loss(out[:, 0], target[:, 0], reduction="none") * self.rating_weight
        if self.has_flag_ and self.flag_weight > 0:
            rating = rating + self.flag_weight * F.binary_cross_entropy_with_logits(
                out[:, 1], target[:, 1], reduction="none"
            )
        return rating.mean() if reduce else rating

    def _train_one(self, net: _Net, x, g, t, xv, gv, tv, *, seed: int, adapters: bool) -> list[float]:
        """Stage 1 (``adapters=False``): trunk and heads, groups ignored, early stopping on the whole
        validation loss. Stage 2: only the group parameters, each group's kept at its own best epoch."""
        group_names = ("down", "up", "head_delta", "bias_delta")
        params = [p for n, p in net.named_parameters() if (n in group_names) == adapters]
        for n, p in net.named_parameters():
            p.requires_grad_((n in group_names) == adapters)
        opt = torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)
        device = next(net.parameters()).device
        gen = torch.Generator(device=device).manual_seed(seed)
        # every row moves to the network's device once; the epochs index them there
        x_t, g_t, t_t = to_device((torch.from_numpy(x), torch.from_numpy(g), torch.from_numpy(t)), device)
        xv_t, gv_t, tv_t = to_device((torch.from_numpy(xv), torch.from_numpy(gv), torch.from_numpy(tv)), device)
        n_groups = net.n_groups if adapters else 1
        vg = gv_t if adapters else torch.zeros(len(gv_t), dtype=torch.long, device=device)
        counts = torch.bincount(vg, minlength=n_groups).clamp(min=1).double()

        def valid_losses() -> torch.Tensor:  # (n_groups,) mean validation loss per group
            net.eval()
            with torch.no_grad():
                per_row = self._loss(net(xv_t, gv_t if adapters else None), tv_t, reduce=False).double()
            return torch.zeros(n_groups, dtype=torch.float64, device=device).index_add_(0, vg, per_row) / counts

        best = valid_losses()
        best_state = [{k: v.detach().clone() for k, v in net.state_dict().items()} for _ in range(n_groups)]
        bad, hist = 0, []
        for _ in range(self.epochs):
            net.train()
            for idx in torch.randperm(len(x_t), generator=gen, device=device).split(self.batch_size):
                loss = self._loss(net(x_t[idx], g_t[idx] if adapters else None), t_t[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
            losses = valid_losses()
            hist.append(float((losses * counts).sum() / counts.sum()))
            better = losses < best - 1e-6
            if better.any():
                state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                for j in torch.nonzero(better).flatten().tolist():
                    best_state[j] = state
                best = torch.where(better, losses, best)
                bad = 0
            else:
                bad += 1
                if bad >= self.patience:
                    break
        if adapters:  # group j's slices from its own best epoch
            final = {k: v.detach().clone() for k, v in net.state_dict().items()}
            for name in group_names:
                for j in range(n_groups):
                    final[name][j] = best_state[j][name][j]
            net.load_state_dict(final)
        else:
            net.load_state_dict(best_state[0])
        for p in net.parameters():
            p.requires_grad_(True)
        return hist

    # ------------------------------------------------------------------ prediction
    def _check_fitted(self) -> None:
        if not hasattr(self, "nets_"):
            raise ValueError("IntensityModel is not fitted; call fit first")

    @torch.no_grad()
    def predict(
        self, texts: Sequence[str], groups: Sequence[object], *, embeddings: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Predicted ratings (n,) on the training scale (clipped to its range) and recommendation
        probabilities (n,) (NaN when fitted without flags).

        Raises:
            ValueError: not fitted, mismatched lengths, or (``"per_group"``) a group unseen in training.
        """
        self._check_fitted()
        texts = [clean_text(t) for t in texts]
        self._check_rows(texts, groups, embeddings)
        index = {name: j for j, name in enumerate(self.groups_)}
        g = np.array([index.get(str(x), -1) for x in groups], dtype=np.int64)
        if self.mode == "per_group" and (g < 0).any():
            unknown = sorted({str(x) for x, j in zip(groups, g) if j < 0})[:5]
            raise ValueError(f"IntensityModel(mode='per_group') has no network for group(s) {unknown}")
        present = np.array([bool(t) for t in texts], dtype=bool)
        self.last_missing_ = int((~present).sum())
        rating = np.where(g >= 0, self.group_rating_[g.clip(0)], self.rating_mean_) if len(g) else np.zeros(0)
        flag = np.where(g >= 0, self.group_flag_[g.clip(0)], self.flag_mean_) if len(g) else np.zeros(0)
        rating, flag = rating.astype(np.float64), flag.astype(np.float64)
        if present.any():
            x = torch.from_numpy((self._embed(texts, present, embeddings) - self.mean_).astype(np.float32))
            gp = torch.from_numpy(g[present])
            if self.mode == "per_group":
                out = torch.empty(len(x), 2)
                for j, net in enumerate(self.nets_):
                    sel = gp == j
                    if sel.any():
                        out[sel] = net(x[sel])
            else:
                out = self.nets_[0](x, gp if self.mode == "adapter" else None)
            lo, hi = self.rating_range_
            rating[present] = np.clip(np.expm1(out[:, 0].double().numpy()), lo, hi)
            flag[present] = torch.sigmoid(out[:, 1]).double().numpy() if self.has_flag_ else np.nan
        return rating, flag

    def n_parameters(self) -> int:
        """Trainable parameters over all networks."""
        self._check_fitted()
        return sum(p.numel() for net in self.nets_ for p in net.parameters())

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``config.json`` and ``weights.safetensors`` (no pickles)."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays = {
            f"net{k}.{name}": v.detach().cpu().numpy()
            for k, net in enumerate(self.nets_)
            for name, v in net.state_dict().items()
        }
        arrays.update(mean=self.mean_, group_rating=self.group_rating_, group_flag=self.group_flag_)
        save_file({k: np.ascontiguousarray(v) for k, v in arrays.items()}, str(directory / "weights.safetensors"))
        config = {
            "format": _FORMAT,
            "params": self.get_params(),
            "groups": list(self.groups_),
            "in_dim": len(self.mean_),
            "has_flag": self.has_flag_,
            "rating_mean": self.rating_mean_,
            "flag_mean": self.flag_mean_,
            "rating_range": list(self.rating_range_),
            "n_missing_text": self.n_missing_text_,
            "history": self.history_,
            "encoder_name": getattr(self.encoder, "name", None),
        }
        (directory / "config.json").write_text(json.dumps(config, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, encoder: TextEncoder | None = None) -> IntensityModel:
        """A model saved by `save`; ``encoder`` replaces the one its parameters would build."""
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        if config.get("format") != _FORMAT:
            raise ValueError(f"{directory}: not an IntensityModel directory (format {config.get('format')!r})")
        model = cls(**config["params"], encoder=encoder)
        if encoder is not None and config.get("encoder_name") not in (None, encoder.name):
            log.warning(
                "encoder %r differs from the one the model was trained with (%r)", encoder.name, config["encoder_name"]
            )
        arrays = load_file(str(directory / "weights.safetensors"))
        model.groups_, model.has_flag_ = list(config["groups"]), bool(config["has_flag"])
        model.mean_ = arrays["mean"].astype(np.float32)
        model.group_rating_, model.group_flag_ = arrays["group_rating"], arrays["group_flag"]
        model.rating_mean_, model.flag_mean_ = float(config["rating_mean"]), float(config["flag_mean"])
        model.rating_range_ = tuple(config["rating_range"])
        model.n_missing_text_, model.history_ = int(config["n_missing_text"]), config["history"]
        n_nets = len(model.groups_) if model.mode == "per_group" else 1
        model.nets_ = []
        for k in range(n_nets):
            net = _Net(
                int(config["in_dim"]),
                model.hidden,
                len(model.groups_) if model.mode == "adapter" else 0,
                model.adapter_rank,
                model.dropout,
            )
            prefix = f"net{k}."
            net.load_state_dict(
                {n[len(prefix) :]: torch.from_numpy(v.copy()) for n, v in arrays.items() if n.startswith(prefix)}
            )
            model.nets_.append(net.eval())
        return model
