"""The loaded service is kept out of the garbage collector's full walks, and nothing leaks for it."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings

from lmrec.encoders.fake import HashingEncoder
from lmrec.serve import heap
from lmrec.serve.app import create_app


class Node:
    """A reference cycle's member (reference counting alone never frees a cycle)."""

    def __init__(self) -> None:
        self.me = self


@pytest.fixture(autouse=True)
def thawed() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()


def test_frozen_cycles_wait_for_settle_and_settle_collects_them() -> None:
    node = Node()
    alive = weakref.ref(node)
    assert heap.freeze() >= 1 and gc.get_freeze_count() >= 1
    del node
    gc.collect()
    assert alive() is not None  # frozen: the full walk skips it
    heap.settle()
    assert alive() is None  # thawed, collected, and the survivors frozen again
    assert gc.get_freeze_count() >= 1
    heap.thaw()
    assert gc.get_freeze_count() == 0


def test_the_service_is_frozen_while_it_serves_and_thawed_after(pop_dir: Path) -> None:
    with TestClient(create_app(make_settings(pop_dir), encoder=HashingEncoder(DIM))) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 1000  # the model, the stores, FastAPI's routes ...
    assert gc.get_freeze_count() == 0


def test_a_swapped_out_service_is_collected_at_the_swap(tmp_path: Path, pop_dir: Path) -> None:
    from serve_helpers import save_bundle

    from lmrec.models.popularity import Popularity

    other = save_bundle(Popularity(), tmp_path / "b")
    settings = make_settings(pop_dir, state_dir=tmp_path / "state")
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        old = weakref.ref(client.app.state.host.service)  # type: ignore[attr-defined]
        assert old() is not None
        assert client.post("/admin/model", json={"path": str(other)}).status_code == 200
        assert client.app.state.host.service is not old()  # type: ignore[attr-defined]
        assert old() is None  # its reference cycles were thawed and collected by the swap's settle
        assert gc.get_freeze_count() > 1000  # and the new model is frozen
