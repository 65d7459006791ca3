"""Catalogue encoding on a real local Ray cluster (`lmrec.encoders.ray_encode`): the same vectors in
the same order as a local encode, the embedding cache honoured, and a dead address failing fast."""

from __future__ import annotations

import re
import socket
import time

import numpy as np
import pytest

from lmrec.encoders import CachedEncoder, make_text_encoder
from lmrec.encoders.ray_encode import RayEncoder, connect_ray, probe_address

TEXTS = [f"item {i} " + "word " * (i % 7) for i in range(300)] + ["", "item 0 "]  # an empty text and a repeat


@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (the lmrec[ray] extra)")
    try:
        connect_ray("local", num_cpus=2)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"a local Ray cluster cannot start here: {exc}")
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_two_actors_give_the_local_vectors_in_the_local_order(ray_cluster) -> None:
    local = make_text_encoder("hashing-32", "fake")
    remote = RayEncoder("hashing-32", "fake", workers=2, batch_size=40)
    assert (remote.name, remote.dim) == (local.name, local.dim)
    vectors = remote.encode(TEXTS)
    np.testing.assert_array_equal(vectors, local.encode(TEXTS))
    assert remote.encode([]).shape == (0, 32)


@pytest.mark.slow
def test_only_texts_the_cache_lacks_go_to_the_cluster(ray_cluster, tmp_path) -> None:
    local = make_text_encoder("hashing-32", "fake")
    CachedEncoder(local, tmp_path).encode(TEXTS[:100])  # 100 distinct texts cached
    cached = CachedEncoder(RayEncoder("hashing-32", "fake", workers=2, batch_size=40), tmp_path)
    vectors = cached.encode(TEXTS, batch_size=10**9)
    # 302 texts, 301 distinct ("item 3 " repeats); 100 were cached, 201 encoded on the cluster
    assert (cached.last_stats.hits, cached.last_stats.misses) == (100, 201)
    np.testing.assert_array_equal(vectors, local.encode(TEXTS))
    again = CachedEncoder(RayEncoder("hashing-32", "fake", workers=1), tmp_path)
    again.encode(TEXTS, batch_size=10**9)
    assert again.last_stats.misses == 0


def test_an_address_that_refuses_fails_at_once() -> None:
    started = time.monotonic()
    with pytest.raises(ValueError, match=re.escape("Ray cluster at '127.0.0.1:1' does not answer")):
        connect_ray("127.0.0.1:1") if not _ray_running() else probe_address("127.0.0.1:1")
    assert time.monotonic() - started < 30


@pytest.fixture()
def silent_port():
    """A TCP port that accepts connections and never says a word (not a Ray cluster)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    yield server.getsockname()[1]
    server.close()


@pytest.mark.slow
def test_a_port_that_accepts_but_is_no_ray_cluster_fails_within_the_timeout(silent_port: int) -> None:
    # ray.init itself waits for minutes here; the probe gives up at its deadline
    started = time.monotonic()
    with pytest.raises(ValueError, match=r"the port accepts connections but no Ray cluster replied"):
        probe_address(f"127.0.0.1:{silent_port}", timeout_s=6.0)
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("bad", ["nohost", "host:port", "ray://:10001"])
def test_a_malformed_address_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"Ray address {bad!r} must be 'auto', 'local', HOST:PORT")):
        probe_address(bad)


def _ray_running() -> bool:
    try:
        import ray
    except ImportError:
        return False
    return bool(ray.is_initialized())
