"""Evaluation reports for the console: the ``PREFIX.md``, ``PREFIX.json`` and ``PREFIX.png`` files that
``lmrec evaluate --report PREFIX`` writes, found under the ``reports_dir`` setting.

A report is named by its prefix relative to the directory (``runs/ml100k``). A file is served only
when its name is one of the listed reports: a request never builds a path of its own, so ``..``,
absolute paths and symlinks out of the directory are never followed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["REPORT_KINDS", "ReportEntry", "find_report_file", "list_reports"]

ReportKind = Literal["md", "json", "png"]
REPORT_KINDS: tuple[ReportKind, ...] = ("md", "json", "png")
#: files looked at below ``reports_dir`` (a huge tree must not stall a request)
MAX_FILES = 5000
#: folders deep below ``reports_dir``
MAX_DEPTH = 4


@dataclass(frozen=True)
class ReportEntry:
    """One report: its name (prefix relative to the reports directory), the kinds present, and when
    its newest file was written (ISO 8601, UTC)."""

    name: str
    kinds: tuple[ReportKind, ...]
    modified: str


def _files(root: Path) -> dict[str, dict[ReportKind, Path]]:
    """Report name -> kind -> file, for regular files inside ``root`` (symlinks skipped)."""
    found: dict[str, dict[ReportKind, Path]] = {}
    seen = 0
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack and seen < MAX_FILES:
        folder, depth = stack.pop()
        try:
            children = sorted(folder.iterdir())
        except OSError:
            continue
        for child in children:
            seen += 1
            if seen > MAX_FILES:
                break
            if child.is_symlink():
                continue
            if child.is_dir():
                if depth + 1 < MAX_DEPTH and not child.name.startswith("."):
                    stack.append((child, depth + 1))
                continue
            kind = child.suffix.lstrip(".").lower()
            if kind in REPORT_KINDS and child.is_file():
                name = child.relative_to(root).with_suffix("").as_posix()
                found.setdefault(name, {})[kind] = child  # type: ignore[index]
    return found


def list_reports(root: Path | None) -> list[ReportEntry]:
    """The reports under ``root``, newest first: every prefix with a ``.md`` or ``.json`` file (a lone
    ``.png`` is some other picture). An unset or missing directory has none."""
    if root is None or not root.is_dir():
        return []
    entries = []
    for name, kinds in _files(root).items():
        if "md" not in kinds and "json" not in kinds:
            continue
        newest = max(path.stat().st_mtime for path in kinds.values())
        modified = dt.datetime.fromtimestamp(newest, tz=dt.timezone.utc).isoformat(timespec="seconds")
        entries.append(ReportEntry(name, tuple(k for k in REPORT_KINDS if k in kinds), modified))
    return sorted(entries, key=lambda e: (e.modified, e.name), reverse=True)


def find_report_file(root: Path | None, name: str, kind: str) -> Path | None:
    """The file of report ``name`` of ``kind`` (``md``, ``json`` or ``png``), or None when there is no
    such report: ``name`` is looked up among the listed reports, never joined to ``root``."""
    if root is None or kind not in REPORT_KINDS or not root.is_dir():
        return None
    kinds = _files(root).get(name)
    if kinds is None or ("md" not in kinds and "json" not in kinds):
        return None
    return kinds.get(kind)  # type: ignore[call-overload]
