"""Retention: logged events (and stored queries and impressions) are deleted once they are older than
their type's ``retention_days``, while the online profiles keep their effect.

An event is deleted only after its user's profile has absorbed it: per batch of users, the profiles
are first brought up to the log (`ProfileSync.catch_up_many`), then the user's expired events up to
the profile's watermark are deleted, in the same SQLite transaction when the profile store is
SQLite's. The profile, being a decayed blend of the items acted on, keeps their effect; the users
row keeps its counts. What is lost with the raw events: their replay (a model swap to another
vector space rebuilds profiles from the events still held), their share of item popularity after
a restart, and "already seen" exclusion of their items.

Ages count from when the service received an event (``received_at``, the server's clock), not from
the client's ``timestamp``. Logged ``/recommend`` answers (impressions, `lmrec.serve.feedback`) and
the responses to them go after ``retention_days["impression"]`` (else ``"*"``) days; the re-ranker
keeps what it learned from them. `RetentionJob` runs `enforce_retention` at start-up and every
``retention_interval_s`` seconds, in a thread, as a write (a model swap waits for it).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from lmrec.serve.feedback.impressions import ImpressionLog
from lmrec.serve.service import RecService
from lmrec.serve.settings import RETENTION_KEYS
from lmrec.serve.swap import ModelHost

__all__ = ["RetentionJob", "RetentionReport", "enforce_retention"]

log = logging.getLogger(__name__)

DAY_S = 86_400.0


@dataclass(frozen=True)
class RetentionReport:
    """What one run deleted."""

    events: int = 0
    queries: int = 0
    impressions: int = 0


def enforce_retention(service: RecService, now: float, batch: int = 200) -> RetentionReport:
    """Delete the events and stored queries past ``service.settings.retention_days`` at time ``now``.

    Args:
        service: the service whose store and profiles to use.
        now: the current time, seconds since the epoch (tests pass a fake one).
        batch: users per write transaction.
    """
    days = service.settings.retention_days
    if not days:
        return RetentionReport()
    cutoffs = {t: now - d * DAY_S for t, d in days.items() if t not in RETENTION_KEYS}
    default = now - days["*"] * DAY_S if "*" in days else None
    sync, store = service.profile_sync, service.store
    users = store.users_with_expired_events(cutoffs, default) if cutoffs or default is not None else []
    events = 0
    for start in range(0, len(users), batch):
        chunk = users[start : start + batch]
        if service.profiles.transactional:
            with store.write() as tx:
                sync.catch_up_many(chunk, tx)
                marks = service.profiles.watermarks(chunk)
                events += sum(store.delete_expired_events(tx, u, marks.get(u, 0), cutoffs, default) for u in chunk)
        else:
            sync.catch_up_many(chunk)
            marks = service.profiles.watermarks(chunk)
            with store.write() as tx:
                events += sum(store.delete_expired_events(tx, u, marks.get(u, 0), cutoffs, default) for u in chunk)
    query_days = days.get("query", days.get("*"))
    queries = store.delete_queries_before(now - query_days * DAY_S) if query_days is not None else 0
    shown_days = days.get("impression", days.get("*"))
    shown = ImpressionLog(store).delete_before(now - shown_days * DAY_S) if shown_days is not None else 0
    service.metrics.inc("lmrec_events_expired_total", events)
    service.metrics.inc("lmrec_queries_expired_total", queries)
    service.metrics.inc("lmrec_impressions_expired_total", shown)
    if events or queries or shown:
        store.checkpoint()
        log.info(
            "retention: deleted %d expired events of %d users, %d stored queries and %d impressions",
            events,
            len(users),
            queries,
            shown,
        )
    return RetentionReport(events, queries, shown)


class RetentionJob:
    """Runs `enforce_retention` on the current service now and then every ``interval_s`` seconds.

    Args:
        host: holds the current service.
        interval_s: seconds between runs.
        clock: the time, seconds since the epoch (tests pass a fake one).
    """

    def __init__(self, host: ModelHost, interval_s: float, clock: Callable[[], float] = time.time) -> None:
        self.host = host
        self.interval_s = interval_s
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> RetentionReport:
        """One run, as a write request: a model swap waits for it to finish."""
        with self.host.writing() as service:
            return enforce_retention(service, self.clock())

    def _run(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # noqa: BLE001 - a failed run (a closed store at shutdown) must not end the job
                log.exception("the retention run failed; retrying in %.0fs", self.interval_s)
            if self._stop.wait(self.interval_s):
                return

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lmrec-retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
