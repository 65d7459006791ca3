"""SASRec: an ID-only causal transformer over each user's item sequence (Kang & McAuley 2018).

Training follows RecBole's SASRec with ``loss_type: CE`` in what it optimises (cross-entropy over
the full catalogue for the next item) but not in how: each user's sequence passes once per epoch
with a causal mask and a loss at every position, instead of one training row per prefix. Above
``full_softmax_max_items`` items (``loss="auto"``) the softmax runs over the batch's positives plus
popularity-sampled negatives with the log-Q correction (`lmrec.train.negatives`) instead: the
full-catalogue logits of a step (targets x items) dominate both the time and the memory of a step on
a large catalogue. Sequences
longer than ``max_len`` are cut into windows from the newest end so every target is used once per
epoch; the window boundaries move randomly from epoch to epoch (see ``SASRec._windows``), so that a
long history is not always cut at the same places (benchmarks/RESULTS.md has the effect).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Any, ClassVar, Literal, cast

import numpy as np
import torch

from lmrec.data.dataset import Dataset
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.encoders.device import amp_dtype, check_device, check_precision, resolve_device
from lmrec.models.base import Recommender, register, top_k
from lmrec.models.sasrec_net import SASRecNet
from lmrec.train.callbacks import EarlyStopping, LogMetrics
from lmrec.train.distributed import data_parallel, shard_batches, unwrap, wrap_ddp
from lmrec.train.loop import fit_loop
from lmrec.train.losses import FullSoftmaxCE, SampledSoftmax
from lmrec.train.negatives import PopularityNegatives

__all__ = ["SASRec"]

log = logging.getLogger(__name__)


def _ndcg_full_ranking(scores: np.ndarray, relevant: list[np.ndarray], k: int = 10) -> np.ndarray:
    """NDCG@k per row with binary relevance; masked entries of ``scores`` are ``-inf``.

    Args:
        scores: (n, n_items) scores.
        relevant: n arrays of relevant item indices.
        k: cut-off.

    Returns:
        (n,) float64; a row with no relevant item scores 0.
    """
    ranked, _ = top_k(scores, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    out = np.zeros(len(relevant))
    for row, rel in enumerate(relevant):
        if len(rel) == 0:
            continue
        hits = np.isin(ranked[row], rel)
        out[row] = (hits * discounts[: ranked.shape[1]]).sum() / discounts[: min(len(rel), k)].sum()
    return out


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` intra-op threads inside the block and put the previous number back after."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@register("sasrec")
class SASRec(Recommender):
    """Self-attentive sequential recommendation over item ids.

    ``score_all`` encodes each user's last ``max_len`` items and takes the dot product of the final
    hidden state with every item embedding (tied input/output embeddings). ``observe`` appends
    interactions to the users' sequences, so evaluation on test reads the validation item too.

    Args:
        max_len: longest input sequence (RecBole's default 50).
        hidden: embedding width (RecBole 64).
        n_layers: transformer blocks (RecBole 2).
        n_heads: attention heads (RecBole 2).
        dropout: dropout everywhere (RecBole uses 0.5 for its post-LN blocks; 0.2 suits pre-LN here).
        epochs: maximum training epochs.
        batch_size: sequences (windows) per step.
        lr: AdamW learning rate (RecBole uses 1e-3 with Adam).
        weight_decay: AdamW weight decay.
        patience: epochs without a better validation NDCG@10 before stopping (with ``valid``).
        loss: ``"full"`` softmax over the catalogue, ``"sampled"`` softmax over the batch's positives
            and ``n_negatives`` popularity-sampled negatives with the log-Q correction, or
            ``"auto"``: full up to ``full_softmax_max_items`` items, sampled above.
        full_softmax_max_items: the ``"auto"`` threshold.
        n_negatives: negatives per step for the sampled softmax, shared by the batch.
        device: ``"auto"`` (a CUDA GPU when there is one), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or
            ``"mps"`` (`lmrec.encoders.device`); a device the machine lacks is a ``ValueError`` at
            ``fit``. Training and scoring run there (scores in chunks of users); a saved model
            loads on this device, or on the CPU where the machine lacks it.
        precision: ``"auto"`` (bf16 / fp16 autocast on a GPU, fp32 on the CPU), ``"fp32"``,
            ``"bf16"`` or ``"fp16"``.
        num_threads: torch intra-op threads while fitting and scoring (None: leave torch's setting).
        show_progress: a progress bar over epochs.
        random_state: seed for initial weights, dropout and shuffling (the global RNG is untouched).
    """

    is_sequential = True
    #: the parameter ``lmrec train/evaluate --device`` sets
    device_key: ClassVar[str] = "device"
    #: ``fit`` trains data-parallel inside torch.distributed (``lmrec train --ray``)
    trains_data_parallel: ClassVar[bool] = True

    def __init__(
        self,
        max_len: int = 50,
        hidden: int = 64,
        n_layers: int = 2,
        n_heads: int = 2,
        dropout: float = 0.2,
        epochs: int = 200,
        batch_size: int = 128,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        patience: int = 10,
        loss: Literal["auto", "full", "sampled"] = "auto",
        full_softmax_max_items: int = 50_000,
        n_negatives: int = 512,
        device: str = "auto",
        precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto",
        num_threads: int | None = None,
        show_progress: bool = False,
        random_state: int | None = 0,
    ) -> None:
        self.max_len = max_len
        self.hidden = hidden
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.patience = patience
        self.loss = loss
        self.full_softmax_max_items = full_softmax_max_items
        self.n_negatives = n_negatives
        self.device = device
        self.precision = precision
        self.num_threads = num_threads
        self.show_progress = show_progress
        self.random_state = random_state

    # ------------------------------------------------------------------ fitting
    def fit(self, dataset: Dataset | Interactions, valid: Split | Interactions | None = None) -> SASRec:
        """Reset and train; with ``valid`` (a `Split` or its ``valid`` part) stop early on its NDCG@10
        over the full catalogue (training items masked) and keep the best weights."""
        self._valid = valid.valid if isinstance(valid, Split) else valid
        try:
            super().fit(dataset)
        finally:
            self._valid = None
        return self

    def _validate_params(self) -> None:
        ints = {
            "max_len": 1,
            "hidden": 1,
            "n_layers": 1,
            "n_heads": 1,
            "epochs": 1,
            "batch_size": 1,
            "patience": 1,
            "full_softmax_max_items": 1,
            "n_negatives": 1,
        }
        for name, low in ints.items():
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or value < low:
                raise ValueError(f"SASRec {name} must be an integer >= {low}, got {value!r}")
        if self.hidden % self.n_heads:
            raise ValueError(f"SASRec hidden ({self.hidden}) must be divisible by n_heads ({self.n_heads})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"SASRec dropout must be in [0, 1), got {self.dropout!r}")
        if not self.lr > 0:
            raise ValueError(f"SASRec lr must be > 0, got {self.lr!r}")
        if self.weight_decay < 0:
            raise ValueError(f"SASRec weight_decay must be >= 0, got {self.weight_decay!r}")
        if self.loss not in ("auto", "full", "sampled"):
            raise ValueError(f"SASRec loss must be one of 'auto', 'full', 'sampled', got {self.loss!r}")
        check_device(self.device, "SASRec device")
        check_precision(self.precision, "SASRec precision")
        if self.num_threads is not None and self.num_threads < 1:
            raise ValueError(f"SASRec num_threads must be >= 1 or None, got {self.num_threads!r}")

    def resolved_loss(self, n_items: int) -> Literal["full", "sampled"]:
        """The softmax training uses for a catalogue of ``n_items`` items (``"auto"`` resolved)."""
        if self.loss == "auto":
            return "full" if n_items <= self.full_softmax_max_items else "sampled"
        return self.loss

    def _torch_device(self) -> torch.device:
        return resolve_device(self.device)

    def _make_net(self, n_items: int) -> SASRecNet:
        return SASRecNet(n_items, self.max_len, self.hidden, self.n_layers, self.n_heads, self.dropout)

    def _windows(
        self, sequences: list[np.ndarray], rng: np.random.Generator | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Training windows: inputs (W, max_len) tokens and targets (W, max_len) items (-100 = none).

        Target ``j`` of a sequence (its item ``j``, predicted from items ``0..j-1``) is used by
        exactly one window. Windows end at the newest item and step back ``max_len`` at a time.
        With ``rng``, the second window ends a random ``1..max_len`` items before the newest
        (the newest window keeps its full context but trains only the targets after that end),
        so from epoch to epoch a target is seen with different amounts of context.
        """
        length = self.max_len
        inputs, targets = [], []
        for seq in sequences:
            tokens = seq.astype(np.int64) + 1
            end = len(tokens)
            step = length if rng is None or end <= length + 1 else int(rng.integers(1, length + 1))
            while end >= 2:
                start = max(0, end - length - 1)
                window = tokens[start:end]
                x, y = np.zeros(length, np.int64), np.full(length, -100, np.int64)
                x[length - len(window) + 1 :] = window[:-1]
                y[length - len(window) + 1 :] = window[1:] - 1
                y[: length - min(step, len(window) - 1)] = -100  # targets the next window trains
                inputs.append(x)
                targets.append(y)
                end -= step
                step = length
        if not inputs:
            raise ValueError("SASRec needs at least one user with two or more training interactions")
        return np.stack(inputs), np.stack(targets)

    def _fit(self, dataset: Dataset) -> None:
        self._validate_params()
        inter = dataset.interactions
        self.histories_ = [s.copy() for s in inter.sequences()]
        device = self._torch_device()
        valid = getattr(self, "_valid", None)
        if valid is not None and (valid.user_map != inter.user_map or valid.item_map != inter.item_map):
            raise ValueError("SASRec.fit: valid interactions use different id maps from the training data")
        self._windows(self.histories_)  # fails early when no user has two interactions
        seed = 0 if self.random_state is None else int(self.random_state)
        devices = [device.index or 0] if device.type == "cuda" else []
        with _torch_threads(self.num_threads), torch.random.fork_rng(devices=devices):
            # seed only the generators fork_rng restores afterwards
            torch.random.default_generator.manual_seed(seed)
            if device.type == "cuda":
                torch.cuda.manual_seed(seed)
            self.net_ = self._make_net(inter.n_items).to(device)  # built on the CPU: the same weights anywhere
            # inside torch.distributed (Ray Train's workers): DDP, and each rank takes its share of a batch
            rank, world = data_parallel()
            trained = wrap_ddp(self.net_, device)
            rng = np.random.default_rng(seed)
            self.loss_ = self.resolved_loss(inter.n_items)
            log.info("SASRec: %s softmax over %d items", self.loss_, inter.n_items)
            criterion = FullSoftmaxCE(ignore_index=-100)
            sampled = SampledSoftmax(temperature=1.0)
            negatives: PopularityNegatives | None = None
            generator: torch.Generator | None = None
            if self.loss_ == "sampled":
                negatives = PopularityNegatives(inter.item_counts(), int(self.n_negatives)).to(device)
                generator = torch.Generator(device=device).manual_seed(seed + rank)

            def batches(epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
                inputs, targets = self._windows(self.histories_, rng)
                x_all, y_all = torch.from_numpy(inputs), torch.from_numpy(targets)
                order = torch.from_numpy(rng.permutation(len(x_all)))
                for sel in shard_batches(order, self.batch_size, rank, world):
                    yield x_all[sel], y_all[sel]  # fit_loop moves each batch to the device once

            def loss_fn(module: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
                net = cast(SASRecNet, unwrap(module))  # fit_loop hands back what it trains: self.net_ (in DDP)
                x, y = batch
                hidden = module(x)  # (B, L, d); through DDP's forward, which syncs the gradients
                keep = y >= 0
                target, weights = y[keep], net.item_weights()
                if negatives is None:
                    logits = hidden[keep] @ weights.T  # (N, n_items), only positions with a target
                    return criterion(logits, target)
                neg, neg_log_q = negatives.draw(generator)  # (M,): logits (N, N + M)
                return sampled(
                    hidden[keep],
                    weights[target],
                    weights[neg],
                    pos_log_q=negatives.log_pos_q[target],
                    neg_log_q=neg_log_q,
                    pos_ids=target,
                    neg_ids=neg,
                )

            callbacks: list = [LogMetrics(log)]
            validate = None
            if valid is not None and len(valid):
                callbacks.append(EarlyStopping("ndcg@10", mode="max", patience=int(self.patience)))
                validate = self._validation_fn(valid)
            optimizer = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=self.weight_decay)
            state = fit_loop(
                trained,
                batches,
                loss_fn,
                optimizer,
                epochs=int(self.epochs),
                callbacks=callbacks,
                validate=validate,
                show_progress=self.show_progress,
                device=device,
                amp_dtype=amp_dtype(device, self.precision),
            )
        self.train_history_ = state.history  # loss and validation NDCG per epoch
        self.net_.eval()

    def _validation_fn(self, valid: Interactions):
        users = np.unique(valid.users)
        rel_csr = valid.to_csr("binary")
        relevant = [rel_csr[u].indices for u in users]

        def validate() -> dict[str, float]:
            scores = []
            for start in range(0, len(users), 512):
                block = users[start : start + 512]
                s = self._encode_scores(block)
                r, c = self.seen_[block].nonzero()
                s[r, c] = -np.inf
                scores.append(_ndcg_full_ranking(s, relevant[start : start + 512], 10))
            return {"ndcg@10": float(np.concatenate(scores).mean())}

        return validate

    # ------------------------------------------------------------------ scoring
    def _inputs(self, user_idx: np.ndarray) -> torch.Tensor:
        """(n, L) left-padded tokens of the users' last ``max_len`` items (L >= 1)."""
        recent = [self.histories_[u][-self.max_len :] for u in user_idx]
        length = max(1, max((len(r) for r in recent), default=1))
        out = np.zeros((len(user_idx), length), np.int64)
        for row, items in enumerate(recent):
            if len(items):
                out[row, length - len(items) :] = items + 1
        return torch.from_numpy(out)

    def _user_states(self, user_idx: np.ndarray) -> torch.Tensor:
        device = next(self.net_.parameters()).device
        self.net_.eval()
        with torch.no_grad():
            return self.net_(self._inputs(user_idx).to(device))[:, -1]  # (n, d)

    def _encode_scores(self, user_idx: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            logits = self._user_states(user_idx) @ self.net_.item_weights().T  # (n, n_items)
        return logits.float().cpu().numpy()

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        user_idx = self._check_users(user_idx)
        out = np.empty((len(user_idx), self.n_items), np.float32)
        with _torch_threads(self.num_threads):
            for start in range(0, len(user_idx), 256):
                out[start : start + 256] = self._encode_scores(user_idx[start : start + 256])
        return out

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        """(n, hidden) final hidden states; ``score_all = user_vectors @ item_vectors().T``."""
        user_idx = self._check_users(user_idx)
        with _torch_threads(self.num_threads):
            return self._user_states(user_idx).float().cpu().numpy()

    def item_vectors(self) -> np.ndarray:
        with torch.no_grad():
            return self.net_.item_weights().float().cpu().numpy()

    def observe(self, interactions: Interactions) -> SASRec:
        """Append ``interactions`` to each user's sequence (in time order) and mark them seen."""
        super().observe(interactions)
        for user, items in enumerate(interactions.sequences()):
            if len(items):
                self.histories_[user] = np.concatenate([self.histories_[user], items])
        return self

    # ------------------------------------------------------------------ persistence
    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {f"net.{k}": v.detach().cpu().numpy() for k, v in self.net_.state_dict().items()}
        lengths = np.asarray([len(h) for h in self.histories_], dtype=np.int64)
        arrays["hist_offsets"] = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        arrays["hist_items"] = np.concatenate([np.zeros(0, np.int64), *self.histories_]).astype(np.int64)
        return arrays, {"n_items": int(self.n_items)}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        offsets, items = arrays["hist_offsets"], arrays["hist_items"]
        self.histories_ = [items[offsets[u] : offsets[u + 1]] for u in range(len(offsets) - 1)]
        net = self._make_net(int(meta["n_items"]))
        net.load_state_dict({k[4:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("net.")})
        try:
            device = self._torch_device()
        except ValueError as err:  # a saved model loads anywhere: on the CPU when its device is absent
            log.warning("SASRec: %s; loading on the CPU", err)
            device = torch.device("cpu")
        self.net_ = net.to(device).eval()
