"""Model hot-swap: serve a new model version without failing a request.

`ModelHost` holds the `RecService` that new requests get. A swap (``POST /admin/model``, or
`VersionWatcher` seeing a new version) builds the successor fully off to the side with
`lmrec.serve.loading.open_successor`: the new model, its vector space, its item index and its
catalogue, sharing the old service's event log, profile store, rules and metrics. Then, while no
write request (events, item PUT/DELETE, user erasure) is running, the successor applies what was
written since it was built and one reference is replaced. A request resolves its service once, so
in-flight requests finish on the old model and new ones use the new model; a failed load leaves the
old model serving and says why.

What carries over:

- the event log, users and erasures: the same SQLite database;
- items PUT or DELETEd while serving: replayed from the store into the new catalogue (re-encoded
  when the vector space changed);
- online profiles: a profile lives in one vector space (a language model's own space changes with
  every version; a text encoder's space stays when the encoder does). Profiles from the old space are
  replayed from the user's events on the fly when read (`ProfileSync.online`), and a background
  thread rewrites them all in the new space after the swap (`RecService.rebuild_profiles`), so
  ``/recommend`` answers for users with live events are right from the first request on.

Directory of versions (``--model-dir-watch DIR``): see `lmrec.serve.versions`. The watcher serves
the newest complete version whenever it changes; a version that fails to load is not retried until
its ``READY`` file is written again, and an admin swap to another directory stays until a newer
version is published.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lmrec.serve import heap
from lmrec.serve.errors import BadRequest, Conflict
from lmrec.serve.index import RWLock
from lmrec.serve.loading import open_successor
from lmrec.serve.schemas import ModelStatus, ModelSwapResponse
from lmrec.serve.service import RecService
from lmrec.serve.versions import READY_MARKER, complete_versions, newest_version

__all__ = [
    "NOT_BELOW_ROOT",
    "READY_MARKER",
    "ModelHost",
    "VersionWatcher",
    "complete_versions",
    "model_dir_below",
    "newest_version",
]

log = logging.getLogger(__name__)

#: the one answer to a swap path that is not a model directory below the models root
NOT_BELOW_ROOT = "no model directory at this path below the models root"


def model_dir_below(root: str | Path, path: str | Path) -> Path:
    """``path`` resolved (symlinks and ``..`` followed; relative paths from ``root``), when it is a
    directory with a ``config.json`` at or below the resolved ``root``.

    Raises:
        ValueError: `NOT_BELOW_ROOT` for any other path (missing, a file, outside, unreadable, ...).
    """
    try:
        base = Path(root).resolve(strict=True)
        given = Path(path)
        candidate = (given if given.is_absolute() else base / given).resolve(strict=True)
        if candidate.is_relative_to(base) and candidate.is_dir() and (candidate / "config.json").is_file():
            return candidate
    except (OSError, RuntimeError, ValueError):  # missing, a symlink loop, a NUL byte, no permission
        pass
    raise ValueError(NOT_BELOW_ROOT)


class ModelHost:
    """The service that new requests get, and atomic swaps of it.

    Args:
        service: the open service of the first model.
        encoder: the text encoder injected into `create_app` (tests), reused by later models.
    """

    def __init__(self, service: RecService, *, encoder: Any = None) -> None:
        self._service = service
        self.encoder = encoder
        self.swap_failures = 0
        self.last_error: str | None = None
        self.watching: Path | None = None
        self._writes = RWLock()  # write requests read-hold it; the swap's last step write-holds it
        self._swap_lock = threading.Lock()
        self._rebuild: threading.Thread | None = None

    @property
    def service(self) -> RecService:
        """The service new requests use."""
        return self._service

    @contextmanager
    def writing(self) -> Iterator[RecService]:
        """The current service for a write request; a swap waits for the write to finish before it
        replaces the service, so the successor sees every write (items, events' popularity)."""
        with self._writes.read():
            yield self._service

    def swap(self, path: str | Path, *, root: Path | None = None) -> ModelSwapResponse:
        """Load the model directory ``path`` to the side and swap it in.

        Args:
            path: the model directory.
            root: when given (``POST /admin/model``), ``path`` must resolve (symlinks and ``..``
                followed; relative to ``root`` when not absolute) to a model directory below ``root``;
                any other path gets the same generic message, which tells nothing of what is there.

        Raises:
            BadRequest: ``path`` is not a model directory (below ``root``), or it does not load
                (field ``path``; the old model keeps serving).
            Conflict: another swap is running.
        """
        if not self._swap_lock.acquire(blocking=False):
            raise Conflict("path", "a model swap is already in progress; retry when it has finished")
        try:
            if root is not None:
                try:
                    path = model_dir_below(root, path)
                except ValueError as exc:
                    raise self._failed(repr(str(path)), exc) from None
            answer = self._swap(path)
        finally:
            self._swap_lock.release()
        heap.settle()  # the old model's cycles collected, the new model out of the collector's walks
        return answer

    def _swap(self, path: str | Path) -> ModelSwapResponse:
        old = self._service
        metrics = old.metrics
        start = time.perf_counter()
        try:
            new = open_successor(old, path, encoder=self.encoder)
        except Exception as exc:
            raise self._failed(path, exc) from None
        load_s = time.perf_counter() - start
        with self._writes.write():
            try:  # the successor must be complete and consistent before anything points at it
                new.catch_up_store()
                problems = new.check()
                if problems:
                    raise ValueError(f"the model in {path} does not serve consistently: {'; '.join(problems)}")
            except Exception as exc:
                raise self._failed(path, exc) from None
            new.swaps = old.swaps + 1
            self._service = new
            old.retired = True  # its profile rebuild (if still running) stops
        metrics.inc("lmrec_model_swaps_total")
        metrics.observe("lmrec_model_load_seconds", load_s)
        self.last_error = None
        log.info(
            "swapped %s -> %s (%s) after %.2fs of loading", old.version, new.version, new.settings.model_dir, load_s
        )
        if new.space.name != old.space.name:  # same space (a text encoder's): the stored profiles stay valid
            self._start_rebuild(new)
        return ModelSwapResponse(
            model_version=new.version,
            previous_version=old.version,
            model_dir=str(new.settings.model_dir),
            swaps=new.swaps,
            load_s=round(load_s, 4),
        )

    def _failed(self, path: str | Path, exc: Exception) -> Exception:
        """Count and log a failed swap (the old model keeps serving); the error to raise: a `BadRequest`
        on ``path`` for a model that does not load or check (a `ValueError`), else ``exc`` itself."""
        old = self._service
        self.swap_failures += 1
        self.last_error = str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}"
        old.metrics.inc("lmrec_model_swap_failures_total")
        log.warning("model swap to %s failed; %s keeps serving: %s", path, old.version, self.last_error)
        return BadRequest("path", str(exc)) if isinstance(exc, ValueError) else exc

    def _start_rebuild(self, service: RecService) -> None:
        if self._rebuild is not None:
            self._rebuild.join()  # its service is retired: it stops after its current batch

        def run() -> None:
            try:
                service.rebuild_profiles()
            except Exception:  # a closed store at shutdown; reads still replay events on the fly
                log.exception("rebuilding profiles in the %s space stopped", service.space.name)

        self._rebuild = threading.Thread(target=run, name="lmrec-profile-rebuild", daemon=True)
        self._rebuild.start()

    def wait_rebuilt(self, timeout: float | None = None) -> None:
        """Block until the profile rebuild after the last swap has finished (tests, benchmarks)."""
        if self._rebuild is not None:
            self._rebuild.join(timeout)

    def status(self) -> ModelStatus:
        svc = self._service
        return ModelStatus(
            model_version=svc.version,
            model_dir=str(svc.settings.model_dir),
            swaps=svc.swaps,
            swap_failures=self.swap_failures,
            last_error=self.last_error,
            swapping=self._swap_lock.locked(),
            watching=None if self.watching is None else str(self.watching),
        )

    def close(self) -> None:
        """Stop the profile rebuild (the caller closes the service and its stores)."""
        self._service.retired = True
        self.wait_rebuilt()


