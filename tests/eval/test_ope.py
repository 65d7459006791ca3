from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pytest

from lmrec.eval.ope import doubly_robust, ips, ridge_fit, snips

Z = NormalDist().inv_cdf(0.975)  # 1.959963...

# 4 lists of 2 slots; logging probabilities of the shown items, and the target's
R = np.array([[1, 0], [0, 1], [1, 1], [0, 0]], dtype=float)
P = np.array([[0.5, 0.5], [0.25, 0.5], [0.5, 1.0], [0.5, 0.25]])
T = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 1.0]])
# weights w = T / P = [[2, 0], [4, 2], [0, 1], [2, 4]]


def test_ips_by_hand() -> None:
    # per list: 2*1 + 0 = 2; 4*0 + 2*1 = 2; 0 + 1*1 = 1; 0 + 0 = 0 -> mean 5/4
    # sample std (ddof 1) of [2, 2, 1, 0]: mean 1.25, squares 0.5625*2 + 0.0625 + 1.5625 = 2.75, /3 -> 0.91667
    est = ips(R, P, T)
    se = np.sqrt(2.75 / 3) / 2
    assert est.value == pytest.approx(1.25)
    assert est.std_err == pytest.approx(se)
    assert (est.lower, est.upper) == pytest.approx((1.25 - Z * se, 1.25 + Z * se))
    assert est.n == 4 and est.contains(1.25) and not est.contains(3.0)


def test_snips_by_hand() -> None:
    # slot 0: sum w r = 2 + 0 + 0 + 0 = 2, sum w = 2 + 4 + 0 + 2 = 8 -> 0.25
    # slot 1: sum w r = 0 + 2 + 1 + 0 = 3, sum w = 0 + 2 + 1 + 4 = 7 -> 3/7
    est = snips(R, P, T)
    assert est.value == pytest.approx(0.25 + 3 / 7)
    # influence: (w r - R_j w) / mean(w_j); mean w: slot 0 = 2, slot 1 = 7/4
    infl0 = (np.array([2, 0, 0, 0]) - 0.25 * np.array([2, 4, 0, 2])) / 2
    infl1 = (np.array([0, 2, 1, 0]) - 3 / 7 * np.array([0, 2, 1, 4])) / 1.75
    total = infl0 + infl1
    assert est.std_err == pytest.approx(np.std(total, ddof=1) / 2)


def test_snips_equals_ips_when_weights_average_one() -> None:
    r = np.array([[1.0], [0.0], [1.0], [1.0]])
    p = np.full((4, 1), 0.5)
    t = np.array([[1.0], [0.0], [1.0], [0.0]])  # w = 2, 0, 2, 0: mean 1
    assert snips(r, p, t).value == pytest.approx(ips(r, p, t).value) == pytest.approx(1.0)


def test_doubly_robust_by_hand_and_perfect_model() -> None:
    ql = np.full_like(R, 0.5)
    qt = np.full_like(R, 0.25)
    # per list sum_j [qt + w (r - ql)]:
    # list 0: (0.25 + 2 * 0.5) + (0.25 + 0) = 1.5; list 1: (0.25 + 4 * -0.5) + (0.25 + 2 * 0.5) = -0.5
    # list 2: (0.25 + 0) + (0.25 + 1 * 0.5) = 1.0; list 3: (0.25 + 2 * -0.5) + (0.25 + 4 * -0.5) = -2.5
    est = doubly_robust(R, P, T, ql, qt)
    assert est.value == pytest.approx((1.5 - 0.5 + 1.0 - 2.5) / 4)
    # a reward model that is exactly right on the logged items: DR is its value of the target, no variance from w
    exact = doubly_robust(R, P, T, R, np.full_like(R, 0.5))
    assert exact.value == pytest.approx(1.0) and exact.std_err == pytest.approx(0.0)


def test_ips_is_unbiased_on_a_simulated_bandit() -> None:
    # 3 items with click rates 0.1, 0.5, 0.9; logging uniform; target always item 2 -> true value 0.9
    rng = np.random.default_rng(0)
    n = 20_000
    a = rng.integers(0, 3, n)
    r = (rng.random(n) < np.array([0.1, 0.5, 0.9])[a]).astype(float)
    est = ips(r, np.full(n, 1 / 3), (a == 2).astype(float))
    assert est.contains(0.9) and abs(est.value - 0.9) < 0.03
    assert snips(r, np.full(n, 1 / 3), (a == 2).astype(float)).contains(0.9)


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match=r"ips: logging_p has shape \(3, 2\), expected \(4, 2\)"):
        ips(R, P[:3], T)
    with pytest.raises(ValueError, match=r"logging propensities must lie in \(0, 1\]"):
        ips(R, np.zeros_like(P), T)
    with pytest.raises(ValueError, match="need at least 2 logged lists, got 1"):
        ips(R[:1], P[:1], T[:1])
    with pytest.raises(ValueError, match="alpha must lie in"):
        ips(R, P, T, alpha=1.5)
    with pytest.raises(ValueError, match="rewards has non-finite values"):
        ips(np.full_like(R, np.nan), P, T)


def test_ridge_fit_by_hand() -> None:
    # x = [1, 2], y = [1, 2], l2 = 1: w = (1 + 4 + 1)^-1 (1 + 4) = 5/6
    assert ridge_fit(np.array([[1.0], [2.0]]), np.array([1.0, 2.0]), 1.0) == pytest.approx([5 / 6])
    with pytest.raises(ValueError, match="l2 must be > 0"):
        ridge_fit(np.ones((2, 1)), np.ones(2), 0.0)
