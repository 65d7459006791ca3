"""MovieLens in its three published layouts: 100K (``u.data``), 1M (``ratings.dat``) and latest (``ratings.csv``).

Items get a ``title`` (text), ``genres`` (a list: categorical, and text through the catalogue's list
rendering "Animation, Comedy") and ``year`` (numeric, from the title or the release date). Users get
attributes (age, gender, occupation, zip_code, where the layout has them) and a "profile" sentence over
age, gender and occupation; the latest layout's ``tags.csv`` becomes user texts of kind "tag".
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.loaders.build import (
    ColumnMap,
    ItemColumns,
    UserColumns,
    build_catalog,
    build_users,
    checked_interactions,
    make_interactions,
)
from lmrec.data.loaders.common import RawTable, log_report, read_delimited

__all__ = ["load_movielens", "detect_movielens", "ML100K_GENRES", "movielens_100k", "year_of"]

ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
# From the ML-1M README: age buckets and occupation codes.
ML1M_AGES = {"1": "Under 18", "18": "18-24", "25": "25-34", "35": "35-44", "45": "45-49", "50": "50-55", "56": "56+"}
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
_PROFILE = ("age", "gender", "occupation")
_MARKERS = {"100k": "u.data", "1m": "ratings.dat", "latest": "ratings.csv"}
_TITLE_YEAR = re.compile(r"\((\d{4})(?:[-–]\d{0,4})?\)\s*$")
_ANY_YEAR = re.compile(r"(\d{4})")
_NO_GENRES = {"", "(no genres listed)", "unknown"}
_RATING_COLUMNS = ColumnMap(user="user_id", item="item_id", timestamp="timestamp", rating="rating")


def year_of(title: object, release_date: object = None) -> float:
    """Release year from a title ending in ``(1995)``, else from a date such as ``01-Jan-1995``; NaN if none."""
    if isinstance(title, str) and (m := _TITLE_YEAR.search(title)):
        return float(m.group(1))
    if isinstance(release_date, str) and (m := _ANY_YEAR.search(release_date)):
        return float(m.group(1))
    return float("nan")


def detect_movielens(path: str | Path) -> tuple[Path, str] | None:
    """``(directory, layout)`` with layout ``"100k"``, ``"1m"`` or ``"latest"``, or None.

    A directory holding exactly one MovieLens directory (as a zip extracts) is followed.
    """
    path = Path(path)
    if not path.is_dir():
        return None
    for layout, marker in _MARKERS.items():
        if (path / marker).exists():
            return path, layout
    found = [d for d in sorted(path.iterdir()) if d.is_dir() and any((d / m).exists() for m in _MARKERS.values())]
    return detect_movielens(found[0]) if len(found) == 1 else None


def _genre_lists(values: list[object], sep: str) -> list[list[str]]:
    out = []
    for v in values:
        parts = [p.strip() for p in v.split(sep)] if isinstance(v, str) else []
        out.append([p for p in parts if p not in _NO_GENRES])
    return out


def _catalog(table: RawTable, frame: pd.DataFrame, report: LoadReport, strict: bool) -> ItemCatalog:
    spec = ItemColumns(id="item_id", text=("title", "genres"), categorical=("genres",), numeric=("year",))
    return build_catalog(
        RawTable(frame, table.lines, table.source, table.unit, table.problems), spec, report, strict=strict
    )


def _users(table: RawTable, report: LoadReport, strict: bool) -> UserTexts:
    return build_users(table, UserColumns(id="user_id"), report, strict=strict, profile_columns=_PROFILE)


def movielens_100k(
    ratings: RawTable, items: RawTable | None, users: RawTable | None, *, strict: bool = False, name: str = "ml-100k"
) -> Dataset:
    """Assemble the 100K layout from records already read (text files or the bundled parquet).

    Args:
        ratings: columns ``user_id``, ``item_id``, ``rating``, ``timestamp``.
        items: columns ``item_id``, ``title``, ``release_date`` and the 0/1 genre flag columns
            named as in `ML100K_GENRES` (other columns are ignored).
        users: columns ``user_id``, ``age``, ``gender``, ``occupation``, ``zip_code``.
    """
    reports = [LoadReport(ratings.source)]
    interactions = make_interactions([checked_interactions(ratings, _RATING_COLUMNS, reports[0], strict=strict)])
    catalog = user_texts = None
    if items is not None:
        raw = items.frame
        flags = [g for g in ML100K_GENRES if g in raw.columns and g != "unknown"]
        on = np.column_stack([raw[g].astype(str).str.strip().to_numpy() == "1" for g in flags]) if flags else None
        genres = [[g for g, f in zip(flags, row) if f] for row in on] if on is not None else [[]] * len(raw)
        dates = raw["release_date"].tolist() if "release_date" in raw.columns else [None] * len(raw)
        frame = pd.DataFrame(
            {
                "item_id": raw["item_id"].to_numpy(),
                "title": raw["title"].to_numpy(dtype=object),
                "genres": genres,
                "year": [year_of(t, d) for t, d in zip(raw["title"].tolist(), dates)],
                "release_date": dates,
            }
        )
        reports.append(LoadReport(items.source))
        catalog = _catalog(items, frame, reports[-1], strict)
    if users is not None:
        reports.append(LoadReport(users.source))
        user_texts = _users(users, reports[-1], strict)
    for report in reports:
        log_report(report)
    return Dataset(interactions, catalog, user_texts, name, reports)


def _load_100k(directory: Path, strict: bool) -> Dataset:
    ratings = read_delimited(
        directory / "u.data", delimiter="\t", quoting="none", names=["user_id", "item_id", "rating", "timestamp"]
    )
    genres = list(ML100K_GENRES)
    genre_file = directory / "u.genre"
    if genre_file.exists():
        table = read_delimited(genre_file, delimiter="|", quoting="none", encoding="latin-1", names=["genre", "index"])
        genres = [str(g) for g in table.frame.sort_values("index", key=lambda s: s.astype(int))["genre"]]
    names = ["item_id", "title", "release_date", "video_release_date", "imdb_url", *genres]
    items = users = None
    if (directory / "u.item").exists():
        items = read_delimited(directory / "u.item", delimiter="|", quoting="none", encoding="latin-1", names=names)
    if (directory / "u.user").exists():
        users = read_delimited(
            directory / "u.user",
            delimiter="|",
            quoting="none",
            encoding="latin-1",
            names=["user_id", "age", "gender", "occupation", "zip_code"],
        )
    return movielens_100k(ratings, items, users, strict=strict, name=directory.name or "ml-100k")


def _load_1m(directory: Path, strict: bool) -> Dataset:
    ratings = read_delimited(
        directory / "ratings.dat",
        delimiter="::",
        quoting="none",
        encoding="latin-1",
        names=["user_id", "item_id", "rating", "timestamp"],
    )
    reports = [LoadReport(ratings.source)]
    interactions = make_interactions([checked_interactions(ratings, _RATING_COLUMNS, reports[0], strict=strict)])
    catalog = user_texts = None
    if (directory / "movies.dat").exists():
        table = read_delimited(
            directory / "movies.dat",
            delimiter="::",
            quoting="none",
            encoding="latin-1",
            names=["item_id", "title", "genres"],
        )
        raw = table.frame
        frame = pd.DataFrame(
            {
                "item_id": raw["item_id"].to_numpy(),
                "title": raw["title"].to_numpy(dtype=object),
                "genres": _genre_lists(raw["genres"].tolist(), "|"),
                "year": [year_of(t) for t in raw["title"].tolist()],
            }
        )
        reports.append(LoadReport(table.source))
        catalog = _catalog(table, frame, reports[-1], strict)
    if (directory / "users.dat").exists():
        table = read_delimited(
            directory / "users.dat",
            delimiter="::",
            quoting="none",
            encoding="latin-1",
            names=["user_id", "gender", "age", "occupation", "zip_code"],
        )
        raw = table.frame

        def occupation(code: object) -> object:
            key = str(code).strip()
            return ML1M_OCCUPATIONS[int(key)] if key.isdigit() and int(key) < len(ML1M_OCCUPATIONS) else code

        frame = pd.DataFrame(
            {
                "user_id": raw["user_id"].to_numpy(),
                "age": [ML1M_AGES.get(str(a).strip(), a) for a in raw["age"].tolist()],
                "gender": raw["gender"].to_numpy(dtype=object),
                "occupation": [occupation(c) for c in raw["occupation"].tolist()],
                "zip_code": raw["zip_code"].to_numpy(dtype=object),
            }
        )
        reports.append(LoadReport(table.source))
        user_texts = _users(RawTable(frame, table.lines, table.source, table.unit, table.problems), reports[-1], strict)
    for report in reports:
        log_report(report)
    return Dataset(interactions, catalog, user_texts, directory.name or "ml-1m", reports)


def _load_latest(directory: Path, strict: bool) -> Dataset:
    ratings = read_delimited(directory / "ratings.csv")
    columns = ColumnMap(user="userId", item="movieId", timestamp="timestamp", rating="rating")
    reports = [LoadReport(ratings.source)]
    interactions = make_interactions([checked_interactions(ratings, columns, reports[0], strict=strict)])
    catalog = user_texts = None
    if (directory / "movies.csv").exists():
        table = read_delimited(directory / "movies.csv")
        raw = table.frame
        frame = pd.DataFrame(
            {
                "item_id": raw["movieId"].to_numpy(),
                "title": raw["title"].to_numpy(dtype=object),
                "genres": _genre_lists(raw["genres"].tolist(), "|"),
                "year": [year_of(t) for t in raw["title"].tolist()],
            }
        )
        reports.append(LoadReport(table.source))
        catalog = _catalog(table, frame, reports[-1], strict)
    if (directory / "tags.csv").exists():
        table = read_delimited(directory / "tags.csv")
        reports.append(LoadReport(table.source))
        tag_columns = ColumnMap(user="userId", item="movieId", timestamp="timestamp", event="tag")
        tags = checked_interactions(table, tag_columns, reports[-1], strict=strict)
        texts = pd.DataFrame(
            {
                "user_id": tags["user_id"],
                "kind": "tag",
                "text": tags["event"],
                "timestamp": tags["timestamp"],
                "item_id": tags["item_id"],
            }
        )
        user_texts = UserTexts(texts)
    for report in reports:
        log_report(report)
    return Dataset(interactions, catalog, user_texts, directory.name or "ml-latest", reports)


def load_movielens(path: str | Path, *, strict: bool = False) -> Dataset:
    """Load a MovieLens directory, detecting the 100K, 1M or latest(-small) layout.

    Args:
        path: the extracted directory (``ml-100k/``, ``ml-1m/``, ``ml-latest-small/``) or a directory
            holding exactly one of them.
        strict: raise on the first bad row instead of counting it.

    Returns:
        `Dataset` with ratings and timestamps (seconds), the movie catalogue and, where the layout
        has them, user attributes with profiles (100K, 1M: age as the 1M bucket label, occupation
        as its name) or tag texts (latest).

    Raises:
        ValueError: no MovieLens layout found at ``path``.
    """
    found = detect_movielens(path)
    if found is None:
        raise ValueError(f"{str(path)!r} is not a MovieLens directory: expected one of {sorted(_MARKERS.values())}")
    directory, layout = found
    loader = {"100k": _load_100k, "1m": _load_1m, "latest": _load_latest}[layout]
    return loader(directory, strict)
