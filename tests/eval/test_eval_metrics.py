"""Hand-computed values for the pure metric functions, and scalar == batch."""

from __future__ import annotations

import numpy as np
import pytest

from lmrec.eval import metrics as M

LOG2_3 = np.log2(3.0)  # 1.5849625
LOG2_5 = np.log2(5.0)  # 2.3219281


def test_hand_computed_k3() -> None:
    ranked, relevant = np.array([3, 1, 7, 2]), {1, 2}
    # top 3 = [3, 1, 7] -> hit flags [0, 1, 0]
    assert M.recall_at_k(ranked, relevant, 3) == pytest.approx(0.5)  # 1 hit / 2 relevant
    assert M.precision_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)  # 1 hit / k=3
    assert M.hit_at_k(ranked, relevant, 3) == 1.0
    assert M.mrr_at_k(ranked, relevant, 3) == pytest.approx(0.5)  # first hit at rank 2
    # DCG = 1/log2(2+1) = 0.6309; IDCG over min(2, 3) = 2 positions = 1 + 0.6309 = 1.6309
    assert M.ndcg_at_k(ranked, relevant, 3) == pytest.approx(0.386853, abs=1e-6)
    # MAP = precision@2 (= 1/2) / min(2, 3) = 0.25
    assert M.map_at_k(ranked, relevant, 3) == pytest.approx(0.25)


def test_hand_computed_k4() -> None:
    ranked, relevant = [3, 1, 7, 2], np.array([2, 1])
    # flags [0, 1, 0, 1]
    assert M.recall_at_k(ranked, relevant, 4) == pytest.approx(1.0)
    assert M.precision_at_k(ranked, relevant, 4) == pytest.approx(0.5)
    assert M.mrr_at_k(ranked, relevant, 4) == pytest.approx(0.5)
    # DCG = 1/log2(3) + 1/log2(5) = 0.630930 + 0.430677 = 1.061606; IDCG = 1.630930 -> 0.650921
    assert M.ndcg_at_k(ranked, relevant, 4) == pytest.approx((1 / LOG2_3 + 1 / LOG2_5) / (1 + 1 / LOG2_3))
    assert M.ndcg_at_k(ranked, relevant, 4) == pytest.approx(0.650921, abs=1e-6)
    # MAP = (1/2 + 2/4) / min(2, 4) = 0.5
    assert M.map_at_k(ranked, relevant, 4) == pytest.approx(0.5)


def test_more_relevant_than_k_uses_min_in_idcg_and_map() -> None:
    ranked, relevant = [1, 2, 3], {1, 2, 3, 4, 5}
    # k=2: flags [1, 1]; IDCG and MAP normalise over min(5, 2) = 2 positions
    assert M.ndcg_at_k(ranked, relevant, 2) == pytest.approx(1.0)
    assert M.map_at_k(ranked, relevant, 2) == pytest.approx(1.0)  # (1/1 + 2/2) / 2
    assert M.recall_at_k(ranked, relevant, 2) == pytest.approx(0.4)  # 2 / 5


def test_padding_and_short_lists() -> None:
    relevant = {2, 5}
    for ranked in ([2, -1, -1], [2], np.array([2, -1, -1, -1, 5])):
        # only position 1 hits within k=3; -1 never matches
        assert M.precision_at_k(ranked, relevant, 3) == pytest.approx(1 / 3)  # divides by k, not list length
        assert M.recall_at_k(ranked, relevant, 3) == pytest.approx(0.5)
        assert M.ndcg_at_k(ranked, relevant, 3) == pytest.approx(1 / (1 + 1 / LOG2_3))  # 0.613147
    # -1 in both lists is still no hit
    assert M.hit_at_k([-1, -1], {-1}, 2) == 0.0


def test_no_relevant_and_bad_k() -> None:
    assert M.ndcg_at_k([1, 2], set(), 2) == 0.0
    assert M.recall_at_k([1, 2], [], 2) == 0.0
    with pytest.raises(ValueError, match="k must be a positive integer, got 0"):
        M.ndcg_at_k([1], {1}, 0)


