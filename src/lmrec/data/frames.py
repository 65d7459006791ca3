"""Raw-id interaction frames and growing id maps, for models that learn from a stream of new rows.

A continual update (``partial_fit``) gets new interactions in raw external ids. These helpers turn
them into a frame of raw ids, grow a pair of id maps to cover them (existing indices never change;
maps shared with data sets are copied, not changed), grow the known-interaction matrix to the new
shape and put the rows on the grown maps.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd
import scipy.sparse as sp

from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions

__all__ = ["add_seen", "as_raw_frame", "grow_id_maps", "grow_seen", "on_maps", "seen_interactions"]


def as_raw_frame(new: Interactions | pd.DataFrame) -> pd.DataFrame:
    """New interactions as a frame of raw ids: ``user_id``, ``item_id``, ``timestamp``.

    Args:
        new: an `Interactions` (on any id maps: its maps translate indices back to raw ids, so one
            built on a grown copy of the model's maps works, and so does an independent one) or a
            DataFrame with columns ``user_id``, ``item_id`` and optionally ``timestamp`` (row order
            otherwise).

    Raises:
        ValueError: a required column is missing.
    """
    if isinstance(new, Interactions):
        frame = new.to_frame()
    elif isinstance(new, pd.DataFrame):
        missing = [c for c in ("user_id", "item_id") if c not in new.columns]
        if missing:
            raise ValueError(f"partial_fit: new_interactions frame lacks columns {missing}; it has {list(new.columns)}")
        frame = new.copy()
        if "timestamp" not in frame.columns:
            frame["timestamp"] = np.arange(len(frame), dtype=np.float64)
    else:
        raise ValueError(f"partial_fit: new_interactions must be Interactions or a DataFrame, got {type(new).__name__}")
    frame["user_id"] = frame["user_id"].astype(str)
    frame["item_id"] = frame["item_id"].astype(str)
    frame["timestamp"] = pd.to_numeric(frame["timestamp"], errors="raise").astype(np.float64)
    return frame.reset_index(drop=True)


def grow_id_maps(
    user_map: IdMap,
    item_map: IdMap,
    frame: pd.DataFrame,
    extra_items: Iterable[str] = (),
    extra_users: Iterable[str] = (),
) -> tuple[IdMap, IdMap, list[str], list[str]]:
    """Maps that also cover the frame's ids and the extra ids (copies where anything is added).

    Returns:
        ``(user_map, item_map, new_user_ids, new_item_ids)``; the new ids in index order: the
        frame's unknown users then ``extra_users``, the frame's unknown items then ``extra_items``.
    """
    new_users = [u for u in dict.fromkeys([*frame["user_id"], *map(str, extra_users)]) if u not in user_map]
    new_items = [i for i in dict.fromkeys([*frame["item_id"], *map(str, extra_items)]) if i not in item_map]
    if new_users:
        user_map = user_map.copy().fit_partial(new_users)
    if new_items:
        item_map = item_map.copy().fit_partial(new_items)
    return user_map, item_map, new_users, new_items


def grow_seen(seen: sp.csr_matrix, n_users: int, n_items: int) -> sp.csr_matrix:
    """``seen`` padded with empty rows and columns to at least (n_users, n_items), float32 CSR."""
    if seen.shape[1] < n_items:
        seen = sp.hstack([seen, sp.csr_matrix((seen.shape[0], n_items - seen.shape[1]), dtype=np.float32)])
    if seen.shape[0] < n_users:
        seen = sp.vstack([seen, sp.csr_matrix((n_users - seen.shape[0], n_items), dtype=np.float32)])
    return seen.tocsr().astype(np.float32)


def add_seen(seen: sp.csr_matrix, interactions: Interactions) -> sp.csr_matrix:
    """``seen`` with the interactions' (user, item) pairs set (binary float32 CSR of the same shape).

    Raises:
        ValueError: the interactions' maps give another shape.
    """
    extra = interactions.to_csr("binary")
    if extra.shape != seen.shape:
        raise ValueError(f"observe: interactions have shape {extra.shape}, model has {seen.shape}")
    return ((seen + extra) > 0).astype(np.float32).tocsr()


def on_maps(frame: pd.DataFrame, user_map: IdMap, item_map: IdMap) -> Interactions:
    """A raw-id frame's rows as `Interactions` on exactly these maps (every id must be in them)."""
    extra = {c: c for c in ("rating", "weight") if c in frame.columns}
    inter = Interactions.from_frame(
        frame,
        rating_col=extra.get("rating"),
        weight_col=extra.get("weight"),
        user_map=user_map,
        item_map=item_map,
    )
    # from_frame copies the maps; every id is already in them, so the copies equal the given maps
    return Interactions(inter.users, inter.items, inter.timestamps, user_map, item_map, inter.ratings, inter.weights)


def seen_interactions(seen: sp.spmatrix, user_map: IdMap, item_map: IdMap) -> Interactions:
    """A known-interaction matrix as interactions on the given maps (timestamps 0)."""
    coo = seen.tocoo()
    return Interactions(coo.row.astype(np.int64), coo.col.astype(np.int64), np.zeros(coo.nnz), user_map, item_map)
