"""The frozen content channel of LMRecommender (``content_weight``): maths, scoring, persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_model
from lm_helpers import COLD, N_ITEMS, N_USERS, genre_of_user

from lmrec.models import load_model
from lmrec.models.lm.training import user_content, with_content

USERS = np.arange(N_USERS)


def test_user_content_is_the_unit_mean_of_the_items_read_so_far() -> None:
    content = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    tokens = torch.tensor([[-1, 0, 1, 2], [-1, 2, -2, -2]])  # BOS first, right-padded
    out = user_content(content, tokens)
    assert out.shape == (2, 4, 2)
    np.testing.assert_allclose(out[0, 0], [0.0, 0.0])  # BOS only: nothing read yet
    np.testing.assert_allclose(out[0, 1], [1.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(out[0, 2], [2**-0.5, 2**-0.5], atol=1e-6)
    mean = np.array([1.6, 1.8]) / 3
    np.testing.assert_allclose(out[0, 3], mean / np.linalg.norm(mean), atol=1e-6)
    np.testing.assert_allclose(out[1, 1:], [[0.6, 0.8]] * 3, atol=1e-6)  # padding adds nothing
    np.testing.assert_allclose(user_content(content, tokens, last=True), out[:, -1], atol=1e-6)


def test_with_content_inner_products_add_the_weighted_channel() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 4, generator=g), torch.randn(5, 4, generator=g)
    ca, cb = torch.randn(3, 6, generator=g), torch.randn(5, 6, generator=g)
    got = with_content(a, ca, 2.5) @ with_content(b, cb, 2.5).T
    np.testing.assert_allclose(got, a @ b.T + 2.5 * ca @ cb.T, rtol=1e-5, atol=1e-5)
    assert with_content(a, ca, 0.0) is a and with_content(a, None, 1.0) is a


@pytest.fixture(scope="module")
def content_model(genre_split):
    data, split = genre_split
    return make_model(content_weight=2.0, epochs=20).fit(data.with_interactions(split.train))


def test_scores_are_learned_plus_weighted_content_similarity(content_model) -> None:
    model, beta = content_model, 2.0
    d = model.dim
    items, users = model.item_vectors(), model.user_vectors(USERS)
    assert items.shape == (N_ITEMS, d + 32) and users.shape == (N_USERS, d + 32)  # hashing encoder: 32 dims
    # the content part is the frozen text vector (no whitening here) and the mean of the history's
    text = model.net_.item_tower.text.numpy()
    c_items = text / np.linalg.norm(text, axis=1, keepdims=True)
    np.testing.assert_allclose(items[:, d:], np.sqrt(beta) * c_items, atol=1e-5)
    for u in (0, 5):
        hist = model.hist_items_[u][-(model.user_tower.max_len - 1) :]  # BOS takes one of max_len slots
        mean = c_items[hist].mean(axis=0)
        np.testing.assert_allclose(users[u, d:], np.sqrt(beta) * mean / np.linalg.norm(mean), atol=1e-5)
    learned = users[:, :d] @ items[:, :d].T
    np.testing.assert_allclose(model.score_all(USERS), learned + users[:, d:] @ items[:, d:].T, rtol=1e-5, atol=1e-5)
    # learned parts are unit vectors (cosine), so a score is cos_learned + beta * cos_content
    np.testing.assert_allclose(np.linalg.norm(items[:, :d], axis=1), 1.0, rtol=1e-5)


def test_cold_items_new_items_queries_and_empty_users_share_the_layout(content_model, tmp_path) -> None:
    model = content_model
    d = model.dim
    cold = model.score_all(USERS)[:, COLD]
    np.testing.assert_array_equal(cold.argmax(axis=1), [genre_of_user(u) for u in USERS])
    text = model.item_text({"title": "horror film", "genre": "horror"})
    np.testing.assert_allclose(model.encode_items([text])[0], model.item_vectors()[COLD[3]], atol=1e-5)
    assert model.encode_queries(["horror"]).shape == (1, d + 32)
    empty = model.encode_users([[]])[0]
    np.testing.assert_allclose(empty[d:], 0.0)  # no history: no content direction
    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.item_tower.content_weight == 2.0
    np.testing.assert_allclose(loaded.score_all(USERS), model.score_all(USERS), rtol=1e-5, atol=1e-6)


def test_content_channel_changes_training_and_needs_text(genre_split) -> None:
    data, split = genre_split
    train = data.with_interactions(split.train)
    plain = make_model(epochs=3, cold_start={"enabled": False}).fit(train)  # learned width only
    content = make_model(epochs=3, content_weight=1.0).fit(train)
    # the channel enters the loss, so the learned part differs from a model trained without it
    assert not np.allclose(plain.item_vectors(), content.item_vectors()[:, : plain.dim])
    with pytest.raises(
        ValueError,
        match=r"ItemTowerConfig.content_weight > 0 needs item text, but repr is 'id' \(choose repr 'hybrid' or 'text'\)",
    ):
        make_model(item_repr="id", content_weight=1.0).fit(train)
    with pytest.raises(ValueError, match=r"^ItemTowerConfig.content_weight must be a number >= 0, got -1.0$"):
        make_model(content_weight=-1.0).fit(train)
