from __future__ import annotations

import threading

import numpy as np
import pytest

from lmrec.serve.index import VectorIndex, choose_kind, index_bytes, resolve_kind


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
    assert resolve_kind("auto", 10, 10) == "flat" and resolve_kind("auto", 11, 10) == "ivf"
    assert resolve_kind("ivf", 5, 10) == "ivf"


def test_exact_top_breaks_ties_towards_the_lower_row_at_the_cut() -> None:
    # 200 equal scores: argpartition alone would return an arbitrary 3 of them
    index = VectorIndex(1, "numpy")
    index.add(np.ones((200, 1)))
    rows, _ = index.search(np.ones(1), 3)
    assert rows.tolist() == [0, 1, 2]
    index.add(np.full((1, 1), 2.0))
    assert index.search(np.ones(1), 3)[0].tolist() == [200, 0, 1]


def _clustered(n: int, dim: int, seed: int) -> np.ndarray:
    """Unit vectors around 50 random centres (embedding-like structure)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((50, dim)).astype(np.float32)
    vectors = centres[rng.integers(50, size=n)] + 0.5 * rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_ivfpq_reranks_exactly_and_takes_upserts_without_a_rebuild() -> None:
    vectors = _clustered(12_000, 16, 1)  # >= 256 * 39 rows: a real PQ (4 code bytes per row)
    index = VectorIndex(16, "ivfpq", nlist=64, nprobe=32, pq_bytes=4, rerank=16)
    index.add(vectors)
    assert index.structure == ("IndexIVFPQ", 12_000)
    queries = _clustered(20, 16, 2)
    hits = 0
    for q in queries:
        rows, scores = index.search(q, 10)
        np.testing.assert_allclose(scores, vectors[rows] @ q, rtol=1e-5)  # re-scored exactly, not PQ scores
        hits += len(set(rows) & set(brute(vectors, q, 10)))
    assert hits / 200 >= 0.9
    new = queries[0] / np.linalg.norm(queries[0])  # an upserted item equal to the query ranks first
    (row,) = index.add(new[None, :])
    assert index.search(queries[0], 1)[0].tolist() == [row] and row == 12_000


def test_choose_kind_by_size_and_memory() -> None:
    # hnsw, M=32, d=64: 4*64 + 8*32*(1 + 1/32) = 256 + 264 = 520 bytes per row -> 1M rows = 496 MiB
    assert index_bytes("hnsw", 1_000_000, 64) == 520_000_000
    # ivf, d=64: 4*64 + an 8-byte id = 264 bytes per row -> 1M rows = 251.8 MiB
    assert index_bytes("ivf", 1_000_000, 64) == 264_000_000
    assert index_bytes("ivfpq", 1_000_000, 64) == (8 + 8) * 1_000_000  # 64 / 8 code bytes + an 8-byte id
    assert choose_kind(20_000, 64, 20_000) == "flat"
    assert choose_kind(1_000_000, 64, 20_000) == "ivf"
    assert choose_kind(1_000_000, 64, 20_000, max_index_mb=252) == "ivf"  # 251.8 MiB fits
    assert choose_kind(1_000_000, 64, 20_000, max_index_mb=251) == "ivfpq"
    assert resolve_kind("auto", 1_000_000, 20_000, dim=64, max_index_mb=200) == "ivfpq"
    assert resolve_kind("ivf", 10, 20_000) == "ivf"
    with pytest.raises(ValueError, match=r"pq_bytes=5 must be a positive divisor of dim=16"):
        VectorIndex(16, "ivfpq", pq_bytes=5)


def test_background_rebuild_serves_the_old_index_until_the_swap(data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = data
    index = VectorIndex(16, "flat")
    index.add(vectors[:1500])
    gate = threading.Event()
    real = index._new_faiss

    def slow_build(first: np.ndarray) -> object:
        gate.wait(5)  # hold the build until the checks below ran against the old index
        return real(first)

    index._new_faiss = slow_build  # type: ignore[method-assign]
    thread = index.rebuild_in_background("hnsw")
    # while it builds: the old exact index answers, and rows added now are searchable
    index.add(vectors[1500:])
    np.testing.assert_array_equal(index.search(queries[0], 10)[0], brute(vectors, queries[0], 10))
    assert index.kind == "flat" and index.rebuilding is thread
    gate.set()
    thread.join(10)
    index._new_faiss = real  # type: ignore[method-assign]
    # swapped: hnsw over all 2000 rows, including the 500 added during the build
    assert index.kind == "hnsw" and index.structure == ("IndexHNSWFlat", 2000) and index.rebuilding is None
    assert index.check() == []
    hits = sum(len(set(index.search(q, 10)[0]) & set(brute(vectors, q, 10))) for q in queries)
    assert hits / 200 >= 0.9


def test_an_exact_index_upgrades_itself_past_its_limit(data: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, _ = data
    index = VectorIndex(16, "flat", auto_upgrade_at=1000)
    index.add(vectors[:1000])
    assert index.rebuilding is None
    index.add(vectors[1000:1001])
    thread = index.rebuilding
    assert thread is not None
    thread.join(10)
    assert index.kind == "ivf" and len(index) == 1001 and index.check() == []


@pytest.fixture(scope="module")
def sphere() -> tuple[np.ndarray, np.ndarray]:
    """Uniform unit vectors in 32 dimensions: no structure, so a narrow HNSW beam misses neighbours."""
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((20_000, 32)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors, rng.standard_normal((100, 32)).astype(np.float32)


def recall(index: VectorIndex, vectors: np.ndarray, queries: np.ndarray) -> float:
    return sum(len(set(index.search(q, 10)[0]) & set(brute(vectors, q, 10))) for q in queries) / (10 * len(queries))


def test_hnsw_raises_ef_search_until_it_reaches_the_target_recall(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = sphere
    plain = VectorIndex(32, "hnsw", hnsw_m=8, ef_construction=16, ef_search=10)
    plain.add(vectors)
    assert plain.ef_search == 10 and plain.tuned is None  # no target: the setting stays
    before = recall(plain, vectors, queries)
    tuned = VectorIndex(32, "hnsw", hnsw_m=8, ef_construction=16, ef_search=10, target_recall=0.95)
    tuned.add(vectors)
    assert tuned.tuned is not None and tuned.tuned["recall_at_10"] >= 0.95
    assert tuned.ef_search == tuned.tuned["ef_search"] and tuned.ef_search in (20, 40, 80, 160, 320, 640)
    assert before < 0.9 <= recall(tuned, vectors, queries)  # other queries than the tuner's agree
    # the doubling stopped at the first width that reached the target: half of it did not
    half = VectorIndex(32, "hnsw", hnsw_m=8, ef_construction=16, ef_search=tuned.ef_search // 2)
    half._vecs, half._n, half._faiss = tuned._vecs, tuned._n, tuned._faiss
    half.tune_search(1.01, max_width=tuned.ef_search // 2)  # measure only
    assert half.tuned is not None and half.tuned["recall_at_10"] < 0.95


def test_an_upgrade_is_tuned_too(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, _ = sphere
    # 5,001 rows -> min(4 * sqrt(5001), 5001 // 39) = 128 IVF cells, of which 2 are searched at first
    index = VectorIndex(32, "flat", auto_upgrade_at=5000, nprobe=2, target_recall=0.9)
    index.add(vectors[:5001])
    thread = index.rebuilding
    assert thread is not None
    thread.join(60)
    assert index.kind == "ivf" and index.tuned is not None and index.tuned["recall_at_10"] >= 0.9
    assert index.nprobe > 2 and index.structure == ("IndexIVFFlat", 5001)
    rebuilt = VectorIndex(32, "flat", hnsw_m=8, ef_construction=16, ef_search=10, target_recall=0.9)
    rebuilt.add(vectors[:5001])
    rebuilt.rebuild_in_background("hnsw").join(60)  # a rebuild into HNSW widens ef_search instead
    assert rebuilt.kind == "hnsw" and rebuilt.tuned is not None and rebuilt.tuned["recall_at_10"] >= 0.9
    assert rebuilt.ef_search > 10


def test_ivf_raises_nprobe_until_it_reaches_the_target_recall(sphere: tuple[np.ndarray, np.ndarray]) -> None:
    vectors, queries = sphere
    # 20,000 rows -> nlist = min(4 * sqrt(20,000), 20,000 // 39) = min(565, 512) = 512 cells; 2 of them miss most
    # of a uniform query's top 10
    plain = VectorIndex(32, "ivf", nprobe=2)
    plain.add(vectors)
    assert plain.nprobe == 2 and plain.tuned is None and plain.structure == ("IndexIVFFlat", 20_000)
    before = recall(plain, vectors, queries)
    tuned = VectorIndex(32, "ivf", nprobe=2, target_recall=0.95)
    tuned.add(vectors)
    assert tuned.tuned is not None and tuned.tuned["recall_at_10"] >= 0.95 and "ef_search" not in tuned.tuned
    assert tuned.nprobe == tuned.tuned["nprobe"] and tuned.nprobe in (4, 8, 16, 32, 64, 128, 256, 512)
    assert before < 0.9 <= recall(tuned, vectors, queries)
    # the doubling stopped at the first width that reached the target: half of it did not
    half = VectorIndex(32, "ivf", nprobe=tuned.nprobe // 2)
    half._vecs, half._n, half._faiss = tuned._vecs, tuned._n, tuned._faiss
    half.tune_search(1.01, max_width=tuned.nprobe // 2)  # measure only
    assert half.tuned is not None and half.tuned["recall_at_10"] < 0.95
    # nprobe never passes the number of cells, whatever the target
    whole = VectorIndex(32, "ivf", nprobe=400)
    whole._vecs, whole._n, whole._faiss = tuned._vecs, tuned._n, tuned._faiss
    assert whole.tune_search(1.01) is not None and whole.nprobe == 512


def test_exact_indexes_are_not_tuned(data: tuple[np.ndarray, np.ndarray]) -> None:
    index = VectorIndex(16, "flat", target_recall=0.95)
    index.add(data[0])
    assert index.tuned is None and index.tune_search(0.95) is None
