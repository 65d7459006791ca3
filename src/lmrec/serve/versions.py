"""A directory of model versions (``--model-dir-watch DIR``): which versions are complete, which is newest.

Every subdirectory of ``DIR`` is a version; it is *complete* once it holds a file named ``READY``
(`READY_MARKER`), which the publisher writes last, after every file of the model directory is in
place (write to ``DIR/v12``, then ``touch DIR/v12/READY``; or build in a temporary directory and
rename it in). The newest complete version is the greatest name in natural order (digit runs compare
as numbers: ``v2 < v10``; use sortable names such as ``v0012`` or ``20261201T2100``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

__all__ = ["READY_MARKER", "complete_versions", "newest_version"]

#: the file that marks a version directory as complete (written last by the publisher)
READY_MARKER = "READY"


def _natural_key(name: str) -> list[Any]:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", name) if part]


def complete_versions(watch_dir: str | Path) -> list[Path]:
    """Subdirectories of ``watch_dir`` that hold a `READY_MARKER` file, oldest to newest (natural name order)."""
    watch_dir = Path(watch_dir)
    if not watch_dir.is_dir():
        return []
    found = [
        p for p in watch_dir.iterdir() if p.is_dir() and not p.name.startswith(".") and (p / READY_MARKER).is_file()
    ]
    return sorted(found, key=lambda p: _natural_key(p.name))


def newest_version(watch_dir: str | Path) -> Path | None:
    """The newest complete version in ``watch_dir`` (resolved), or None."""
    versions = complete_versions(watch_dir)
    return versions[-1].resolve() if versions else None
