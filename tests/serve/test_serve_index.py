from __future__ import annotations

import numpy as np
import pytest

from lmrec.serve.index import VectorIndex, resolve_kind


def brute(vectors: np.ndarray, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> np.ndarray:
    scores = vectors @ query
    if allowed is not None:
        scores = np.where(allowed, scores, -np.inf)
    return np.argsort(-scores, kind="stable")[:k]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((2000, 16)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    queries = rng.standard_normal((20, 16)).astype(np.float32)
    return vectors, queries


@pytest.mark.parametrize("kind", ["flat", "numpy"])
def test_exact_kinds_equal_brute_force(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = data
    index = VectorIndex(16, kind)
    index.add(vectors)
    for q in queries:
        rows, scores = index.search(q, 10)
        np.testing.assert_array_equal(rows, brute(vectors, q, 10))
        np.testing.assert_allclose(scores, vectors[rows] @ q, rtol=1e-5)


@pytest.mark.parametrize("kind", ["hnsw", "ivf"])
def test_approximate_kinds_recall_most_of_the_exact_top10(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = data
    index = VectorIndex(16, kind, ef_search=64, nprobe=24)  # 24 of 51 IVF cells
    index.add(vectors)
    hits = sum(len(set(index.search(q, 10)[0]) & set(brute(vectors, q, 10))) for q in queries)
    assert hits / (10 * len(queries)) >= 0.9


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivf", "numpy"])
def test_allowed_mask_is_respected_and_small_masks_stay_exact(kind: str, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = data
    index = VectorIndex(16, kind, exact_fraction=0.05)
    index.add(vectors)
    allowed = np.zeros(len(vectors), bool)
    allowed[::3] = True  # a third of the rows: FAISS selector path
    rows, _ = index.search(queries[0], 10, allowed)
    assert allowed[rows].all() and len(rows) == 10
    few = np.zeros(len(vectors), bool)
    few[[5, 50, 500]] = True  # 3 rows: exact subset path for approximate kinds
    rows, scores = index.search(queries[1], 10, few)
    np.testing.assert_array_equal(rows, brute(vectors, queries[1], 3, few))
    assert len(scores) == 3
    empty, _ = index.search(queries[1], 10, np.zeros(len(vectors), bool))
    assert len(empty) == 0


@pytest.mark.parametrize("kind", ["flat", "hnsw"])
def test_rows_added_later_are_searchable_and_rows_outside_an_old_mask_are_not(kind: str) -> None:
    index = VectorIndex(2, kind)
    assert index.add(np.array([[1.0, 0.0], [0.0, 1.0]])).tolist() == [0, 1]
    assert index.add(np.array([[0.6, 0.8]])).tolist() == [2]
    rows, scores = index.search(np.array([0.6, 0.8]), 1)
    assert rows.tolist() == [2] and scores[0] == pytest.approx(1.0)
    rows, _ = index.search(np.array([0.6, 0.8]), 3, allowed=np.array([True, True]))  # mask older than row 2
    assert rows.tolist() == [1, 0]


def test_save_load_round_trip(tmp_path, data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = data
    index = VectorIndex(16, "hnsw")
    index.add(vectors)
    index.save(tmp_path / "i.faiss")
    again = VectorIndex.load(tmp_path / "i.faiss", "hnsw")
    np.testing.assert_array_equal(again.vectors, vectors)
    for q in queries[:5]:
        np.testing.assert_array_equal(again.search(q, 10)[0], index.search(q, 10)[0])


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="index kind 'annoy'"):
        VectorIndex(4, "annoy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="vectors have width 3, the index has 4"):
        VectorIndex(4).add(np.zeros((1, 3)))
    assert resolve_kind("auto", 10, 10) == "flat" and resolve_kind("auto", 11, 10) == "hnsw"
    assert resolve_kind("ivf", 5, 10) == "ivf"


def test_exact_top_breaks_ties_towards_the_lower_row_at_the_cut() -> None:
    # 200 equal scores: argpartition alone would return an arbitrary 3 of them
    index = VectorIndex(1, "numpy")
    index.add(np.ones((200, 1)))
    rows, _ = index.search(np.ones(1), 3)
    assert rows.tolist() == [0, 1, 2]
    index.add(np.full((1, 1), 2.0))
    assert index.search(np.ones(1), 3)[0].tolist() == [200, 0, 1]
