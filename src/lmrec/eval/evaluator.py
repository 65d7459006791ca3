"""One evaluator for every model: full ranking over all items, RecBole's masking, breakdowns.

For a phase ("valid" or "test") the evaluator scores every item for each user who has at least one
interaction in that part, masks what the user already had (train for "valid"; train and valid for
"test", as RecBole does; the user's relevant items themselves are never masked), takes the top k and
computes the metrics of ``lmrec.eval.metrics`` per user. Scores come from ``model.score_all`` in
batches of users, so a large catalogue never needs an (all users x all items) matrix; the model is only
read, never changed. A model with ``is_scenario_aware`` (``lm-scenario``) is asked for each user's
scores under the scenario of that user's latest target interaction, when the targets carry scenarios
(``score_all(users, scenario=ids)``, ids from ``model.scenario_names_``, -1 for unknown names).

The sampled protocol (relevant items ranked against ``n_negatives`` uniformly sampled items the user
never touched) exists to compare with older papers; its keys carry a "(sampled-N)" label so they can
never be mistaken for full-ranking figures.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, cast

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from lmrec.data.interactions import Interactions
from lmrec.data.splits import Split
from lmrec.eval.metrics import BATCH_METRICS, auc, item_coverage, log_loss, mae, rmse
from lmrec.models.base import top_k

# scipy.stats (slow to import) is imported inside paired_test, its only user.

__all__ = [
    "DEFAULT_METRICS",
    "EvalResult",
    "evaluate",
    "evaluate_clicks",
    "evaluate_ratings",
    "metric_key",
    "paired_test",
    "Scorer",
]

log = logging.getLogger(__name__)

DEFAULT_METRICS: tuple[str, ...] = ("recall", "ndcg", "mrr", "hit", "precision", "map")


class Scorer(Protocol):
    """What `evaluate` needs of a model: every item's score for each user (any fitted `Recommender`)."""

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        """(n,) user indices -> (n, n_items) scores; higher is better."""
        ...


class _ScenarioScorer(Protocol):
    """A model with ``is_scenario_aware``: it names its scenarios and scores each user under one."""

    @property
    def scenario_names_(self) -> Sequence[str]: ...

    def score_all(self, user_idx: np.ndarray, scenario: np.ndarray) -> np.ndarray: ...


def metric_key(name: str, k: int, protocol: str = "full", n_negatives: int = 100) -> str:
    """The result key of a metric: ``"ndcg@10"`` for full ranking, ``"ndcg@10 (sampled-100)"`` otherwise."""
    key = f"{name}@{k}"
    return key if protocol == "full" else f"{key} (sampled-{n_negatives})"


