"""The shared log of several replicas: a Redis Stream, and each replica's local SQLite copy of it.

With ``profile_store="redis"`` (``lmrec serve --store redis``) the source of truth is one Redis
Stream, ``<prefix>log``. Every write a replica acknowledges is an entry there first:

- an event batch is appended by one Lua script (`RedisLog.append_events`) that, per event, claims
  ``<prefix>eid:<event_id>`` with ``SET NX`` and only then ``XADD``s it, so an event id is logged
  once whichever replica receives it (a retried or duplicated event is reported as a duplicate), and
  in the same step bumps the item's popularity counter (``<prefix>popularity``), records the user's
  last entry id (``<prefix>ulast:<user>``, what read-after-write waits for) and the entry id in the
  user's list (``<prefix>uev:<user>``, what an erasure deletes);
- an item PUT or DELETE is an ``op=item`` entry carrying the text, attributes and vector
  (`StreamedStore.put_item`), so other replicas do not re-encode it;
- an erasure deletes the user's event entries from the stream (``XDEL``) and their profile, and
  appends ``op=erase`` (every replica then erases its copy).

A script runs atomically and, with AOF on, is in the append-only file before its reply; an event is
acknowledged only after the script returned. AOF is checked at start-up (``redis_aof``): "require"
refuses to start without ``appendonly yes``, "warn" logs loudly. ``appendfsync everysec`` (Redis'
default) survives a killed or restarted Redis; only ``always`` also survives a power loss within the
last second.

Each replica applies the stream, in order, to its own SQLite store (`StreamedStore`, the same schema
as the embedded store): an event's ``seq`` there is derived from its stream id (`stream_seq`), so
every replica holds the same log with the same ``seq`` values, and the profiles' watermarks in Redis
(`lmrec.serve.stores.redis.RedisProfileStore`) mean the same on every replica. The position applied
so far is stored in the same SQLite transaction (meta ``stream_pos``), so a killed replica resumes
where it stopped. Following the stream is `lmrec.serve.follower.StreamFollower`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from lmrec.serve.errors import ServeError
from lmrec.serve.stores.base import Event, ItemRecord, StoredEvent
from lmrec.serve.stores.sqlite import SQLiteStore, blob_to_vector, vector_to_blob

__all__ = [
    "RedisLog",
    "StreamEntry",
    "StreamedStore",
    "Unavailable",
    "entry_id",
    "redis_call",
    "stream_seq",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: one stream entry: (entry id "ms-n", its fields)
StreamEntry = tuple[str, dict[str, bytes]]

_SEQ_BITS = 20  # ids "ms-n": n < 2**20 entries per millisecond, ms < 2**43 (year 2248)

_APPEND = """
local out = {}
local n = (#KEYS - 2) / 3
for i = 1, n do
  local k = 2 + (i - 1) * 3
  local a = (i - 1) * 7
  if redis.call('SET', KEYS[k + 1], '1', 'NX') then
    local id = redis.call('XADD', KEYS[1], '*', 'op', 'event', 'event_id', ARGV[a + 1], 'user_id', ARGV[a + 2],
      'item_id', ARGV[a + 3], 'type', ARGV[a + 4], 'value', ARGV[a + 5], 'ts', ARGV[a + 6], 'scenario', ARGV[a + 7])
    redis.call('SET', KEYS[k + 2], id)
    redis.call('RPUSH', KEYS[k + 3], id)
    redis.call('HINCRBY', KEYS[2], ARGV[a + 3], 1)
    out[i] = id
  else
    out[i] = false
  end
end
return out
"""

_ERASE = """
local ids = redis.call('LRANGE', KEYS[2], 0, -1)
for i = 1, #ids, 500 do
  redis.call('XDEL', KEYS[1], unpack(ids, i, math.min(i + 499, #ids)))
end
redis.call('DEL', KEYS[2])
local had = redis.call('DEL', KEYS[4])
local id = redis.call('XADD', KEYS[1], '*', 'op', 'erase', 'user_id', ARGV[1], 'forgotten', ARGV[2])
redis.call('SET', KEYS[3], id)
return {id, had}
"""


class Unavailable(ServeError):
    """Redis cannot be reached: the write was not acknowledged (HTTP 503 with ``Retry-After``)."""

    status = 503

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(None, message, headers={"Retry-After": str(retry_after_s)})


def stream_seq(entry: str | bytes) -> int:
    """A stream id ``"ms-n"`` as one increasing integer (the local log's ``seq``)."""
    text = entry.decode() if isinstance(entry, bytes) else entry
    ms, _, n = text.partition("-")
    return (int(ms) << _SEQ_BITS) | int(n or 0)


def entry_id(seq: int) -> str:
    """Inverse of `stream_seq`."""
    return f"{seq >> _SEQ_BITS}-{seq & ((1 << _SEQ_BITS) - 1)}"


def redis_call(url: str, fn: Callable[[], T]) -> T:
    """``fn()``, with any Redis connection or server error turned into `Unavailable` naming ``url``."""
    import redis

    try:
        return fn()
    except redis.exceptions.RedisError as exc:
        raise Unavailable(f"Redis at {url!r} is unavailable ({type(exc).__name__}: {exc}); retry later") from exc


class RedisLog:
    """The stream and its side keys in one Redis.

    Args:
        url: ``redis://host:port/db``.
        prefix: key prefix, so several services can share one Redis.
        aof: "require" refuses a Redis without ``appendonly yes``; "warn" logs it loudly.
        client: an existing ``redis.Redis`` (bytes responses), instead of ``url``.

    Raises:
        ConnectionError: Redis cannot be reached (the message names the URL).
        RuntimeError: AOF is off and ``aof="require"``.
    """

    def __init__(
        self, url: str, *, prefix: str = "lmrec:", aof: Literal["require", "warn"] = "require", client: Any = None
    ) -> None:
        import redis

        self.url = url
        self.prefix = prefix
        self.stream = f"{prefix}log"
        # Any: redis' bundled stubs type replies too loosely to use without a cast at every call
        self.client: Any = client or redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0)
        try:
            self.client.ping()
            config = self.client.config_get("append*")
        except redis.exceptions.RedisError as exc:
            raise ConnectionError(f"cannot reach Redis at {url!r} (store='redis'): {exc}") from exc
        self.aof = str(_text(config.get("appendonly", b"no"))) == "yes"
        self.fsync = str(_text(config.get("appendfsync", b"")))
        if not self.aof:
            msg = (
                f"Redis at {url!r} has appendonly=no: acknowledged events are lost when Redis restarts. "
                "Run it with --appendonly yes (or CONFIG SET appendonly yes)"
            )
            if aof == "require":
                raise RuntimeError(msg + ", or set redis_aof='warn' to serve anyway")
            log.warning("!!! %s !!!", msg)
        self._append = self.client.register_script(_APPEND)
        self._erase = self.client.register_script(_ERASE)

    def key(self, name: str) -> str:
        return f"{self.prefix}{name}"

    def call(self, fn: Callable[[], T]) -> T:
        """`redis_call` with this log's URL."""
        return redis_call(self.url, fn)

    # ------------------------------------------------------------------ writes
    def append_events(self, events: Sequence[Event]) -> list[int | None]:
        """Log a checked batch atomically (one script); per event its ``seq``, or None for an event id
        logged before (by any replica).

        Raises:
            Unavailable: Redis cannot be reached; nothing of the batch was acknowledged.
        """
        if not events:
            return []
        keys: list[str] = [self.stream, self.key("popularity")]
        args: list[Any] = []
        for e in events:
            keys += [self.key(f"eid:{e.event_id}"), self.key(f"ulast:{e.user_id}"), self.key(f"uev:{e.user_id}")]
            value = "" if e.value is None else repr(float(e.value))
            args += [e.event_id, e.user_id, e.item_id, e.type, value, repr(float(e.ts)), e.scenario or ""]
        ids = self.call(lambda: self._append(keys=keys, args=args))
        return [None if i is None else stream_seq(i) for i in ids]

    def append_item(self, record: ItemRecord) -> int:
        """Log an item PUT (or DELETE: ``record.deleted``); returns its ``seq``."""
        fields: dict[str, Any] = {
            "op": "item",
            "item_id": record.item_id,
            "text": record.text,
            "attributes": json.dumps(record.attributes, allow_nan=False),
            "vector": b"" if record.vector is None else vector_to_blob(record.vector),
            "space": record.space,
            "deleted": int(record.deleted),
        }
        return stream_seq(self.call(lambda: self.client.xadd(self.stream, fields)))

    def append_erase(self, user_id: str, *, mark_forgotten: bool) -> tuple[int, bool]:
        """Delete the user's event entries from the stream and their profile, and log the erasure, in one
        step; returns its ``seq`` and whether there was a profile."""
        keys = [self.stream, self.key(f"uev:{user_id}"), self.key(f"ulast:{user_id}"), self.key(f"profile:{user_id}")]
        entry, had = self.call(lambda: self._erase(keys=keys, args=[user_id, int(mark_forgotten)]))
        return stream_seq(entry), bool(had)

    # ------------------------------------------------------------------ reads
    def read(self, after: int, count: int = 1000, block_ms: int | None = None) -> list[StreamEntry]:
        """Entries after ``seq`` ``after``, oldest first (waiting up to ``block_ms`` for the first one)."""
        if block_ms is None:
            raw = self.call(lambda: self.client.xrange(self.stream, f"({entry_id(after)}", "+", count=count))
        else:
            got = self.call(lambda: self.client.xread({self.stream: entry_id(after)}, count=count, block=block_ms))
            raw = got[0][1] if got else []
        return [(_text(i), {_text(k): v for k, v in f.items()}) for i, f in raw]

    def user_last(self, user_id: str) -> int:
        """``seq`` of the user's last logged event or erasure (0: none)."""
        value = self.call(lambda: self.client.get(self.key(f"ulast:{user_id}")))
        return 0 if value is None else stream_seq(value)

    def tail(self) -> int:
        """``seq`` of the stream's last entry (0: empty)."""
        last = self.call(lambda: self.client.xrevrange(self.stream, "+", "-", count=1))
        return stream_seq(last[0][0]) if last else 0

    def count_after(self, after: int, cap: int = 10_000) -> int:
        """Entries after ``seq`` ``after``, counted up to ``cap``."""
        return len(self.call(lambda: self.client.xrange(self.stream, f"({entry_id(after)}", "+", count=cap)))

    def popularity(self) -> dict[str, int]:
        """Events per item over the whole stream (the shared counters)."""
        raw = self.call(lambda: self.client.hgetall(self.key("popularity")))
        return {_text(k): int(v) for k, v in raw.items()}

    def meta_get(self, name: str) -> str | None:
        value = self.call(lambda: self.client.hget(self.key("meta"), name))
        return None if value is None else _text(value)

    def meta_set(self, name: str, value: str) -> None:
        self.call(lambda: self.client.hset(self.key("meta"), name, value))

    def close(self) -> None:
        self.client.close()


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class StreamedStore(SQLiteStore):
    """A replica's SQLite copy of the stream; item writes go to the stream first.

    Events are not appended here by the service: they reach this store only through `apply`, in
    stream order, with the ``seq`` of their stream entry.

    Args:
        path: the replica's SQLite file.
        log: the shared stream.
        synchronous: SQLite ``PRAGMA synchronous``.
    """

    def __init__(self, path: str | Path, log: RedisLog, *, synchronous: Literal["FULL", "NORMAL"] = "FULL") -> None:
        super().__init__(path, synchronous=synchronous)
        self.log = log

    def put_item(self, tx: sqlite3.Connection, record: ItemRecord) -> int:
        """Log the item write on the stream (raises `Unavailable`, rolling back ``tx``), then store it."""
        self.log.append_item(record)
        return super().put_item(tx, record)

    def append_events(self, tx: sqlite3.Connection, events: Sequence[Event]) -> list[StoredEvent | None]:
        raise RuntimeError("with the Redis store, events are appended to the stream (RedisLog.append_events)")

    def in_transaction(self) -> bool:
        """Whether this thread has a read or write transaction open (it then cannot apply entries)."""
        return self._conn().in_transaction

    def position(self) -> int:
        """The ``seq`` of the last stream entry applied here (0: none)."""
        return int(self.meta_get("stream_pos") or 0)

    def apply(self, entries: Sequence[StreamEntry]) -> Applied:
        """Apply entries (after `position`, in order) in one write transaction that also moves `position`."""
        out = Applied()
        now = time.time()
        with self.write() as tx:
            for entry, f in entries:
                seq = stream_seq(entry)
                op = _text(f.get("op", b""))
                if op == "event":
                    e = StoredEvent(
                        _text(f["event_id"]),
                        _text(f["user_id"]),
                        _text(f["item_id"]),
                        _text(f["type"]),
                        float(f["value"]) if f.get("value") else None,
                        float(f["ts"]),
                        _text(f["scenario"]) or None,
                        seq=seq,
                    )
                    self._insert(tx, e, now)  # False: another worker sharing this file inserted it
                    out.events.append(e)  # either way its user's profile is caught up (idempotent)
                elif op == "item":
                    blob = f.get("vector") or b""
                    record = ItemRecord(
                        _text(f["item_id"]),
                        _text(f["text"]),
                        json.loads(_text(f["attributes"])),
                        blob_to_vector(blob) if blob else None,
                        _text(f["space"]),
                        deleted=_text(f["deleted"]) == "1",
                    )
                    SQLiteStore.put_item(self, tx, record)
                    out.items += 1
                elif op == "erase":
                    forgotten = _text(f["forgotten"]) == "1"
                    user = _text(f["user_id"])
                    out.erased[seq] = (user, forgotten, self.erase_user(tx, user, mark_forgotten=forgotten))
                else:
                    log.warning("skipped stream entry %s with unknown op %r", entry, op)
                out.position = seq
            if out.position:
                self.meta_set(tx, "stream_pos", str(out.position))
        return out

    @staticmethod
    def _insert(tx: sqlite3.Connection, e: StoredEvent, now: float) -> bool:
        cur = tx.execute(
            "INSERT OR IGNORE INTO events (seq, event_id, user_id, item_id, type, value, ts, scenario, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (e.seq, e.event_id, e.user_id, e.item_id, e.type, e.value, e.ts, e.scenario, now),
        )
        if cur.rowcount != 1:
            return False
        tx.execute(
            "INSERT INTO users (user_id, n_events, first_event_at, last_event_at) VALUES (?, 1, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET n_events = n_events + 1,"
            " first_event_at = min(coalesce(first_event_at, excluded.first_event_at), excluded.first_event_at),"
            " last_event_at = max(coalesce(last_event_at, excluded.last_event_at), excluded.last_event_at)",
            (e.user_id, e.ts, e.ts),
        )
        return True


class Applied:
    """What one `StreamedStore.apply` changed.

    Attributes:
        events: the events inserted (in stream order).
        items: item writes applied.
        erased: erasure ``seq`` -> (user, marked forgotten, events deleted).
        position: the last entry applied (0: none).
    """

    def __init__(self) -> None:
        self.events: list[StoredEvent] = []
        self.items = 0
        self.erased: dict[int, tuple[str, bool, int]] = {}
        self.position = 0
