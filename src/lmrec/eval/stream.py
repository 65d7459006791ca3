"""Streaming (prequential) evaluation: test on each new window, then train on it.

Interactions are ordered by time (ties keep file order). The first ``train_frac`` trains the initial
model; the rest is cut into ``n_windows`` consecutive, disjoint windows. For each window every arm
first ranks all items for the window's users (their history before the window masked; relevant =
their items in the window), then learns from the window:

- ``no_update``: the initial model; it only reads the new history (``observe``), never trains;
- ``incremental``: the initial model updated by ``partial_fit`` on each past window;
- ``full_retrain``: a fresh model fitted on all interactions before the window.

``train_s`` of an arm at window ``w`` is the training time spent just before that window (the update
on window ``w - 1``, or the refit); window 0 is ranked by the initial model in every arm.

The cuts (`lmrec.data.splits.stream_windows`, `holdout_rows`, `last_row_split`) are data splits and
live with the other splits.

Fresh fits (the initial model, every full retrain) early-stop by default (``early_stopping``): a
model whose ``fit`` takes ``valid`` trains on all rows but each user's last one and validates on
those, then observes them, so its history is complete (`fit_fresh`; the same as ``lmrec train``).
Without it such a model runs its full ``epochs`` budget (the language-model model's default is 200).
Updates early-stop the same way (`update_fresh`): a ``partial_fit`` that takes ``valid`` trains on
the window but each user's last row, validates on those rows after every epoch, keeps its best epoch
(0, the weights before the update, included) and then adds them to the history; without it (or a
model whose ``partial_fit`` has no ``valid``) the update trains its fixed ``update_epochs``. The
language-model model also bounds each update's time by a share of its last fresh fit
(``continual.update_budget``); each window's incremental arm reports the epochs the update ran, what
stopped it (``stopped_by``: the budget, patience or the epoch cap; ``budget_bound``) and its share of
the full retrain's training time at that window (``time_share``).

The id maps are the whole data set's from the start (the catalogue and the user list exist before
the stream; interactions are what arrives), so all arms rank the same items: an item without earlier
interactions is a cold item (text only for the language-model model) until its first row arrives.
`partial_fit`'s growing maps are tested on their own.

Forgetting (models with ``encode_users``), held-back protocol: a seeded random share
``forget_holdout`` of window 0's rows (``round(share * n)`` rows drawn uniformly without replacement
by ``numpy.random.default_rng(forget_seed)``, see `holdout_rows`) is held back from every arm: no
model ever trains on them (``partial_fit``, ``fit`` of every full retrain, ``observe`` of the
no-update arm) and they stay out of every later history. Window 0 itself is still ranked with all its
rows relevant (that happens before any arm learns it). The forgetting task ranks all items for the
users with a held-back row: history = their rows before window 0 plus their kept window-0 rows
(masked as usual), relevant = their held-back items, scored from that fixed history with
``encode_users``. It is scored right after learning window 0 and again after learning the last
window; ``forgetting = 1 - after_last / right_after``:

- ``replay`` / ``no_replay``: the incremental arm as configured, and a copy of it without replay,
  right after ``partial_fit`` on window 0 and after ``partial_fit`` on the last window;
- ``full_retrain``: the refit on everything up to window 0 (the one that ranks window 1) and a final
  refit on everything up to the last window (one extra fit, like-for-like with the incremental arm's
  last update); ``last_stream_refit`` is the refit that ranked the last window;
- ``initial``: the initial model, which never saw window 0, on the same task.

Every figure is also given over window 0's catalogue (``catalogue0``: the same task with the ranking
restricted to the items that had a row before the end of window 0), which separates forgetting from
items that appear later and compete for the old users' top 10.

This replaces the earlier definition, which scored window 0's rows right after the model had trained on
them (memorisation: even a full retrain "forgot" about half by it). The holdout applies only when
forgetting is measured; with ``forgetting=False`` (or a model without ``encode_users``) every arm
learns every row.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

import numpy as np

from lmrec.data.dataset import Dataset
from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split, holdout_rows, last_row_split, stream_windows
from lmrec.eval.evaluator import evaluate
from lmrec.eval.gate import clone_model
from lmrec.models.base import Recommender

__all__ = ["StreamResult", "evaluate_window", "fit_fresh", "prequential", "stream_table", "update_fresh"]

log = logging.getLogger(__name__)

ARMS: tuple[str, ...] = ("no_update", "incremental", "full_retrain")
#: what the incremental arm copies from the update's report (``last_update_``) into each window
UPDATE_KEYS: tuple[str, ...] = (
    "epochs_run",
    "budget_s",
    "budget_bound",
    "stopped_by",
    "best_epoch",
    "valid_ndcg@10",
    "valid_ndcg@10_before",
)


class _UserEncoder(Protocol):
    """A model with ``encode_users`` (the language-model model): users from a given history."""

    def encode_users(
        self,
        histories: Sequence[np.ndarray],
        texts: Sequence[str] | None = None,
        timestamps: Sequence[np.ndarray] | None = None,
        *,
        known_users: np.ndarray | None = None,
    ) -> np.ndarray: ...

    def item_vectors(self) -> np.ndarray | None: ...


class _Updatable(Protocol):
    """A model with ``partial_fit``; whether it also takes ``valid=`` is checked at run time."""

    def partial_fit(self, new_interactions: Interactions, **kwargs: Any) -> Recommender: ...


class _ReplayPolicy(Protocol):
    """A continual-update config with a ``replay`` kind (the language-model model's ``continual``)."""

    replay: str

    def replace(self, **changes: Any) -> _ReplayPolicy: ...


class _Continual(Protocol):
    """A model with a continual-update config (``continual``)."""

    continual: _ReplayPolicy


def _replay_kind(model: Recommender) -> str | None:
    """``model.continual.replay`` (None: the model has no continual config with a replay kind)."""
    return getattr(getattr(model, "continual", None), "replay", None)


def evaluate_window(
    model: Recommender,
    history: Interactions,
    window: Interactions,
    *,
    ks: tuple[int, ...] = (10, 20),
    metrics: tuple[str, ...] = ("ndcg", "recall", "hit", "mrr"),
) -> dict[str, float]:
    """Full-ranking metrics of ``model`` on a window: history masked, relevant = the window's items."""
    split = Split(history, window.subset(np.zeros(0, np.int64)), window, "stream")
    res = evaluate(model, split, phase="test", ks=ks, metrics=metrics, user_groups=())
    return {**{k: float(v) for k, v in res.metrics.items()}, "n_users": int(res.n_users)}


class _FrozenHistory:
    """Scores users from a fixed history (their rows in ``history``), for the forgetting measurement.

    With ``catalogue`` (an ``(n_items,)`` bool mask), items outside it score ``-inf``.
    """

    def __init__(self, model: Recommender, history: Interactions, catalogue: np.ndarray | None = None) -> None:
        # prequential measures forgetting only for models with encode_users
        self.model = cast(_UserEncoder, model)
        self.catalogue = catalogue
        order = history.time_order()
        bounds = np.searchsorted(history.users[order], np.arange(history.n_users + 1))
        self.items = [history.items[order][bounds[u] : bounds[u + 1]] for u in range(history.n_users)]
        self.times = [history.timestamps[order][bounds[u] : bounds[u + 1]] for u in range(history.n_users)]

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        users = np.asarray(user_idx, np.int64)
        vecs = self.model.encode_users(
            [self.items[u] for u in users], None, [self.times[u] for u in users], known_users=users
        )
        item_vecs = self.model.item_vectors()
        if item_vecs is None:
            raise ValueError(f"{type(self.model).__name__} has no item vectors to score the forgetting task with")
        scores = vecs @ item_vecs.T
        if self.catalogue is not None:
            scores[:, ~self.catalogue] = -np.inf
        return scores


@dataclass
class StreamResult:
    """What `prequential` returns.

    Attributes:
        windows: one dict per window: ``window``, ``n_rows``, ``start`` / ``end`` (seconds), then one
            dict of metrics per arm (``incremental`` and ``full_retrain`` with ``train_s``;
            ``incremental`` also with what the update before the window reported: ``epochs_run``,
            ``budget_s``, ``budget_bound``, ``stopped_by`` and, when it validated, ``best_epoch``,
            ``valid_ndcg@10`` and ``valid_ndcg@10_before``; with both arms, from window 1 on,
            ``time_share`` = its ``train_s`` / the full retrain's).
        forgetting: the held-back forgetting block (see the module docstring), or ``{"skipped": reason}``:
            ``protocol`` (``"held-back"``), ``holdout``, ``seed``, ``n_rows`` (rows held back),
            ``n_users`` (users with a held-back row), ``initial`` (NDCG@10 of the initial model), then per
            variant present (``replay``, ``no_replay``, ``full_retrain``) a dict with ``right_after``,
            ``after_last`` and ``forgetting``, plus the same three over window 0's catalogue under
            ``catalogue0``; ``full_retrain`` also has ``last_stream_refit`` (None with one window) and
            ``final_refit_s``; ``catalogue0`` at the top has ``n_items`` and ``initial``; and ``replay_kind``.
        initial: sizes and fit time of the initial model.
        notes: what was skipped and why.
    """

    windows: list[dict[str, Any]]
    forgetting: dict[str, Any]
    initial: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"stream": self.windows, "forgetting": self.forgetting, "initial": self.initial, "notes": self.notes}


