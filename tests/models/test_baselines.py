"""Known-answer tests for the classic baselines beyond the shared contract."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from lmrec.data import Dataset, IdMap, Interactions, ItemCatalog
from lmrec.models import EASE, ItemKNN, MatrixFactorization, TfidfRecommender, load_model
from lmrec.models.itemknn import cosine_topk


def _inter(pairs: list[tuple[int, int]], n_users: int, n_items: int) -> Interactions:
    frame = pd.DataFrame(
        [(f"u{u}", f"i{i}", float(t)) for t, (u, i) in enumerate(pairs)], columns=["user_id", "item_id", "timestamp"]
    )
    return Interactions.from_frame(
        frame, user_map=IdMap(f"u{u}" for u in range(n_users)), item_map=IdMap(f"i{i}" for i in range(n_items))
    )


# three users, three items: u0 {0, 1}, u1 {0, 2}, u2 {1, 2}
TRIANGLE = _inter([(0, 0), (0, 1), (1, 0), (1, 2), (2, 1), (2, 2)], 3, 3)


def test_cosine_topk_hand_computed() -> None:
    # four users; item columns x0 = (1,1,1,0), x1 = (1,1,0,0), x2 = (0,0,1,1)
    x = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 0, 1]], dtype=np.float32))
    sim = cosine_topk(x, k=2).toarray()
    # cos(0,1) = 2 / (sqrt3 * sqrt2) = 0.8165; cos(0,2) = 1 / (sqrt3 * sqrt2) = 0.4082; cos(1,2) = 0
    expected = np.array([[0, 2 / np.sqrt(6), 1 / np.sqrt(6)], [2 / np.sqrt(6), 0, 0], [1 / np.sqrt(6), 0, 0]])
    np.testing.assert_allclose(sim, expected, atol=1e-6)
    # k=1 keeps only each item's best neighbour; shrink=1 divides by sqrt6 + 1 instead of sqrt6
    np.testing.assert_allclose(cosine_topk(x, k=1).toarray()[0], [0, 2 / np.sqrt(6), 0], atol=1e-6)
    np.testing.assert_allclose(cosine_topk(x, k=2, shrink=1.0).toarray()[0, 1], 2 / (np.sqrt(6) + 1), atol=1e-6)


def test_cosine_topk_blocks_give_the_same_answer() -> None:
    x = sp.random(60, 40, density=0.2, random_state=1, format="csr", dtype=np.float32)
    x.data[:] = 1.0
    whole = cosine_topk(x, k=7).toarray()
    tiny_blocks = cosine_topk(x, k=7, block_bytes=4 * 40 * 3).toarray()  # three items per block
    np.testing.assert_allclose(whole, tiny_blocks, atol=1e-7)
    assert ((whole > 0).sum(axis=1) <= 7).all()


def test_itemknn_scores_sum_neighbour_similarities() -> None:
    model = ItemKNN(k=2).fit(TRIANGLE)
    # every pair of items co-occurs once, each item has 2 users: cos = 1 / (sqrt2 * sqrt2) = 0.5
    # u0 has {0, 1}: score(u0, 2) = sim(2, 0) + sim(2, 1) = 1.0; score(u0, 0) = sim(0, 1) = 0.5
    np.testing.assert_allclose(model.score_all(np.array([0]))[0], [0.5, 0.5, 1.0], atol=1e-6)


def test_ease_hand_computed() -> None:
    # X^T X = [[2,1,1],[1,2,1],[1,1,2]]; + 1 I = 2 I + J (J all ones). Its inverse is
    # (1/2)(I - J/5) = 0.5 I - 0.1 J: diagonal 0.4, off-diagonal -0.1, so B_ij = 0.1 / 0.4 = 0.25
    model = EASE(reg_weight=1.0).fit(TRIANGLE)
    expected = np.full((3, 3), 0.25, np.float32)
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weights_, expected, atol=1e-6)
    # u0 has items {0, 1}: scores = [0.25, 0.25, 0.5]
    np.testing.assert_allclose(model.score_all(np.array([0]))[0], [0.25, 0.25, 0.5], atol=1e-6)


def test_ease_refuses_a_catalogue_too_large_for_dense() -> None:
    with pytest.raises(ValueError, match=r"EASE needs a dense 3 x 3 matrix .* but max_items is 2"):
        EASE(max_items=2).fit(TRIANGLE)


def test_history_models_read_observed_interactions() -> None:
    # u0 starts with only item 0; after observing item 1 its score for item 2 rises
    inter = _inter([(0, 0), (1, 0), (1, 2), (2, 1), (2, 2)], 3, 3)
    for model in (ItemKNN(k=2).fit(inter), EASE(reg_weight=1.0).fit(inter)):
        before = model.score_all(np.array([0]))[0, 2]
        model.observe(_inter([(0, 1)], 3, 3))
        assert model.score_all(np.array([0]))[0, 2] > before
        assert model.recommend(0, k=3)[0][0].tolist() == [2, -1, -1]


@pytest.mark.parametrize("algorithm", ["als", "bpr"])
def test_mf_scores_are_factor_products(algorithm: str) -> None:
    model = MatrixFactorization(algorithm, factors=4, iterations=5, num_threads=1).fit(TRIANGLE)
    users = np.arange(3)
    np.testing.assert_allclose(model.score_all(users), model.user_vectors(users) @ model.item_vectors().T, rtol=1e-6)
    # implicit's BPR keeps an item bias as an extra column (users hold 1 there)
    assert model.item_vectors().shape == (3, 4 if algorithm == "als" else 5)


def test_mf_does_not_warn_about_blas_threads(recwarn: pytest.WarningsRecorder) -> None:
    MatrixFactorization("als", factors=4, iterations=2).fit(TRIANGLE)
    assert not [w for w in recwarn if "threads" in str(w.message)]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"regularization": -1.0}, r"regularization must be >= 0, got -1.0"),
        ({"alpha": 0.0}, r"alpha must be > 0, got 0.0"),
        ({"learning_rate": 0.0}, r"learning_rate must be > 0, got 0.0"),
        ({"iterations": 2.5}, r"iterations must be an integer >= 1, got 2.5"),
    ],
)
def test_mf_bad_parameters(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MatrixFactorization(**params).fit(TRIANGLE)


# ---------------------------------------------------------------------------------------- TF-IDF
def _text_dataset(texts: list[str], pairs: list[tuple[int, int]], n_users: int) -> Dataset:
    n_items = len(texts)
    frame = pd.DataFrame({"title": texts}, index=[f"i{i}" for i in range(n_items)])
    catalog = ItemCatalog(frame, text_fields=["title"])
    return Dataset(_inter(pairs, n_users, n_items), catalog, name="texts")


def test_tfidf_scores_cold_items_by_text() -> None:
    texts = ["red running shoe", "red trail shoe", "blue cotton hat", "red walking shoe"]
    # item 3 never occurs in training: it is a cold item known only by its text
    data = _text_dataset(texts, [(0, 0), (0, 1), (1, 2)], n_users=2)
    model = TfidfRecommender().fit(data)
    assert data.interactions.item_counts()[3] == 0
    items, scores = model.recommend(np.array([0, 1]), k=2)
    assert items[0, 0] == 3 and scores[0, 0] > 0  # the shoe fan gets the new shoe
    assert model.score_all(np.array([1]))[0, 3] == 0.0  # the hat fan shares no word with it


def test_tfidf_hand_computed_cosine() -> None:
    # two items, no shared words: each word has df 1, idf = ln(3/2) + 1 for both; u0 has item 0
    data = _text_dataset(["apple", "pear"], [(0, 0)], n_users=1)
    model = TfidfRecommender().fit(data)
    np.testing.assert_allclose(model.score_all(np.array([0]))[0], [1.0, 0.0], atol=1e-6)


def test_tfidf_chinese_with_character_ngrams() -> None:
    texts = ["红色跑鞋", "红色运动鞋", "蓝色棉帽"]  # red running shoe, red sports shoe, blue cotton hat
    data = _text_dataset(texts, [(0, 0)], n_users=1)
    words = TfidfRecommender().fit(data)  # jieba: 红色|跑鞋, 红色|运动|运动鞋, 蓝色|棉帽
    assert words.vocabulary_.tolist() == ["棉帽", "红色", "蓝色", "跑鞋", "运动", "运动鞋"]
    scores = words.score_all(np.array([0]))[0]
    assert scores[1] > 0 and scores[2] == 0.0  # 红色 (red) is shared with item 1, no word with item 2
    chars = TfidfRecommender(analyzer="char").fit(data)
    scores = chars.score_all(np.array([0]))[0]
    assert scores[1] > scores[2] > 0  # 红色 and 鞋 are shared with item 1; only 色 with item 2


def test_tfidf_ranks_a_shared_chinese_word_above_shared_characters() -> None:
    # query 太空冒险 (space adventure) = 太空|冒险. Item 0 太空漫游 (space odyssey) = 太空|漫游 shares the
    # word 太空; item 1 太阳与天空 (the sun and the sky) = 太阳|与|天空 holds the characters 太 and 空 but
    # no word of the query; item 2 浪漫喜剧 (romantic comedy) shares nothing.
    data = _text_dataset(["太空漫游", "太阳与天空", "浪漫喜剧"], [(0, 0)], n_users=1)
    words = TfidfRecommender().fit(data)
    sims = (words.transform_texts(["太空冒险"]) @ words.item_matrix_.T).toarray()[0]
    # the query's only known term is 太空 (idf ln(4/2)+1 = 1.693); item 0 = (太空, 漫游), equal weights:
    # cos = 1 * (1 / sqrt(2)) = 0.7071
    np.testing.assert_allclose(sims, [2**-0.5, 0.0, 0.0], atol=1e-6)
    chars = TfidfRecommender(analyzer="char").fit(data)  # characters alone also match item 1
    char_sims = (chars.transform_texts(["太空冒险"]) @ chars.item_matrix_.T).toarray()[0]
    assert char_sims[1] > 0


def test_tfidf_english_vocabulary_and_vectors_are_unchanged_on_movielens() -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from lmrec.data.loaders import available, load
    from lmrec.data.loaders.bundled import bundled_files

    if "ml-100k" not in available() or bundled_files("ml-100k") is None:
        pytest.skip("the bundled MovieLens 100K parquet files are not installed")
    data = load("ml-100k")
    model = TfidfRecommender().fit(data)
    assert data.items is not None
    texts = data.items.texts(model.item_map_)
    old = TfidfVectorizer(sublinear_tf=True)  # the former word analyzer: scikit-learn's token pattern
    old_matrix = old.fit_transform(texts)
    assert model.vocabulary_.tolist() == old.get_feature_names_out().tolist()
    np.testing.assert_array_equal(model.idf_, old.idf_)
    old_rows = sp.csr_matrix(old_matrix / sp.linalg.norm(old_matrix, axis=1)[:, None], dtype=np.float32)
    np.testing.assert_allclose(model.item_matrix_.toarray(), old_rows.toarray(), rtol=1e-6, atol=1e-7)


def test_tfidf_without_catalogue_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"needs item text but dataset 'dataset' has no item catalogue"):
        TfidfRecommender().fit(TRIANGLE)


def test_tfidf_transform_texts_and_round_trip(tmp_path) -> None:
    data = _text_dataset(["red running shoe", "blue cotton hat"], [(0, 0)], n_users=1)
    model = TfidfRecommender(ngram_range=(1, 2)).fit(data)
    query = model.transform_texts(["red shoe"])
    sims = (query @ model.item_matrix_.T).toarray()[0]
    assert sims[0] > 0 and sims[1] == 0
    loaded = load_model(model.save(tmp_path / "tfidf"))
    np.testing.assert_array_equal(loaded.transform_texts(["red shoe"]).toarray(), query.toarray())
