"""Keep Python's cyclic garbage collector off the loaded model.

A loaded service holds hundreds of thousands of long-lived Python objects (id maps, the catalogue's
rows, the model's tables). CPython's full collection walks every tracked object, and requests whose
answers leave survivors behind (caches, open impressions) trigger one every few seconds: each stalls
every request thread for as long as the walk takes, which grows with the catalogue. `freeze` moves
what exists once the service has loaded into the collector's permanent generation (`gc.freeze`), so
later collections walk only what requests created since. Reference counting still frees frozen
objects; reference cycles among them wait until `thaw` (at shutdown) or `settle` (after a model swap:
the replaced model's cycles are collected, then the new heap frozen).
"""

from __future__ import annotations

import gc
import logging
import time

__all__ = ["freeze", "settle", "thaw"]

log = logging.getLogger(__name__)


def freeze() -> int:
    """Exempt every object alive now from later collections (cheap: no walk); returns how many are frozen."""
    gc.freeze()
    return gc.get_freeze_count()


def thaw() -> None:
    """Hand the frozen objects back to the collector (their cycles are collected by a later full walk)."""
    gc.unfreeze()


def settle() -> int:
    """Thaw, collect what is garbage now (one full walk), then freeze the survivors.

    Returns:
        The number of objects frozen.
    """
    start = time.perf_counter()
    gc.unfreeze()
    gc.collect()
    frozen = freeze()
    log.info("froze %d objects out of the garbage collector's walks in %.2fs", frozen, time.perf_counter() - start)
    return frozen
