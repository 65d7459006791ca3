"""Downloading published data sets once into a cache directory, MD5-checked.

``"ml-1m"`` (and ``"ml-100k"`` where no bundled copy exists) come from GroupLens into ``cache_dir`` when
given, else ``$LMREC_DATA``, else ``~/.cache/lmrec``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from lmrec.data.loaders.movielens import detect_movielens

logger = logging.getLogger("lmrec.data")

__all__ = ["REMOTE", "RemoteSource", "default_cache_dir", "download"]


@dataclass(frozen=True)
class RemoteSource:
    """A downloadable archive: its URL, MD5 (as GroupLens publishes) and the directory it extracts to."""

    url: str
    md5: str
    directory: str


REMOTE: dict[str, RemoteSource] = {
    "ml-100k": RemoteSource(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip", "0e33842e24a9c977be4e0107933c0723", "ml-100k"
    ),
    "ml-1m": RemoteSource(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906", "ml-1m"
    ),
}


def default_cache_dir() -> Path:
    """``$LMREC_DATA`` if set, else ``~/.cache/lmrec`` (the one place the data layer reads the environment)."""
    return Path(os.environ.get("LMREC_DATA") or Path.home() / ".cache" / "lmrec")


def _urlopen(url: str, timeout: float = 60.0) -> Any:
    """Indirection so tests can replace the network."""
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (https GroupLens URLs only)


def _md5(path: Path) -> str:
    digest = hashlib.md5()  # noqa: S324 (GroupLens publishes MD5 sums)
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fetch(url: str, target: Path, show_progress: bool) -> None:
    part = target.with_name(target.name + ".part")
    logger.info("downloading %s to %s", url, target)
    try:
        with _urlopen(url) as response, part.open("wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name, disable=not show_progress) as bar:
                for chunk in iter(lambda: response.read(1 << 16), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    except OSError as err:  # urllib's URLError is an OSError
        part.unlink(missing_ok=True)
        raise OSError(f"could not download {url} ({err}); put the archive at {target} to skip the download") from err
    part.replace(target)


def _extract(archive: Path, root: Path) -> None:
    root_resolved = root.resolve()
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            if not (root / member).resolve().is_relative_to(root_resolved):
                raise ValueError(f"{archive}: member {member!r} would extract outside {root}")
        zf.extractall(root)


def download(name: str, *, cache_dir: str | Path | None = None, show_progress: bool = True) -> Path:
    """Download and extract a data set once; later calls return the cached directory.

    Raises:
        ValueError: an unknown name, or an archive whose MD5 differs from the published one (the
            file is deleted).
    """
    if name not in REMOTE:
        raise ValueError(f"no download known for {name!r}; downloadable: {sorted(REMOTE)}")
    source = REMOTE[name]
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    target = root / source.directory
    if detect_movielens(target) is not None:
        return target
    root.mkdir(parents=True, exist_ok=True)
    archive = root / f"{name}.zip"
    if not archive.exists() or _md5(archive) != source.md5:
        _fetch(source.url, archive, show_progress)
    digest = _md5(archive)
    if digest != source.md5:
        archive.unlink()
        raise ValueError(f"checksum mismatch for {source.url}: expected MD5 {source.md5}, got {digest}")
    if target.exists():
        shutil.rmtree(target)
    _extract(archive, root)
    if detect_movielens(target) is None:
        raise ValueError(f"{archive} did not extract to a MovieLens directory {target}")
    return target
