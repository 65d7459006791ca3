"""The on-disk embedding cache: only new or changed texts are encoded; interrupted runs resume."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from lmrec.encoders import CachedEncoder, EmbeddingCache, HashingEncoder, TextEncoder
from lmrec.encoders.cache import cache_key


class CountingEncoder:
    """Wraps `HashingEncoder`, recording every text it is asked to encode; can fail on a given call."""

    def __init__(self, seed: int = 0, fail_on_call: int | None = None) -> None:
        self.inner = HashingEncoder(dim=16, seed=seed)
        self.name, self.dim = self.inner.name, self.inner.dim
        self.seen: list[str] = []
        self.calls = 0
        self.fail_on_call = fail_on_call

    def encode(self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False):
        self.calls += 1
        if self.fail_on_call is not None and self.calls == self.fail_on_call:
            raise KeyboardInterrupt("simulated interruption")
        self.seen.extend(texts)
        vecs = self.inner.encode(texts)
        return vecs if kind == "passage" else -vecs  # queries differ, as with prefixed models


TEXTS = [f"item number {i} with words {i % 7}" for i in range(40)]


def test_cached_encoder_is_a_text_encoder_with_the_inner_name(tmp_path):
    inner = CountingEncoder()
    cached = CachedEncoder(inner, tmp_path)
    assert isinstance(cached, TextEncoder)
    assert cached.name == inner.name and cached.dim == 16
    assert (tmp_path / "embeddings.sqlite").exists()


def test_second_encode_hits_everything_and_returns_identical_vectors(tmp_path):
    inner = CountingEncoder()
    cached = CachedEncoder(inner, tmp_path)
    first = cached.encode(TEXTS, batch_size=8)
    assert (cached.last_stats.hits, cached.last_stats.misses) == (0, 40)
    assert sorted(inner.seen) == sorted(TEXTS)
    np.testing.assert_array_equal(first, HashingEncoder(16).encode(TEXTS))
    inner.seen.clear()
    second = cached.encode(TEXTS, batch_size=8)
    assert inner.seen == [] and cached.last_stats.hit_rate == 1.0
    np.testing.assert_array_equal(first, second)


def test_only_changed_texts_are_encoded_again_across_processes(tmp_path):
    CachedEncoder(CountingEncoder(), tmp_path).encode(TEXTS)
    changed = list(TEXTS)
    changed[3], changed[17] = "a new text", "another new text"
    inner = CountingEncoder()
    fresh = CachedEncoder(inner, EmbeddingCache(tmp_path))  # reopened store, as in a new process
    out = fresh.encode(changed)
    assert sorted(inner.seen) == ["a new text", "another new text"]
    assert (fresh.last_stats.hits, fresh.last_stats.misses) == (38, 2)
    np.testing.assert_array_equal(out, HashingEncoder(16).encode(changed))


def test_duplicates_and_empty_texts_are_encoded_once(tmp_path):
    inner = CountingEncoder()
    cached = CachedEncoder(inner, tmp_path)
    out = cached.encode(["a", "b", "a", "", "", "b"])
    assert sorted(inner.seen) == ["", "a", "b"]
    assert (cached.last_stats.hits, cached.last_stats.misses) == (0, 3)
    np.testing.assert_array_equal(out[0], out[2])
    np.testing.assert_array_equal(out[3], out[4])
    assert cached.encode([]).shape == (0, 16)


def test_query_and_passage_vectors_are_cached_apart(tmp_path):
    inner = CountingEncoder()
    cached = CachedEncoder(inner, tmp_path)
    p = cached.encode(["red pen"], kind="passage")
    q = cached.encode(["red pen"], kind="query")
    assert inner.seen == ["red pen", "red pen"]
    np.testing.assert_array_equal(q, -p)
    assert cache_key("m", "t", "query") != cache_key("m", "t", "passage")


def test_encoders_with_different_names_never_share_entries(tmp_path):
    a, b = CountingEncoder(seed=0), CountingEncoder(seed=1)
    va = CachedEncoder(a, tmp_path).encode(TEXTS[:5])
    vb = CachedEncoder(b, tmp_path).encode(TEXTS[:5])
    assert len(a.seen) == len(b.seen) == 5
    assert np.abs(va - vb).max() > 0.1
    assert len(EmbeddingCache(tmp_path)) == 10


def test_interrupted_encode_resumes_without_redoing_finished_batches(tmp_path):
    failing = CountingEncoder(fail_on_call=3)
    with pytest.raises(KeyboardInterrupt):
        CachedEncoder(failing, tmp_path).encode(TEXTS, batch_size=8)
    assert len(failing.seen) == 16  # two batches of 8 finished and were committed
    assert len(EmbeddingCache(tmp_path)) == 16
    resumed_inner = CountingEncoder()
    resumed = CachedEncoder(resumed_inner, tmp_path)
    out = resumed.encode(TEXTS, batch_size=8)
    assert len(resumed_inner.seen) == 24 and not set(resumed_inner.seen) & set(failing.seen)
    assert (resumed.last_stats.hits, resumed.last_stats.misses) == (16, 24)
    np.testing.assert_array_equal(out, HashingEncoder(16).encode(TEXTS))


def test_entries_of_another_width_are_ignored(tmp_path):
    store = EmbeddingCache(tmp_path / "e.sqlite")
    key = cache_key("m", "t")
    store.put_many([key], np.ones((1, 4), np.float32))
    assert store.get_many([key], 4)[key].tolist() == [1, 1, 1, 1]
    assert store.get_many([key], 8) == {}
    with pytest.raises(ValueError, match="put_many got 2 keys for 1 vectors"):
        store.put_many([key, key], np.ones((1, 4), np.float32))
    store.close()


def test_many_keys_are_looked_up_in_chunks(tmp_path):
    store = EmbeddingCache(tmp_path)
    keys = [cache_key("m", str(i)) for i in range(1203)]
    vecs = np.arange(1203 * 2, dtype=np.float32).reshape(1203, 2)
    store.put_many(keys, vecs)
    found = store.get_many(keys, 2)
    assert len(found) == 1203
    np.testing.assert_array_equal(found[keys[1202]], [2404.0, 2405.0])