def _task0(
    model: Recommender, history: Interactions, target: Interactions, k: int = 10, catalogue: np.ndarray | None = None
) -> float:
    """NDCG@k of ``model`` on ``target`` for its users, each scored from their rows in ``history``.

    ``catalogue`` (``(n_items,)`` bool) restricts the ranking to those items.
    """
    res = evaluate(
        _FrozenHistory(model, history, catalogue),
        Split(history, target.subset(np.zeros(0, np.int64)), target),
        ks=(k,),
        metrics=("ndcg",),
        user_groups=(),
    )
    return float(res.metrics[f"ndcg@{k}"])


def _tasks0(
    model: Recommender, history: Interactions, target: Interactions, catalogue: np.ndarray
) -> tuple[float, float]:
    """The forgetting task over all items and over window 0's catalogue."""
    return _task0(model, history, target), _task0(model, history, target, catalogue=catalogue)


def _check_holdout(share: float) -> None:
    if isinstance(share, bool) or not isinstance(share, (int, float, np.floating)) or not 0.0 < share < 1.0:
        raise ValueError(f"forget_holdout must be in (0, 1), got {share!r}")


def _forgetting(right_after: float, after_last: float) -> dict[str, float]:
    ratio = float(1.0 - after_last / right_after) if right_after > 0 else float("nan")
    return {"right_after": right_after, "after_last": after_last, "forgetting": ratio}


