"""Off-policy estimates of a ranking policy's clicks from a log of randomised lists.

The log holds ``n`` lists of at most ``k`` slots. For the item shown in slot ``j`` of list ``i`` it
records the click ``r[i, j]`` (0/1, or any reward), the probability ``p[i, j]`` with which the logging
policy put that item in that slot, and the probability ``pi[i, j]`` with which the policy being judged
would put it there. Under the item-position model (a click on a slot depends on the item and the slot,
not on the rest of the list; Li et al., 2018, "Offline evaluation of ranking policies with click
models") each slot is a contextual bandit with weights ``w = pi / p``, and the value of a policy is its
expected clicks per list, the sum over slots:

- IPS: ``V = mean_i sum_j w_ij r_ij``;
- SNIPS (self-normalised, per slot): ``V = sum_j (sum_i w_ij r_ij) / (sum_i w_ij)``;
- doubly robust: ``V = mean_i sum_j [qt_ij + w_ij (r_ij - ql_ij)]``, where ``ql_ij`` is a reward
  model's prediction for the logged item and ``qt_ij`` its expectation under the judged policy.

Confidence intervals are normal ones over lists (the lists are independent, the slots of one list are
not): the standard error of the mean of each list's contribution; SNIPS uses the delta method. Every
function is pure: arrays in, numbers out.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

__all__ = ["Estimate", "doubly_robust", "ips", "ridge_fit", "snips"]


@dataclass(frozen=True)
class Estimate:
    """An off-policy estimate with its two-sided ``1 - alpha`` normal confidence interval.

    Attributes:
        value: the estimated expected reward (clicks) per list.
        std_err: the standard error of ``value``.
        lower, upper: the interval's ends.
        n: lists in the log.
    """

    value: float
    std_err: float
    lower: float
    upper: float
    n: int

    def contains(self, x: float) -> bool:
        """Whether ``x`` lies in the interval (ends included)."""
        return self.lower <= x <= self.upper


def _check(name: str, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
    shape = None
    out = []
    for key, value in arrays.items():
        arr = np.asarray(value, dtype=np.float64)
        if arr.ndim == 1:
            arr = arr[:, None]  # one slot per list
        if arr.ndim != 2:
            raise ValueError(f"{name}: {key} must be (n, k) or (n,), got shape {np.shape(value)}")
        if shape is None:
            shape = arr.shape
        elif arr.shape != shape:
            raise ValueError(f"{name}: {key} has shape {arr.shape}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name}: {key} has non-finite values")
        out.append(arr)
    if shape is None or shape[0] < 2:
        raise ValueError(f"{name}: need at least 2 logged lists, got {0 if shape is None else shape[0]}")
    return tuple(out)


def _weights(name: str, logging_p: np.ndarray, target_p: np.ndarray) -> np.ndarray:
    if np.any(logging_p <= 0) or np.any(logging_p > 1):
        raise ValueError(f"{name}: logging propensities must lie in (0, 1]")
    if np.any(target_p < 0) or np.any(target_p > 1):
        raise ValueError(f"{name}: target propensities must lie in [0, 1]")
    return target_p / logging_p


def _interval(value: float, contributions: np.ndarray, alpha: float) -> Estimate:
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    n = len(contributions)
    se = float(np.std(contributions, ddof=1) / np.sqrt(n))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    return Estimate(float(value), se, float(value - z * se), float(value + z * se), n)


def ips(rewards: np.ndarray, logging_p: np.ndarray, target_p: np.ndarray, *, alpha: float = 0.05) -> Estimate:
    """Inverse propensity scoring.

    Args:
        rewards: (n, k) reward of each logged slot (0 for an empty slot).
        logging_p: (n, k) probability the logging policy put the logged item in that slot (1 for an empty slot).
        target_p: (n, k) probability the judged policy puts it there (0 for an empty slot).
        alpha: 1 - the interval's coverage.

    Returns:
        The estimate of the judged policy's expected reward per list.
    """
    r, p, t = _check("ips", {"rewards": rewards, "logging_p": logging_p, "target_p": target_p})
    per_list = (_weights("ips", p, t) * r).sum(axis=1)  # (n,)
    return _interval(float(per_list.mean()), per_list, alpha)


def snips(rewards: np.ndarray, logging_p: np.ndarray, target_p: np.ndarray, *, alpha: float = 0.05) -> Estimate:
    """Self-normalised IPS, normalised per slot; arguments as `ips`. A slot no weight reaches adds 0."""
    r, p, t = _check("snips", {"rewards": rewards, "logging_p": logging_p, "target_p": target_p})
    w = _weights("snips", p, t)
    mean_w = w.mean(axis=0)  # (k,)
    safe = np.where(mean_w > 0, mean_w, 1.0)
    ratio = np.where(mean_w > 0, (w * r).mean(axis=0) / safe, 0.0)  # (k,)
    # delta method: the influence of list i on slot j's ratio is (w_ij r_ij - R_j w_ij) / mean(w_j)
    influence = np.where(mean_w > 0, (w * r - ratio * w) / safe, 0.0).sum(axis=1)  # (n,)
    value = float(ratio.sum())
    return _interval(value, value + influence, alpha)


def doubly_robust(
    rewards: np.ndarray,
    logging_p: np.ndarray,
    target_p: np.ndarray,
    q_logged: np.ndarray,
    q_target: np.ndarray,
    *,
    alpha: float = 0.05,
) -> Estimate:
    """Doubly robust estimate (Dudík et al., 2011), per slot.

    Args:
        rewards, logging_p, target_p: as `ips`.
        q_logged: (n, k) the reward model's prediction for the logged item in its slot.
        q_target: (n, k) the reward model's expected reward of slot ``j`` under the judged policy
            (for a deterministic policy: its prediction for the item that policy puts there).
        alpha: 1 - the interval's coverage.
    """
    r, p, t, ql, qt = _check(
        "doubly_robust",
        {"rewards": rewards, "logging_p": logging_p, "target_p": target_p, "q_logged": q_logged, "q_target": q_target},
    )
    per_list = (qt + _weights("doubly_robust", p, t) * (r - ql)).sum(axis=1)
    return _interval(float(per_list.mean()), per_list, alpha)


def ridge_fit(features: np.ndarray, rewards: np.ndarray, l2: float = 1.0) -> np.ndarray:
    """Least squares with an L2 penalty: ``argmin_w |X w - y|^2 + l2 |w|^2`` (the reward model of DR).

    Args:
        features: (m, f) rows.
        rewards: (m,) targets.
        l2: penalty, > 0.

    Returns:
        (f,) weights.
    """
    x = np.asarray(features, dtype=np.float64)
    y = np.asarray(rewards, dtype=np.float64)
    if x.ndim != 2 or y.shape != (x.shape[0],):
        raise ValueError(f"ridge_fit: features {x.shape} and rewards {y.shape} do not match")
    if not l2 > 0:
        raise ValueError(f"ridge_fit: l2 must be > 0, got {l2}")
    return np.linalg.solve(x.T @ x + l2 * np.eye(x.shape[1]), x.T @ y)
