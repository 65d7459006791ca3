"""Per-scenario adapters of the multi-scenario model and the objective that trains them.

A scenario ``s`` owns one `ScenarioAdapter`: a scenario embedding ``e_s`` and two low-rank residual
maps, one on the user side and one on the item side, applied in the shared scoring space (after the
backbone's ``project``):

    u_s = u + e_s + B^u_s A^u_s u          v_{i,s} = v_i + B^v_s A^v_s v_i

``A`` is (r, d) with a small random init and ``B`` is (d, r) with a zero init, as in LoRA, and
``e_s`` starts at zero: a new adapter is exactly the identity, so a new scenario starts from the
shared model and only moves as far as its data asks. One adapter costs ``d + 4 r d`` parameters.
Scenario id -1 is the shared path (no adapter).

**Text-path correction** (``text_rank`` ``r_t`` > 0). The maps above act on the shared item vectors,
which for items without a trained ID row carry only the ``d`` numbers the shared adaptor extracted
from the text; the adapter cannot add per-item information to them. With ``r_t > 0`` the adapter
also owns a LoRA-style low-rank correction of the item tower's text adaptor, read from the full
whitened text vector ``w_i = (e_i - mean) P`` (width ``k``, ~384):

    v_{i,s} = p_i + B^v_s A^v_s p_i + B^t_s A^t_s w_i,       p_i = v_i / |v_i| (cosine) or v_i (dot)

``A^t`` is (r_t, k) with a ``1/sqrt(k)`` random init and ``B^t`` (d, r_t) is zero, so the adapter
still starts as the identity. Cost: ``d + 4 r d + r_t (k + d)`` parameters. It applies to every item
scored under the scenario (items of other scenarios are pushed down by the same training signal).

**On the history side too** (``text_history``, no extra parameters). The user tower reads a user's
history through the shared item vectors, so an item without a trained ID row enters the user's vector
with only the shared adaptor's view of its text, whatever the correction learned. With
``text_history`` the same correction ``B^t A^t w_i`` is added to the item vectors the user tower reads
under the scenario, so the scenario's users are encoded from the corrected items as well.

**Item-ID residual** (``id_rank`` ``r_id`` > 0, for `adapt`). Full fine-tuning of a new scenario
switches on and trains a ``d``-wide ID row for each of the scenario's items; an adapter cannot afford
that (669 items x 64 = 42,816 numbers for Office Electronics, more than the whole adapter). The
adapter can afford a low-rank version of it: for the ``n_id`` items the scenario trains on
(``id_rows``), ``U_s V_s`` with ``U_s`` (n_id, r_id) zero-initialised and ``V_s`` (r_id, d) random,
added to those items' scenario vectors (and, with ``text_history``, to the vectors the user tower
reads). Cost: ``r_id (n_id + d)`` parameters. Other items are untouched, so it still starts as the
identity and items that appear later are scored from text as before.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lmrec.data.interactions import Interactions
from lmrec.models.lm.config import ScenarioConfig
from lmrec.models.lm.item_tower import ItemTower
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.training import Objective, Windows, batches_of, make_windows, user_columns
from lmrec.train.anchor import pull_toward_anchor
from lmrec.train.callbacks import EarlyStopping, LogMetrics
from lmrec.train.loop import fit_loop

if TYPE_CHECKING:
    from lmrec.models.lm.model import LMRecommender

__all__ = [
    "NO_LOSS",
    "ScenarioAdapter",
    "ScenarioAdapters",
    "ScenarioObjective",
    "check_text_history",
    "check_text_rank",
    "scenario_adapters",
    "scenario_loss_weights",
    "train_positions",
]

NO_LOSS = -100  # a position that is read as history but not trained on


def scenario_adapters(
    net: LMNet,
    n_scenarios: int,
    dim: int,
    config: ScenarioConfig,
    seed: int,
    text_ranks: list[int] | None = None,
    text_history: list[bool] | None = None,
    id_shapes: list[tuple[int, int]] | None = None,
) -> ScenarioAdapters:
    """One fresh adapter per scenario for ``net`` (initialised from ``seed``); the shapes default to
    ``config`` (a loaded model passes its saved adapters' shapes)."""
    ranks = text_ranks or [int(config.adapter_text_rank or 0)] * n_scenarios
    flags = text_history or [bool(config.adapter_text_history)] * n_scenarios
    tower = net.item_tower
    text_dim = int(tower.white_proj.shape[1]) if tower.uses_text else 0
    return ScenarioAdapters(
        n_scenarios,
        dim,
        int(config.adapter_rank),
        torch.Generator().manual_seed(seed),
        text_ranks=ranks,
        text_dim=text_dim,
        text_history=flags,
        id_shapes=id_shapes,
    )


def scenario_loss_weights(
    setting: Mapping[str, float] | str | None, names: list[str], counts: np.ndarray
) -> np.ndarray:
    """(n_scenarios,) float32 loss weights from ``ScenarioConfig.scenario_weights``: None (all 1),
    ``"balanced"`` (``sqrt(mean(counts) / counts_s)``) or a dict name -> weight (others 1).

    Raises:
        ValueError: the dict names a scenario not in ``names``.
    """
    if setting is None:
        return np.ones(len(counts), np.float32)
    if setting == "balanced":
        return np.sqrt(counts.mean() / np.maximum(counts, 1.0)).astype(np.float32)
    assert isinstance(setting, Mapping)  # ScenarioConfig checked the kinds
    unknown = sorted(set(setting) - set(names))
    if unknown:
        raise ValueError(f"scenario_weights names unknown scenario(s) {unknown}; scenarios: {names}")
    return np.array([float(setting.get(n, 1.0)) for n in names], np.float32)


def check_text_rank(rank: object, item_repr: str, name: str) -> None:
    """Raise a ValueError naming ``name`` unless ``rank`` is an int >= 0 usable with ``item_repr``."""
    if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or rank < 0:
        raise ValueError(f"LMScenarioRecommender {name} must be an integer >= 0, got {rank!r}")
    if rank > 0 and item_repr == "id":
        raise ValueError(f"LMScenarioRecommender {name}={rank} needs a text path; item_repr='id' has none")


def check_text_history(flag: object, rank: int, name: str) -> None:
    """Raise a ValueError naming ``name`` unless ``flag`` is a bool, True only with a text rank > 0."""
    if not isinstance(flag, (bool, np.bool_)):
        raise ValueError(f"LMScenarioRecommender {name} must be True or False, got {flag!r}")
    if flag and not rank:
        raise ValueError(f"LMScenarioRecommender {name}=True needs a text-path correction (a text rank > 0)")


class ScenarioAdapter(nn.Module):
    """One scenario's embedding and low-rank user / item maps.

    Args:
        dim: width ``d`` of the scoring space.
        rank: rank ``r`` of the two residual maps.
        generator: RNG of the ``A`` init (None: torch's global RNG).
        text_rank: rank ``r_t`` of the text-path correction (0: none).
        text_dim: width ``k`` of the whitened text vector (needed when ``text_rank > 0``).
        text_history: also correct the items the user tower reads (see the module docstring).
        id_rows: (n_id,) catalogue rows that get an item-ID residual (needed when ``id_rank > 0``).
        id_rank: rank ``r_id`` of the item-ID residual (0: none).
    """

    id_rows: torch.Tensor  # buffer: the items with an ID residual (only with ``id_rank > 0``)

    def __init__(
        self,
        dim: int,
        rank: int,
        generator: torch.Generator | None = None,
        *,
        text_rank: int = 0,
        text_dim: int = 0,
        text_history: bool = False,
        id_rows: np.ndarray | None = None,
        id_rank: int = 0,
    ) -> None:
        super().__init__()
        if text_rank < 0 or (text_rank > 0 and text_dim < 1):
            raise ValueError(f"text_rank must be >= 0 (and text_dim >= 1 with it), got {text_rank!r} / {text_dim!r}")
        std = 1.0 / np.sqrt(dim)
        self.emb = nn.Parameter(torch.zeros(dim))
        self.user_a = nn.Parameter(torch.randn(rank, dim, generator=generator) * std)
        self.user_b = nn.Parameter(torch.zeros(dim, rank))
        self.item_a = nn.Parameter(torch.randn(rank, dim, generator=generator) * std)
        self.item_b = nn.Parameter(torch.zeros(dim, rank))
        self.text_rank = int(text_rank)
        if text_history and self.text_rank == 0:
            raise ValueError("text_history needs a text-path correction (text_rank > 0)")
        self.text_history = bool(text_history)
        if self.text_rank > 0:
            self.text_a = nn.Parameter(torch.randn(text_rank, text_dim, generator=generator) / np.sqrt(text_dim))
            self.text_b = nn.Parameter(torch.zeros(dim, text_rank))
        if isinstance(id_rank, bool) or not isinstance(id_rank, (int, np.integer)) or id_rank < 0:
            raise ValueError(f"id_rank must be an integer >= 0, got {id_rank!r}")
        self.id_rank = int(id_rank)
        if self.id_rank > 0:
            rows = np.asarray([] if id_rows is None else id_rows)
            if rows.ndim != 1 or len(rows) == 0 or rows.dtype.kind not in "iu":
                raise ValueError(f"id_rank={id_rank} needs a non-empty 1-d integer array of id_rows, got {id_rows!r}")
            if rows.min() < 0 or len(np.unique(rows)) != len(rows):
                raise ValueError("id_rows must be distinct catalogue rows >= 0")
            self.register_buffer("id_rows", torch.as_tensor(rows.astype(np.int64)))
            self.id_u = nn.Parameter(torch.zeros(len(rows), self.id_rank))
            self.id_v = nn.Parameter(torch.randn(self.id_rank, dim, generator=generator) * std)

    @staticmethod
    def n_params(dim: int, rank: int, text_rank: int = 0, text_dim: int = 0, id_rank: int = 0, n_id: int = 0) -> int:
        """Parameters of one adapter: ``d + 4 r d + r_t (k + d) + r_id (n_id + d)``."""
        return dim + 4 * rank * dim + text_rank * (text_dim + dim) + id_rank * (n_id + dim)

    def user(self, u: torch.Tensor) -> torch.Tensor:
        """(n, d) shared user vectors -> (n, d) scenario user vectors (not normalised)."""
        return u + self.emb + (u @ self.user_a.T) @ self.user_b.T

    def item(self, v: torch.Tensor, tower: ItemTower | None = None) -> torch.Tensor:
        """(m, d) shared item vectors -> (m, d) scenario item vectors (not normalised).

        Args:
            v: (m, d) shared item vectors (projected: unit for cosine).
            tower: the item tower whose catalogue rows ``v`` are (m = its item count); needed
                when ``text_rank > 0``, for the whitened text vectors of the correction.
        """
        out = v + (v @ self.item_a.T) @ self.item_b.T
        if self.text_rank > 0:
            out = out + self.text_term(tower, len(v))
        return self.id_term(out)

    def drop_ids(self) -> None:
        """Remove the item-ID residual (its rows name another catalogue's items after a domain move)."""
        if self.id_rank > 0:
            del self.id_u, self.id_v, self.id_rows
            self.id_rank = 0

    def id_term(self, v: torch.Tensor) -> torch.Tensor:
        """``v`` (m, d) with the item-ID residual ``U V`` added to the rows ``id_rows`` (identity without one)."""
        if self.id_rank == 0:
            return v
        if int(self.id_rows.max()) >= len(v):
            raise ValueError(f"item-ID residual: row {int(self.id_rows.max())} but only {len(v)} item vectors")
        return v.index_add(0, self.id_rows, self.id_u @ self.id_v)

    def text_term(self, tower: ItemTower | None, n_items: int) -> torch.Tensor:
        """(m, d) text-path correction ``B^t A^t w_i`` of every catalogue item (needs ``text_rank > 0``)."""
        if tower is None or not getattr(tower, "uses_text", False):
            raise ValueError("a scenario adapter with text_rank > 0 needs the item tower's text path")
        if len(tower.text) != n_items:
            raise ValueError(f"text correction: {n_items} item vectors but {len(tower.text)} item texts")
        # (w @ A^T) with w = (e - mean) P, computed as (e - mean) (P A^T): k x r_t instead of k x k
        low = (tower.text - tower.white_mean) @ (tower.white_proj @ self.text_a.T)  # (m, r_t)
        return low @ self.text_b.T

    def history(self, vecs: torch.Tensor, tower: ItemTower | None) -> torch.Tensor:
        """(m, d) item vectors the user tower reads under this scenario: ``vecs`` (the item tower's
        raw output), plus the text correction and the item-ID residual with ``text_history``."""
        return self.id_term(vecs + self.text_term(tower, len(vecs))) if self.text_history else vecs


class ScenarioAdapters(nn.Module):
    """The adapters of all scenarios, position = scenario id (a ModuleList, so each scenario's
    parameters are separate tensors and freezing one scenario never touches another)."""

    def __init__(
        self,
        n_scenarios: int,
        dim: int,
        rank: int,
        generator: torch.Generator | None = None,
        *,
        text_ranks: list[int] | None = None,
        text_dim: int = 0,
        text_history: list[bool] | None = None,
        id_shapes: list[tuple[int, int]] | None = None,
    ) -> None:
        super().__init__()
        self.dim, self.rank, self.text_dim = dim, rank, text_dim
        ranks = [0] * n_scenarios if text_ranks is None else list(text_ranks)
        flags = [False] * n_scenarios if text_history is None else list(text_history)
        shapes = [(0, 0)] * n_scenarios if id_shapes is None else list(id_shapes)
        if len(ranks) != n_scenarios or len(flags) != n_scenarios or len(shapes) != n_scenarios:
            raise ValueError(
                f"text_ranks / text_history / id_shapes have {len(ranks)} / {len(flags)} / "
                f"{len(shapes)} entries for {n_scenarios} scenarios"
            )
        # id_shapes: (n_id, r_id) per adapter, to rebuild saved item-ID residuals (rows are loaded after)
        self.adapters = nn.ModuleList(
            ScenarioAdapter(
                dim,
                rank,
                generator,
                text_rank=r,
                text_dim=text_dim,
                text_history=h,
                id_rows=np.arange(n_id) if r_id else None,
                id_rank=r_id,
            )
            for r, h, (n_id, r_id) in zip(ranks, flags, shapes)
        )

    def __len__(self) -> int:
        return len(self.adapters)

    def make(
        self,
        generator: torch.Generator | None = None,
        text_rank: int = 0,
        text_history: bool = False,
        id_rows: np.ndarray | None = None,
        id_rank: int = 0,
    ) -> ScenarioAdapter:
        """A fresh (identity) adapter of this set's shape, not yet attached."""
        return ScenarioAdapter(
            self.dim,
            self.rank,
            generator,
            text_rank=text_rank,
            text_dim=self.text_dim,
            text_history=text_history,
            id_rows=id_rows,
            id_rank=id_rank,
        )

    def add(
        self,
        generator: torch.Generator | None = None,
        text_rank: int = 0,
        text_history: bool = False,
        id_rows: np.ndarray | None = None,
        id_rank: int = 0,
    ) -> ScenarioAdapter:
        """Append a fresh (identity) adapter; its id is the old ``len(self)``."""
        adapter = self.make(generator, text_rank, text_history, id_rows, id_rank)
        self.adapters.append(adapter)
        return adapter

    def users(self, u: torch.Tensor, ids: torch.Tensor, project) -> torch.Tensor:
        """(n, d) user vectors under per-row scenario ids (n,) (-1: shared), through ``project``."""
        out = u.clone()
        for s in torch.unique(ids).tolist():
            if s >= 0:
                rows = ids == s
                out[rows] = self.adapters[s].user(u[rows])
        return project(out)

    def items(self, v: torch.Tensor, s: int, project, tower: ItemTower | None = None) -> torch.Tensor:
        """(m, d) item vectors under scenario ``s`` (-1: shared), through ``project``.

        ``v`` may be raw or projected (projection is applied first; the maps are linear, so for the
        user / item maps this is the same as before). ``tower``: see `ScenarioAdapter.item`.
        """
        return project(v) if s < 0 else project(self.adapters[s].item(project(v), tower))  # type: ignore[operator]


class ScenarioObjective(Objective):
    """Full-softmax next-item loss where each position is scored under its target's scenario.

    The batch's ``events`` slot carries the scenario id of each position's target (-1: shared path,
    -100: no loss; see `lmrec.models.lm.scenario`). Each position's cross-entropy is weighted by its
    scenario's weight, and the batch loss is the weighted mean.

    Args:
        item_counts: (n_items,) training interactions per item (items without any are never negatives).
        weights: (n_scenarios,) loss weight per scenario; the shared path has weight 1.
        shared_dropout: share of positions moved to the shared path in each step, so that path
            (unknown scenarios, ``scenario=None``) stays trained.
        rating_weight: weight of the rating head (on the scenario vectors).
        generator: RNG of ID dropout and the shared dropout.
    """

    def __init__(
        self,
        item_counts: np.ndarray,
        weights: np.ndarray,
        *,
        shared_dropout: float = 0.1,
        rating_weight: float = 0.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__("full", item_counts, rating_weight=rating_weight, generator=generator)
        self.weights = torch.as_tensor(np.asarray(weights, dtype=np.float32))
        self.shared_dropout = shared_dropout

    def __call__(self, net: LMNet, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        adapters: ScenarioAdapters = net.scenario
        vecs = net.item_tower(self.generator)  # (n_items, d), ID dropout in train mode
        text, has_text = net.user_text_of(batch["users"])
        scen = batch["events"]
        keep = (batch["targets"] >= 0) & (scen != -100)
        target, ids = batch["targets"][keep], scen[keep].clone()
        if self.shared_dropout > 0 and net.training:
            ids[torch.rand(ids.shape, generator=self.generator) < self.shared_dropout] = -1

        def states_over(item_vecs: torch.Tensor) -> torch.Tensor:  # (N, d) kept positions' states
            return net.user_tower(item_vecs, batch["tokens"], batch["lengths"], batch["buckets"], text, has_text)[keep]

        # positions of a scenario whose adapter corrects the history read it through corrected items
        hist = [s for s in torch.unique(ids).tolist() if s >= 0 and adapters.adapters[s].text_history]
        on_shared = ~torch.isin(ids, torch.as_tensor(hist, dtype=ids.dtype))
        states = states_over(vecs) if on_shared.any() else torch.zeros(len(ids), vecs.shape[1])
        for s in hist:
            rows = ids == s
            states = torch.where(rows[:, None], states_over(adapters.adapters[s].history(vecs, net.item_tower)), states)
        shared_u = net.project(states)  # (N, d) shared unit vectors
        u = adapters.users(shared_u, ids, net.project)  # (N, d)
        v_shared = net.project(vecs)
        w = torch.where(ids >= 0, self.weights[ids.clamp(min=0)], torch.ones(()))  # (N,)
        ce = torch.empty(len(ids))
        v_target = torch.empty_like(u)
        for s in torch.unique(ids).tolist():
            rows = ids == s
            v_s = adapters.items(v_shared, s, net.project, net.item_tower)  # (n_items, d)
            logits = (u[rows] @ v_s.T / net.temperature).masked_fill(~self.trainable, float("-inf"))
            ce[rows] = F.cross_entropy(logits, target[rows], reduction="none")
            v_target[rows] = v_s[target[rows]]
        total = (w * ce).sum() / w.sum().clamp(min=1e-12)
        if net.rating_head is not None and self.rating_weight > 0:
            r = batch["ratings"][keep]
            ok = torch.isfinite(r)
            if ok.any():
                pred = net.rating_head(net.pair_features(u[ok], v_target[ok])).squeeze(-1)
                total = total + self.rating_weight * F.mse_loss(pred, torch.log1p(r[ok].clamp(min=0)))
        return total


def train_positions(
    model: LMRecommender,
    inter: Interactions,
    row_scenarios: np.ndarray,
    weights: np.ndarray,
    validate: Callable[[], dict[str, float]] | None,
    seed: int,
    *,
    params: list[torch.nn.Parameter],
    epochs: int,
    lr: float,
    patience: int,
    shared_dropout: float,
    anchor: dict[str, torch.Tensor] | None = None,
    anchor_strength: float = 0.0,
) -> list[dict[str, float]]:
    """Train ``params`` of ``model.net_`` on ``inter`` with each position scored under its target's scenario.

    Args:
        model: the backbone, whose network (with ``scenario`` adapters), histories (from ``inter``)
            and counts are set.
        inter: the training interactions.
        row_scenarios: (len(inter),) scenario id per interaction (-1 shared, -100 history only).
        weights: (n_scenarios,) loss weights.
        validate: ``() -> {"ndcg@10", ...}`` after every epoch for early stopping, or None.
        seed: seeds shuffling, dropout and sampling.
        params / epochs / lr / patience: what to train and how.
        shared_dropout: share of positions moved to the shared path.
        anchor / anchor_strength: parameter name -> start value, pulled toward after every step at
            rate ``lr * anchor_strength`` (L2-SP, decoupled); None: no pull.
    """
    per_user, ratings = user_columns(inter, model.objective.rating_weight)
    # the windows' event slot carries each target's scenario id
    windows = make_windows(
        model.hist_items_,
        model.hist_times_,
        model.user_tower.max_len,
        model.user_tower.n_time_buckets,
        ratings,
        per_user(np.asarray(row_scenarios, np.int64)),
    )
    trained = ((windows.events != NO_LOSS) & (windows.targets >= 0)).any(axis=1)  # windows of history only: skip
    windows = Windows(**{f.name: getattr(windows, f.name)[trained] for f in fields(Windows)})
    generator = torch.Generator().manual_seed(seed)
    objective = ScenarioObjective(
        model.counts_,
        weights,
        shared_dropout=shared_dropout,
        rating_weight=model.objective.rating_weight,
        generator=generator,
    )
    callbacks: list = [LogMetrics(logging.getLogger("lmrec.models.lm.model"))]
    if validate is not None:
        callbacks.append(EarlyStopping("ndcg@10", mode="max", patience=patience))

    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=model.optim.weight_decay)
    if anchor and anchor_strength > 0:
        net, rate = model.net_, float(lr) * float(anchor_strength)
        optimizer.register_step_post_hook(lambda *_: pull_toward_anchor(net, anchor, rate))
    state = fit_loop(
        model.net_,
        batches_of(windows, int(model.optim.batch_size), seed),
        objective,
        optimizer,
        epochs=epochs,
        callbacks=callbacks,
        validate=validate,
        grad_clip=model.optim.grad_clip,
        show_progress=model.show_progress,
    )
    return state.history
