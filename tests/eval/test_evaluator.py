"""The full-ranking evaluator on a hand-made split, the sampled protocol, breakdowns and paired tests."""

from __future__ import annotations

import numpy as np
import pytest
from eval_helpers import SCORES, FixedScores, random_split, tiny_split

from lmrec.data import Split
from lmrec.eval import EvalResult, evaluate, evaluate_clicks, evaluate_ratings, paired_test
from lmrec.eval.metrics import SCALAR_METRICS
from lmrec.models import Popularity

INV_LOG2_3 = 1 / np.log2(3)  # 0.630930


def _fitted_fixed() -> tuple[FixedScores, Split]:
    dataset, split = tiny_split()
    model = FixedScores(SCORES.copy()).fit(dataset.with_interactions(split.train))
    return model, split


def test_test_phase_masks_train_and_valid_but_never_relevant() -> None:
    model, split = _fitted_fixed()
    res = evaluate(model, split, phase="test", ks=(1, 3, 6), user_groups=(1,), keep_ranked=True)
    np.testing.assert_array_equal(res.users, [0, 1, 2])  # u3 has no test row
    assert res.n_users == 3
    # u0: train item 0 (score 9) and valid item 1 (score 8) are masked
    # u1: train 1, 2 and valid 3 masked; u2: train 5 masked but 4 (train AND test) stays
    np.testing.assert_array_equal(res.ranked[0, :4], [5, 2, 4, 3])
    np.testing.assert_array_equal(res.ranked[1, :4], [5, 4, 0, -1])
    np.testing.assert_array_equal(res.ranked[2, :5], [4, 3, 2, 1, 0])
    # per user @3: u0 rel {2,3} flags [0,1,0]; u1 rel {4} flags [0,1,0]; u2 rel {4} flags [1,0,0]
    np.testing.assert_allclose(res.per_user["ndcg@3"], [INV_LOG2_3 / (1 + INV_LOG2_3), INV_LOG2_3, 1.0])
    np.testing.assert_allclose(res.per_user["map@3"], [0.25, 0.5, 1.0])
    # means: ndcg (0.386853 + 0.630930 + 1) / 3 = 0.672594; recall (0.5 + 1 + 1) / 3
    assert res.metrics["ndcg@3"] == pytest.approx(0.672594, abs=1e-6)
    assert res.metrics["recall@3"] == pytest.approx(2.5 / 3)
    assert res.metrics["mrr@3"] == pytest.approx(2 / 3)  # (0.5 + 0.5 + 1) / 3
    assert res.metrics["precision@3"] == pytest.approx(1 / 3)
    assert res.metrics["hit@1"] == pytest.approx(1 / 3)
    # coverage: top-3 lists cover {0, 2, 3, 4, 5} of 6 items; top-1 lists {5, 4}
    assert res.metrics["coverage@3"] == pytest.approx(5 / 6)
    assert res.metrics["coverage@1"] == pytest.approx(2 / 6)
    # no 10 among ks: the primary is ndcg at the largest k; an explicit one is checked
    assert res.primary == "ndcg@6" and res.primary_value == res.metrics["ndcg@6"]
    assert evaluate(model, split, ks=(3,), primary="recall@3").primary == "recall@3"
    with pytest.raises(ValueError, match="primary 'recall@10' is not among the computed metrics"):
        evaluate(model, split, ks=(3,), primary="recall@10")


def test_valid_phase_masks_only_train() -> None:
    model, split = _fitted_fixed()
    res = evaluate(model, split, phase="valid", ks=(1, 3, 6), keep_ranked=True)
    np.testing.assert_array_equal(res.users, [0, 1])
    # u0: only train item 0 masked, so valid item 1 (score 8) comes first
    np.testing.assert_array_equal(res.ranked[0, :3], [1, 5, 2])
    # u1: masked 1, 2 -> [5, 4, 3, 0]; relevant 3 at rank 3 -> ndcg 1/log2(4) = 0.5
    np.testing.assert_allclose(res.per_user["ndcg@3"], [1.0, 0.5])
    assert res.metrics["hit@1"] == pytest.approx(0.5)


def test_evaluator_never_mutates_the_model() -> None:
    model, split = _fitted_fixed()
    seen_before = model.seen_.toarray().copy()
    evaluate(model, split, phase="test", ks=(3,))
    np.testing.assert_array_equal(model.scores, SCORES)
    np.testing.assert_array_equal(model.seen_.toarray(), seen_before)


