"""Online profiles kept in step with the event log, and the cached offline user vectors.

A service's online profiles live in a `ProfileStore` (SQLite or Redis) beside the durable SQLite
event log. `ProfileSync` keeps what one service derives from that log in step with it, in the
service's vector space:

- ``ingest``: a batch is checked in full (one bad event rejects the whole batch, and nothing is
  written), then committed to the log and folded into its users' profiles (in the same write
  transaction when the profile store is transactional), and only then counted in item popularity;
- ``recover``: at start, every profile behind its user's last logged event is caught up (all of them
  are rebuilt when the vector space changed);
- ``rebuild``: after a model swap, a background thread (`lmrec.serve.swap.ModelHost`) rewrites every
  profile stored in the old space; until a user's turn comes, ``online`` replays their log on the fly;
- ``catch_up_popularity``: item popularity from the events logged since the last call (by this or
  another service sharing the log);
- ``erase``: a user's events and profile go together.

With the Redis store (``profile_store="redis"``) the log is a shared Redis Stream and ``stream`` is
the replica's `lmrec.serve.follower.StreamFollower`: ``ingest`` appends to the stream (Redis decides
duplicates across replicas) and applies it up to the batch before answering, ``online`` first
applies the stream up to the user's last event (read-after-write across replicas) and, when Redis
is unreachable, replays the user's events this replica holds, and ``erase`` goes through the stream
so every replica erases.

`UserVectorCache` holds the model's (offline) user vectors, which change only with the model.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import numpy as np

from lmrec.serve.errors import BadRequest, ServeError
from lmrec.serve.items import ServedItems
from lmrec.serve.profiles import absorb
from lmrec.serve.schemas import EventIn, EventsResponse
from lmrec.serve.settings import ServeSettings
from lmrec.serve.space import VectorSpace
from lmrec.serve.stores.base import Event, Profile, ProfileStore, StoredEvent
from lmrec.serve.stores.sqlite import SQLiteStore

__all__ = ["EventStream", "ProfileSync", "UserVectorCache"]

log = logging.getLogger(__name__)


class EventStream(Protocol):
    """The shared log as `ProfileSync` uses it (`lmrec.serve.follower.StreamFollower`)."""

    redis_ok: bool

    def append_events(self, events: Sequence[Event]) -> list[int | None]: ...

    def erase(self, user_id: str, *, mark_forgotten: bool) -> tuple[int, bool]: ...

    def sync_user(self, user_id: str) -> None: ...

    def mark(self, ok: bool, exc: Exception | None = None) -> None: ...

    def notes(self) -> list[str]: ...


class ProfileSync:
    """The online profiles and logged-event popularity of one service, in its vector space.

    Args:
        settings: the service settings (event weights, profile decay, rating scale).
        store: the SQLite event log.
        profiles: the online-profile store.
        items: the served items (their vectors are what profiles absorb).
        space: the vector space profiles are written in (``space.name`` tags every profile).
    """

    def __init__(
        self,
        settings: ServeSettings,
        store: SQLiteStore,
        profiles: ProfileStore,
        items: ServedItems,
        space: VectorSpace,
    ) -> None:
        self.settings = settings
        self.store = store
        self.profiles = profiles
        self.items = items
        self.space = space
        self._events_seq = 0  # the log's seq up to which event popularity was counted
        self._pop_lock = threading.Lock()
        self.stream: EventStream | None = None  # set by StreamFollower.attach (Redis store)

    # ------------------------------------------------------------------ popularity
    def catch_up_popularity(self) -> None:
        """Add the events logged after the last call (all of them on the first) to item popularity."""
        with self._pop_lock:  # the stream follower and a swap may both call it
            with self.store.snapshot():  # the counts and their watermark from one state of the log
                seq = self.store.max_event_seq()
                counts = self.store.item_event_counts(self._events_seq, self.popular_types())
            self._events_seq = seq
            self._add_event_popularity(counts)

    def popular_types(self) -> frozenset[str]:
        """Event types that count toward item popularity: those with a positive weight (a ``dislike``,
        ``dismiss`` or ``skip`` says the user did not want the item, so it must not make it popular)."""
        return frozenset(t for t, w in self.settings.event_weights.items() if w > 0)

    def _add_event_popularity(self, counts: Mapping[str, int]) -> None:
        rows = [(self.items.any_row(i), c) for i, c in counts.items()]
        logged = [(r, c) for r, c in rows if r is not None]
        if logged:
            self.items.add_popularity([r for r, _ in logged], np.asarray([c for _, c in logged], dtype=np.float64))

    # ------------------------------------------------------------------ profiles
    def online(self, user_id: str | None) -> Profile | None:
        """The user's online profile in this space; None for no user or an empty profile.

        A stored profile from another space (written under the previous model, not yet rebuilt by
        `rebuild`) is replayed here from the user's whole event log, without writing it back:
        answers stay right for users with live events from the first request after a swap on.
        """
        if user_id is None:
            return None
        if self.stream is not None:
            profile = self._shared_profile(user_id)
        else:
            profile = self.profiles.get(user_id)
        if profile is not None and profile.space != self.space.name:
            events = self.store.events_since(user_id, 0)
            profile = self.absorb(None, events) if events else None
        if profile is None or not np.any(profile.vector):
            return None
        return profile

    def _shared_profile(self, user_id: str) -> Profile | None:
        """The user's profile in Redis after applying the stream up to their last event; while Redis
        is unreachable, their events in this replica's copy of the log replayed."""
        assert self.stream is not None
        try:
            self.stream.sync_user(user_id)
            profile = self.profiles.get(user_id)
        except ServeError as exc:  # Unavailable: degrade to what this replica holds
            self.stream.mark(False, exc)
            events = self.store.events_since(user_id, 0)
            return self.absorb(None, events) if events else None
        return profile

    def sync_user(self, user_id: str) -> None:
        """Read-after-write across replicas: apply the shared stream up to the user's last event (no-op
        for the SQLite store; while Redis is unreachable the replica answers from what it holds)."""
        if self.stream is None:
            return
        try:
            self.stream.sync_user(user_id)
        except ServeError as exc:
            self.stream.mark(False, exc)

    def notes(self) -> list[str]:
        """Notes for an answer made while the shared store is unreachable ([] otherwise)."""
        return [] if self.stream is None else self.stream.notes()

    def absorb(self, profile: Profile | None, events: list[StoredEvent]) -> Profile:
        """Fold ``events`` (oldest first) into ``profile`` (None: a new one); see `lmrec.serve.profiles.absorb`.

        Events on items no longer served, or of a type without a weight, carry no vector.
        """
        s = self.settings
        vectors = []
        for e in events:
            row = self.items.any_row(e.item_id)
            vectors.append(None if row is None or e.type not in s.event_weights else self.items.vector(row))
        return absorb(
            profile,
            events,
            vectors,
            alpha=s.profile_alpha,
            weights=s.event_weights,
            space=self.space.name,
            rating_scale=s.rating_scale,
            half_life_s=s.profile_half_life_s,
        )

    def catch_up_many(self, user_ids: Sequence[str], tx: Any = None) -> None:
        """Absorb each user's logged events newer than their profile (inside ``tx`` when given)."""
        self.profiles.catch_up_many(
            user_ids, lambda user, seq: self.store.events_since(user, seq, tx), self.absorb, tx, space=self.space.name
        )

    def check(self, events: Sequence[EventIn]) -> list[Event]:
        """The batch as log events, checked in full before anything is written.

        Raises:
            BadRequest: one or more events are bad (an unknown type or item, a rating without a value,
                a non-finite value, a negative or non-finite timestamp, an ``event_id`` repeated within
                the batch); ``field`` names the first, ``errors`` lists them all.
        """
        s = self.settings
        now = time.time()
        valid: list[Event] = []
        errors: list[dict[str, str]] = []
        first: dict[str, int] = {}
        for i, e in enumerate(events):
            ts = _seconds(e.timestamp)
            if e.event_id in first:
                error = ("event_id", f"{e.event_id!r} repeats events[{first[e.event_id]}]")
            elif e.type not in s.event_weights:
                error = ("type", f"unknown event type {e.type!r}; known: {sorted(s.event_weights)}")
            elif self.items.row(e.item_id) is None:
                error = ("item_id", f"unknown item {e.item_id!r}")
            elif e.type == "rating" and e.value is None:
                error = ("value", "a rating event needs a value")
            elif e.value is not None and not math.isfinite(e.value):
                error = ("value", f"expected a finite number, got {e.value!r}")
            elif ts is not None and not (math.isfinite(ts) and ts >= 0):
                error = ("timestamp", f"expected a finite time at or after 1970-01-01, got {e.timestamp!r}")
            else:
                error = None
            first.setdefault(e.event_id, i)
            if error is not None:
                errors.append({"field": f"events[{i}].{error[0]}", "msg": error[1]})
                continue
            valid.append(
                Event(
                    e.event_id, e.user_id, e.item_id, e.type, e.value, float(ts if ts is not None else now), e.scenario
                )
            )
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            field, msg = errors[0]["field"], errors[0]["msg"]
            raise BadRequest(field, f"{msg}{more}; the batch was not logged", errors)
        return valid

    def ingest(self, events: Sequence[EventIn]) -> EventsResponse:
        """Check the whole batch (`check`), log it durably (committed before returning), absorb it into
        the users' profiles, then count its positive events (`popular_types`) in item popularity.

        The caller checks the batch size and counts the outcome in its metrics.
        """
        valid = self.check(events)
        if self.stream is not None:  # popularity and profiles follow from applying the stream
            seqs = self.stream.append_events(valid)
            n = sum(s is not None for s in seqs)
            duplicates = [e.user_id for e, s in zip(valid, seqs) if s is None]
            if duplicates:  # a retried batch repairs a profile whose write failed after the append
                try:
                    self.catch_up_many(duplicates)
                except ServeError as exc:
                    self.stream.mark(False, exc)
            return EventsResponse(accepted=n, duplicates=len(valid) - n, rejected=[])
        accepted: list[StoredEvent] = []
        if valid:
            with self.store.write() as tx:
                accepted = [x for x in self.store.append_events(tx, valid) if x is not None]
                if self.profiles.transactional:
                    self.catch_up_many([e.user_id for e in accepted], tx)
            if not self.profiles.transactional:
                # duplicates' users too: a retried batch repairs a profile whose write failed after the commit
                self.catch_up_many([e.user_id for e in valid])
        popular = self.popular_types()
        rows = [self.items.any_row(e.item_id) for e in accepted if e.type in popular]
        self.items.add_popularity([r for r in rows if r is not None])
        return EventsResponse(accepted=len(accepted), duplicates=len(valid) - len(accepted), rejected=[])

    def recover(self) -> int:
        """Bring every profile up to its user's last logged event (after a crash or a space change).

        Returns:
            How many profiles were behind the log.
        """
        stored = self._profile_space()
        if stored != self.space.name:
            if stored is not None:
                log.info("vector space changed from %s to %s: rebuilding every profile", stored, self.space.name)
            self.profiles.delete_all()
            self._set_profile_space()
        if self.profiles.transactional:  # SQLite: profiles that cannot be read back are rebuilt from the log
            dropped = self.store.drop_unreadable_profiles(self.space.name, self.space.dim)
            if dropped:
                log.warning("%d stored profiles could not be read back; rebuilding them from the event log", dropped)
        marks = self.store.event_watermarks()
        have = self.profiles.watermarks(marks)
        behind = [user for user, seq in marks.items() if have.get(user, 0) < seq]
        for start in range(0, len(behind), 1000):
            self.catch_up_many(behind[start : start + 1000])
        if behind:
            log.info("caught up %d profiles with the event log", len(behind))
        return len(behind)

    def _profile_space(self) -> str | None:
        """The space the stored profiles live in: kept with them (in Redis for the shared store, so a
        new replica with an empty local copy does not take the profiles for stale)."""
        log_ = getattr(self.store, "log", None)
        return self.store.meta_get("profile_space") if log_ is None else log_.meta_get("profile_space")

    def _set_profile_space(self) -> None:
        log_ = getattr(self.store, "log", None)
        if log_ is not None:
            log_.meta_set("profile_space", self.space.name)
            return
        with self.store.write() as tx:
            self.store.meta_set(tx, "profile_space", self.space.name)

    def rebuild(self, batch: int = 200, stop: Callable[[], bool] = lambda: False) -> int:
        """Rewrite every user's profile that lives in another space (and catch up any that is behind),
        from the event log, a batch of users per write transaction.

        Args:
            batch: users per write transaction.
            stop: checked before each batch; the rebuild ends early once it returns True.

        Returns:
            How many users were visited.
        """
        self._set_profile_space()
        users = sorted(self.store.event_watermarks())
        done = 0
        for start in range(0, len(users), batch):
            if stop():
                break
            chunk = users[start : start + batch]
            if self.profiles.transactional:
                with self.store.write() as tx:
                    self.catch_up_many(chunk, tx)
            else:
                self.catch_up_many(chunk)
            done += len(chunk)
        log.info("profiles of %d users checked against the %s space", done, self.space.name)
        return done

    def erase(self, user_id: str, *, mark_forgotten: bool) -> tuple[int, bool]:
        """Delete the user's logged events and online profile (in one write transaction when the profile
        store is transactional); ``mark_forgotten`` records the erasure of a user the model knows.

        Returns:
            How many events were deleted, and whether a profile was.
        """
        if self.stream is not None:
            return self.stream.erase(user_id, mark_forgotten=mark_forgotten)
        with self.store.write() as tx:
            n = self.store.erase_user(tx, user_id, mark_forgotten=mark_forgotten)
            deleted = self.profiles.delete(user_id, tx) if self.profiles.transactional else False
        if not self.profiles.transactional:
            deleted = self.profiles.delete(user_id)
        return n, deleted


