"""Cold start of the language-model interest model: items scored by how much the model knows of them.

The learned towers are trained on warm items' next-item targets, so their vector of an item nobody
has bought (the text path with the ID part off) carries little of what the frozen text knows. This
component, applied after training, gives every score two paths in one inner product:

    score(u, i) = <v_u, v_i> + w(n_i) * cos(c_u, c_i)

- ``v_i`` is the learned vector; for an item without training interactions it is mixed with the
  learned vectors of its ``neighbours`` nearest warm items by frozen content cosine (softmax of
  ``cos / tau``), so it borrows their collaborative position: ``v_i = unit((1 - b) v_text + b v_nbr)``
  with ``b = borrow``.
- ``c_i`` is the item's whitened frozen text vector (unit), ``c_u`` the unit mean of the ``c_i`` of
  the user's last ``max_len`` items.
- ``w(n) = item_weight * h / (h + n)`` is the gate from the item's training interaction count
  ``n`` (``h = half_count``; ``h = 0`` gives the content term to items with no interactions only),
  so warm items keep the learned score and cold ones get the content similarity.

Vectors stay one inner product: items are ``[v_i, w(n_i) c_i, query_weight * e_i]``, users
``[v_u, c_u, 0]`` and queries ``[v_q, 0, e_q]``, where ``e`` is the unit raw (unwhitened) text vector:
a short query is far from the catalogue the whitening was fitted on, and the raw cosine matches it
better (both scaled to unit length, which leaves each one's
ranking as it is) (a query's ``v_q`` borrows from its neighbours as a cold
item does). An item added later (`LMRecommender.add_items`, the service's ``PUT /items``) has no
interactions, so `ColdStart.text_vectors` gives it exactly the vector the catalogue path gives it.

``item_weight``, ``half_count`` and ``borrow`` are chosen on the validation rows ``fit`` gets
(NDCG@10 over a small grid, `calibrate`); when no candidate beats the learned vectors alone there,
they are 0 (users' rankings are the learned ones, queries keep their text block). Without validation
rows the paths stay off (the weights cannot be chosen blind); ``calibrate=False`` uses the config's
values instead.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from lmrec.data.interactions import Interactions
from lmrec.models.lm.config import ColdStartConfig
from lmrec.models.lm.validation import ranking_metrics

__all__ = ["ColdStart", "ColdState", "GRID", "calibrate", "user_content_vectors"]

log = logging.getLogger(__name__)

#: similarities computed at once by `ColdStart.borrowed` (rows x warm items): bounds its memory
_SIM_CHUNK = 1 << 23

#: the calibration grid (the config's own values are tried first, so ties keep them)
GRID: dict[str, tuple[float, ...]] = {
    "item_weight": (0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0),
    "half_count": (0.0, 1.0, 5.0),
    "borrow": (0.0, 0.5, 1.0),
}


@dataclass(frozen=True)
class ColdState:
    """The fitted weights of the cold-start paths (saved with the model).

    Attributes:
        item_weight: content weight ``w(0)`` of an item without training interactions.
        half_count: ``h`` of the gate ``w(n) = item_weight * h / (h + n)`` (0: cold items only).
        borrow: share of the neighbours' learned vector in a cold item's (and a query's) learned vector.
        calibrated: True when chosen on validation rows, False for the config's values.
    """

    item_weight: float
    half_count: float
    borrow: float
    calibrated: bool = False

    @classmethod
    def from_config(cls, config: ColdStartConfig) -> ColdState:
        return cls(config.item_weight, config.half_count, config.borrow, False)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def gate(counts: np.ndarray, item_weight: float, half_count: float) -> np.ndarray:
    """(n,) content weights ``w(n)`` of items with ``counts`` training interactions."""
    counts = np.asarray(counts, dtype=np.float64)
    if half_count <= 0:
        return np.where(counts <= 0, item_weight, 0.0).astype(np.float32)
    return (item_weight * half_count / (half_count + counts)).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def user_content_vectors(content: np.ndarray, histories: Sequence[np.ndarray], max_len: int) -> np.ndarray:
    """(n, k) unit mean content vectors of the last ``max_len`` items of each history (zeros for an
    empty one); ``content`` is (n_items, k)."""
    out = np.zeros((len(histories), content.shape[1]), np.float32)
    for row, hist in enumerate(histories):
        h = np.asarray(hist, dtype=np.int64)[-max_len:]
        if len(h):
            out[row] = content[h].sum(axis=0)
    return _unit(out).astype(np.float32)


class ColdStart:
    """The cold-start paths over a fitted model's vectors (rebuilt whenever its vectors are).

    Args:
        config: the component's settings (``neighbours``, ``tau``, ``query_weight``).
        state: the fitted weights.
        learned: (n_items, d) the model's learned item vectors.
        content: (n_items, k) unit whitened frozen text vectors.
        raw: (n_items, D) the frozen text vectors as the encoder gives them (made unit here): the
            query block, since a short query is far from the catalogue the whitening was fitted on.
        counts: (n_items,) training interactions per item (0: cold).
        unit: renormalise mixed learned vectors (cosine similarity).
    """

    def __init__(
        self,
        config: ColdStartConfig,
        state: ColdState,
        learned: np.ndarray,
        content: np.ndarray,
        counts: np.ndarray,
        raw: np.ndarray,
        *,
        unit: bool = True,
    ) -> None:
        if not len(learned) == len(content) == len(counts):
            raise ValueError(f"ColdStart: {len(learned)} learned, {len(content)} content and {len(counts)} counts")
        self.config, self.state, self.unit = config, state, unit
        self.learned = np.asarray(learned, np.float32)
        self.content = np.asarray(content, np.float32)
        self.raw = _unit(np.asarray(raw, np.float32)).astype(np.float32)
        self.counts = np.asarray(counts)
        self.warm = np.flatnonzero(self.counts > 0)

    @property
    def width(self) -> int:
        """Width of every vector the paths produce: ``d + k + D``."""
        return self.learned.shape[1] + self.content.shape[1] + self.raw.shape[1]

    def borrowed(self, content_rows: np.ndarray, values: np.ndarray | None = None) -> np.ndarray:
        """(m, d) the softmax-weighted mean learned vector (or row of ``values``, (n_items, d)) of each
        row's nearest warm items by content."""
        values = self.learned if values is None else values
        m, d = len(content_rows), values.shape[1]
        if len(self.warm) == 0 or m == 0:
            return np.zeros((m, d), np.float32)
        k = min(self.config.neighbours, len(self.warm))
        warm_content = self.content[self.warm]
        out = np.empty((m, d), np.float32)
        # rows in chunks: the (rows, n_warm) similarities of every cold item at once would need
        # n_cold x n_warm floats (and argpartition twice that in int64), tens of GiB for 100,000 items
        step = max(1, _SIM_CHUNK // len(self.warm))
        for start in range(0, m, step):
            sims = content_rows[start : start + step] @ warm_content.T  # (rows, n_warm)
            rows = len(sims)
            top = (
                np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < sims.shape[1] else np.tile(np.arange(k), (rows, 1))
            )
            s = np.take_along_axis(sims, top, axis=1).astype(np.float64)  # (rows, k)
            w = np.exp((s - s.max(axis=1, keepdims=True)) / self.config.tau)
            w /= w.sum(axis=1, keepdims=True)
            nbr = values[self.warm[top]]  # (rows, k, d)
            out[start : start + rows] = np.einsum("mk,mkd->md", w, nbr)
        return out

    def mix_learned(self, learned_rows: np.ndarray, content_rows: np.ndarray) -> np.ndarray:
        """(m, d) ``(1 - borrow) * learned + borrow * borrowed`` (renormalised for cosine)."""
        b = self.state.borrow
        if b <= 0:
            return np.asarray(learned_rows, np.float32)
        out = (1.0 - b) * learned_rows + b * self.borrowed(content_rows)
        return (_unit(out) if self.unit else out).astype(np.float32)

    def item_learned(self) -> np.ndarray:
        """(n_items, d) learned vectors, the cold items' mixed with their neighbours'."""
        out = self.learned.copy()
        cold = np.flatnonzero(self.counts <= 0)
        if len(cold):
            out[cold] = self.mix_learned(self.learned[cold], self.content[cold])
        return out

    def history_inputs(self, item_raw: np.ndarray) -> np.ndarray:
        """(n_items, d) the user tower's inputs ``item_raw`` with each cold item's row mixed with its
        neighbours' rows as its learned vector is, so a history that holds a new item reads it as the
        scores do."""
        out = np.array(item_raw, dtype=np.float32, copy=True)
        cold = np.flatnonzero(self.counts <= 0)
        b = self.state.borrow
        if len(cold) and b > 0:
            out[cold] = (1.0 - b) * out[cold] + b * self.borrowed(self.content[cold], values=out)
        return out

    def item_vectors(self) -> np.ndarray:
        """(n_items, d + k + D) scoring vectors ``[v_i, w(n_i) c_i, query_weight * e_i]`` (``e_i`` the
        unit raw text vector)."""
        w = gate(self.counts, self.state.item_weight, self.state.half_count)
        return self.assemble(self.item_learned(), self.content, w, self.raw)

    def assemble(self, learned: np.ndarray, content: np.ndarray, weights: np.ndarray, raw: np.ndarray) -> np.ndarray:
        q = np.float32(self.config.query_weight)
        return np.concatenate([learned, content * weights[:, None], raw * q], axis=1).astype(np.float32)

    def text_vectors(
        self, learned: np.ndarray, content: np.ndarray, raw: np.ndarray, kind: Literal["passage", "query"]
    ) -> np.ndarray:
        """Vectors of items known only by text (``"passage"``: as a catalogue item with no interactions)
        or of queries (``"query"``: ``[v_q, 0, e_q]``, unit); ``learned`` (m, d) is the text path's
        output, ``content`` (m, k) the rows' unit content vectors and ``raw`` (m, D) their raw text
        vectors."""
        mixed = self.mix_learned(np.asarray(learned, np.float32), np.asarray(content, np.float32))
        raw = _unit(np.asarray(raw, np.float32)).astype(np.float32)
        if kind == "query":
            zeros = np.zeros_like(content, dtype=np.float32)
            return _unit(np.concatenate([mixed, zeros, raw], axis=1)).astype(np.float32)
        w = gate(np.zeros(len(mixed)), self.state.item_weight, self.state.half_count)
        return self.assemble(mixed, np.asarray(content, np.float32), w, raw)

    def user_vectors(self, learned: np.ndarray, histories: Sequence[np.ndarray], max_len: int) -> np.ndarray:
        """(n, d + k + D) unit user vectors ``[v_u, c_u, 0] / |[v_u, c_u]|`` from (n, d) learned vectors
        and item histories (unit, as every user and query vector of the model: the scale of one user's
        scores does not change their ranking, and the server and query blends expect unit vectors)."""
        c_u = user_content_vectors(self.content, histories, max_len)
        zeros = np.zeros((len(c_u), self.raw.shape[1]), np.float32)
        return _unit(np.concatenate([np.asarray(learned, np.float32), c_u, zeros], axis=1)).astype(np.float32)


def calibrate(
    paths: Callable[[ColdState], ColdStart],
    start: ColdState,
    user_vectors: Callable[[np.ndarray], np.ndarray],
    known: Interactions,
    valid: Interactions,
    *,
    grid: dict[str, tuple[float, ...]] | None = None,
) -> tuple[ColdState | None, list[dict[str, float]]]:
    """The state with the best validation NDCG@10 (ties: the earlier, ``start`` first), or, when none
    beats the learned vectors alone, ``ColdState(0, 0, 0)``: users and items then rank as the learned
    vectors alone do, and queries keep their text block.

    Args:
        paths: builds the `ColdStart` of a candidate state.
        start: the config's state, tried first.
        user_vectors: ``(user_idx) -> (n, d + 2k)`` vectors of the validation users (they do not depend
            on the state, so they are computed once).
        known: rows whose items are masked; valid: the validation rows.
        grid: candidate values per weight (None: `GRID`).

    Returns:
        The chosen state (``calibrated`` True) and one record per candidate (the first is the
        learned vectors alone: ``item_weight`` and ``borrow`` 0 rank users' items as the paths off do).
    """
    grid = GRID if grid is None else grid
    users = np.unique(valid.users)
    cache = dict(zip(users.tolist(), user_vectors(users)))
    candidates = [(0.0, 0.0, 0.0), (start.item_weight, start.half_count, start.borrow)]
    candidates += [c for c in itertools.product(grid["item_weight"], grid["half_count"], grid["borrow"])]
    neutral = ColdState(0.0, 0.0, 0.0, True)
    best = neutral
    best_value, baseline, records = -np.inf, -np.inf, []
    seen: set[tuple[float, float, float]] = set()
    for item_weight, half_count, borrow in candidates:  # the first: the learned vectors alone
        if (item_weight, half_count, borrow) in seen:
            continue
        seen.add((item_weight, half_count, borrow))
        state = ColdState(float(item_weight), float(half_count), float(borrow), True)
        items = paths(state).item_vectors()

        def score_all(batch: np.ndarray, items: np.ndarray = items) -> np.ndarray:
            return np.stack([cache[int(u)] for u in batch]) @ items.T

        value = ranking_metrics(score_all, known, valid)["ndcg@10"]
        records.append({**state.to_dict(), "ndcg@10": value})
        if not records[1:]:
            baseline = value  # the learned vectors alone
        elif value > best_value:
            best, best_value = state, value
    if best_value <= baseline:
        best = neutral
    log.info(
        "cold start calibrated on %d validation users: %s (ndcg@10 %.4f; learned vectors alone %.4f)",
        len(users),
        best,
        best_value,
        baseline,
    )
    return best, records


def fit_state(
    config: ColdStartConfig,
    paths: Callable[[ColdState], ColdStart],
    user_vectors: Callable[[np.ndarray], np.ndarray],
    known: Interactions,
    valid: Interactions | None,
) -> tuple[ColdState | None, list[dict[str, float]]]:
    """The fitted state: the config's values with ``config.calibrate`` False; else the one `calibrate`
    picks on ``valid``, or None (the paths off) without validation rows (the weights cannot be chosen
    blind)."""
    start = ColdState.from_config(config)
    if not config.calibrate:
        return start, []
    if valid is None or not len(valid):
        return None, []
    return calibrate(paths, start, user_vectors, known, valid)


def state_from_meta(meta: dict[str, Any], config: ColdStartConfig) -> ColdState | None:
    """The saved fitted state (``meta["cold_state"]``); for a model saved without one, the config's
    values with ``calibrate`` False and None (paths off) otherwise, as ``fit`` without validation rows."""
    saved = meta.get("cold_state")
    if saved:
        return ColdState(**saved)
    return None if config.calibrate else ColdState.from_config(config)


__all__ += ["fit_state", "gate", "state_from_meta"]