def test_scenario_and_user_group_breakdowns() -> None:
    model, split = _fitted_fixed()
    res = evaluate(model, split, phase="test", ks=(1, 3), user_groups=(1,))
    # home: u0 rel {2} at rank 2, u1 rel {4} at rank 2 -> ndcg@3 0.630930 each
    home, search = res.by_scenario["home"], res.by_scenario["search"]
    assert home["n_users"] == 2 and home["ndcg@3"] == pytest.approx(INV_LOG2_3)
    assert home["recall@3"] == pytest.approx(1.0) and home["hit@1"] == 0.0
    # search: u0 rel {3} at rank 4 (outside top 3) -> 0; u2 rel {4} at rank 1 -> 1
    assert search["n_users"] == 2 and search["ndcg@3"] == pytest.approx(0.5) and search["hit@1"] == 0.5
    # train lengths u0 1, u1 2, u2 2 with cut point 1
    assert set(res.by_user_group) == {"cold (<=1)", "warm (>1)"}
    assert res.by_user_group["cold (<=1)"]["ndcg@3"] == pytest.approx(0.386853, abs=1e-6)
    assert res.by_user_group["warm (>1)"]["ndcg@3"] == pytest.approx((INV_LOG2_3 + 1) / 2)
    assert res.by_user_group["warm (>1)"]["n_users"] == 2
    # default cut points (5, 20): everyone is cold; three groups when there is a middle
    assert list(evaluate(model, split, ks=(3,)).by_user_group) == ["cold (<=5)"]
    from lmrec.eval.evaluator import _group_labels

    assert [g[0] for g in _group_labels((5, 20))] == ["cold (<=5)", "mid (6-20)", "warm (>20)"]
    # without scenarios there is no scenario breakdown
    dataset, plain = tiny_split(with_scenarios=False)
    model2 = FixedScores(SCORES.copy()).fit(dataset.with_interactions(plain.train))
    assert evaluate(model2, plain, ks=(3,)).by_scenario == {}


def _reference_per_user(scores: np.ndarray, split: Split, k: int) -> dict[str, list[float]]:
    """Independent per-user loop: mask train+valid except relevant, stable sort, scalar metrics."""
    hist = split.train.to_csr() + split.valid.to_csr()
    test = split.test.to_csr()
    out: dict[str, list[float]] = {name: [] for name in SCALAR_METRICS}
    for u in np.unique(split.test.users):
        rel = set(test[u].indices.tolist())
        s = scores.astype(np.float64).copy()
        for i in hist[u].indices:
            if i not in rel:
                s[i] = -np.inf
        order = sorted(range(len(s)), key=lambda i: (-s[i], i))
        ranked = [i for i in order if np.isfinite(s[i])][:k]
        for name, fn in SCALAR_METRICS.items():
            out[name].append(fn(np.array(ranked), rel, k))
    return out


def test_popularity_full_ranking_matches_reference_loop_and_batching() -> None:
    dataset, split = random_split()
    model = Popularity().fit(dataset.with_interactions(split.train))
    res = evaluate(model, split, ks=(5, 10), batch_size=7)
    ref = _reference_per_user(model.counts_, split, 10)
    for name in SCALAR_METRICS:
        np.testing.assert_allclose(res.per_user[f"{name}@10"], ref[name], atol=1e-12, err_msg=name)
    res_big = evaluate(model, split, ks=(5, 10), batch_size=1000)
    assert res_big.metrics == res.metrics


def test_sampled_protocol_labels_and_dominates_full() -> None:
    dataset, split = random_split()
    model = Popularity().fit(dataset.with_interactions(split.train))
    full = evaluate(model, split, ks=(5, 10))
    sampled = evaluate(model, split, ks=(5, 10), protocol="sampled", n_negatives=20, batch_size=9)
    assert "ndcg@10 (sampled-20)" in sampled.metrics and "coverage@10 (sampled-20)" in sampled.metrics
    assert not any("@" in key and "sampled" not in key for key in sampled.metrics)
    assert sampled.primary == "ndcg@10 (sampled-20)"
    # fewer competitors can only move each relevant item up: per user, sampled >= full
    for name in ("recall", "ndcg", "mrr", "hit", "precision", "map"):
        for k in (5, 10):
            assert np.all(sampled.per_user[f"{name}@{k} (sampled-20)"] >= full.per_user[f"{name}@{k}"] - 1e-12)
    assert sampled.metrics["ndcg@10 (sampled-20)"] > full.metrics["ndcg@10"]
    assert evaluate(model, split, protocol="sampled", n_negatives=20, primary="mrr@10").primary == "mrr@10 (sampled-20)"
    # deterministic for a seed, independent of batch size; another seed samples differently
    again = evaluate(model, split, ks=(5, 10), protocol="sampled", n_negatives=20, batch_size=256)
    assert again.metrics == sampled.metrics
    other = evaluate(model, split, ks=(5, 10), protocol="sampled", n_negatives=20, random_state=1)
    assert other.metrics != sampled.metrics


