"""Fixtures of the service tests (the helpers live in serve_helpers.py)."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import (
    DIM,
    TinyVectorModel,
    free_port,
    make_settings,
    save_bundle,
    tiny_model_registered,
)

from lmrec.encoders.fake import HashingEncoder
from lmrec.models.popularity import Popularity
from lmrec.serve.app import create_app


@pytest.fixture
def pop_dir(tmp_path: Path) -> Path:
    return save_bundle(Popularity(), tmp_path / "pop")


@pytest.fixture
def vec_dir(tmp_path: Path) -> Iterator[Path]:
    with tiny_model_registered():
        yield save_bundle(TinyVectorModel(), tmp_path / "vec")


@pytest.fixture
def pop_client(pop_dir: Path) -> Iterator[TestClient]:
    app = create_app(make_settings(pop_dir), encoder=HashingEncoder(DIM))
    with TestClient(app) as client:
        yield client


@pytest.fixture
def vec_client(vec_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(vec_dir))) as client:
        yield client


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway Redis server (Debian's redis-server), or a skip saying why there is none."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (apt-get install -y redis-server)")
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.exceptions.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.skip(f"redis-server did not start on port {port}")
            time.sleep(0.05)
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        client.close()
        proc.terminate()
        proc.wait(10)
