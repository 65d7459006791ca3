"""A knowledge graph beside the interactions: typed relations between items and entities.

A `KnowledgeGraph` holds ``(head, relation, tail)`` triples over entity ids (strings) and the links
from item ids to entities. An item is linked to one entity (RecBole's ``.link`` file, or an item
column such as Amazon's ``asin``); triples whose head is an item's entity are that item's relations,
and their tails may be other items' entities (item-item relations) or concepts (categories, brands)
that relate further among themselves (concept-concept triples).

Files are read, and bad triples counted, by `lmrec.data.loaders.kg`.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

__all__ = ["KG_COLUMNS", "KnowledgeGraph"]

#: the columns of `KnowledgeGraph.triples`
KG_COLUMNS = ("head", "relation", "tail")


@dataclass(eq=False)
class KnowledgeGraph:
    """Triples over entities plus item -> entity links.

    Attributes:
        triples: one row per distinct triple, columns ``head``, ``relation``, ``tail`` (str).
        links: item id -> entity id (both str); items absent here have no relations.
        source: where the triples came from (for messages).
    """

    triples: pd.DataFrame
    links: dict[str, str] = field(default_factory=dict)
    source: str = "knowledge graph"

    def __post_init__(self) -> None:
        missing = [c for c in KG_COLUMNS if c not in self.triples.columns]
        if missing:
            raise ValueError(f"KnowledgeGraph.triples lacks columns {missing}; columns: {list(self.triples.columns)}")
        self.triples = self.triples[list(KG_COLUMNS)].astype(str).reset_index(drop=True)
        self.links = {str(k): str(v) for k, v in self.links.items()}
        self._index()

    def _index(self) -> None:
        self._out: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for h, r, t in self.triples.itertuples(index=False, name=None):
            self._out[h].append((r, t))
        self._items_of: dict[str, list[str]] = defaultdict(list)
        for item, entity in self.links.items():
            self._items_of[entity].append(item)

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.triples)

    @property
    def relations(self) -> list[str]:
        """The distinct relation names, sorted."""
        return sorted(self.triples["relation"].unique().tolist())

    @property
    def entities(self) -> set[str]:
        """Every entity id that occurs in a triple or a link."""
        return set(self.triples["head"]) | set(self.triples["tail"]) | set(self.links.values())

    def edges_of(self, entity: str) -> list[tuple[str, str]]:
        """``(relation, tail)`` of the triples whose head is ``entity`` (empty when none)."""
        return list(self._out.get(str(entity), ()))

    def item_edges(self, item_id: object) -> list[tuple[str, str]]:
        """``(relation, tail)`` of an item's relations (through its linked entity; empty when unlinked)."""
        entity = self.links.get(str(item_id))
        return [] if entity is None else self.edges_of(entity)

    def items_of(self, entity: str) -> list[str]:
        """The item ids linked to ``entity`` (an item-valued tail gives its item)."""
        return list(self._items_of.get(str(entity), ()))

    def linked_share(self, item_ids: Iterable[object]) -> float:
        """Share of ``item_ids`` that are linked and have at least one relation."""
        ids = [str(i) for i in item_ids]
        if not ids:
            return 0.0
        return sum(1 for i in ids if self.item_edges(i)) / len(ids)

    def relation_counts(self) -> dict[str, int]:
        """Relation -> number of triples."""
        return {str(k): int(v) for k, v in self.triples["relation"].value_counts().sort_index().items()}

    def summary(self, item_ids: Iterable[object]) -> dict[str, object]:
        """The figures `lmrec data inspect` prints: triples, entities, relations, linked share."""
        return {
            "kg_triples": len(self.triples),
            "kg_entities": len(self.entities),
            "kg_relations": self.relation_counts(),
            "kg_items_linked": self.linked_share(item_ids),
        }

    # ------------------------------------------------------------------ changing
    def add_item_relations(self, item_id: object, relations: Iterable[tuple[str, str]]) -> None:
        """Link an item (to an entity named like it when it has no link yet) and add its relations."""
        item = str(item_id)
        entity = self.links.setdefault(item, item)
        if item not in self._items_of[entity]:
            self._items_of[entity].append(item)
        known = set(self._out.get(entity, ()))
        new = [(str(r), str(t)) for r, t in relations if (str(r), str(t)) not in known]
        if new:
            rows = pd.DataFrame([(entity, r, t) for r, t in dict.fromkeys(new)], columns=list(KG_COLUMNS))
            self.triples = pd.concat([self.triples, rows], ignore_index=True)
            self._out[entity].extend(dict.fromkeys(new))

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> None:
        """Write ``kg_triples.parquet``, ``kg_links.parquet`` and ``kg.json`` into ``directory``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.triples.to_parquet(directory / "kg_triples.parquet", index=False)
        links = pd.DataFrame({"item_id": list(self.links), "entity": list(self.links.values())}, dtype=str)
        links.to_parquet(directory / "kg_links.parquet", index=False)
        (directory / "kg.json").write_text(json.dumps({"source": self.source}))

    @classmethod
    def load(cls, directory: str | Path) -> KnowledgeGraph:
        directory = Path(directory)
        links = pd.read_parquet(directory / "kg_links.parquet")
        source = json.loads((directory / "kg.json").read_text())["source"]
        return cls(
            pd.read_parquet(directory / "kg_triples.parquet"),
            dict(zip(links["item_id"].astype(str), links["entity"].astype(str))),
            source,
        )
