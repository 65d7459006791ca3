"""Knowledge graphs from files: RecBole's ``.kg`` / ``.link`` atomic files or a plain triples table.

RecBole's ``<name>.kg`` holds ``head_id:token relation_id:token tail_id:token`` and ``<name>.link``
``item_id:token entity_id:token``. Data sets without a ``.link`` file (Amazon Office's graph names
items by their ASIN) link through an item column: ``link_column`` names it, or, unset, the item id
or the catalogue column whose values match the most triple heads is taken. A plain table (csv, tsv,
parquet, jsonl) with ``head``, ``relation`` and ``tail`` columns (or others named by ``columns``)
is read the same way from a YAML data config's ``kg:`` block.

`build_kg` checks the triples: those with a missing field, a relation outside ``relations``, repeats
and dangling triples (whose head no item reaches) are counted in a `LoadReport` and dropped, never
fatal unless ``strict``. A link file none of whose links names an item is an error naming the file
and the first unmatched ids.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lmrec.data.catalog import ItemCatalog
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.kg import KG_COLUMNS, KnowledgeGraph
from lmrec.data.loaders.common import log_report, read_delimited
from lmrec.data.loaders.table import read_records

__all__ = ["attach_kg", "build_kg", "find_recbole_kg", "load_kg", "read_links", "read_triples"]

logger = logging.getLogger("lmrec.data")
_SHOWN = 5
_CONVENTIONAL = {"head": ("head_id", "head"), "relation": ("relation_id", "relation"), "tail": ("tail_id", "tail")}


def _blank(values: pd.Series) -> np.ndarray:
    return (values.isna() | (values.astype(str).str.strip() == "")).to_numpy()


def build_kg(
    triples: pd.DataFrame,
    item_ids: Sequence[str],
    *,
    links: Mapping[str, str] | None = None,
    link_source: str = "links",
    relations: Sequence[str] | None = None,
    report: LoadReport | None = None,
    source: str = "knowledge graph",
    strict: bool = False,
) -> KnowledgeGraph:
    """A checked `KnowledgeGraph` from raw triples and item links.

    Args:
        triples: columns ``head``, ``relation``, ``tail`` (values as read).
        item_ids: the data set's item ids (links to other ids are counted and dropped).
        links: item id -> entity id; None links each item to the entity of the same id.
        link_source: the link file or column, as named in messages.
        relations: keep only these relations (others are counted as ``unknown relation``); None keeps all.
        report: where dropped triples and links are counted (a new one when None).
        source: the triples' file, as named in messages.
        strict: raise on the first bad triple instead of counting it.

    Raises:
        ValueError: none of the links names a known item (the message names ``link_source`` and the
            first unmatched ids), or in strict mode the first bad triple.
    """
    report = report if report is not None else LoadReport(source)
    known = {str(i) for i in item_ids}
    if links is None:
        links = {i: i for i in known}
    else:
        links = {str(k): str(v) for k, v in links.items() if str(k).strip() and str(v).strip()}
        unmatched = [k for k in links if k not in known]
        if links and len(unmatched) == len(links):
            raise ValueError(
                f"{link_source}: none of its {len(links)} links names an item of the data set; "
                f"first unmatched ids: {unmatched[:_SHOWN]}"
            )
        if unmatched:
            report.reject(f"link to an unknown item ({link_source})", f"e.g. {unmatched[:_SHOWN]}", len(unmatched))
            links = {k: v for k, v in links.items() if k in known}
    frame = triples.reset_index(drop=True)
    n = len(frame)
    report.rows_read += n
    bad = np.zeros(n, dtype=bool)

    def drop(mask: np.ndarray, reason: str) -> None:
        mask = mask & ~bad
        if not mask.any():
            return
        rows = np.flatnonzero(mask)
        example = "; ".join(
            f"{source}, triple {i + 1}: {tuple(frame.loc[i, list(KG_COLUMNS)].tolist())}" for i in rows[:_SHOWN]
        )
        if strict:
            raise ValueError(f"{reason}: {example.split('; ')[0]}")
        report.reject(reason, example, int(len(rows)))
        bad[mask] = True

    drop(np.any([_blank(frame[c]) for c in KG_COLUMNS], axis=0), "missing head, relation or tail")
    frame = frame.astype({c: str for c in KG_COLUMNS})
    for c in KG_COLUMNS:
        frame[c] = frame[c].str.strip()
    if relations is not None:
        drop(~frame["relation"].isin([str(r) for r in relations]).to_numpy(), "unknown relation")
    drop(frame.duplicated(list(KG_COLUMNS)).to_numpy(), "duplicate triple")
    # dangling: a head no item reaches (not an item's entity, not a tail of a reachable triple)
    reachable = set(links.values())
    out: dict[str, list[str]] = defaultdict(list)
    for i, (h, t) in enumerate(zip(frame["head"].tolist(), frame["tail"].tolist())):
        if not bad[i]:
            out[h].append(t)
    todo = list(reachable)
    while todo:
        for t in out.get(todo.pop(), ()):
            if t not in reachable:
                reachable.add(t)
                todo.append(t)
    drop(~frame["head"].isin(reachable).to_numpy(), "dangling triple (no item reaches its head)")
    kept = frame.loc[~bad, list(KG_COLUMNS)]
    report.rows_kept += len(kept)
    return KnowledgeGraph(kept, dict(links), source)


# ---------------------------------------------------------------------------------------- files
def _read(path: Path, atomic_suffix: str, encoding: str) -> tuple[pd.DataFrame, str]:
    """Records of an atomic file (``name:type`` headers, types dropped) or of a table file."""
    if path.suffix == atomic_suffix:
        table = read_delimited(path, delimiter="\t", quoting="none", encoding=encoding)
        table.frame.columns = [str(c).rpartition(":")[0] or str(c) for c in table.frame.columns]
    else:
        table = read_records(path, encoding=encoding)
    return table.frame, table.source


def _roles(columns: list[str], explicit: Mapping[str, str] | None, source: str) -> dict[str, str]:
    """Column of each of head / relation / tail: ``explicit``, a conventional name, else the first three."""
    explicit = dict(explicit or {})
    unknown = [k for k in explicit if k not in KG_COLUMNS]
    if unknown:
        raise ValueError(f"kg columns: unknown roles {unknown}; valid: {list(KG_COLUMNS)}")
    roles: dict[str, str] = {}
    for role in KG_COLUMNS:
        name = explicit.get(role) or next((c for c in _CONVENTIONAL[role] if c in columns), None)
        if name is not None and name not in columns:
            raise ValueError(f"{source}: kg {role} column {name!r} not found; columns: {columns}")
        if name is not None:
            roles[role] = name
    if len(roles) < 3:
        if len(columns) < 3:
            raise ValueError(f"{source}: a triples file needs head, relation and tail columns; columns: {columns}")
        roles = {role: roles.get(role, columns[j]) for j, role in enumerate(KG_COLUMNS)}
    return roles


def read_triples(
    path: str | Path, *, columns: Mapping[str, str] | None = None, encoding: str = "utf-8"
) -> tuple[pd.DataFrame, str]:
    """``(triples, source)``: a ``.kg`` atomic file or a table with head / relation / tail columns.

    Args:
        path: the file.
        columns: role -> column name (default: ``head_id``/``head``, ``relation_id``/``relation``,
            ``tail_id``/``tail``, else the first three columns).
        encoding: text encoding.
    """
    frame, source = _read(Path(path), ".kg", encoding)
    roles = _roles([str(c) for c in frame.columns], columns, source)
    return frame[[roles[r] for r in KG_COLUMNS]].set_axis(list(KG_COLUMNS), axis=1), source


def read_links(path: str | Path, *, encoding: str = "utf-8") -> tuple[dict[str, str], str]:
    """``(item id -> entity id, source)`` from a ``.link`` atomic file (or a two-column table)."""
    frame, source = _read(Path(path), ".link", encoding)
    cols = [str(c) for c in frame.columns]
    item = "item_id" if "item_id" in cols else cols[0]
    entity = "entity_id" if "entity_id" in cols else next((c for c in cols if c != item), None)
    if entity is None:
        raise ValueError(f"{source}: a link file needs an item column and an entity column; columns: {cols}")
    return dict(zip(frame[item].astype(str), frame[entity].astype(str))), source


def _column_links(
    triples: pd.DataFrame, item_ids: Sequence[str], items: ItemCatalog | None, column: str | None, source: str
) -> tuple[dict[str, str], str]:
    """Links through an item column (``column``; None: the id or column matching the most heads)."""
    heads = set(triples["head"].astype(str).str.strip())
    frame = items.frame.reindex(list(item_ids)) if items is not None else None
    candidates: dict[str, dict[str, str]] = {"item_id": {i: i for i in item_ids}}
    if frame is not None:
        for col in frame.columns:
            values = frame[col]
            if values.map(lambda v: isinstance(v, str)).any():
                candidates[str(col)] = {i: v.strip() for i, v in zip(item_ids, values) if isinstance(v, str)}
    if column is not None:
        if column not in candidates:
            raise ValueError(f"kg link_column {column!r} is not an item column; columns: {list(candidates)}")
        return candidates[column], f"item column {column!r}"
    hits = {c: sum(1 for v in m.values() if v in heads) for c, m in candidates.items()}
    best = max(hits, key=lambda c: hits[c])
    if hits[best] == 0:
        raise ValueError(
            f"{source}: no item links to the graph: its heads match neither the item ids nor an item column; "
            f"first heads: {sorted(heads)[:_SHOWN]}; give a .link file or link_column"
        )
    logger.info("%s: items linked through %s (%d items match a head)", source, best, hits[best])
    return candidates[best], f"item column {best!r}"


def _memberships(
    triples: pd.DataFrame, links: Mapping[str, str], items: ItemCatalog | None, column: str, relation: str
) -> pd.DataFrame:
    """``(item entity, relation, concept)`` for each concept of ``column`` that is an entity of the graph."""
    if items is None or column not in items.frame.columns:
        columns = [] if items is None else list(items.frame.columns)
        raise ValueError(f"kg member_column {column!r} is not an item column; columns: {columns}")
    entities = set(triples["head"].astype(str).str.strip()) | set(triples["tail"].astype(str).str.strip())
    rows = []
    for item, value in items.frame[column].items():
        if item not in links:
            continue
        values = value if isinstance(value, (list, tuple, np.ndarray)) else str(value).split(",")
        for concept in dict.fromkeys(str(v).strip() for v in values):
            if concept in entities:
                rows.append((links[item], relation, concept))
    return pd.DataFrame(rows, columns=list(KG_COLUMNS))


def load_kg(
    path: str | Path,
    item_ids: Sequence[str],
    *,
    items: ItemCatalog | None = None,
    link_path: str | Path | None = None,
    link_column: str | None = None,
    columns: Mapping[str, str] | None = None,
    relations: Sequence[str] | None = None,
    member_column: str | None = None,
    member_relation: str = "belongs_to",
    encoding: str = "utf-8",
    strict: bool = False,
) -> tuple[KnowledgeGraph, LoadReport]:
    """Read a knowledge graph and link it to the data set's items.

    Args:
        path: the triples (``.kg`` atomic file or a table).
        item_ids: the data set's item ids.
        items: the item catalogue (for ``link_column``).
        link_path: a ``.link`` file (item -> entity); None links through ``link_column``.
        link_column: the item column holding each item's entity (None: the id or column matching most heads).
        columns: role -> column of the triples table.
        relations: relations to keep (None: all).
        member_column: an item column (a list, or comma-separated text) naming concepts each item
            belongs to; every value that is an entity of the graph adds the triple
            ``(item entity, member_relation, value)`` (Amazon's ``categories`` against a graph of
            complementary categories).
        member_relation: the relation name of those triples.
        encoding: text encoding.
        strict: raise on the first bad triple.

    Returns:
        ``(graph, report)``.
    """
    triples, source = read_triples(path, columns=columns, encoding=encoding)
    if link_path is not None:
        links, link_source = read_links(link_path, encoding=encoding)
    else:
        links, link_source = _column_links(triples, item_ids, items, link_column, source)
    if member_column is not None:
        triples = pd.concat([triples, _memberships(triples, links, items, member_column, member_relation)])
    report = LoadReport(source)
    graph = build_kg(
        triples,
        item_ids,
        links=links,
        link_source=link_source,
        relations=relations,
        report=report,
        source=source,
        strict=strict,
    )
    log_report(report)
    logger.info("%s: %d triples, %d relations", source, len(graph), len(graph.relations))
    return graph, report


def attach_kg(dataset: Dataset, path: str | Path, **kw: Any) -> Dataset:
    """Load a graph for ``dataset`` (its items and catalogue) and set ``dataset.kg`` (the report joins
    ``dataset.reports``); ``kw`` as for `load_kg`."""
    graph, report = load_kg(path, dataset.all_item_ids(), items=dataset.items, **kw)
    dataset.kg = graph
    dataset.reports = [*(dataset.reports or []), report]
    return dataset


def find_recbole_kg(dataset: Dataset, directory: str | Path, name: str, *, encoding: str = "utf-8") -> Dataset:
    """Attach ``<name>.kg`` (with ``<name>.link`` when present) from ``directory`` if the file exists."""
    kg_path, link_path = Path(directory) / f"{name}.kg", Path(directory) / f"{name}.link"
    if not kg_path.exists():
        return dataset
    return attach_kg(dataset, kg_path, link_path=link_path if link_path.exists() else None, encoding=encoding)
