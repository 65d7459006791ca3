"""Records and interfaces of the service's stores.

The event log is the source of truth; an online profile is a materialised view of it with a per-user
watermark (``last_seq``, the sequence number of the last event it has absorbed). Bringing a profile up
to date is therefore always the same operation, "absorb the user's events after ``last_seq``", whether
it runs inside the SQLite transaction that appended the events or afterwards against Redis, and at
start-up it repairs any profile that a crash left behind the log.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Event", "ItemRecord", "Profile", "ProfileStore", "ProfileUpdate", "StoredEvent", "UserRecord"]


@dataclass(frozen=True)
class Event:
    """One user action as received (ids are external strings; ``ts`` in seconds since the epoch)."""

    event_id: str
    user_id: str
    item_id: str
    type: str
    value: float | None
    ts: float
    scenario: str | None = None


@dataclass(frozen=True)
class StoredEvent(Event):
    """An event as the log holds it: ``seq`` orders events by commit."""

    seq: int = 0


@dataclass
class Profile:
    """A user's online profile.

    Attributes:
        vector: (d,) float32, the decayed blend of the vectors of the items the user acted on
            (not normalised; its direction is what counts).
        n_events: events absorbed.
        last_seq: ``seq`` of the last absorbed event (the watermark).
        last_ts: timestamp of the last absorbed event, for time decay.
        space: name of the vector space ``vector`` lives in; a profile from another space is discarded.
    """

    vector: np.ndarray
    n_events: int = 0
    last_seq: int = 0
    last_ts: float = 0.0
    space: str = ""


@dataclass(frozen=True)
class UserRecord:
    """What the log knows about a user."""

    user_id: str
    n_events: int
    first_event_at: float | None
    last_event_at: float | None
    forgotten: bool = False


@dataclass
class ItemRecord:
    """An item written through the API (PUT), as stored; ``deleted`` marks a DELETE; ``problem`` says
    why a stored row does not make a record (its other fields are then best effort)."""

    item_id: str
    text: str
    attributes: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None
    space: str = ""
    deleted: bool = False
    version: int = 0
    problem: str | None = None  # set when the stored row cannot be read back (replay sets it aside)


#: absorbs events (in ``seq`` order) into a profile (None: the user has none yet); returns the new one
ProfileUpdate = Callable[[Profile | None, list[StoredEvent]], Profile | None]


class ProfileStore(ABC):
    """Where online profiles live. Implementations: SQLite (embedded) and Redis (shared).

    Attributes:
        transactional: True when ``catch_up`` can run inside the event log's write transaction
            (same database), so events and profiles commit together.
    """

    transactional: bool = False

    @abstractmethod
    def get(self, user_id: str) -> Profile | None:
        """The user's profile, or None."""

    @abstractmethod
    def catch_up(
        self,
        user_id: str,
        events_since: Callable[[int], list[StoredEvent]],
        update: ProfileUpdate,
        tx: Any = None,
        *,
        space: str | None = None,
    ) -> Profile | None:
        """Absorb the events after the profile's watermark, atomically against concurrent writers.

        Args:
            user_id: whose profile.
            events_since: ``seq -> events of this user with a larger seq``, oldest first.
            update: the profile math.
            tx: the open SQLite connection when the store is transactional.
            space: the vector space the profile must live in; a stored profile from another space
                (the model was swapped) counts as none, so every logged event is replayed into a new
                one (`update` then gets None). None: any space is taken as is.

        Returns:
            The profile now stored (None when there is none).
        """

    def catch_up_many(
        self,
        user_ids: Sequence[str],
        events_since: Callable[[str, int], list[StoredEvent]],
        update: ProfileUpdate,
        tx: Any = None,
        *,
        space: str | None = None,
    ) -> None:
        """`catch_up` for several users (``events_since(user, seq)``); stores may batch the round trips."""
        for user in dict.fromkeys(user_ids):
            self.catch_up(user, functools.partial(events_since, user), update, tx, space=space)

    @staticmethod
    def _current(profile: Profile | None, space: str | None) -> Profile | None:
        """``profile``, or None when it lives in another space than ``space`` (it must be rebuilt)."""
        return None if profile is None or (space is not None and profile.space != space) else profile

    @abstractmethod
    def delete(self, user_id: str, tx: Any = None) -> bool:
        """Erase the profile; True when there was one."""

    @abstractmethod
    def delete_all(self, tx: Any = None) -> None:
        """Erase every profile (used when the vector space changed and profiles must be rebuilt)."""

    @abstractmethod
    def watermarks(self, user_ids: Iterable[str]) -> dict[str, int]:
        """``last_seq`` of each user's profile (0 for users without one)."""

    def close(self) -> None:  # noqa: B027 - an optional hook: stores without connections keep it
        """Release connections."""