def test_sampled_negatives_are_never_interacted_items() -> None:
    # on the tiny split, u0 touched {0,1,2,3}: its candidates are {2,3} (relevant) plus negatives from {4,5}
    model, split = _fitted_fixed()
    res = evaluate(model, split, ks=(6,), protocol="sampled", n_negatives=1, keep_ranked=True)
    row = res.ranked[0]
    listed = set(row[row >= 0].tolist())
    assert {2, 3} <= listed and len(listed) == 3 and listed - {2, 3} <= {4, 5}


def test_bad_arguments_and_wrong_model() -> None:
    model, split = _fitted_fixed()
    with pytest.raises(ValueError, match="phase must be 'valid' or 'test', got 'tst'"):
        evaluate(model, split, phase="tst")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"unknown metric\(s\) \['auc'\]"):
        evaluate(model, split, metrics=("ndcg", "auc"))
    with pytest.raises(ValueError, match="ks must be positive integers"):
        evaluate(model, split, ks=(0,))
    wrong = FixedScores(np.zeros((4, 5), np.float32))
    wrong.fit(tiny_split()[0].with_interactions(split.train))
    with pytest.raises(ValueError, match=r"score_all returned shape \(3, 5\), expected \(3, 6\)"):
        evaluate(wrong, split)


def test_empty_phase_gives_nan_and_zero_users() -> None:
    model, split = _fitted_fixed()
    empty = Split(split.train, split.valid, split.test.subset(np.zeros(len(split.test), bool)), "empty")
    res = evaluate(model, empty, ks=(3,))
    assert res.n_users == 0 and np.isnan(res.metrics["ndcg@3"])


def _result(users: list[int], values: list[float]) -> EvalResult:
    per_user = {"ndcg@10": np.asarray(values, dtype=float)}
    return EvalResult({"ndcg@10": float(np.mean(values))}, {}, {}, per_user, np.asarray(users), len(users))


def test_paired_test_sign_ci_and_common_users() -> None:
    a = _result([0, 1, 2, 3], [0.5, 0.6, 0.7, 0.8])
    b = _result([0, 1, 2, 3, 9], [0.4, 0.4, 0.4, 0.4, 1.0])  # user 9 is not in a: ignored
    out = paired_test(a, b)
    # diffs 0.1 .. 0.4: mean 0.25, sd sqrt(0.05 / 3) = 0.129099, se 0.0645497, t = 3.872983
    # t_0.975,3 = 3.182446 -> half width 0.205427
    assert out["n_users"] == 4 and out["mean_diff"] == pytest.approx(0.25)
    assert out["t_stat"] == pytest.approx(3.872983, abs=1e-6)
    assert out["ci95_low"] == pytest.approx(0.044573, abs=1e-6)
    assert out["ci95_high"] == pytest.approx(0.455427, abs=1e-6)
    # Wilcoxon, 4 positive differences: W- = 0, exact two-sided p = 2 / 2^4 = 0.125
    assert out["wilcoxon_stat"] == 0.0 and out["wilcoxon_pvalue"] == pytest.approx(0.125)
    swapped = paired_test(b, a)
    assert swapped["mean_diff"] == pytest.approx(-0.25) and swapped["t_pvalue"] == pytest.approx(out["t_pvalue"])
    assert swapped["ci95_high"] == pytest.approx(-0.044573, abs=1e-6)


def test_paired_test_zero_and_constant_difference() -> None:
    a = _result([0, 1, 2], [0.1, 0.5, 0.9])
    same = paired_test(a, a)
    assert same["mean_diff"] == 0.0 and same["t_pvalue"] == 1.0 and same["wilcoxon_pvalue"] == 1.0
    assert same["ci95_low"] == 0.0 and same["ci95_high"] == 0.0
    shifted = paired_test(_result([0, 1, 2], [0.2, 0.6, 1.0]), a)
    assert shifted["mean_diff"] == pytest.approx(0.1) and shifted["t_pvalue"] == 0.0 and shifted["t_stat"] == np.inf
    with pytest.raises(ValueError, match="result_a has no per-user values for 'recall@10'"):
        paired_test(a, a, metric="recall@10")
    with pytest.raises(ValueError, match="share no users"):
        paired_test(a, _result([7], [0.3]))


