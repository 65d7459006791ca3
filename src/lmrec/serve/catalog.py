"""Item writes while serving: PUT and DELETE, durable first, then live; replay and cross-process sync.

A write is committed to the SQLite ``items`` table (text, attributes, vector, version) before it
changes the in-memory `ServedItems`, so after a restart the same writes are replayed in version
order, without re-encoding. Other server processes sharing the database pick the writes up at most
``items_sync_interval_s`` seconds later. Replaying is idempotent: an item already live with the same
text only has its attributes set again.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from lmrec.models.bundle import ModelBundle
from lmrec.serve.attributes import FilterError
from lmrec.serve.errors import BadRequest, NotFound
from lmrec.serve.items import ServedItems
from lmrec.serve.reasons import text_from_attributes
from lmrec.serve.schemas import ItemDeleted, ItemWritten
from lmrec.serve.space import VectorSpace
from lmrec.serve.stores.base import ItemRecord
from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["ItemUpdates"]


class ItemUpdates:
    """Writes to the served items.

    Args:
        items: the in-memory items.
        store: the SQLite store (``items`` table).
        space: encodes new texts.
        bundle: gives the text template for items sent without text.
        sync_interval_s: how often `maybe_sync` looks for other processes' writes (0: never).
    """

    def __init__(
        self, items: ServedItems, store: SQLiteStore, space: VectorSpace, bundle: ModelBundle, sync_interval_s: float
    ) -> None:
        self.items = items
        self.store = store
        self.space = space
        self.bundle = bundle
        self.sync_interval_s = sync_interval_s
        self._last_sync = time.monotonic()

    def put(self, item_id: str, text: str | None, attributes: Mapping[str, Any]) -> ItemWritten:
        """Add or replace an item; it is recommendable as soon as this returns."""
        if text is None:
            text = text_from_attributes(attributes, self.bundle)
        if not text.strip():
            raise BadRequest("text", f"item {item_id!r} has no text: send 'text' or attributes with text values")
        items = self.items
        with items.lock:
            same = items.unchanged(item_id, text)
            vector = items.vector(items.row_of[item_id]) if same else self.space.encode_items([text])[0]
            with self.store.write() as tx:
                self.store.put_item(tx, ItemRecord(item_id, text, dict(attributes), vector, self.space.name))
            try:
                _, created = items.upsert(item_id, text, attributes, None if same else vector)
            except FilterError as exc:
                raise BadRequest(exc.field, str(exc).split(": ", 1)[1]) from None
        return ItemWritten(item_id=item_id, created=created, reencoded=not same, index_size=len(items))

    def delete(self, item_id: str) -> ItemDeleted:
        """Remove an item from every result (its events and vector are kept)."""
        items = self.items
        with items.lock:
            row = items.row(item_id)
            if row is None:
                raise NotFound("item_id", f"unknown item {item_id!r}")
            record = ItemRecord(item_id, items.texts[row], {}, items.vector(row), self.space.name, deleted=True)
            with self.store.write() as tx:
                self.store.put_item(tx, record)
            items.delete(item_id)
        return ItemDeleted(item_id=item_id, deleted=True)

    def apply(self, records: Sequence[ItemRecord]) -> None:
        """Replay stored writes in version order (at start-up, and those of other processes)."""
        items = self.items
        with items.lock:
            for rec in records:
                if rec.deleted:
                    items.delete(rec.item_id)
                elif items.unchanged(rec.item_id, rec.text):
                    items.upsert(rec.item_id, rec.text, rec.attributes, None)
                else:
                    ok = rec.vector is not None and rec.space == self.space.name and len(rec.vector) == self.space.dim
                    items.upsert(rec.item_id, rec.text, rec.attributes, rec.vector if ok else self.space.encode_items([rec.text])[0])
                items.version = max(items.version, rec.version)

    def maybe_sync(self) -> None:
        """Apply other processes' writes, at most every ``sync_interval_s`` seconds."""
        now = time.monotonic()
        if self.sync_interval_s <= 0 or now - self._last_sync < self.sync_interval_s:
            return
        self._last_sync = now
        if self.store.max_item_version() > self.items.version:
            self.apply(self.store.items_since(self.items.version))