def _forgetting_pair(right_after: tuple[float, float], after_last: tuple[float, float]) -> dict[str, Any]:
    """All-items figures at the top level, window-0-catalogue figures under ``catalogue0``."""
    return {**_forgetting(right_after[0], after_last[0]), "catalogue0": _forgetting(right_after[1], after_last[1])}


def fit_fresh(
    make_model: Callable[[], Recommender], dataset: Dataset, rows: Interactions, *, early_stopping: bool = True
) -> Recommender:
    """A fresh model fitted on ``rows``.

    With ``early_stopping`` and a ``fit`` that takes ``valid``, the model fits on `last_row_split`'s
    training part with its validation part for early stopping, then observes the validation rows.
    Otherwise it fits on all rows.
    """
    model = make_model()
    fit: Callable[..., Recommender] = model.fit  # some models' fit also takes valid= (checked here)
    if early_stopping and "valid" in inspect.signature(fit).parameters:
        split = last_row_split(rows)
        if len(split.valid):
            fit(dataset.with_interactions(split.train), valid=split)
            model.observe(split.valid)
            return model
    return model.fit(dataset.with_interactions(rows))


def update_fresh(model: Recommender, rows: Interactions, *, early_stopping: bool = True) -> Recommender:
    """``model.partial_fit`` on ``rows``.

    With ``early_stopping`` and a ``partial_fit`` that takes ``valid``, the update trains on
    `last_row_split`'s training part and validates on each user's last row (it keeps its best epoch,
    then adds those rows to the history), as `fit_fresh` does for a fresh fit. Otherwise it trains
    on all rows for its fixed epochs.
    """
    partial_fit = cast(_Updatable, model).partial_fit  # callers pass models with partial_fit
    if early_stopping and "valid" in inspect.signature(partial_fit).parameters:
        split = last_row_split(rows)
        if len(split.valid):
            return partial_fit(split.train, valid=split.valid)
    return partial_fit(rows)