@dataclass
class EvalResult:
    """What ``evaluate`` returns.

    Attributes:
        metrics: mean over evaluated users, keys like ``"ndcg@10"``, plus ``"coverage@10"``.
        by_scenario: scenario -> metrics over the users with a relevant item in that scenario
            (relevance restricted to that scenario; same ranked lists), with ``"n_users"``.
        by_user_group: group label (e.g. ``"cold (<=5)"``) -> metrics over users whose training history
            length falls in the group, with ``"n_users"``.
        per_user: metric key -> (n_users,) float64 values aligned with ``users`` (for paired tests).
        users: (n_users,) evaluated user indices, ascending.
        n_users: how many users were evaluated.
        primary: the key used for model selection and early stopping.
        phase: "valid" or "test".
        protocol: "full" or "sampled".
        ranked: (n_users, max(ks)) top lists aligned with ``users`` (-1 padded), kept only when
            ``evaluate(..., keep_ranked=True)``.
    """

    metrics: dict[str, float]
    by_scenario: dict[str, dict[str, float]]
    by_user_group: dict[str, dict[str, float]]
    per_user: dict[str, np.ndarray]
    users: np.ndarray
    n_users: int
    primary: str = "ndcg@10"
    phase: str = "test"
    protocol: str = "full"
    ranked: np.ndarray | None = None

    @property
    def primary_value(self) -> float:
        """``metrics[primary]``."""
        return self.metrics[self.primary]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (per-user arrays left out)."""
        return {
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "by_scenario": {s: dict(m) for s, m in self.by_scenario.items()},
            "by_user_group": {g: dict(m) for g, m in self.by_user_group.items()},
            "n_users": int(self.n_users),
            "primary": self.primary,
            "phase": self.phase,
            "protocol": self.protocol,
        }


# ---------------------------------------------------------------------- helpers
def _validate(
    phase: str,
    protocol: str,
    ks: tuple[int, ...],
    metrics: tuple[str, ...],
    n_negatives: int,
    batch_size: int,
    user_groups: tuple[int, ...],
) -> None:
    if phase not in ("valid", "test"):
        raise ValueError(f"phase must be 'valid' or 'test', got {phase!r}")
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    if not ks or any(isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1 for k in ks):
        raise ValueError(f"ks must be positive integers, got {ks!r}")
    unknown = [m for m in metrics if m not in BATCH_METRICS]
    if unknown or not metrics:
        raise ValueError(f"unknown metric(s) {unknown or metrics!r}; known: {sorted(BATCH_METRICS)}")
    if protocol == "sampled" and n_negatives < 1:
        raise ValueError(f"n_negatives must be >= 1 for the sampled protocol, got {n_negatives}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if list(user_groups) != sorted(set(user_groups)) or any(c < 0 for c in user_groups):
        raise ValueError(f"user_groups must be strictly increasing non-negative cut points, got {user_groups!r}")


def _group_labels(cuts: tuple[int, ...]) -> list[tuple[str, int, float]]:
    """(label, low, high) with low <= train length <= high; cut points (5, 20) give
    "cold (<=5)", "mid (6-20)", "warm (>20)"."""
    if not cuts:
        return [("all", 0, np.inf)]
    out: list[tuple[str, int, float]] = [(f"cold (<={cuts[0]})", 0, cuts[0])]
    middles = list(zip(cuts[:-1], cuts[1:]))
    for i, (lo, hi) in enumerate(middles):
        name = "mid" if len(middles) == 1 else f"mid{i + 1}"
        out.append((f"{name} ({lo + 1}-{hi})", lo + 1, hi))
    out.append((f"warm (>{cuts[-1]})", cuts[-1] + 1, np.inf))
    return out


def _sample_negatives(rng: np.random.Generator, exclude: np.ndarray, n_items: int, n: int) -> np.ndarray:
    """``n`` distinct items drawn uniformly from those not in ``exclude`` (all of them when fewer remain)."""
    n_free = n_items - len(exclude)
    if n_free <= 2 * n:
        free = np.setdiff1d(np.arange(n_items), exclude, assume_unique=True)
        return free if len(free) <= n else rng.choice(free, size=n, replace=False)
    out = np.empty(0, dtype=np.int64)
    while len(out) < n:
        # rejection sampling: the first n distinct accepted draws are a uniform n-subset
        draw = rng.integers(0, n_items, size=2 * (n - len(out)) + 8)
        out = np.concatenate([out, draw[~np.isin(draw, exclude)]])
        _, first = np.unique(out, return_index=True)
        out = out[np.sort(first)]
    return out[:n]


def _sampled_candidates(
    users: np.ndarray,
    rel_keys: np.ndarray,
    touched: sp.csr_matrix,
    n_items: int,
    n_negatives: int,
    random_state: int | None,
) -> np.ndarray:
    """(n_users, c) candidates per user: relevant items plus sampled negatives, ascending, -1 padded."""
    rng = np.random.default_rng(random_state)
    bounds = np.searchsorted(rel_keys // n_items, np.append(users, users[-1] + 1))
    rows = []
    for row, u in enumerate(users):
        seen = np.sort(touched.indices[touched.indptr[u] : touched.indptr[u + 1]])
        negatives = _sample_negatives(rng, seen, n_items, n_negatives)
        relevant = rel_keys[bounds[row] : bounds[row + 1]] % n_items
        rows.append(np.union1d(relevant, negatives))
    out = np.full((len(users), max(len(r) for r in rows)), -1, dtype=np.int64)
    for row, cand in enumerate(rows):
        out[row, : len(cand)] = cand
    return out


def _means(per_user: dict[str, np.ndarray], mask: np.ndarray | None = None) -> dict[str, float]:
    return {k: float(v.mean() if mask is None else v[mask].mean()) for k, v in per_user.items()}


def _per_user(
    hits: np.ndarray, n_rel: np.ndarray, ks: tuple[int, ...], metrics: tuple[str, ...], protocol: str, n_neg: int
) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for k in ks:
        for name in metrics:
            out[metric_key(name, k, protocol, n_neg)] = BATCH_METRICS[name](hits[:, :k], n_rel)
    return out


def _user_scenarios(model: Scorer, target: Interactions, users: np.ndarray) -> np.ndarray | None:
    """(n_users,) scenario id of each evaluated user's latest target interaction (ties: the later row),
    for models with ``is_scenario_aware`` and targets that carry scenarios; -1 (the model's shared
    path) for scenarios the model does not know. None when either is missing."""
    if not getattr(model, "is_scenario_aware", False) or target.scenarios is None or len(users) == 0:
        return None
    scenario_names = cast(_ScenarioScorer, model).scenario_names_  # a scenario-aware model sets it in fit
    lookup = {name: i for i, name in enumerate(scenario_names)}
    order = np.lexsort((np.arange(len(target)), target.timestamps, target.users))
    sorted_users = target.users[order]
    last = order[np.r_[sorted_users[1:] != sorted_users[:-1], True]]  # one row per user, ascending users
    names = target.scenarios[last].astype(str)
    return np.array([lookup.get(n, -1) for n in names], dtype=np.int64)


def _hits(users: np.ndarray, ranked: np.ndarray, rel_keys: np.ndarray, n_items: int) -> np.ndarray:
    """(n, K) bool: is ranked[i, j] a relevant item of users[i]; relevance as sorted keys user*n_items+item."""
    keys = users[:, None] * n_items + ranked
    return (ranked >= 0) & np.isin(keys, rel_keys)


# ---------------------------------------------------------------------- evaluate
def evaluate(
    model: Scorer,
    split: Split,
    *,
    phase: Literal["valid", "test"] = "test",
    ks: tuple[int, ...] = (5, 10, 20),
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    protocol: Literal["full", "sampled"] = "full",
    n_negatives: int = 100,
    random_state: int | None = 0,
    batch_size: int = 256,
    user_groups: tuple[int, ...] = (5, 20),
    show_progress: bool = False,
    keep_ranked: bool = False,
    primary: str | None = None,
    exclude_history: bool = True,
    item_pool: np.ndarray | None = None,
) -> EvalResult:
    """Top-k evaluation of a fitted model on one part of a split.

    Args:
        model: a fitted recommender whose id maps are the split's (``score_all`` gives (n, n_items)).
        split: the train / valid / test split.
        phase: "valid" masks train items; "test" masks train and valid items. A user's relevant
            items in the phase are never masked.
        ks: cut-offs.
        metrics: names from ``lmrec.eval.metrics.BATCH_METRICS``.
        protocol: "full" ranks all items; "sampled" ranks the relevant items against ``n_negatives``
            items drawn uniformly from those the user never interacted with (in any part); the
            candidates are ranked among themselves, ties broken towards the lower item index as in
            full ranking, so per user a sampled figure is never below the full one.
        n_negatives: negatives per user for the sampled protocol.
        random_state: seed for the negative sampling.
        batch_size: users scored at once.
        user_groups: cut points on training-history length for ``by_user_group``.
        show_progress: show a tqdm bar over users.
        keep_ranked: keep the top lists on the result (``EvalResult.ranked``).
        primary: the metric for model selection, e.g. ``"recall@20"`` (the protocol label is added);
            defaults to ndcg@10, or ndcg at the largest k when 10 is not among ``ks``.
        exclude_history: mask the user's earlier items (the default, and RecBole's protocol for
            general models). RecBole does not mask for sequential models; pass False to compare with
            its sequential figures on the same footing.
        item_pool: (m,) item indices: rank only these items (full protocol), e.g. the items without
            a training interaction for a "new arrivals" slot on a cold-item split. Relevant items
            outside the pool still count as relevant (and so can never be hit). None: every item.

    Returns:
        An `EvalResult`; with no users to evaluate, every metric is NaN and ``n_users`` is 0.
    """
    ks, metrics, user_groups = tuple(ks), tuple(metrics), tuple(user_groups)
    _validate(phase, protocol, ks, metrics, n_negatives, batch_size, user_groups)
    target = split.valid if phase == "valid" else split.test
    n_users_total, n_items = split.train.n_users, split.train.n_items
    max_k = max(ks)
    if primary is None:
        primary = metric_key(
            "ndcg" if "ndcg" in metrics else metrics[0], 10 if 10 in ks else max_k, protocol, n_negatives
        )
    else:
        computed = [metric_key(m, k, protocol, n_negatives) for k in ks for m in metrics]
        if primary not in computed and "@" in primary:
            name, _, k_text = primary.partition("@")
            primary = metric_key(name, int(k_text), protocol, n_negatives) if k_text.isdigit() else primary
        if primary not in computed:
            raise ValueError(f"primary {primary!r} is not among the computed metrics {computed}")

    history = split.train.to_csr("binary")
    if phase == "test":
        history = (history + split.valid.to_csr("binary")).tocsr()
    rel_keys = np.unique(target.users * n_items + target.items)
    users = np.unique(target.users)
    n_rel = np.bincount(rel_keys // n_items, minlength=n_users_total)[users]
    if len(users) == 0:
        log.warning("evaluate: split.%s has no interactions; nothing to evaluate", phase)
        keys = [metric_key(m, k, protocol, n_negatives) for k in ks for m in metrics]
        keys += [metric_key("coverage", k, protocol, n_negatives) for k in ks]
        return EvalResult({k: float("nan") for k in keys}, {}, {}, {}, users, 0, primary, phase, protocol)

    candidates = None
    if protocol == "sampled":
        candidates = _sampled_candidates(
            users, rel_keys, (history + target.to_csr("binary")).tocsr(), n_items, n_negatives, random_state
        )

    outside = None
    if item_pool is not None:
        if protocol != "full":
            raise ValueError("evaluate: item_pool applies to the full protocol only")
        pool = np.unique(np.asarray(item_pool, dtype=np.int64).reshape(-1))
        if len(pool) == 0 or pool[0] < 0 or pool[-1] >= n_items:
            raise ValueError(
                f"evaluate: item_pool must hold item indices in [0, {n_items}), got {len(pool)} "
                f"indices spanning [{pool.min() if len(pool) else None}, {pool.max() if len(pool) else None}]"
            )
        outside = np.ones(n_items, dtype=bool)
        outside[pool] = False

    ranked = np.full((len(users), max_k), -1, dtype=np.int64)
    user_scenarios = _user_scenarios(model, target, users)
    with tqdm(total=len(users), desc=f"evaluate {phase}", unit="user", disable=not show_progress) as bar:
        for start in range(0, len(users), batch_size):
            batch = users[start : start + batch_size]
            # a copy: masking must never write into arrays the model owns
            if user_scenarios is None:
                raw = model.score_all(batch)
            else:  # a scenario-aware model scores each user under the scenario of their target
                # user_scenarios is only set for models with is_scenario_aware (see _user_scenarios)
                scenario_model = cast(_ScenarioScorer, model)
                raw = scenario_model.score_all(batch, scenario=user_scenarios[start : start + len(batch)])
            scores = np.array(raw, dtype=np.float32, copy=True)
            if scores.shape != (len(batch), n_items):
                raise ValueError(
                    f"{type(model).__name__}.score_all returned shape {scores.shape}, expected "
                    f"({len(batch)}, {n_items}); was the model fitted on this split's id maps?"
                )
            if candidates is not None:
                # rank only each user's candidates (relevant + negatives, none of them history); columns
                # are in ascending item order, so top_k's tie-break matches the full protocol's
                cand = candidates[start : start + len(batch)]
                cand_scores = np.take_along_axis(scores, np.maximum(cand, 0), axis=1)
                cand_scores[cand < 0] = -np.inf
                pos, _ = top_k(cand_scores, max_k)
                idx = np.where(pos >= 0, np.take_along_axis(cand, np.maximum(pos, 0), axis=1), -1)
            else:
                # the batch's relevant keys: rel_keys is sorted, users ascending, so one contiguous slice
                lo, hi = np.searchsorted(rel_keys, [batch[0] * n_items, (batch[-1] + 1) * n_items])
                batch_rel = rel_keys[lo:hi]
                r, c = history[batch].nonzero()
                if exclude_history:
                    masked = ~np.isin(batch[r] * n_items + c, batch_rel)
                    scores[r[masked], c[masked]] = -np.inf
                if outside is not None:
                    scores[:, outside] = -np.inf
                idx, _ = top_k(scores, max_k)
            ranked[start : start + len(batch), : idx.shape[1]] = idx
            bar.update(len(batch))

    hits = _hits(users, ranked, rel_keys, n_items)
    per_user = _per_user(hits, n_rel, ks, metrics, protocol, n_negatives)
    result_metrics = _means(per_user)
    for k in ks:
        result_metrics[metric_key("coverage", k, protocol, n_negatives)] = item_coverage(ranked[:, :k], n_items)

    by_scenario: dict[str, dict[str, float]] = {}
    if target.scenarios is not None:
        scen = target.scenarios.astype(str)
        for name in sorted(set(scen.tolist())):
            rows = scen == name
            keys_s = np.unique(target.users[rows] * n_items + target.items[rows])
            users_s = np.unique(target.users[rows])
            pos = np.searchsorted(users, users_s)
            n_rel_s = np.bincount(keys_s // n_items, minlength=n_users_total)[users_s]
            hits_s = _hits(users_s, ranked[pos], keys_s, n_items)
            by_scenario[name] = {
                **_means(_per_user(hits_s, n_rel_s, ks, metrics, protocol, n_negatives)),
                "n_users": int(len(users_s)),
            }

    by_user_group: dict[str, dict[str, float]] = {}
    train_len = split.train.user_counts()[users]
    for label, lo, hi in _group_labels(user_groups):
        mask = (train_len >= lo) & (train_len <= hi)
        if mask.any():
            by_user_group[label] = {**_means(per_user, mask), "n_users": int(mask.sum())}

    log.info("evaluate %s (%s): %d users, %s=%.4f", phase, protocol, len(users), primary, result_metrics[primary])
    return EvalResult(
        result_metrics,
        by_scenario,
        by_user_group,
        per_user,
        users,
        int(len(users)),
        primary,
        phase,
        protocol,
        ranked if keep_ranked else None,
    )


# ---------------------------------------------------------------------- significance
def paired_test(result_a: EvalResult, result_b: EvalResult, metric: str = "ndcg@10") -> dict[str, float | str]:
    """Paired comparison of two results over the users both evaluated.

    The difference is ``a - b``: a positive ``mean_diff`` means model A scored higher.

    Returns:
        ``n_users``, ``mean_a``, ``mean_b``, ``mean_diff``, ``ci95_low`` / ``ci95_high`` (t interval of
        the mean difference), ``t_stat`` / ``t_pvalue`` (paired t-test) and ``wilcoxon_stat`` /
        ``wilcoxon_pvalue`` (signed-rank test). With no difference at all the p-values are 1.0;
        with fewer than two users the test figures are NaN.
    """
    from scipy import stats

    for name, res in (("result_a", result_a), ("result_b", result_b)):
        if metric not in res.per_user:
            raise ValueError(f"{name} has no per-user values for {metric!r}; it has {sorted(res.per_user)}")
    common, ia, ib = np.intersect1d(result_a.users, result_b.users, return_indices=True)
    if len(common) == 0:
        raise ValueError("paired_test: the two results share no users")
    a = np.asarray(result_a.per_user[metric], dtype=np.float64)[ia]
    b = np.asarray(result_b.per_user[metric], dtype=np.float64)[ib]
    diff = a - b
    n, mean = len(diff), float(diff.mean())
    out: dict[str, float | str] = {
        "metric": metric,
        "n_users": int(n),
        "mean_a": float(a.mean()),
        "mean_b": float(b.mean()),
        "mean_diff": mean,
    }
    nan = float("nan")
    if n < 2:
        return {
            **out,
            "ci95_low": nan,
            "ci95_high": nan,
            "t_stat": nan,
            "t_pvalue": nan,
            "wilcoxon_stat": nan,
            "wilcoxon_pvalue": nan,
        }
    sd = float(diff.std(ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / np.sqrt(n))
    out.update(ci95_low=mean - half, ci95_high=mean + half)
    if sd <= 1e-12 * max(1.0, abs(mean)):
        # constant differences (up to rounding): scipy would divide by ~zero; the answer is exact
        out.update(t_stat=0.0 if mean == 0 else float(np.sign(mean) * np.inf), t_pvalue=1.0 if mean == 0 else 0.0)
    else:
        t = stats.ttest_rel(a, b)
        out.update(t_stat=float(t.statistic), t_pvalue=float(t.pvalue))
    if np.all(diff == 0):
        out.update(wilcoxon_stat=0.0, wilcoxon_pvalue=1.0)
    else:
        w = stats.wilcoxon(a, b)
        out.update(wilcoxon_stat=float(w.statistic), wilcoxon_pvalue=float(w.pvalue))
    return out


# ---------------------------------------------------------------------- ratings and clicks
def evaluate_ratings(model: Any, interactions: Interactions) -> dict[str, float]:
    """RMSE and MAE of ``model.predict_rating(user_idx, item_idx)`` against ``interactions.ratings``.

    Raises:
        TypeError: the model has no ``predict_rating``.
        ValueError: the interactions carry no ratings.
    """
    predict = getattr(model, "predict_rating", None)
    if not callable(predict):
        raise TypeError(
            f"{type(model).__name__} has no predict_rating(user_idx, item_idx); "
            "rating metrics need a model that predicts explicit ratings"
        )
    if interactions.ratings is None:
        raise ValueError("evaluate_ratings: these interactions have no ratings")
    pred = np.asarray(predict(interactions.users, interactions.items), dtype=np.float64)
    return {"rmse": rmse(interactions.ratings, pred), "mae": mae(interactions.ratings, pred)}


def evaluate_clicks(scores: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """AUC and log loss of click probabilities.

    Args:
        scores: (n,) predicted click probabilities in [0, 1].
        labels: (n,) 0/1 clicks.
    """
    return {"auc": auc(labels, scores), "logloss": log_loss(labels, scores)}