class VersionWatcher:
    """Polls a directory of model versions and swaps in the newest complete one when it changes.

    Args:
        host: where to swap.
        watch_dir: the directory of versions (see the module docstring).
        interval_s: seconds between polls.
    """

    def __init__(self, host: ModelHost, watch_dir: str | Path, interval_s: float) -> None:
        self.host = host
        self.watch_dir = Path(watch_dir)
        self.interval_s = interval_s
        self._seen: tuple[Path, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def poll(self) -> bool:
        """One look at the directory; True when a new version was swapped in."""
        newest = newest_version(self.watch_dir)
        if newest is None:
            return False
        try:
            key = (newest, (newest / READY_MARKER).stat().st_mtime_ns)
        except OSError:  # the version vanished between the listing and now
            return False
        if key == self._seen:
            return False
        current = Path(str(self.host.service.settings.model_dir)).resolve()
        if newest == current:
            self._seen = key
            return False
        try:
            self.host.swap(newest)
        except Conflict:
            return False  # an admin swap is running: look again at the next poll
        except Exception as exc:  # noqa: BLE001 - a bad version must not stop the watcher
            log.error("model version %s was not swapped in: %s", newest, exc)
            self._seen = key
            return False
        self._seen = key
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - keep watching
                log.exception("watching %s failed this time", self.watch_dir)

    def start(self) -> None:
        self.host.watching = self.watch_dir
        self._thread = threading.Thread(target=self._run, name="lmrec-model-watch", daemon=True)
        self._thread.start()
        log.info("watching %s for model versions every %.1fs", self.watch_dir, self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