def prequential(
    dataset: Dataset,
    make_model: Callable[[], Recommender],
    *,
    train_frac: float = 0.6,
    n_windows: int = 4,
    split_by: Literal["rows", "time"] = "rows",
    ks: tuple[int, ...] = (10, 20),
    metrics: tuple[str, ...] = ("ndcg", "recall", "hit", "mrr"),
    arms: tuple[str, ...] = ARMS,
    forgetting: bool = True,
    forget_holdout: float = 0.2,
    forget_seed: int = 0,
    early_stopping: bool = True,
) -> StreamResult:
    """Run the streaming protocol on one data set for one kind of model.

    Args:
        dataset: interactions (with the catalogue and user texts the model reads).
        make_model: a fresh, unfitted model per call (the initial model and every full retrain).
        train_frac / n_windows / split_by: see `stream_windows`.
        ks / metrics: what `evaluate_window` reports per arm.
        arms: a subset of ``("no_update", "incremental", "full_retrain")``.
        forgetting: measure forgetting on held-back window-0 rows (models with ``encode_users``; the
            incremental variants need ``partial_fit``, the reference needs the full-retrain arm).
        forget_holdout: share of window 0's rows held back from every arm's training, in (0, 1).
        forget_seed: seed of the held-back draw (see `holdout_rows`).
        early_stopping: fresh fits and updates early-stop on each user's last row (`fit_fresh`,
            `update_fresh`); False trains on every row for the model's full epoch budget
            (``epochs`` for a fit, ``update_epochs`` for an update).

    Returns:
        A `StreamResult`. A model without ``partial_fit`` gets ``{"skipped": reason}`` in the
        incremental arm rather than a silent stand-in.

    Raises:
        ValueError: an unknown arm, a bad ``forget_holdout`` or ``forget_seed``, or bad window arguments.
    """
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; known: {list(ARMS)}")
    _check_holdout(forget_holdout)
    if isinstance(forget_seed, bool) or not isinstance(forget_seed, (int, np.integer)) or forget_seed < 0:
        raise ValueError(f"forget_seed must be a non-negative integer, got {forget_seed!r}")
    inter = dataset.interactions
    initial_idx, window_idx = stream_windows(inter, train_frac=train_frac, n_windows=n_windows, split_by=split_by)
    notes: list[str] = []
    started = time.perf_counter()
    initial = fit_fresh(make_model, dataset, inter.subset(initial_idx), early_stopping=early_stopping)
    fit_s = time.perf_counter() - started
    log.info("stream: initial fit on %d rows in %.1fs", len(initial_idx), fit_s)
    has_partial = callable(getattr(initial, "partial_fit", None))
    skip_reason = f"{type(initial).__name__} has no partial_fit; the incremental arm is skipped"
    if "incremental" in arms and not has_partial:
        notes.append(skip_reason)
    inc_ok = "incremental" in arms and has_partial
    measure = forgetting and hasattr(initial, "encode_users") and (inc_ok or "full_retrain" in arms)
    if forgetting and not measure:
        notes.append(
            "forgetting needs a model with encode_users and an incremental (with partial_fit) or "
            "full-retrain arm; skipped"
        )
    # rows each arm learns from, per window: window 0 without its held-back rows when forgetting is measured
    learn_idx = list(window_idx)
    if measure:
        kept0, held0_idx = holdout_rows(window_idx[0], forget_holdout, forget_seed)
        learn_idx[0] = kept0
        hist0 = inter.subset(np.concatenate([initial_idx, kept0]))  # the forgetting task's fixed history
        held0 = inter.subset(held0_idx)
        cat0 = np.zeros(inter.n_items, dtype=bool)  # items with a row before the end of window 0
        cat0[inter.items[np.concatenate([initial_idx, window_idx[0]])]] = True
        log.info("stream: %d of window 0's %d rows held back for forgetting", len(held0_idx), len(window_idx[0]))
    frozen = clone_model(initial) if "no_update" in arms else None
    incremental = clone_model(initial) if inc_ok else None
    no_replay = None
    if measure and incremental is not None and _replay_kind(initial) not in (None, "none"):
        no_replay = clone_model(initial)
        settings = cast(_Continual, no_replay)  # initial has a continual config with a replay kind (checked above)
        settings.continual = settings.continual.replace(replay="none")
    updated = [m for m in (incremental, no_replay) if m is not None]
    forget: dict[str, Any] = {}
    task0: dict[str, tuple[float, float]] = {}
    results: list[dict[str, Any]] = []
    seen_idx = initial_idx
    inc_train_s = 0.0
    inc_update: dict[str, Any] = {}
    for w, idx in enumerate(window_idx):
        history, window = inter.subset(seen_idx), inter.subset(idx)
        row: dict[str, Any] = {
            "window": w,
            "n_rows": int(len(idx)),
            "start": float(window.timestamps.min()),
            "end": float(window.timestamps.max()),
        }
        if frozen is not None:
            row["no_update"] = evaluate_window(frozen, history, window, ks=ks, metrics=metrics)
        if "incremental" in arms:
            if incremental is None:
                row["incremental"] = {"skipped": skip_reason}
            else:
                row["incremental"] = {
                    **evaluate_window(incremental, history, window, ks=ks, metrics=metrics),
                    "train_s": inc_train_s,
                    **inc_update,
                }
        if no_replay is not None:
            row["incremental_no_replay"] = evaluate_window(no_replay, history, window, ks=ks, metrics=metrics)
        if "full_retrain" in arms:
            if w == 0:
                retrain, retrain_s = initial, fit_s  # the refit on the initial part is the initial model
            else:
                t0 = time.perf_counter()
                retrain = fit_fresh(make_model, dataset, history, early_stopping=early_stopping)
                retrain_s = time.perf_counter() - t0
            row["full_retrain"] = {
                **evaluate_window(retrain, history, window, ks=ks, metrics=metrics),
                "train_s": retrain_s,
            }
            inc_row = row.get("incremental")
            if w > 0 and isinstance(inc_row, dict) and "train_s" in inc_row and retrain_s > 0:
                inc_row["time_share"] = float(inc_row["train_s"] / retrain_s)
            if measure and w == 1:
                task0["full_retrain"] = _tasks0(retrain, hist0, held0, cat0)  # the refit right after window 0
            if measure and w == len(window_idx) - 1 and w > 0:
                task0["last_stream_refit"] = _tasks0(retrain, hist0, held0, cat0)
        results.append(row)
        log.info("stream window %d: %s", w, {a: row[a].get("ndcg@10") for a in row if isinstance(row[a], dict)})
        # learn from the window (prequential: after testing on it); held-back rows never reach a model
        learn = inter.subset(learn_idx[w])
        if frozen is not None:
            frozen.observe(learn)
        for j, m in enumerate(updated):
            t0 = time.perf_counter()
            update_fresh(m, learn, early_stopping=early_stopping)
            if j == 0:
                inc_train_s = time.perf_counter() - t0
                inc_update = {k: v for k, v in (getattr(m, "last_update_", None) or {}).items() if k in UPDATE_KEYS}
        if measure and w == 0:
            for name, variant in (("replay", incremental), ("no_replay", no_replay)):
                if variant is not None:
                    task0[name] = _tasks0(variant, hist0, held0, cat0)
        seen_idx = np.concatenate([seen_idx, learn_idx[w]])
    if not measure:
        forget["skipped"] = notes[-1] if forgetting else "not requested (forgetting=False)"
    else:
        forget.update(
            {
                "protocol": "held-back",
                "holdout": float(forget_holdout),
                "seed": int(forget_seed),
                "n_rows": int(len(held0)),
                "n_users": int(len(np.unique(held0.users))),
                "initial": _task0(initial, hist0, held0),
                "catalogue0": {"n_items": int(cat0.sum()), "initial": _task0(initial, hist0, held0, catalogue=cat0)},
            }
        )
        for name, variant in (("replay", incremental), ("no_replay", no_replay)):
            if variant is not None:
                forget[name] = _forgetting_pair(task0[name], _tasks0(variant, hist0, held0, cat0))
        if "full_retrain" in arms:
            # a final refit on everything up to the last window: like-for-like with the last update
            t0 = time.perf_counter()
            final = fit_fresh(make_model, dataset, inter.subset(seen_idx), early_stopping=early_stopping)
            final_s = time.perf_counter() - t0
            after = _tasks0(final, hist0, held0, cat0)
            # with one window, the refit right after window 0 is the final refit
            last = task0.get("last_stream_refit")
            forget["full_retrain"] = {
                **_forgetting_pair(task0.get("full_retrain", after), after),
                "last_stream_refit": None if last is None else last[0],
                "final_refit_s": final_s,
            }
        forget["replay_kind"] = _replay_kind(initial)
    info = {
        "n_rows": int(len(initial_idx)),
        "fit_s": fit_s,
        "train_frac": train_frac,
        "n_windows": n_windows,
        "split_by": split_by,
    }
    return StreamResult(results, forget, info, notes)