def _seconds(timestamp: float | datetime | None) -> float | None:
    """An event time in seconds since the epoch (NaN for a date the platform cannot convert)."""
    if not isinstance(timestamp, datetime):
        return timestamp
    try:
        return timestamp.timestamp()
    except (OverflowError, OSError, ValueError):
        return math.nan


class UserVectorCache:
    """The model's vectors of known users (per scenario), cached LRU: they only change with the model.

    Args:
        space: the vector space that computes a user's vector (`VectorSpace.user_vector`).
        items: the served items (their current index vectors go to ``space.user_vector``).
        max_size: the most (user, scenario) vectors kept.
    """

    def __init__(self, space: VectorSpace, items: ServedItems, max_size: int = 100_000) -> None:
        self.space = space
        self.items = items
        self.max_size = max_size
        self._cache: OrderedDict[tuple[int, int | None], np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, u: int, scenario_id: int | None = None) -> np.ndarray | None:
        """The vector of model user ``u`` (in a scenario), shape ``(dim,)``; None when the space has none."""
        key = (u, scenario_id)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        vec = self.space.user_vector(u, self.items.index.vectors, scenario=scenario_id)
        with self._lock:
            self._cache[key] = vec
            if len(self._cache) > self.max_size:
                self._cache.popitem(last=False)
        return vec

    def forget(self, u: int) -> None:
        """Drop every cached vector of model user ``u``."""
        with self._lock:
            for key in [key for key in self._cache if key[0] == u]:
                del self._cache[key]
