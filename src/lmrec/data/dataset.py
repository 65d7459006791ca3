"""A data set bundle: interactions plus the side information that goes with them."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

from lmrec.data.catalog import ItemCatalog, UserTexts
from lmrec.data.interactions import Interactions
from lmrec.data.kg import KnowledgeGraph

__all__ = ["Dataset", "LoadReport"]


@dataclass
class LoadReport:
    """What a loader kept and what it rejected, and why (rejected rows are counted, never silent)."""

    source: str
    rows_read: int = 0
    rows_kept: int = 0
    rejected: dict[str, int] | None = None
    examples: list[str] | None = None

    def reject(self, reason: str, example: str | None = None, count: int = 1) -> None:
        self.rejected = self.rejected or {}
        self.rejected[reason] = self.rejected.get(reason, 0) + count
        if example is not None:
            self.examples = self.examples or []
            if len(self.examples) < 20:
                self.examples.append(example)

    @property
    def n_rejected(self) -> int:
        return sum((self.rejected or {}).values())

    def summary(self) -> str:
        text = f"{self.source}: read {self.rows_read} rows, kept {self.rows_kept}"
        if self.rejected:
            text += ", rejected " + ", ".join(f"{n} ({why})" for why, n in self.rejected.items())
        return text


@dataclass(eq=False)
class Dataset:
    """Interactions with their optional item catalogue and user texts.

    The catalogue may hold items that never occur in ``interactions`` (cold items); the interactions'
    item map is the index space models see.
    """

    interactions: Interactions
    items: ItemCatalog | None = None
    users: UserTexts | None = None
    name: str = "dataset"
    reports: list[LoadReport] | None = None
    #: typed relations between items and entities (`lmrec.data.kg`), carried like item text
    kg: KnowledgeGraph | None = None

    @property
    def n_users(self) -> int:
        return self.interactions.n_users

    @property
    def n_items(self) -> int:
        return self.interactions.n_items

    def with_interactions(self, interactions: Interactions) -> Dataset:
        return replace(self, interactions=interactions)

    def summary(self) -> dict[str, object]:
        inter = self.interactions
        n = len(inter)
        return {
            "name": self.name,
            "n_users": inter.n_users,
            "n_items": inter.n_items,
            "n_interactions": n,
            "density": n / max(1, inter.n_users * inter.n_items),
            "has_ratings": inter.ratings is not None,
            "has_events": inter.events is not None,
            "has_scenarios": inter.scenarios is not None,
            "item_text_fields": self.items.text_fields if self.items is not None else [],
            "catalog_items": len(self.items) if self.items is not None else 0,
            "users_with_text": int(self.users.texts["user_id"].nunique()) if self.users is not None else 0,
            "rejected_rows": sum(r.n_rejected for r in self.reports or [] if not self._is_kg_report(r)),
            **(self.kg_summary() if self.kg is not None else {}),
        }

    def _is_kg_report(self, report: LoadReport) -> bool:
        return self.kg is not None and report.source == self.kg.source

    def kg_summary(self) -> dict[str, object]:
        """The graph's figures (`KnowledgeGraph.summary`) and its rejected triples."""
        assert self.kg is not None
        rejected = sum(r.n_rejected for r in self.reports or [] if self._is_kg_report(r))
        return {**self.kg.summary(self.all_item_ids()), "kg_rejected_triples": rejected}

    def all_item_ids(self) -> list[str]:
        """Every item id: the interactions' then catalogue-only ones."""
        ids = list(self.interactions.item_map.ids)
        if self.items is not None:
            known = set(ids)
            ids += [i for i in self.items.frame.index if i not in known]
        return ids

    def save(self, directory: str | Path) -> None:
        directory = Path(directory)
        self.interactions.save(directory)
        if self.items is not None:
            self.items.save(directory)
        if self.users is not None:
            self.users.save(directory)
        if self.kg is not None:
            self.kg.save(directory)
        (directory / "dataset.json").write_text(json.dumps({"name": self.name}))

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        directory = Path(directory)
        items = ItemCatalog.load(directory) if (directory / "catalog.json").exists() else None
        users = UserTexts.load(directory) if (directory / "user_texts.parquet").exists() else None
        name = json.loads((directory / "dataset.json").read_text())["name"]
        kg = KnowledgeGraph.load(directory) if (directory / "kg.json").exists() else None
        return cls(Interactions.load(directory), items, users, name, kg=kg)
