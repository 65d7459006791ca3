"""Judging a re-ranking policy before it goes live: off-policy estimates from the impression log.

A policy here is a linear scorer over the re-ranker's features (`lmrec.serve.feedback.features`):
it orders each logged candidate pool by ``features @ weights`` and shows the top of it. Given the
impressions logged with their pools, features and exact propensities (``reranker="epsilon"``, or a
deterministic ranking with ``impression_sample > 0``), `evaluate` gives its expected clicks per list
with IPS, SNIPS and doubly robust estimates (`lmrec.eval.ope`). The doubly robust reward model is a
ridge regression of the click on the shown item's features and a one-hot of its slot, fitted on the
same log.

Policies by name (`policy_weights`): ``retrieval`` (the retrieval order), a reranker state
(``.../reranker.json`` or ``.npz``: its posterior mean), a JSON file ``{"weights": {"score": 1, ...}}``,
or inline ``weights:score=1,novelty=0.5``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lmrec.eval.ope import Estimate, doubly_robust, ips, ridge_fit, snips
from lmrec.serve.feedback.features import FEATURES
from lmrec.serve.feedback.impressions import ImpressionLog, ImpressionRecord
from lmrec.serve.feedback.linear import LinearThompson
from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["PolicyReport", "SlotLog", "evaluate", "evaluate_records", "policy_weights", "slot_log"]

DB_NAME = "lmrec.sqlite3"


def policy_weights(spec: str) -> np.ndarray:
    """The (f,) feature weights a policy spec names (see the module docstring).

    Raises:
        ValueError: an unknown feature, a file that is neither a re-ranker state nor a weights JSON.
    """
    if spec == "retrieval":
        out = np.zeros(len(FEATURES))
        out[FEATURES.index("score")] = 1.0
        return out
    if spec.startswith("weights:"):
        pairs = [p.split("=", 1) for p in spec[len("weights:") :].split(",") if p]
        return _weights({k.strip(): float(v) for k, v in pairs})
    path = Path(spec)
    if path.suffix in (".npz", ".json") and path.with_suffix(".npz").exists():
        return LinearThompson.load(path.with_suffix(""), FEATURES).mean.copy()
    if path.suffix == ".json" and path.exists():
        data = json.loads(path.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("weights"), dict):
            raise ValueError(f'{path}: expected {{"weights": {{feature: weight}}}}')
        return _weights(data["weights"])
    raise ValueError(f"policy {spec!r}: not 'retrieval', 'weights:NAME=W,...', a re-ranker state or a weights JSON")


def _weights(named: dict[str, float]) -> np.ndarray:
    unknown = sorted(set(named) - set(FEATURES))
    if unknown:
        raise ValueError(f"unknown feature(s) {unknown}; valid: {list(FEATURES)}")
    return np.asarray([float(named.get(f, 0.0)) for f in FEATURES])


@dataclass
class SlotLog:
    """The logged slots as arrays (n lists, k slots; empty slots have reward 0 and propensity 1).

    Attributes:
        rewards: (n, k) click on the shown item.
        logging_p: (n, k) its logging propensity.
        shown_x: (n, k, f) its features.
        pool_x: per list, (m, f) the pool's features.
        shown_pos: (n, k) the shown item's position in its pool (-1: empty slot).
    """

    rewards: np.ndarray
    logging_p: np.ndarray
    shown_x: np.ndarray
    pool_x: list[np.ndarray]
    shown_pos: np.ndarray


def slot_log(records: Iterable[ImpressionRecord], positive_types: Sequence[str]) -> SlotLog:
    """The records with a pool, features and propensities, as `SlotLog` arrays (others are skipped)."""
    usable = [r for r in records if r.propensities is not None and r.features is not None and r.pool]
    if not usable:
        raise ValueError("no logged impression has a pool, features and propensities (log with impression_sample > 0)")
    k = max(len(r.items) for r in usable)
    f = usable[0].features.shape[1]  # type: ignore[union-attr]
    n = len(usable)
    rewards, props = np.zeros((n, k)), np.ones((n, k))
    shown_x, pos = np.zeros((n, k, f)), np.full((n, k), -1)
    positive = set(positive_types)
    for i, r in enumerate(usable):
        where = {item: j for j, item in enumerate(r.pool)}
        clicked = {x.item_id for x in r.responses if x.type in positive}
        for j, item in enumerate(r.items):
            pos[i, j] = where[item]
            shown_x[i, j] = r.features[where[item]]  # type: ignore[index]
            props[i, j] = float(r.propensities[j])  # type: ignore[index]
            rewards[i, j] = float(item in clicked)
    return SlotLog(rewards, props, shown_x, [np.asarray(r.features) for r in usable], pos)


@dataclass(frozen=True)
class PolicyReport:
    """Off-policy estimates of one policy's expected clicks per list."""

    ips: Estimate
    snips: Estimate
    dr: Estimate
    logged_value: float
    n_lists: int
    match_rate: float  # share of logged slots where the policy would show the logged item


def evaluate_records(log: SlotLog, weights: np.ndarray, *, alpha: float = 0.05, l2: float = 1.0) -> PolicyReport:
    """IPS, SNIPS and DR estimates of the deterministic policy ``pool order = argsort(-x @ weights)``."""
    n, k, f = log.shown_x.shape
    target_p = np.zeros((n, k))
    target_x = np.zeros((n, k, f))
    for i, x in enumerate(log.pool_x):
        order = np.argsort(-(x @ weights), kind="stable")[:k]
        slot_item = np.full(k, -2)
        slot_item[: len(order)] = order
        target_p[i] = (log.shown_pos[i] >= 0) & (slot_item == log.shown_pos[i])
        target_x[i, : len(order)] = x[order]
    slots = np.eye(k)
    filled = log.shown_pos >= 0
    design = np.concatenate([log.shown_x, np.broadcast_to(slots, (n, k, k))], axis=2)  # (n, k, f + k)
    beta = ridge_fit(design[filled], log.rewards[filled], l2)
    q_logged = np.clip(design @ beta, 0.0, 1.0) * filled
    q_target = np.clip(np.concatenate([target_x, np.broadcast_to(slots, (n, k, k))], axis=2) @ beta, 0.0, 1.0) * filled
    return PolicyReport(
        ips(log.rewards, log.logging_p, target_p, alpha=alpha),
        snips(log.rewards, log.logging_p, target_p, alpha=alpha),
        doubly_robust(log.rewards, log.logging_p, target_p, q_logged, q_target, alpha=alpha),
        float(log.rewards.sum(axis=1).mean()),
        n,
        float(target_p[filled].mean()) if filled.any() else 0.0,
    )


def evaluate(
    log_dir: str | Path,
    policy: str,
    *,
    alpha: float = 0.05,
    positive_types: Sequence[str] = ("click", "like", "cart", "purchase", "rating"),
) -> PolicyReport:
    """Off-policy estimates of ``policy`` from the impressions logged in a service's state directory.

    Args:
        log_dir: a serve state directory (holding ``lmrec.sqlite3``) or the database file itself.
        policy: a policy spec (`policy_weights`).
        alpha: 1 - the intervals' coverage.
        positive_types: event types that count as a click.
    """
    path = Path(log_dir)
    db = path / DB_NAME if path.is_dir() else path
    if not db.is_file():
        raise ValueError(f"{db} does not exist: give a serve state directory (with {DB_NAME}) or the database file")
    weights = policy_weights(policy)
    store = SQLiteStore(db)
    try:
        log = slot_log(ImpressionLog(store).export(), positive_types)
    finally:
        store.close()
    return evaluate_records(log, weights, alpha=alpha)
