"""Bring your own item vectors: read precomputed item embeddings keyed by item id, skip encoding.

A shop that already embeds its catalogue (any encoder, any size) hands lmrec a file instead of
having it re-encode every item:

- ``.npy``: an (n, D) float array plus the item ids of its rows, from ``ids`` (a list) or an id
  file next to it (one id per line; ``vectors.npy`` -> ``vectors.ids.txt`` by default);
- ``.parquet``: one row per item with an ``item_id`` column and either a ``vector`` column of
  equal-length lists or only numeric columns besides the id (one per dimension).

`load_item_vectors` returns the rows in the order of the catalogue's item map, so the vectors slot
in where `lmrec.encoders.encode_texts` output would go. Extra ids in the file are ignored (a file
may cover a larger catalogue); ids of the catalogue the file lacks, duplicate ids, non-finite
values and a dimension other than the expected one are ``ValueError``s naming the file and what
is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["default_ids_path", "load_item_vectors", "read_vector_file"]

log = logging.getLogger(__name__)


def default_ids_path(path: str | Path) -> Path:
    """Where the ids of an ``.npy`` vector file are looked for: ``NAME.ids.txt`` beside ``NAME.npy``."""
    path = Path(path)
    return path.with_name(path.stem + ".ids.txt")


def read_vector_file(path: str | Path, ids: Sequence[str] | str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """Read a vector file as it is: ``(ids, vectors)`` with vectors (n, D) float32.

    Args:
        path: a ``.npy`` or ``.parquet`` file.
        ids: for ``.npy``: the row ids, or a text file of them (one per line); None reads
            `default_ids_path`. Ignored for parquet (its ``item_id`` column).

    Raises:
        ValueError: a missing file, another suffix, a missing id list or ``item_id`` column, a row
            count that differs from the id count, or a vector file that is not 2-D.
    """
    path = Path(path)
    if not path.exists():
        raise ValueError(f"item vector file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        vectors = np.load(path, allow_pickle=False)
        if ids is None or isinstance(ids, (str, Path)):
            id_file = default_ids_path(path) if ids is None else Path(ids)
            if not id_file.exists():
                raise ValueError(
                    f"item vector file {str(path)!r} needs its row ids: pass an id list or write {str(id_file)!r} "
                    "(one item id per line)"
                )
            row_ids = [line.strip() for line in id_file.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            row_ids = [str(i) for i in ids]
    elif suffix == ".parquet":
        import pandas as pd

        frame = pd.read_parquet(path)
        if "item_id" not in frame.columns:
            raise ValueError(f"item vector file {str(path)!r} has no 'item_id' column; columns: {list(frame.columns)}")
        row_ids = frame["item_id"].astype(str).tolist()
        if "vector" in frame.columns:
            lengths = {len(v) for v in frame["vector"]}
            if len(lengths) > 1:
                raise ValueError(
                    f"item vector file {str(path)!r}: the 'vector' lists have different lengths {sorted(lengths)}"
                )
            vectors = np.asarray(frame["vector"].tolist(), dtype=np.float32).reshape(len(frame), -1)
        else:
            rest = frame.drop(columns=["item_id"])
            if rest.empty or not all(np.issubdtype(t, np.number) for t in rest.dtypes):
                raise ValueError(
                    f"item vector file {str(path)!r} needs a 'vector' list column or only numeric columns besides "
                    f"'item_id'; columns: {list(frame.columns)}"
                )
            vectors = rest.to_numpy(dtype=np.float32)
    else:
        raise ValueError(f"item vector file {str(path)!r} must be .npy or .parquet, got {suffix or 'no suffix'!r}")
    if vectors.ndim != 2:
        raise ValueError(
            f"item vector file {str(path)!r} holds an array of shape {vectors.shape}; expected (n_items, dim)"
        )
    if len(row_ids) != len(vectors):
        raise ValueError(f"item vector file {str(path)!r} has {len(vectors)} rows but {len(row_ids)} item ids")
    return row_ids, np.asarray(vectors, dtype=np.float32)


def load_item_vectors(
    path: str | Path,
    item_ids: Sequence[str],
    *,
    ids: Sequence[str] | str | Path | None = None,
    dim: int | None = None,
) -> np.ndarray:
    """The vectors of ``item_ids``, in that order, from a vector file (see the module docstring).

    Args:
        path: a ``.npy`` or ``.parquet`` file.
        item_ids: the catalogue's item ids in index order (``item_map.ids``).
        ids: the ``.npy`` row ids or their file (see `read_vector_file`).
        dim: the dimension the caller needs (None: any).

    Returns:
        (len(item_ids), D) float32.

    Raises:
        ValueError: see `read_vector_file`; also ids of ``item_ids`` missing from the file, duplicate
            ids in the file, a dimension other than ``dim``, or NaN / infinite values.
    """
    row_ids, vectors = read_vector_file(path, ids)
    where = {item: row for row, item in enumerate(row_ids)}
    if len(where) != len(row_ids):
        seen: set[str] = set()
        dupes = sorted({i for i in row_ids if i in seen or seen.add(i)})  # type: ignore[func-returns-value]
        raise ValueError(f"item vector file {str(path)!r} repeats item ids, e.g. {dupes[:5]}")
    wanted = [str(i) for i in item_ids]
    missing = [i for i in wanted if i not in where]
    if missing:
        raise ValueError(
            f"item vector file {str(path)!r} has no vector for {len(missing)} of the {len(wanted)} catalogue items, "
            f"e.g. {missing[:5]}"
        )
    if dim is not None and vectors.shape[1] != dim:
        raise ValueError(f"item vector file {str(path)!r} holds {vectors.shape[1]}-d vectors; expected {dim}-d")
    out = vectors[[where[i] for i in wanted]]
    if not np.isfinite(out).all():
        bad = [wanted[r] for r in np.nonzero(~np.isfinite(out).all(axis=1))[0][:5]]
        raise ValueError(f"item vector file {str(path)!r} has NaN or infinite values for items {bad}")
    if len(row_ids) > len(wanted):
        log.info("%s: %d of its %d vectors belong to the catalogue", path, len(wanted), len(row_ids))
    return out
