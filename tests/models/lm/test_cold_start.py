"""The cold-start component of lm (`lmrec.models.lm.cold`): gate, borrowed vectors, one inner product,
calibration, persistence and new items scored as catalogue cold items."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_model
from lm_helpers import COLD, GENRES, N_WARM, genre_of_user

from lmrec.data import cold_item_split, leave_one_out
from lmrec.models.base import load_model
from lmrec.models.lm.cold import ColdStart, ColdState, gate, user_content_vectors
from lmrec.models.lm.config import ColdStartConfig


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


# ------------------------------------------------------------------ pure parts
def test_gate_known_answers() -> None:
    counts = np.array([0, 1, 5])
    # half_count 0: only the item without interactions gets the weight
    np.testing.assert_allclose(gate(counts, 2.0, 0.0), [2.0, 0.0, 0.0])
    # w(n) = 2 * 5 / (5 + n): 2, 10/6 = 1.6667, 10/10 = 1
    np.testing.assert_allclose(gate(counts, 2.0, 5.0), [2.0, 10 / 6, 1.0], rtol=1e-6)


def small_paths(state: ColdState, **config: float) -> ColdStart:
    """Two warm items with learned vectors e1 and e2, one cold item; content in 2-d, raw text in 3-d."""
    learned = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]], np.float32)
    content = unit(np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]], np.float32))
    raw = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0]], np.float32)  # made unit inside
    counts = np.array([3, 1, 0])
    return ColdStart(ColdStartConfig(**config), state, learned, content, counts, raw)


def test_a_cold_item_borrows_the_softmax_mean_of_its_neighbours() -> None:
    paths = small_paths(ColdState(1.0, 0.0, 1.0), neighbours=2, tau=0.5)
    content = unit(np.array([[2.0, 1.0]], np.float32))
    # cosines to warm items: 2/sqrt5 = 0.8944 and 1/sqrt5 = 0.4472; softmax over cos / 0.5:
    # weights exp(1.7889), exp(0.8944) normalised = 0.7098, 0.2902
    s = np.array([2, 1]) / np.sqrt(5) / 0.5
    w = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(paths.borrowed(content)[0], w, rtol=1e-5)
    # borrow 1: the cold item's learned vector is the unit borrowed one
    np.testing.assert_allclose(paths.item_learned()[2], unit(np.array([0.5, 0.5])), rtol=1e-5)


def test_borrow_zero_keeps_the_text_path_vector() -> None:
    paths = small_paths(ColdState(1.0, 0.0, 0.0))
    np.testing.assert_allclose(paths.item_learned()[2], [0.6, 0.8])


def test_one_inner_product_gives_learned_plus_gated_content() -> None:
    state = ColdState(3.0, 1.0, 0.5)
    paths = small_paths(state, query_weight=2.0)
    items = paths.item_vectors()  # (3, d 2 + k 2 + D 3)
    assert items.shape == (3, 7)
    learned_user = unit(np.array([[0.3, 0.7]], np.float32))
    users = paths.user_vectors(learned_user, [np.array([0, 2])], max_len=5)
    c_u = unit(paths.content[[0, 2]].sum(axis=0))
    w = gate(paths.counts, 3.0, 1.0)  # 3 * 1 / (1 + n): 0.75, 1.5, 3
    expected = paths.item_learned() @ learned_user[0] + w * (paths.content @ c_u)
    # the user vector is [v_u, c_u, 0] scaled to unit length: |[v_u, c_u]| = sqrt(1 + 1)
    np.testing.assert_allclose(users[0] @ items.T, expected / np.sqrt(2), rtol=1e-5)
    q_content, q_raw = unit(np.array([[1.0, 0.2]], np.float32)), np.array([[0.0, 3.0, 4.0]], np.float32)
    query = paths.text_vectors(learned_user, q_content, q_raw, "query")
    mixed = paths.mix_learned(learned_user, q_content)[0]
    # a query meets items through the raw text cosine: items' unit raw rows . (0, 0.6, 0.8)
    expected_q = paths.item_learned() @ mixed + 2.0 * (unit(paths.raw) @ np.array([0.0, 0.6, 0.8]))
    np.testing.assert_allclose(query[0] @ items.T, expected_q / np.linalg.norm(np.r_[mixed, 1.0]), rtol=1e-5)


def test_a_text_only_item_gets_the_vector_of_a_catalogue_cold_item() -> None:
    paths = small_paths(ColdState(2.0, 0.0, 0.5))
    new = paths.text_vectors(paths.learned[[2]], paths.content[[2]], np.array([[3.0, 3.0, 0.0]]), "passage")
    np.testing.assert_allclose(new[0], paths.item_vectors()[2], rtol=1e-6)


def test_user_content_is_the_unit_mean_of_the_last_items() -> None:
    content = np.eye(3, dtype=np.float32)
    out = user_content_vectors(content, [np.array([0, 1, 2]), np.array([], np.int64)], max_len=2)
    np.testing.assert_allclose(out[0], [0, 1 / np.sqrt(2), 1 / np.sqrt(2)], rtol=1e-6)
    np.testing.assert_allclose(out[1], 0.0)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("borrow", 1.5, r"ColdStartConfig.borrow must be a number in \[0, 1\], got 1.5"),
        ("tau", 0.0, r"ColdStartConfig.tau must be a number > 0, got 0.0"),
        ("neighbours", 0, r"ColdStartConfig.neighbours must be an integer >= 1, got 0"),
        ("enabled", "yes", r"ColdStartConfig.enabled must be True or False, got 'yes'"),
    ],
)
def test_bad_settings_name_the_field(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ColdStartConfig(**{field: value})


# ------------------------------------------------------------------ in the model
@pytest.fixture(scope="module")
def calibrated(genre_split):
    """Fitted on a cold-item split: the validation rows are all items without training rows."""
    data, _ = genre_split
    split = cold_item_split(data.interactions, test_frac=0.2, valid_frac=0.2, random_state=0)
    return make_model(optim={"epochs": 8, "batch_size": 8, "lr": 1e-2}).fit(
        data.with_interactions(split.train), valid=split
    )


def test_fit_with_valid_calibrates_and_scores_in_one_inner_product(calibrated, genre_split) -> None:
    model = calibrated
    assert model.cold_state_ is not None and model.cold_state_.calibrated
    assert len(model.cold_calibration_) > 1
    width = model.dim + model.net_.item_tower.content().shape[1] + model.net_.item_tower.text.shape[1]
    assert model.item_vectors().shape == (model.n_items, width)
    users = np.arange(4)
    np.testing.assert_allclose(
        model.score_all(users), model.user_vectors(users) @ model.item_vectors().T, rtol=1e-5, atol=1e-6
    )


def test_cold_items_of_the_users_genre_rank_first_among_new_items(genre_split) -> None:
    data, split = genre_split
    model = make_model(cold_start={"item_weight": 4.0, "calibrate": False}).fit(data.with_interactions(split.train))
    scores = model.score_all(np.arange(8))[:, COLD]  # (8 users, 4 cold items, one per genre)
    assert (np.argmax(scores, axis=1) == [genre_of_user(u) for u in range(8)]).all()
    # without validation rows the config's weights are used, marked as not calibrated
    assert model.cold_state_ == ColdState(4.0, 0.0, 1.0, False)


def test_save_load_keeps_the_calibrated_state_and_the_scores(calibrated, tmp_path) -> None:
    calibrated.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.cold_state_ == calibrated.cold_state_
    np.testing.assert_allclose(loaded.item_vectors(), calibrated.item_vectors(), atol=1e-6)
    np.testing.assert_allclose(loaded.score_all(np.arange(5)), calibrated.score_all(np.arange(5)), atol=1e-5)


def test_an_added_item_scores_as_the_text_path_says(calibrated, tmp_path) -> None:
    calibrated.save(tmp_path / "m")
    model = load_model(tmp_path / "m")
    text = f"{GENRES[1]} film"
    expected = model.encode_items([text])[0]
    idx = model.add_items(["brand-new"], [text])
    np.testing.assert_allclose(model.item_vectors()[idx[0]], expected, atol=1e-6)
    # warm items' vectors do not move when a new item arrives
    np.testing.assert_allclose(model.item_vectors()[:N_WARM], calibrated.item_vectors()[:N_WARM], atol=1e-6)


def test_without_validation_rows_the_paths_stay_off_and_without_a_gain_users_rank_as_learned(genre_split) -> None:
    data, split = genre_split
    train = data.with_interactions(split.train)
    assert make_model(optim={"epochs": 2}).fit(train).cold_state_ is None
    # leave-one-out validation rows are warm items here: no candidate beats the learned vectors alone,
    # so the weights are 0 and users rank items as the learned vectors alone do
    model = make_model(optim={"epochs": 2}).fit(train, valid=split)
    assert model.cold_state_ == ColdState(0.0, 0.0, 0.0, True)
    assert model.cold_calibration_[0]["item_weight"] == 0.0
    scores = model.score_all(np.arange(6))
    learned = model.user_vectors(np.arange(6))[:, : model.dim] @ model.learned_item_vectors_.T
    np.testing.assert_array_equal(np.argsort(-scores, axis=1)[:, :5], np.argsort(-learned, axis=1)[:, :5])


def test_the_component_off_leaves_the_learned_vectors(genre_split) -> None:
    data, _ = genre_split
    split = leave_one_out(data.interactions)
    model = make_model(optim={"epochs": 2}, cold_start={"enabled": False}).fit(data.with_interactions(split.train))
    assert model.item_vectors().shape == (model.n_items, model.dim)
    assert model.get_params()["cold_start"]["enabled"] is False
    assert "cold_start" not in make_model().get_params()  # defaults are left out of the params