class _ConstantRater:
    def predict_rating(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        return np.full(len(user_idx), 3.0)


def test_evaluate_ratings_and_clicks() -> None:
    import pandas as pd

    from lmrec.data import Interactions

    frame = pd.DataFrame({"user_id": ["a", "a", "b"], "item_id": ["x", "y", "x"], "rating": [1.0, 5.0, 4.0]})
    inter = Interactions.from_frame(frame, time_col=None, rating_col="rating")
    # errors -2, 2, 1 -> rmse sqrt(3) = 1.732051, mae 5/3
    out = evaluate_ratings(_ConstantRater(), inter)
    assert out == pytest.approx({"rmse": np.sqrt(3), "mae": 5 / 3})
    with pytest.raises(TypeError, match="Popularity has no predict_rating"):
        evaluate_ratings(Popularity(), inter)
    clicks = evaluate_clicks(np.array([0.8, 0.4]), np.array([1, 0]))
    # one positive above one negative -> auc 1; logloss -(ln 0.8 + ln 0.6) / 2 = 0.366985
    assert clicks["auc"] == 1.0 and clicks["logloss"] == pytest.approx(0.366985, abs=1e-6)


def test_negative_sampler_is_uniform_over_free_items() -> None:
    from lmrec.eval.evaluator import _sample_negatives

    rng = np.random.default_rng(0)
    exclude = np.arange(0, 60, 2)  # 30 excluded even items out of 60 -> 30 free odd items
    counts = np.zeros(60, dtype=int)
    for _ in range(2000):
        draw = _sample_negatives(rng, exclude, 60, 5)
        assert len(draw) == 5 and len(set(draw.tolist())) == 5
        counts[draw] += 1
    assert counts[exclude].sum() == 0
    # each free item: expected 2000 * 5/30 = 333.3, sd sqrt(2000 * 1/6 * 5/6) = 16.7; allow ~5 sd
    assert counts[1::2].min() > 250 and counts[1::2].max() < 420
    # fewer free items than asked: all of them
    np.testing.assert_array_equal(_sample_negatives(rng, np.arange(58), 60, 5), [58, 59])


def test_exclude_history_false_lets_seen_items_rank():
    # One user, three items; train has item 0, test has item 2. Scores favour item 0 > 2 > 1.
    # Masked: item 2 ranks first (NDCG@1 = 1). Unmasked: item 0 takes rank 1, item 2 rank 2,
    # NDCG@2 = (1/log2(3)) / 1 = 0.6309.
    import numpy as np
    import pandas as pd

    from lmrec.data import Interactions, Split
    from lmrec.models.base import Recommender

    inter = Interactions.from_frame(
        pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["a", "b", "c"], "timestamp": [1, 2, 3]})
    )
    split = Split(inter.subset(np.array([0])), inter.subset(np.array([], dtype=int)), inter.subset(np.array([2])))

    class Fixed(Recommender):
        def _fit(self, dataset):
            pass

        def score_all(self, user_idx):
            return np.tile(np.array([3.0, 1.0, 2.0], np.float32), (len(user_idx), 1))

    model = Fixed().fit(split.train)
    masked = evaluate(model, split, ks=(1, 2), metrics=("ndcg",))
    unmasked = evaluate(model, split, ks=(1, 2), metrics=("ndcg",), exclude_history=False)
    assert masked.metrics["ndcg@1"] == 1.0
    assert unmasked.metrics["ndcg@1"] == 0.0
    assert abs(unmasked.metrics["ndcg@2"] - 1 / np.log2(3)) < 1e-9


def test_item_pool_ranks_only_the_pool() -> None:
    model, split = _fitted_fixed()
    res = evaluate(model, split, phase="test", ks=(3,), item_pool=np.array([4, 2, 3, 4]), keep_ranked=True)
    # full-ranking lists (see the masking test) filtered to the pool {2, 3, 4}
    np.testing.assert_array_equal(res.ranked[0], [2, 4, 3])  # from [5, 2, 4, 3]
    np.testing.assert_array_equal(res.ranked[1], [4, -1, -1])  # from [5, 4, 0]
    np.testing.assert_array_equal(res.ranked[2], [4, 3, 2])  # from [4, 3, 2, 1, 0]
    # u0 rel {2, 3} at ranks 1 and 3: (1 + 1/log2(4)) / (1 + 1/log2(3)) = 1.5 / 1.630930 = 0.919720
    np.testing.assert_allclose(res.per_user["ndcg@3"], [0.919720, 1.0, 1.0], atol=1e-6)
    with pytest.raises(ValueError, match=r"item_pool must hold item indices in \[0, 6\)"):
        evaluate(model, split, item_pool=np.array([6]))
    with pytest.raises(ValueError, match="item_pool applies to the full protocol only"):
        evaluate(model, split, protocol="sampled", item_pool=np.array([1]))
