"""What the console shows about items, users and the model, read from a `RecService`.

These are plain functions over the service (no HTTP): the console's JSON routes
(`lmrec.serve.ui.routes`) call them in the threadpool. Values are returned raw; the browser puts
every text into the page as text (never as markup).
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lmrec.serve.service import RecService

__all__ = ["IMAGE_COLUMNS", "catalog_search", "item_cards", "model_info", "user_search"]

#: columns taken as an image URL when the catalogue names no ``image_col``
IMAGE_COLUMNS: tuple[str, ...] = ("image_url", "image", "img_url", "thumbnail", "poster_url")
#: image values shown as an image (others, such as a local path, are shown as text)
_IMAGE_SCHEMES = ("http://", "https://", "data:image/")
#: longest text returned with an item card
TEXT_CHARS = 600


def _plain(value: Any) -> Any:
    """An attribute value as JSON: tuples as lists, NaN as None."""
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _image_column(service: RecService) -> str | None:
    catalog = service.bundle.catalog
    if catalog is None:
        return None
    if catalog.image_col is not None:
        return catalog.image_col
    return next((c for c in IMAGE_COLUMNS if c in catalog.frame.columns), None)


def _image(service: RecService, item_id: str, column: str | None) -> str | None:
    catalog = service.bundle.catalog
    if column is None or catalog is None or item_id not in catalog:
        return None
    value = catalog.frame.at[item_id, column]
    if isinstance(value, str) and value.strip().lower().startswith(_IMAGE_SCHEMES):
        return value.strip()
    return None


def item_cards(service: RecService, item_ids: Iterable[str]) -> list[dict[str, Any]]:
    """One card per known id (unknown ids are left out; deleted items are shown as such).

    Returns:
        ``{"item_id", "title", "text", "attributes", "image", "live"}`` per item, in the order
        given: ``title`` is the first sentence of the item's text, ``text`` its text (at most
        ``TEXT_CHARS`` characters), ``image`` an image URL from the catalogue or None.
    """
    items = service.items
    column = _image_column(service)
    cards = []
    for item_id in dict.fromkeys(item_ids):
        row = items.any_row(item_id)
        if row is None:
            continue
        text = items.texts[row]
        cards.append(
            {
                "item_id": item_id,
                "title": items.title(row, width=120),
                "text": text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 1] + "…",
                "attributes": {k: _plain(v) for k, v in items.attributes.row(row).items()},
                "image": _image(service, item_id, column),
                "live": items.row(item_id) is not None,
            }
        )
    return cards


def catalog_search(service: RecService, text: str, limit: int = 20) -> list[dict[str, Any]]:
    """Live items whose id equals ``text``, then those whose id starts with it, then those whose text
    holds it (case-insensitive), at most ``limit`` cards in all.

    Raises:
        ValueError: ``limit`` is not positive.
    """
    if limit < 1:
        raise ValueError(f"limit: must be at least 1, got {limit}")
    needle = text.strip().lower()
    if not needle:
        return []
    items = service.items
    found: dict[str, None] = {}
    if items.row(text.strip()) is not None:
        found[text.strip()] = None
    live = list(items.row_of.items())  # a copy: a PUT may add an item meanwhile
    for item_id, _ in live:
        if len(found) >= limit:
            break
        if item_id.lower().startswith(needle):
            found.setdefault(item_id, None)
    for item_id, row in live:
        if len(found) >= limit:
            break
        if needle in items.texts[row].lower():
            found.setdefault(item_id, None)
    return item_cards(service, list(found)[:limit])


def user_search(service: RecService, text: str, limit: int = 20) -> list[str]:
    """User ids the model knows that start with ``text`` (then those that contain it), at most ``limit``;
    a user known only from logged events is found by its exact id."""
    if limit < 1:
        raise ValueError(f"limit: must be at least 1, got {limit}")
    needle = text.strip()
    ids = [u for u in service.model.user_map_.ids[: service.model.n_users] if u not in service.forgotten]
    if not needle:
        return ids[:limit]
    out = [u for u in ids if u.startswith(needle)][:limit]
    if len(out) < limit:
        out += [u for u in ids if needle in u and not u.startswith(needle)][: limit - len(out)]
    if needle not in out and service.store.user(needle) is not None:
        out.insert(0, needle)
    return out[:limit]


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _modified(path: Path) -> str | None:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        return None
    return dt.datetime.fromtimestamp(stamp, tz=dt.timezone.utc).isoformat(timespec="seconds")


def model_info(service: RecService, model_dir: str) -> dict[str, Any]:
    """The served model: version, type, what it was trained on and when, its parameters, and the
    offline metrics its directory holds (``bundle.json``'s ``metrics``, or ``metrics.json``).

    Args:
        service: the current model's service.
        model_dir: its directory (``ModelHost.status().model_dir``).
    """
    model = service.model
    directory = Path(model_dir)
    info = dict(service.bundle.info)
    metrics = info.pop("metrics", None)
    if metrics is None and (directory / "metrics.json").is_file():
        metrics = _read_json(directory / "metrics.json")
    config = _read_json(directory / "config.json")
    return {
        "model_version": service.version,
        "model_type": type(model).__name__,
        "model_name": getattr(model, "model_name", None),
        "model_dir": model_dir,
        "trained_at": _modified(directory / "config.json"),
        "dataset": info.pop("dataset", None),
        "n_users": int(model.n_users),
        "n_items": int(model.n_items),
        "info": info,
        "params": config.get("params") if isinstance(config, dict) else None,
        "metrics": metrics,
        "space": service.space.name,
        "index": service.items.index.kind,
        "swaps": service.swaps,
    }
