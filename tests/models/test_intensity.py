"""IntensityModel: known-answer synthetic groups, missing text, save/load, named errors."""

from __future__ import annotations

import numpy as np
import pytest

from lmrec.encoders.fake import HashingEncoder
from lmrec.models.intensity import IntensityModel, review_texts


def _flip_data(n_per_group: int, seed: int, dim: int = 16):
    """Two groups whose rating follows one text direction w with opposite signs.

    rating = 3 + 1.8 * s_g * (x . w), s_A = +1, s_B = -1, clipped to [1, 5]; recommended = rating > 3.
    Pooled over both groups, x . w says nothing about the rating, so a model that ignores the groups
    can do no better than predicting about 3; per-group adapters can recover the sign.
    """
    rng = np.random.default_rng(seed)
    w = np.zeros(dim)
    w[0] = 1.0
    x = rng.standard_normal((2 * n_per_group, dim)).astype(np.float32)
    groups = np.array(["A"] * n_per_group + ["B"] * n_per_group, dtype=object)
    sign = np.where(groups == "A", 1.0, -1.0)
    rating = np.clip(3 + 1.8 * sign * (x @ w), 1, 5)
    flag = (rating > 3).astype(float)
    texts = [f"review {i}" for i in range(len(x))]
    return texts, groups, rating, flag, x


def _rmse(a, b):
    return float(np.sqrt(np.mean((np.asarray(a) - np.asarray(b)) ** 2)))


def _auc(y, p):
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p))


FAST = dict(hidden=32, adapter_rank=4, epochs=60, patience=8, batch_size=64, lr=3e-3, num_threads=1)


def test_adapter_beats_group_ignoring_model_on_flipped_direction():
    texts, groups, rating, flag, x = _flip_data(300, seed=0)
    te_texts, te_groups, te_rating, te_flag, te_x = _flip_data(200, seed=1)
    scores = {}
    for mode in ("adapter", "single", "per_group"):
        model = IntensityModel(mode=mode, random_state=0, **FAST).fit(texts, groups, rating, flag, embeddings=x)
        pred, prob = model.predict(te_texts, te_groups, embeddings=te_x)
        scores[mode] = (_rmse(pred, te_rating), _auc(te_flag, prob))
    # rating std is about 1.3; the group-ignoring model stays near that, the adapter model far below
    assert scores["single"][0] > 1.0
    assert scores["adapter"][0] < 0.6 * scores["single"][0]
    assert scores["adapter"][1] > 0.9 > 0.7 > scores["single"][1]
    assert scores["per_group"][0] < 0.6 * scores["single"][0]


def test_review_texts_handles_missing_parts():
    out = review_texts(["Great", None, float("nan"), "Done!", ""], ["fits well", "runs small", None, "love it", None])
    assert out == ["Great. fits well", "runs small", "", "Done! love it", ""]
    with pytest.raises(ValueError, match="2 titles but 1 review texts"):
        review_texts(["a", "b"], ["c"])


def test_missing_text_rows_counted_and_given_group_mean():
    enc = HashingEncoder(dim=16, seed=0)
    texts = ["love this dress", "", "runs small", "great fit", "  ", "poor quality", "nice colour", "too big"]
    groups = ["Tops", "Tops", "Tops", "Tops", "Dresses", "Dresses", "Dresses", "Dresses"]
    rating = [5, 1, 2, 5, 3, 1, 4, 2]
    flag = [1, 0, 0, 1, 1, 0, 1, 0]
    model = IntensityModel(encoder=enc, hidden=8, adapter_rank=2, epochs=3, valid_fraction=0.3).fit(
        texts, groups, rating, flag
    )
    assert model.n_missing_text_ == 2  # "" and "  "
    # group means over rows WITH text: Tops (5 + 2 + 5) / 3 = 4; Dresses (1 + 4 + 2) / 3 = 7/3
    np.testing.assert_allclose(model.group_rating_, [7 / 3, 4.0])  # groups_ sorted: Dresses, Tops
    pred, prob = model.predict(["", None, "great fit", ""], ["Tops", "Dresses", "Tops", "Shoes"])
    assert model.last_missing_ == 3
    assert pred[0] == pytest.approx(4.0) and prob[0] == pytest.approx(2 / 3)  # Tops flags 1, 0, 1
    assert pred[1] == pytest.approx(7 / 3) and prob[1] == pytest.approx(1 / 3)  # Dresses flags 0, 1, 0
    # unknown group with no text: the global mean over the 6 rows with text: (5+2+5+1+4+2)/6 = 19/6
    assert pred[3] == pytest.approx(19 / 6)
    assert 1 <= pred[2] <= 5