def stream_table(result: dict[str, Any], metric: str = "ndcg@10") -> str:
    """A Markdown table of a ``run_stream_config`` result: one row per model and window.

    Per window the incremental arm's update (the one before the window) shows the epochs it ran, its
    best epoch, what stopped it (``budget`` when its time budget did, else ``patience`` or ``cap``) and
    its training time as a share of the full retrain's.
    """
    lines = [
        f"| model | window | no_update {metric} | incremental {metric} | full_retrain {metric} | inc / full | "
        "inc train_s | full train_s | inc time share | update epochs | best epoch | stopped by |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]

    def cell(arm: dict[str, Any] | None, key: str, fmt: str = ".4f") -> str:
        value = (arm or {}).get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "–"
        return format(value, fmt)

    for name, res in result.get("results", {}).items():
        for row in res.get("stream", []):
            inc, full = row.get("incremental") or {}, row.get("full_retrain") or {}
            ratio = "–"
            if (
                isinstance(inc.get(metric), (int, float))
                and isinstance(full.get(metric), (int, float))
                and full[metric]
            ):
                ratio = f"{inc[metric] / full[metric]:.3f}"
            share = inc.get("time_share")
            share_cell = f"{share:.0%}" if isinstance(share, float) else "–"
            stopped = inc.get("stopped_by") or "–"
            if inc.get("budget_bound"):
                stopped = "budget"
            lines.append(
                f"| {name} | {row['window']} | {cell(row.get('no_update'), metric)} | {cell(inc, metric)} | "
                f"{cell(full, metric)} | {ratio} | {cell(inc, 'train_s', '.1f')} | {cell(full, 'train_s', '.1f')} | "
                f"{share_cell} | {cell(inc, 'epochs_run', 'd')} | {cell(inc, 'best_epoch', 'd')} | {stopped} |"
            )
    return "\n".join(lines) + "\n"