def test_scalar_equals_batch_on_random_lists() -> None:
    rng = np.random.default_rng(7)
    n_users, n_items, width = 60, 30, 12
    ranked = np.stack([rng.permutation(n_items)[:width] for _ in range(n_users)])
    ranked[rng.random(ranked.shape) < 0.1] = -1  # sprinkle padding
    relevant = [rng.choice(n_items, size=rng.integers(1, 15), replace=False) for _ in range(n_users)]
    for k in (1, 3, 5, 12, 15):
        hits, n_rel = M.hits_matrix(ranked, relevant, k)
        assert hits.shape == (n_users, k)
        for name, batch_fn in M.BATCH_METRICS.items():
            batch = batch_fn(hits, n_rel)
            scalar = [M.SCALAR_METRICS[name](ranked[u], relevant[u], k) for u in range(n_users)]
            np.testing.assert_allclose(batch, scalar, rtol=1e-12, atol=1e-12, err_msg=f"{name}@{k}")


def test_batch_hand_values_and_zero_relevant() -> None:
    hits = np.array([[0, 1, 0], [0, 0, 0], [1, 1, 1]], dtype=bool)
    n_rel = np.array([2, 0, 5])
    np.testing.assert_allclose(M.ndcg_batch(hits, n_rel), [0.386853, 0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(M.recall_batch(hits, n_rel), [0.5, 0.0, 0.6])  # 3 / 5
    np.testing.assert_allclose(M.map_batch(hits, n_rel), [0.25, 0.0, 1.0])  # (1 + 1 + 1) / min(5, 3)
    np.testing.assert_allclose(M.mrr_batch(hits, n_rel), [0.5, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"n_relevant has shape \(2,\), expected \(3,\)"):
        M.ndcg_batch(hits, n_rel[:2])


def test_item_coverage() -> None:
    # items {0, 1} appear (padding ignored) out of 4
    assert M.item_coverage(np.array([[0, 1], [1, -1]]), 4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="n_items must be positive"):
        M.item_coverage(np.array([[0]]), 0)


def test_rmse_mae() -> None:
    y, p = [1.0, 5.0, 4.0], [3.0, 3.0, 3.0]
    # errors -2, 2, 1 -> rmse sqrt((4 + 4 + 1) / 3) = sqrt(3); mae 5/3
    assert M.rmse(y, p) == pytest.approx(np.sqrt(3))
    assert M.mae(y, p) == pytest.approx(5 / 3)
    with pytest.raises(ValueError, match="y_true has 2 values, y_pred has 1"):
        M.rmse([1, 2], [1])


def test_auc_hand_and_ties() -> None:
    # pairs (pos, neg): (0.9 vs 0.9) tie 0.5, (0.9 vs 0.1) 1, (0.3 vs 0.9) 0, (0.3 vs 0.1) 1 -> 2.5 / 4
    assert M.auc([1, 0, 1, 0], [0.9, 0.9, 0.3, 0.1]) == pytest.approx(0.625)
    assert M.auc([1, 0], [0.2, 0.2]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="auc is undefined with 2 positives and 0 negatives"):
        M.auc([1, 1], [0.1, 0.2])


def test_auc_matches_sklearn_with_ties() -> None:
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, size=500)
    scores = rng.integers(0, 4, size=500).astype(float) + 0.5 * labels  # many ties, some signal
    assert M.auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)


def test_log_loss() -> None:
    from sklearn.metrics import log_loss as sk_log_loss

    # -(ln 0.8 + ln 0.6) / 2 = (0.223144 + 0.510826) / 2 = 0.366985
    assert M.log_loss([1, 0], [0.8, 0.4]) == pytest.approx(0.366985, abs=1e-6)
    rng = np.random.default_rng(0)
    labels, probs = rng.integers(0, 2, 200), rng.uniform(0.01, 0.99, 200)
    assert M.log_loss(labels, probs) == pytest.approx(sk_log_loss(labels, probs), rel=1e-9)
    # a certain mistake is clipped: -ln(1e-7) = 16.118
    assert M.log_loss([0], [1.0]) == pytest.approx(-np.log(1e-7), rel=1e-6)
    with pytest.raises(ValueError, match="probs must be probabilities"):
        M.log_loss([0, 1], [-0.5, 2.0])
