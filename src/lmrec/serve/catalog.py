"""Item writes while serving: PUT and DELETE, checked, then durable, then live; replay and cross-process sync.

A write is all or nothing. It is checked in full first (the text, the vector the text encodes to,
every attribute against its column: `ServedItems.prepare`), without changing anything; a bad write
is a `BadRequest` and neither the store nor memory sees it. The checked write is then committed to
the SQLite ``items`` table (text, attributes, vector, version), and only once the commit returned is
it applied to the in-memory `ServedItems` (which cannot fail for a checked write). After a restart
the same writes are replayed in version order, without re-encoding; a stored row that does not
check (written by another version of the service, or by hand) is set aside, logged and counted
(`ItemUpdates.quarantined`, shown by ``/health``) instead of stopping the start-up. Other server
processes sharing the database pick the writes up at most ``items_sync_interval_s`` seconds later.
Replaying is idempotent: an item already live with the same text only has its attributes set again,
and takes its stored vector where that differs (relations PUT with the item changed it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from lmrec.models.bundle import ModelBundle
from lmrec.serve.attributes import FilterError
from lmrec.serve.errors import BadRequest, NotFound
from lmrec.serve.items import ItemChange, ServedItems
from lmrec.serve.reasons import text_from_attributes
from lmrec.serve.schemas import ItemDeleted, ItemWritten
from lmrec.serve.space import VectorSpace
from lmrec.serve.stores.base import ItemRecord
from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["ItemUpdates"]

log = logging.getLogger(__name__)


class ItemUpdates:
    """Writes to the served items.

    Args:
        items: the in-memory items.
        store: the SQLite store (``items`` table).
        space: encodes new texts.
        bundle: gives the text template for items sent without text.
        sync_interval_s: how often `maybe_sync` looks for other processes' writes (0: never).
        scrub: applied to an item's text (sent, or made from its attributes) before it is encoded or
            stored: the PII scrubber (`lmrec.data.pii`), or None.
    """

    def __init__(
        self,
        items: ServedItems,
        store: SQLiteStore,
        space: VectorSpace,
        bundle: ModelBundle,
        sync_interval_s: float,
        scrub: Callable[[str], str] | None = None,
    ) -> None:
        self.scrub = scrub
        self.items = items
        self.store = store
        self.space = space
        self.bundle = bundle
        self.sync_interval_s = sync_interval_s
        self.quarantined: dict[str, str] = {}  # item id -> why its stored row was set aside at replay
        self._last_sync = time.monotonic()

    def put(self, item_id: str, text: str | None, attributes: Mapping[str, Any]) -> ItemWritten:
        """Add or replace an item; it is recommendable as soon as this returns.

        Raises:
            BadRequest: no text, or an attribute that does not fit its column (the field is named);
                nothing was stored or changed.
        """
        if text is None:
            try:
                text = text_from_attributes(attributes, self.bundle)
            except (KeyError, TypeError, ValueError) as exc:
                raise BadRequest("attributes", f"cannot make the item's text from its attributes: {exc}") from None
        if self.scrub is not None:
            text = self.scrub(text)
        if not text.strip():
            raise BadRequest("text", f"item {item_id!r} has no text: send 'text' or attributes with text values")
        items = self.items
        with items.lock:
            same = items.unchanged(item_id, text)
            vector = None if same else np.asarray(self.space.encode_items([text])[0], dtype=np.float32)
            try:
                change = items.prepare(item_id, text, attributes, vector)
            except FilterError as exc:
                raise BadRequest(exc.field, str(exc).split(": ", 1)[1]) from None
            except ValueError as exc:  # the encoder gave a vector the index cannot hold
                raise BadRequest("text", str(exc)) from None
            stored = items.vector(items.row_of[item_id]) if same else vector
            with self.store.write() as tx:
                self.store.put_item(tx, ItemRecord(item_id, text, dict(attributes), stored, self.space.name))
            _, created = items.apply(change)
            self.quarantined.pop(item_id, None)  # its bad stored row, if any, was just replaced
        return ItemWritten(item_id=item_id, created=created, reencoded=not same, index_size=len(items))

    def delete(self, item_id: str) -> ItemDeleted:
        """Remove an item from every result (its events and vector are kept).

        Raises:
            NotFound: the item is not live (nothing was stored or changed).
        """
        items = self.items
        with items.lock:
            row = items.row(item_id)
            if row is None:
                raise NotFound("item_id", f"unknown item {item_id!r}")
            record = ItemRecord(item_id, items.texts[row], {}, items.vector(row), self.space.name, deleted=True)
            with self.store.write() as tx:
                self.store.put_item(tx, record)
            items.delete(item_id)
            self.quarantined.pop(item_id, None)
        return ItemDeleted(item_id=item_id, deleted=True)

    def _replayed(self, rec: ItemRecord) -> ItemChange | None:
        """The checked change of a stored record (None for a deletion).

        Raises:
            ValueError: the stored row does not make a valid item here (`FilterError` for an attribute).
        """
        if rec.problem is not None:
            raise ValueError(rec.problem)
        if rec.deleted:
            return None
        if not rec.text.strip():
            raise ValueError("the text is empty")
        items = self.items
        ok = rec.vector is not None and rec.space == self.space.name and len(rec.vector) == self.space.dim
        if items.unchanged(rec.item_id, rec.text):
            live = items.vector(items.row_of[rec.item_id])
            # same text, another vector of this space: relations PUT with the item gave it (`lmrec.serve.related`);
            # the tolerance keeps re-encoding noise of a catalogue item from moving it to a new row
            moved = ok and not np.allclose(np.asarray(rec.vector, dtype=np.float32), live, rtol=1e-4, atol=1e-6)
            return items.prepare(rec.item_id, rec.text, rec.attributes, rec.vector if moved else None)
        vector = rec.vector if ok else self.space.encode_items([rec.text])[0]
        return items.prepare(rec.item_id, rec.text, rec.attributes, vector)

    def apply(self, records: Sequence[ItemRecord]) -> None:
        """Replay stored writes in version order (at start-up, and those of other processes); a record
        that does not check is set aside (logged, counted in `quarantined`) and the replay goes on."""
        items = self.items
        with items.lock:
            for rec in records:
                try:
                    change = self._replayed(rec)
                except ValueError as exc:  # FilterError included
                    self.quarantined[rec.item_id] = str(exc)
                    log.warning("set aside the stored item %r (version %d): %s", rec.item_id, rec.version, exc)
                else:
                    if change is None:
                        items.delete(rec.item_id)
                    else:
                        items.apply(change)
                    self.quarantined.pop(rec.item_id, None)
                items.version = max(items.version, rec.version)

    def maybe_sync(self) -> None:
        """Apply other processes' writes, at most every ``sync_interval_s`` seconds."""
        now = time.monotonic()
        if self.sync_interval_s <= 0 or now - self._last_sync < self.sync_interval_s:
            return
        self._last_sync = now
        if self.store.max_item_version() > self.items.version:
            self.apply(self.store.items_since(self.items.version))
