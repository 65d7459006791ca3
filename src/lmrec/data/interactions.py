"""Columnar user-item interactions over shared id maps."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lmrec.data.idmap import IdMap

__all__ = ["Interactions"]

_OPTIONAL = ("ratings", "weights", "events", "scenarios")


@dataclass(frozen=True, eq=False)
class Interactions:
    """User-item interactions as parallel arrays of dense indices.

    Every array has shape ``(n,)``. ``timestamps`` are seconds (float64); where a source has no time,
    the loaders use the row order, so sorting by time is always defined and ties keep file order.

    Attributes:
        users: int64 user indices into ``user_map``.
        items: int64 item indices into ``item_map``.
        timestamps: float64 seconds.
        user_map: external user ids.
        item_map: external item ids.
        ratings: optional float32 explicit ratings.
        weights: optional float32 confidence weights.
        events: optional object array of event types ("click", "purchase", ...).
        scenarios: optional object array of scenario names.
    """

    users: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    user_map: IdMap
    item_map: IdMap
    ratings: np.ndarray | None = None
    weights: np.ndarray | None = None
    events: np.ndarray | None = None
    scenarios: np.ndarray | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.users)
        for name in ("items", "timestamps", *_OPTIONAL):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise ValueError(f"Interactions.{name} has length {len(arr)}, expected {n}")
        if n:
            if self.users.min() < 0 or self.users.max() >= len(self.user_map):
                raise ValueError("Interactions.users holds an index outside user_map")
            if self.items.min() < 0 or self.items.max() >= len(self.item_map):
                raise ValueError("Interactions.items holds an index outside item_map")

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        user_col: str = "user_id",
        item_col: str = "item_id",
        time_col: str | None = "timestamp",
        rating_col: str | None = None,
        weight_col: str | None = None,
        event_col: str | None = None,
        scenario_col: str | None = None,
        user_map: IdMap | None = None,
        item_map: IdMap | None = None,
    ) -> Interactions:
        """Build from a frame of raw ids; maps grow to cover every id in the frame."""
        for col in (user_col, item_col, time_col, rating_col, weight_col, event_col, scenario_col):
            if col is not None and col not in frame.columns:
                raise ValueError(f"column {col!r} not found; the frame has {list(frame.columns)}")
        user_map = user_map.copy() if user_map is not None else IdMap()
        item_map = item_map.copy() if item_map is not None else IdMap()
        users = user_map.to_index(frame[user_col].astype(str), unknown="grow")
        items = item_map.to_index(frame[item_col].astype(str), unknown="grow")
        if time_col is not None:
            ts = pd.to_numeric(frame[time_col], errors="raise").to_numpy(dtype=np.float64)
        else:
            ts = np.arange(len(frame), dtype=np.float64)

        def opt(col: str | None, dtype: object) -> np.ndarray | None:
            if col is None:
                return None
            values = frame[col]
            return values.astype(str).to_numpy(dtype=object) if dtype is object else values.to_numpy(dtype=dtype)

        return cls(
            users=users,
            items=items,
            timestamps=ts,
            user_map=user_map,
            item_map=item_map,
            ratings=opt(rating_col, np.float32),
            weights=opt(weight_col, np.float32),
            events=opt(event_col, object),
            scenarios=opt(scenario_col, object),
        )

    # ------------------------------------------------------------------ basic views
    def __len__(self) -> int:
        return len(self.users)

    @property
    def n_users(self) -> int:
        return len(self.user_map)

    @property
    def n_items(self) -> int:
        return len(self.item_map)

    def __repr__(self) -> str:
        extras = [name for name in _OPTIONAL if getattr(self, name) is not None]
        return f"Interactions(n={len(self)}, users={self.n_users}, items={self.n_items}, extras={extras})"

    def subset(self, mask_or_index: np.ndarray) -> Interactions:
        """Rows selected by a boolean mask or an index array, over the same id maps."""
        sel = np.asarray(mask_or_index)
        kwargs: dict[str, Any] = {
            name: (None if getattr(self, name) is None else getattr(self, name)[sel]) for name in _OPTIONAL
        }
        return replace(self, users=self.users[sel], items=self.items[sel], timestamps=self.timestamps[sel], **kwargs)

    def with_maps(self, user_map: IdMap, item_map: IdMap) -> Interactions:
        """The same rows re-indexed onto other (usually larger) maps that contain every id here."""
        users = user_map.to_index(self.user_map.to_ids(self.users))
        items = item_map.to_index(self.item_map.to_ids(self.items))
        return replace(self, users=users, items=items, user_map=user_map, item_map=item_map)

    def concat(self, other: Interactions) -> Interactions:
        """Rows of ``self`` then ``other``; maps are merged (``self``'s indices are kept)."""
        user_map = self.user_map.copy().fit_partial(other.user_map.ids)
        item_map = self.item_map.copy().fit_partial(other.item_map.ids)
        a, b = self.with_maps(user_map, item_map), other.with_maps(user_map, item_map)
        kwargs: dict[str, Any] = {}
        for name in _OPTIONAL:
            x, y = getattr(a, name), getattr(b, name)
            if (x is None) != (y is None):
                raise ValueError(f"cannot concat: {name} present on one side only")
            kwargs[name] = None if x is None else np.concatenate([x, y])
        return replace(
            a,
            users=np.concatenate([a.users, b.users]),
            items=np.concatenate([a.items, b.items]),
            timestamps=np.concatenate([a.timestamps, b.timestamps]),
            **kwargs,
        )

    def time_order(self) -> np.ndarray:
        """Row order by (user, timestamp), ties kept in row order (stable)."""
        return np.lexsort((np.arange(len(self)), self.timestamps, self.users))

    def sequences(self) -> list[np.ndarray]:
        """Each user's items in time order; list indexed by user index (empty arrays included)."""
        order = self.time_order()
        users, items = self.users[order], self.items[order]
        bounds = np.searchsorted(users, np.arange(self.n_users + 1))
        return [items[bounds[u] : bounds[u + 1]] for u in range(self.n_users)]

    def to_csr(self, values: Literal["binary", "ratings", "weights", "count"] = "binary") -> sp.csr_matrix:
        """User x item matrix, shape ``(n_users, n_items)``; duplicates are summed except for binary."""
        if values == "ratings":
            if self.ratings is None:
                raise ValueError("to_csr(values='ratings') but these interactions have no ratings")
            data = self.ratings.astype(np.float32)
        elif values == "weights":
            data = self.weights.astype(np.float32) if self.weights is not None else np.ones(len(self), np.float32)
        else:
            data = np.ones(len(self), dtype=np.float32)
        mat = sp.csr_matrix((data, (self.users, self.items)), shape=(self.n_users, self.n_items), dtype=np.float32)
        mat.sum_duplicates()
        if values == "binary":
            mat.data[:] = 1.0
        return mat

    def item_counts(self) -> np.ndarray:
        """Interactions per item, shape ``(n_items,)``."""
        return np.bincount(self.items, minlength=self.n_items)

    def user_counts(self) -> np.ndarray:
        """Interactions per user, shape ``(n_users,)``."""
        return np.bincount(self.users, minlength=self.n_users)

    def to_frame(self) -> pd.DataFrame:
        """Rows with raw ids (``user_id``, ``item_id``, ``timestamp`` and the optional columns)."""
        data = {
            "user_id": self.user_map.to_ids(self.users),
            "item_id": self.item_map.to_ids(self.items),
            "timestamp": self.timestamps,
        }
        for name, col in zip(_OPTIONAL, ("rating", "weight", "event", "scenario")):
            if getattr(self, name) is not None:
                data[col] = getattr(self, name)
        return pd.DataFrame(data)

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write ``interactions.parquet`` (indices) plus ``users.json`` / ``items.json`` id maps."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        data = {"user": self.users, "item": self.items, "timestamp": self.timestamps}
        for name in _OPTIONAL:
            if getattr(self, name) is not None:
                data[name] = getattr(self, name)
        pd.DataFrame(data).to_parquet(directory / "interactions.parquet", index=False)
        self.user_map.save(directory / "users.json")
        self.item_map.save(directory / "items.json")
        (directory / "interactions_meta.json").write_text(json.dumps(self.meta, default=str))

    @classmethod
    def load(cls, directory: str | Path) -> Interactions:
        directory = Path(directory)
        frame = pd.read_parquet(directory / "interactions.parquet")
        meta_path = directory / "interactions_meta.json"
        kwargs = {}
        for name in _OPTIONAL:
            if name in frame.columns:
                dtype = object if name in ("events", "scenarios") else np.float32
                kwargs[name] = frame[name].to_numpy(dtype=dtype)
        return cls(
            users=frame["user"].to_numpy(np.int64),
            items=frame["item"].to_numpy(np.int64),
            timestamps=frame["timestamp"].to_numpy(np.float64),
            user_map=IdMap.load(directory / "users.json"),
            item_map=IdMap.load(directory / "items.json"),
            meta=json.loads(meta_path.read_text()) if meta_path.exists() else {},
            **kwargs,
        )
