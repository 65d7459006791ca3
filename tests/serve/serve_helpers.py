"""Shared pieces of the service tests: a tiny product catalogue, a Popularity bundle, a tiny vector model."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmrec.data.catalog import ItemCatalog
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.base import MODEL_REGISTRY, Recommender
from lmrec.models.bundle import ModelBundle
from lmrec.serve.settings import ServeSettings

DIM = 32

# 12 items in 3 categories; texts share words within a category so the hashing encoder groups them
ITEMS = [
    ("s1", "red running shoes", "shoes", "acme", 60.0),
    ("s2", "blue running shoes", "shoes", "zoom", 80.0),
    ("s3", "trail running shoes waterproof", "shoes", "acme", 120.0),
    ("s4", "leather dress shoes", "shoes", "oxford", 150.0),
    ("t1", "cotton shirt white", "shirts", "acme", 20.0),
    ("t2", "linen shirt blue", "shirts", "zoom", 35.0),
    ("t3", "flannel shirt checked", "shirts", "oxford", 40.0),
    ("t4", "silk shirt black", "shirts", "oxford", None),
    ("b1", "mystery novel paperback book", "books", "penguin", 9.0),
    ("b2", "cookbook book italian recipes", "books", "penguin", 25.0),
    ("b3", "science fiction novel book", "books", "orbit", 12.0),
    ("b4", "history book of rome", "books", "orbit", 30.0),
]

# (user, item): popularity = s1:4, t1:3, s2:2, b1:2, t2:1, s3:1 (others 0)
HISTORY = [
    ("u1", "s1"),
    ("u1", "t1"),
    ("u2", "s1"),
    ("u2", "s2"),
    ("u2", "t1"),
    ("u3", "s1"),
    ("u3", "b1"),
    ("u4", "s1"),
    ("u4", "t1"),
    ("u4", "t2"),
    ("u5", "s2"),
    ("u5", "b1"),
    ("u5", "s3"),
]
POPULARITY_ORDER = ["s1", "t1", "s2", "b1", "s3", "t2"]  # counts 4, 3, 2, 2, 1, 1; ties by row order


def catalog() -> ItemCatalog:
    frame = pd.DataFrame(ITEMS, columns=["item_id", "title", "category", "brand", "price"]).set_index("item_id")
    return ItemCatalog(frame, text_fields=["title"], categorical=["category", "brand"], numeric=["price"])


def dataset() -> Dataset:
    frame = pd.DataFrame(HISTORY, columns=["user_id", "item_id"])
    frame["timestamp"] = np.arange(len(frame), dtype=float)
    item_map = IdMap([item[0] for item in ITEMS])  # every catalogue item is a model item, in ITEMS order
    return Dataset(Interactions.from_frame(frame, item_map=item_map), items=catalog(), name="tiny-shop")


class TinyVectorModel(Recommender):
    """A `VectorRecommender` for tests: items are their hashing-encoded titles, a user the mean of their items.

    It is put in ``MODEL_REGISTRY`` only while a test needs it (`tiny_model_registered`), so the
    contract test's "every registered model has a spec" check never sees it.
    """

    model_name = "tiny_vector_test"

    def __init__(self, dim: int = DIM) -> None:
        self.dim = dim

    def _fit(self, dataset: Dataset) -> None:
        texts = dataset.items.texts(dataset.interactions.item_map)
        self.item_vectors_ = HashingEncoder(self.dim).encode(texts)

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        return self.user_vectors(user_idx) @ self.item_vectors_.T

    def item_vectors(self) -> np.ndarray:
        return self.item_vectors_

    def user_vectors(self, user_idx: np.ndarray) -> np.ndarray:
        seen = self.seen_[np.atleast_1d(user_idx)]
        vecs = np.asarray(seen @ self.item_vectors_, dtype=np.float32)
        return vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        return HashingEncoder(self.dim).encode(texts, kind="query")

    def encode_items(self, texts: list[str]) -> np.ndarray:
        return HashingEncoder(self.dim).encode(texts)

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"item_vectors": self.item_vectors_}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
        self.item_vectors_ = arrays["item_vectors"]


def save_bundle(model: Recommender, directory: Path) -> Path:
    data = dataset()
    model.fit(data)
    return ModelBundle(model, catalog(), None, {"dataset": data.name}).save(directory)


def make_settings(model_dir: Path, **overrides: Any) -> ServeSettings:
    values: dict[str, Any] = {"model_dir": model_dir, "items_sync_interval_s": 0.0}
    values.update(overrides)
    return ServeSettings(**values)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def tiny_model_registered() -> Iterator[None]:
    """Make `TinyVectorModel` loadable by ``load_model`` for the duration of the block."""
    MODEL_REGISTRY[TinyVectorModel.model_name] = TinyVectorModel
    try:
        yield
    finally:
        MODEL_REGISTRY.pop(TinyVectorModel.model_name, None)


@contextmanager
def serve_in_thread(app: Any) -> Iterator[str]:
    """A real uvicorn server for ``app`` on 127.0.0.1 in a thread of this process; yields its base URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
