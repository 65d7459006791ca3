"""The one contract every recommender honours, baseline or language-model one.

A model learns from a `Dataset` and answers in dense indices:

- ``fit(dataset) -> self``
- ``recommend(user_idx, k, *, exclude_seen=True, candidates=None) -> (items, scores)``, batch-first
- ``score(user_idx, item_idx) -> scores`` for pairs
- ``similar_items(item_idx, k) -> (items, scores)``
- ``save(directory)`` / ``load(directory)``: a directory of ``config.json`` + arrays, no pickles
- ``observe(interactions)``: add known history without training (sequential models read it)

Subclasses implement ``_fit`` and ``score_all``; ``recommend`` and friends are shared, so one
evaluator and one server work with every model.
"""

from __future__ import annotations

import inspect
import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from lmrec.data.dataset import Dataset
from lmrec.data.frames import add_seen
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions

__all__ = ["Recommender", "top_k", "register", "MODEL_REGISTRY", "load_model"]

log = logging.getLogger(__name__)

MODEL_REGISTRY: dict[str, type[Recommender]] = {}


def register(name: str):
    """Class decorator: make a model loadable by ``load_model`` and nameable in configs and the CLI."""

    def wrap(cls: type[Recommender]) -> type[Recommender]:
        cls.model_name = name
        MODEL_REGISTRY[name] = cls
        return cls

    return wrap


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, best first.

    Args:
        scores: (n, m) float array; ``-inf`` marks entries that must not be returned.
        k: how many to return; clipped to ``m``.

    Returns:
        ``(idx, vals)``, each (n, k). Rows with fewer than ``k`` finite entries are padded with
        index -1 and score ``-inf``. Within the returned items ties are ordered by lower index; which
        of several items tied exactly at the k-th score make the cut is decided by ``argpartition``
        (deterministic for the same input, but not necessarily the lowest indices).
    """
    n, m = scores.shape
    k = min(k, m)
    if k <= 0:
        return np.empty((n, 0), np.int64), np.empty((n, 0), scores.dtype)
    if k < m:
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        part = np.tile(np.arange(m), (n, 1))
    vals = np.take_along_axis(scores, part, axis=1)
    # sort by score desc, then index asc, for stable tie-breaking
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1).astype(np.int64)
    vals = np.take_along_axis(vals, order, axis=1)
    idx[~np.isfinite(vals)] = -1
    return idx, vals


class Recommender(ABC):
    """Base class for every lmrec model.

    Constructors store hyper-parameters only (scikit-learn style). Learned state lives on attributes
    ending in ``_``; ``fit`` resets and learns, ``partial_fit`` (where supported) continues.

    Attributes set by ``fit``:
        user_map_, item_map_: the id maps of the training data.
        seen_: (n_users, n_items) CSR of known interactions, excluded by ``recommend``.
    """

    model_name: ClassVar[str] = "base"
    #: sequential models read ``observe``d history as input; the evaluator feeds them valid before test
    is_sequential: ClassVar[bool] = False
    #: layout version of the ``params`` in ``config.json`` (None: the constructor arguments as they are)
    format_version: ClassVar[int | None] = None

    # ------------------------------------------------------------------ to implement
    @abstractmethod
    def _fit(self, dataset: Dataset) -> None:
        """Learn from ``dataset.interactions`` (and side information where the model uses it)."""

    @abstractmethod
    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        """Scores of every item for each user.

        Args:
            user_idx: (n,) int user indices.

        Returns:
            (n, n_items) float32; higher is better. Nothing is masked here.
        """

    def get_params(self) -> dict[str, Any]:
        """Constructor arguments, for ``save`` and ``repr`` (override when not all are attributes)."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> Recommender:
        """Build from a mapping of constructor arguments, as configs and the command line give them.

        Raises:
            ValueError: a key that is not a constructor argument; the message names it and the valid ones.
        """
        accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
        for key in params:
            if key not in accepted:
                raise ValueError(f"model {cls.model_name!r} has no parameter {key!r}; valid: {sorted(accepted)}")
        return cls(**params)

    @classmethod
    def params_from_saved(cls, config: Mapping[str, Any]) -> dict[str, Any]:
        """The constructor params stored in a saved ``config.json`` (models whose format changed
        override this to read older layouts)."""
        return dict(config.get("params", {}))

    def _state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Arrays and JSON-able metadata that make up the fitted state (override to persist)."""
        return {}, {}

    def _set_state(self, arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:  # noqa: B027 (optional hook)
        """Restore what ``_state`` returned."""

    # ------------------------------------------------------------------ shared behaviour
    def fit(self, dataset: Dataset | Interactions) -> Recommender:
        """Reset and learn from ``dataset``; returns ``self``."""
        if isinstance(dataset, Interactions):
            dataset = Dataset(dataset)
        inter = dataset.interactions
        if len(inter) == 0:
            raise ValueError(f"{type(self).__name__}.fit got no interactions")
        self.user_map_: IdMap = inter.user_map
        self.item_map_: IdMap = inter.item_map
        self.seen_: sp.csr_matrix = inter.to_csr("binary")
        self._fit(dataset)
        return self

    def observe(self, interactions: Interactions) -> Recommender:
        """Add known history (no training): these items are then excluded and, for sequential
        models, read as input. The interactions must use this model's id maps."""
        self._check_fitted()
        self.seen_ = add_seen(self.seen_, interactions)
        return self

    @property
    def n_users(self) -> int:
        return self.seen_.shape[0]

    @property
    def n_items(self) -> int:
        return self.seen_.shape[1]

    def _check_fitted(self) -> None:
        if not hasattr(self, "seen_"):
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit(dataset) first")

    def _check_users(self, user_idx: np.ndarray | int) -> np.ndarray:
        user_idx = np.atleast_1d(np.asarray(user_idx, dtype=np.int64))
        bad = (user_idx < 0) | (user_idx >= self.n_users)
        if bad.any():
            raise IndexError(
                f"user index {int(user_idx[bad][0])} out of range [0, {self.n_users}); "
                "map raw ids with user_map_ and send unknown users down the cold-start path"
            )
        return user_idx

    def recommend(
        self,
        user_idx: np.ndarray | int,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` items per user.

        Args:
            user_idx: (n,) user indices (a scalar is treated as one user).
            k: list length.
            exclude_seen: drop items in ``seen_`` for that user.
            candidates: optional (c,) item indices to rank among (the rest are excluded).
            batch_size: users scored at once, to bound memory on large catalogues.

        Returns:
            ``(items, scores)``, each (n, k); short rows are padded with -1 / ``-inf``.
        """
        self._check_fitted()
        user_idx = self._check_users(user_idx)
        allowed = None
        if candidates is not None:
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
        out_items, out_scores = [], []
        for start in range(0, len(user_idx), batch_size):
            users = user_idx[start : start + batch_size]
            scores = np.asarray(self.score_all(users), dtype=np.float32).copy()
            if exclude_seen:
                rows = self.seen_[users]
                r, c = rows.nonzero()
                scores[r, c] = -np.inf
            if allowed is not None:
                scores[:, ~allowed] = -np.inf
            items, vals = top_k(scores, k)
            out_items.append(items)
            out_scores.append(vals)
        return np.concatenate(out_items), np.concatenate(out_scores)

    def score(self, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
        """Scores of (user, item) pairs; (n,) each, returns (n,) float32."""
        self._check_fitted()
        user_idx = self._check_users(user_idx)
        item_idx = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        if user_idx.shape != item_idx.shape:
            raise ValueError(f"score: user_idx {user_idx.shape} and item_idx {item_idx.shape} differ in shape")
        out = np.empty(len(user_idx), dtype=np.float32)
        uniq, inverse = np.unique(user_idx, return_inverse=True)
        for start in range(0, len(uniq), 1024):
            block = uniq[start : start + 1024]
            scores = self.score_all(block)
            sel = (inverse >= start) & (inverse < start + len(block))
            out[sel] = scores[inverse[sel] - start, item_idx[sel]]
        return out

    def item_vectors(self) -> np.ndarray | None:
        """(n_items, d) item representation where the model has one (used by ANN indexes)."""
        return None

    def item_similarities(self, item_idx: np.ndarray) -> np.ndarray:
        """(n, n_items) similarity of the given items to every item; cosine of ``item_vectors``."""
        vectors = self.item_vectors()
        if vectors is None:
            raise NotImplementedError(f"{type(self).__name__} has no item vectors for similar_items")
        norm = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return norm[item_idx] @ norm.T

    def similar_items(self, item_idx: np.ndarray | int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` items most similar to each given item (the item itself excluded)."""
        self._check_fitted()
        item_idx = np.atleast_1d(np.asarray(item_idx, dtype=np.int64))
        if item_idx.size and (item_idx.min() < 0 or item_idx.max() >= self.n_items):
            raise IndexError(f"item index out of range [0, {self.n_items})")
        sims = np.asarray(self.item_similarities(item_idx), dtype=np.float32).copy()
        sims[np.arange(len(item_idx)), item_idx] = -np.inf
        return top_k(sims, k)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``config.json``, ``state.npz`` (arrays, no pickles) and the id maps."""
        self._check_fitted()
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        arrays, meta = self._state()
        seen = self.seen_.tocsr()
        arrays = {
            **arrays,
            "_seen_indptr": seen.indptr,
            "_seen_indices": seen.indices,
            "_seen_shape": np.asarray(seen.shape),
        }
        np.savez(directory / "state.npz", **arrays)  # type: ignore[arg-type]
        config: dict[str, Any] = {"model": self.model_name, "params": self.get_params(), "meta": meta}
        if self.format_version is not None:
            config["format_version"] = self.format_version
        (directory / "config.json").write_text(json.dumps(config, indent=2, default=_json_default))
        self.user_map_.save(directory / "user_map.json")
        self.item_map_.save(directory / "item_map.json")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Recommender:
        """Rebuild a saved model; ``Recommender.load`` dispatches on the saved model name."""
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        target = MODEL_REGISTRY.get(config["model"])
        if target is None:
            raise ValueError(f"unknown model {config['model']!r} in {directory}; known: {sorted(MODEL_REGISTRY)}")
        if cls is not Recommender and not issubclass(target, cls):
            raise ValueError(f"{directory} holds a {config['model']} model, not a {cls.__name__}")
        model = target.from_params(target.params_from_saved(config))
        with np.load(directory / "state.npz", allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
        shape = tuple(int(x) for x in arrays.pop("_seen_shape"))
        indptr, indices = arrays.pop("_seen_indptr"), arrays.pop("_seen_indices")
        model.seen_ = sp.csr_matrix((np.ones(len(indices), np.float32), indices, indptr), shape=shape)
        model.user_map_ = IdMap.load(directory / "user_map.json")
        model.item_map_ = IdMap.load(directory / "item_map.json")
        model._set_state(arrays, config.get("meta", {}))
        return model

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({params})"


def _json_default(value: Any) -> Any:
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (tuple, set)):
        return list(value)
    raise TypeError(f"cannot store {type(value).__name__} in config.json")


def load_model(directory: str | Path) -> Recommender:
    """Load any saved lmrec model (the model classes register themselves on import)."""
    import lmrec.models  # noqa: F401  (registers every built-in model)

    return Recommender.load(directory)
