"""Online profiles in Redis, shared by the replicas of a service.

The event log is the shared Redis Stream, of which each replica applies a copy to its SQLite store
(`lmrec.serve.stores.redis_stream`); ``seq`` is the same on every replica. A profile is a Redis hash with the vector and its watermark
``last_seq``; ``catch_up`` reads it under ``WATCH``, absorbs the logged events after the watermark and
writes it back in ``MULTI``/``EXEC``, retrying when another process got there first. Because ``seq``
follows the stream's order and every replica catches up from its copy of the log, no logged event is
skipped, and a crash between the append and the profile write is repaired by the next replica that
applies the entry (or at the next start-up). A Redis error is `Unavailable` (HTTP 503).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, cast

from lmrec.serve.stores.base import Profile, ProfileStore, ProfileUpdate, StoredEvent
from lmrec.serve.stores.redis_stream import redis_call
from lmrec.serve.stores.sqlite import blob_to_vector, vector_to_blob

__all__ = ["RedisProfileStore"]

log = logging.getLogger(__name__)


# replace a profile only if its watermark is still ARGV[1] (a missing profile has watermark 0)
_CAS = """
local seen = redis.call('HGET', KEYS[1], 'last_seq')
if (seen or '0') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
if #ARGV > 1 then redis.call('HSET', KEYS[1], unpack(ARGV, 2)) end
return 1
"""


class RedisProfileStore(ProfileStore):
    """Profiles as Redis hashes ``<prefix>profile:<user_id>``.

    Args:
        url: ``redis://host:port/db``.
        prefix: key prefix, so several services can share one Redis.
        client: an existing ``redis.Redis`` (bytes responses), instead of ``url``.

    Raises:
        ConnectionError: Redis cannot be reached (the message names the URL).
    """

    transactional = False

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", *, prefix: str = "lmrec:", client: Any = None) -> None:
        import redis

        self._redis = redis
        self.url = url
        self.prefix = prefix
        self.client = (
            client if client is not None else redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=1.0)
        )
        try:
            self.client.ping()
        except redis.exceptions.ConnectionError as exc:
            raise ConnectionError(f"cannot reach Redis at {url!r} (profile_store='redis'): {exc}") from exc
        self._cas = self.client.register_script(_CAS)

    def _key(self, user_id: str) -> str:
        return f"{self.prefix}profile:{user_id}"

    @staticmethod
    def _parse(raw: Mapping[Any, Any]) -> Profile | None:
        if not raw:
            return None
        return Profile(
            vector=blob_to_vector(raw[b"vector"]),
            n_events=int(raw[b"n_events"]),
            last_seq=int(raw[b"last_seq"]),
            last_ts=float(raw[b"last_ts"]),
            space=raw[b"space"].decode(),
        )

    @staticmethod
    def _fields(profile: Profile) -> dict[str | bytes, Any]:
        return {
            "vector": vector_to_blob(profile.vector),
            "n_events": profile.n_events,
            "last_seq": profile.last_seq,
            "last_ts": repr(float(profile.last_ts)),
            "space": profile.space,
        }

    def get(self, user_id: str) -> Profile | None:
        return self._parse(redis_call(self.url, lambda: self.client.hgetall(self._key(user_id))))

    def catch_up(
        self,
        user_id: str,
        events_since: Callable[[int], list[StoredEvent]],
        update: ProfileUpdate,
        tx: Any = None,
        *,
        space: str | None = None,
    ) -> Profile | None:
        return redis_call(self.url, lambda: self._catch_up(user_id, events_since, update, space))

    def _catch_up(
        self, user_id: str, events_since: Callable[[int], list[StoredEvent]], update: ProfileUpdate, space: str | None
    ) -> Profile | None:
        key = self._key(user_id)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    stored = self._parse(pipe.hgetall(key))
                    profile = self._current(stored, space)
                    events = events_since(profile.last_seq if profile else 0)
                    if not events and (stored is None or profile is not None):
                        pipe.unwatch()
                        return profile
                    new = update(profile, events) if events else None
                    pipe.multi()
                    pipe.delete(key)
                    if new is not None:
                        pipe.hset(key, mapping=cast(Any, self._fields(new)))  # redis' stub types keys too narrowly
                    pipe.execute()
                    return new
                except self._redis.WatchError:
                    log.debug("profile of %r changed under us; retrying", user_id)

    def catch_up_many(
        self,
        user_ids: Sequence[str],
        events_since: Callable[[str, int], list[StoredEvent]],
        update: ProfileUpdate,
        tx: Any = None,
        *,
        space: str | None = None,
    ) -> None:
        """Two round trips for the whole batch: read every profile, then write each one only if its
        watermark is still the one read (a compare-and-set script); a user who lost that race to another
        process goes through the one-user `catch_up`."""
        redis_call(self.url, lambda: self._catch_up_many(user_ids, events_since, update, space))

    def _catch_up_many(
        self,
        user_ids: Sequence[str],
        events_since: Callable[[str, int], list[StoredEvent]],
        update: ProfileUpdate,
        space: str | None,
    ) -> None:
        users = list(dict.fromkeys(user_ids))
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.hgetall(self._key(user))
        current = [self._parse(raw) for raw in pipe.execute()]
        writes = []
        for user, stored in zip(users, current):
            profile = self._current(stored, space)
            events = events_since(user, profile.last_seq if profile else 0)
            if events:  # the compare-and-set checks the stored watermark, whatever space it is in
                writes.append((user, stored.last_seq if stored else 0, update(profile, events)))
        if not writes:
            return
        pipe = self.client.pipeline(transaction=False)
        for user, seen_seq, new in writes:
            fields = [] if new is None else [x for pair in self._fields(new).items() for x in pair]
            self._cas(keys=[self._key(user)], args=[str(seen_seq), *fields], client=pipe)
        for (user, _, _), ok in zip(writes, pipe.execute()):
            if not ok:
                self.catch_up(user, functools.partial(events_since, user), update, space=space)

    def delete(self, user_id: str, tx: Any = None) -> bool:
        return bool(redis_call(self.url, lambda: self.client.delete(self._key(user_id))))

    def delete_all(self, tx: Any = None) -> None:
        keys = list(self.client.scan_iter(match=f"{self.prefix}profile:*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])

    def watermarks(self, user_ids: Iterable[str]) -> dict[str, int]:
        users = list(user_ids)
        pipe = self.client.pipeline(transaction=False)
        for user in users:
            pipe.hget(self._key(user), "last_seq")
        values = redis_call(self.url, pipe.execute)
        return {u: int(v) if v is not None else 0 for u, v in zip(users, values)}

    def close(self) -> None:
        self.client.close()