def test_save_load_identical_predictions(tmp_path):
    texts, groups, rating, flag, x = _flip_data(60, seed=2)
    for mode in ("adapter", "per_group", "single"):
        model = IntensityModel(mode=mode, hidden=16, adapter_rank=3, epochs=4, random_state=3).fit(
            texts, groups, rating, flag, embeddings=x
        )
        before = model.predict(texts, groups, embeddings=x)
        model.save(tmp_path / mode)
        assert not list((tmp_path / mode).glob("*.pkl"))
        loaded = IntensityModel.load(tmp_path / mode)
        after = loaded.predict(texts, groups, embeddings=x)
        np.testing.assert_array_equal(before[0], after[0])
        np.testing.assert_array_equal(before[1], after[1])
        assert loaded.get_params() == model.get_params()


def test_fit_is_deterministic_under_random_state():
    texts, groups, rating, flag, x = _flip_data(50, seed=4)
    a = IntensityModel(hidden=8, epochs=3, random_state=7).fit(texts, groups, rating, flag, embeddings=x)
    b = IntensityModel(hidden=8, epochs=3, random_state=7).fit(texts, groups, rating, flag, embeddings=x)
    np.testing.assert_array_equal(a.predict(texts, groups, embeddings=x)[0], b.predict(texts, groups, embeddings=x)[0])


def test_errors_name_the_bad_value():
    texts, groups, rating, flag, x = _flip_data(10, seed=5)
    with pytest.raises(ValueError, match="mode must be one of .*got 'shared'"):
        IntensityModel(mode="shared").fit(texts, groups, rating, flag, embeddings=x)
    with pytest.raises(ValueError, match="hidden must be an integer >= 1, got 0"):
        IntensityModel(hidden=0).fit(texts, groups, rating, flag, embeddings=x)
    with pytest.raises(ValueError, match="valid_fraction must be in"):
        IntensityModel(valid_fraction=1.0).fit(texts, groups, rating, flag, embeddings=x)
    with pytest.raises(ValueError, match="20 texts but 3 groups"):
        IntensityModel().fit(texts, groups[:3], rating, flag, embeddings=x)
    with pytest.raises(ValueError, match=r"recommended must be 20 values in \{0, 1\}; got \[2.0\]"):
        IntensityModel().fit(texts, groups, rating, np.r_[flag[:-1], 2], embeddings=x)
    with pytest.raises(ValueError, match="not fitted"):
        IntensityModel().predict(texts, groups, embeddings=x)
    model = IntensityModel(mode="per_group", hidden=4, epochs=1).fit(texts, groups, rating, flag, embeddings=x)
    with pytest.raises(ValueError, match=r"no network for group\(s\) \['C'\]"):
        model.predict(texts[:1], ["C"], embeddings=x[:1])


def test_adapter_stage_one_is_the_single_model():
    """Stage 1 of "adapter" trains the trunk and heads exactly as "single" does (same seed, same
    RNG stream), so any difference between the two comes from the adapters alone."""
    import torch

    texts, groups, rating, flag, x = _flip_data(80, seed=6)
    adapter = IntensityModel(mode="adapter", hidden=16, epochs=6, patience=3).fit(
        texts, groups, rating, flag, embeddings=x
    )
    single = IntensityModel(mode="single", hidden=16, epochs=6, patience=3).fit(
        texts, groups, rating, flag, embeddings=x
    )
    n = len(single.history_[0])
    assert adapter.history_[0][:n] == single.history_[0]
    state = adapter.nets_[0].state_dict()
    for name, value in single.nets_[0].state_dict().items():
        assert torch.equal(state[name], value), name
