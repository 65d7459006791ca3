"""A replica following the shared Redis Stream (`lmrec.serve.stores.redis_stream`).

`StreamFollower` applies the stream, in order, to the replica's SQLite copy (`StreamedStore.apply`)
and then to the services it serves (`attach`): item writes reach the catalogue and the FAISS index
(`RecService.catch_up_store`), events reach popularity and the users' online profiles in Redis
(`ProfileSync.catch_up_many`, a compare-and-set on the profile's watermark, so whichever replica gets
there first writes it and the others find nothing to do), erasures reach the forgotten set.

Three paths apply entries, all under one lock so entries apply once and in order:

- a background thread blocks on ``XREAD`` and applies what arrives (the replica's lag is the time
  between the stream's last entry and the last one applied: ``/health`` ``stream``, ``/metrics``
  ``lmrec_stream_lag_seconds`` and ``lmrec_stream_lag_entries``);
- a write (``POST /events``, an item PUT/DELETE, an erasure) applies the stream up to its own entry
  before it answers, so the writer's profile update is done when the client gets the answer;
- read-after-write: ``/recommend`` (any read of a user's profile) first reads the user's last entry
  id (``<prefix>ulast:<user>``, one ``GET``) and applies the stream up to it when the replica is
  behind. An event acknowledged by any replica before the request started is therefore in the
  answer; the bound is one Redis round trip plus applying the entries the replica had not applied.

When Redis is unreachable the follower keeps retrying; reads answer from what the replica holds (the
answer's ``notes`` say so) and writes answer 503 (`Unavailable`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lmrec.serve.metrics import Metrics
from lmrec.serve.service import RecService
from lmrec.serve.settings import ServeSettings
from lmrec.serve.stores.base import Event
from lmrec.serve.stores.redis_stream import (
    RedisLog,
    StreamedStore,
    StreamEntry,
    Unavailable,
    entry_id,
    stream_seq,
)

__all__ = ["StreamFollower", "open_replicated"]

log = logging.getLogger(__name__)


class StreamFollower:
    """Applies the shared stream to one replica (see the module docstring).

    Args:
        store: the replica's SQLite copy of the stream.
        log: the stream.
        batch: entries read per round trip.
        block_ms: how long the background ``XREAD`` waits for new entries.
    """

    def __init__(self, store: StreamedStore, log: RedisLog, *, batch: int = 1000, block_ms: int = 500) -> None:
        self.store = store
        self.log = log
        self.batch = batch
        self.block_ms = block_ms
        self.position = store.position()
        self.services: list[RecService] = []
        self.redis_ok = True
        self.down_since: float | None = None
        self.applied_total = 0
        self._lock = threading.RLock()
        self._erasures: OrderedDict[int, tuple[int, bool]] = OrderedDict()
        self._stop = threading.Event()
        self._status: tuple[float, dict[str, Any]] | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ wiring
    def attach(self, service: RecService) -> None:
        """Serve ``service`` too: it gets every entry applied from now on, and uses this follower for
        its writes and read-after-write (``service.profile_sync.stream``)."""
        with self._lock:
            service.profile_sync.stream = self
            self.services.append(service)

    def start(self, metrics: Metrics | None = None) -> None:
        """Start the background thread; with ``metrics``, register the lag gauges."""
        if metrics is not None:
            metrics.describe("lmrec_stream_lag_seconds", "gauge", "stream time not yet applied by this replica")
            metrics.describe("lmrec_stream_lag_entries", "gauge", "stream entries not yet applied (capped at 10000)")
            metrics.describe("lmrec_redis_up", "gauge", "1 when this replica reached Redis on its last try")
            metrics.gauge("lmrec_stream_lag_seconds", lambda: float(self.status(max_age_s=1.0)["lag_s"] or 0.0))
            metrics.gauge("lmrec_stream_lag_entries", lambda: float(self.status(max_age_s=1.0)["lag_entries"] or 0))
            metrics.gauge("lmrec_redis_up", lambda: float(self.redis_ok))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="lmrec-stream-follower", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the background thread and close the stream's connections."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self.log.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                entries = self.log.read(self.position, self.batch, block_ms=self.block_ms)
                self._up()
                if entries:
                    self.apply(entries)
            except Unavailable as exc:
                self._down(exc)
                self._stop.wait(0.5)
            except Exception:  # noqa: BLE001 - the follower must outlive one bad batch; it retries
                log.exception("applying the stream failed; retrying")
                self._stop.wait(0.5)

    def _up(self) -> None:
        if not self.redis_ok:
            log.warning("Redis at %r is reachable again", self.log.url)
        self.redis_ok, self.down_since = True, None

    def _down(self, exc: Exception) -> None:
        if self.redis_ok:
            log.error("Redis at %r is unreachable: %s", self.log.url, exc)
            self.down_since = time.time()
        self.redis_ok = False

    # ------------------------------------------------------------------ applying
    def apply(self, entries: Sequence[StreamEntry]) -> None:
        """Apply the entries after `position` (in order) to the store and the attached services."""
        with self._lock:
            fresh = [e for e in entries if stream_seq(e[0]) > self.position]
            if not fresh:
                return
            applied = self.store.apply(fresh)
            self.applied_total += len(fresh)
            for seq, (user, forgotten, n) in applied.erased.items():
                deleted = False
                for service in self._live():
                    deleted = service.profiles.delete(user) or deleted
                    if forgotten:
                        service.forgotten.add(user)
                        service.user_vectors.forget(service.model.user_map_.get(user))
                self._erasures[seq] = (n, deleted)
                while len(self._erasures) > 1000:
                    self._erasures.popitem(last=False)
            if applied.events or applied.items:
                users = list(dict.fromkeys(e.user_id for e in applied.events))
                for service in self._live():
                    service.catch_up_store()
                    if users:
                        service.profile_sync.catch_up_many(users)
            # set last: a reader that finds the position past its target (`sync_to`'s check without
            # the lock) then also finds the profiles written
            self.position = applied.position

    def _live(self) -> list[RecService]:
        self.services = [s for s in self.services if not s.retired]
        return self.services

    def sync_to(self, seq: int) -> None:
        """Apply the stream at least up to ``seq``.

        Raises:
            Unavailable: Redis cannot be reached.
        """
        if self.position >= seq or self.store.in_transaction():  # inside a snapshot: read what it holds
            return
        with self._lock:
            while self.position < seq:
                entries = self.log.read(self.position, self.batch)
                if not entries:
                    break
                self.apply(entries)

    def sync_all(self) -> None:
        """Apply the whole stream as it is now."""
        self.sync_to(self.log.tail())

    def sync_user(self, user_id: str) -> None:
        """Read-after-write: apply the stream up to the user's last logged event or erasure."""
        self.sync_to(self.log.user_last(user_id))

    # ------------------------------------------------------------------ writes
    def append_events(self, events: Sequence[Event]) -> list[int | None]:
        """Log a checked batch (`RedisLog.append_events`) and apply the stream up to it. Once the entries
        are logged the batch is acknowledged even if applying them here fails (the background thread
        applies them later)."""
        seqs = self.log.append_events(events)
        done = [s for s in seqs if s is not None]
        try:
            self.sync_to(max(done, default=0))
            self._up()
        except Unavailable as exc:
            self._down(exc)
            log.warning("logged %d events but could not apply them yet: %s", len(done), exc)
        return seqs

    def erase(self, user_id: str, *, mark_forgotten: bool) -> tuple[int, bool]:
        """Erase the user on every replica (`RedisLog.append_erase`); returns the events deleted here and
        whether the profile was deleted."""
        seq, had_profile = self.log.append_erase(user_id, mark_forgotten=mark_forgotten)
        self.sync_to(seq)
        with self._lock:
            n, deleted = self._erasures.pop(seq, (0, False))
        return n, had_profile or deleted

    # ------------------------------------------------------------------ state
    def status(self, max_age_s: float = 0.0) -> dict[str, Any]:
        """Position, lag and Redis reachability (``/health``'s ``stream``); an answer computed less than
        ``max_age_s`` seconds ago is reused (one ``/metrics`` scrape reads several gauges)."""
        cached = self._status
        if cached is not None and time.monotonic() - cached[0] < max_age_s:
            return cached[1]
        out: dict[str, Any] = {
            "redis_url": self.log.url,
            "redis_up": self.redis_ok,
            "aof": self.log.aof,
            "position": entry_id(self.position),
            "applied": self.applied_total,
            "lag_entries": None,
            "lag_s": None,
        }
        try:
            tail = self.log.tail()
            behind = tail > self.position
            out["lag_entries"] = self.log.count_after(self.position) if behind else 0
            out["lag_s"] = max(0.0, ((tail >> 20) - (self.position >> 20)) / 1000.0) if behind else 0.0
        except Unavailable:
            out["redis_up"] = False
        self._status = (time.monotonic(), out)
        return out

    def problems(self) -> list[str]:
        """Why ``/health`` is degraded on this replica's side ([] when it is not)."""
        if self.redis_ok:
            return []
        return [f"Redis at {self.log.url!r} is unreachable: writes answer 503, reads use this replica's state"]

    def notes(self) -> list[str]:
        """What a recommendation answered while Redis was unreachable says about it."""
        if self.redis_ok:
            return []
        return [
            f"Redis is unreachable: answered from this replica's own state (stream position "
            f"{entry_id(self.position)}); events acknowledged by other replicas since may be missing"
        ]

    def mark(self, ok: bool, exc: Exception | None = None) -> None:
        """Record the outcome of a Redis call made on this follower's behalf."""
        if ok:
            self._up()
        else:
            self._down(exc or RuntimeError("unreachable"))


def open_replicated(settings: ServeSettings, path: str | Path) -> tuple[StreamedStore, StreamFollower]:
    """The replica's SQLite copy at ``path`` and its follower, caught up with the stream as it is now.

    Raises:
        ConnectionError: Redis cannot be reached (names the URL).
        RuntimeError: Redis runs without AOF and ``settings.redis_aof`` is "require".
    """
    url = settings.redis_url or "redis://127.0.0.1:6379/0"
    stream_log = RedisLog(url, prefix=settings.redis_prefix, aof=settings.redis_aof)
    # the stream is the durable copy: a commit lost here at a power cut rolls back together with the
    # stored position and is applied again, so the local copy need not fsync every commit
    store = StreamedStore(path, stream_log, synchronous="NORMAL")
    follower = StreamFollower(store, stream_log)
    follower.sync_all()
    log.info(
        "replica at stream position %s (%d entries applied at start)",
        entry_id(follower.position),
        follower.applied_total,
    )
    return store, follower
