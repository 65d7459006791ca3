"""Reproducible training without touching the caller's random state or thread setting."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["seeded"]


@contextmanager
def seeded(seed: int, threads: int | None = None) -> Iterator[None]:
    """Run the body with torch's global RNG seeded to ``seed`` and ``threads`` torch threads.

    The global CPU RNG is forked (its state is restored afterwards, so code outside sees no draw)
    and the thread count is restored on exit, also after an exception.

    Args:
        seed: the seed of ``torch.manual_seed`` inside the body.
        threads: torch intra-op threads inside the body (None: leave the setting alone).
    """
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.set_num_threads(old_threads)
