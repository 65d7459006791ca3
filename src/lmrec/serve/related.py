"""Knowledge-graph relations in the service: ``/items/{id}/related``, complements, relation reasons.

The graph comes from the model directory's ``kg/`` folder (`lmrec.data.kg.KnowledgeGraph.save`), else
from the model itself when it was fit with its graph component (`lmrec.models.lm.graph`: every item's
relations are saved with it); relations sent with ``PUT /items/{id}`` join it, and stay after a restart.

Which items an item relates to by relation ``R`` (a request's ``relation``, e.g. ``complement``):

1. a relation of the item whose name matches ``R`` (`relation_matches`: ``complement`` matches
   ``complement`` and ``complementary_category``; ``substitute`` matches ``substitutable_category``)
   points to a tail: an item (item-item relation), or a concept whose member items count (members: items
   with a membership relation such as ``belongs_to`` to it);
2. a concept the item belongs to relates by a matching relation to another concept, whose members count
   (``Printers -complement-> Toner``: toner complements a printer).

`related` ranks those items by the model (cosine to the item's served vector) and fills up with the
model's nearest neighbours when the graph gives fewer than ``k``.

Relations sent with ``PUT /items/{id}`` are durable: `store_relations` commits them to the store's
``item_relations`` table (`lmrec.serve.stores.relations.RelationLog`) together with the vector they give
the item, then makes both live; `ItemRelations.catch_up` reads them back at start-up.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lmrec.data.kg import KnowledgeGraph
from lmrec.models.lm.graph import model_graph
from lmrec.serve.items import ServedItems
from lmrec.serve.schemas import ScoredItem
from lmrec.serve.stores.base import ItemRecord
from lmrec.serve.stores.relations import RelationLog

__all__ = [
    "MEMBERSHIP",
    "ItemRelations",
    "RelatedItem",
    "ago",
    "clean_relations",
    "past_tense",
    "complement_rows",
    "relation_matches",
    "relation_reason",
    "related_items",
    "store_relations",
]

log = logging.getLogger(__name__)

#: relation names that make an item a member of a concept (not a relation to follow)
MEMBERSHIP = frozenset({"belongs_to", "is_a", "category", "in_category", "member_of", "type"})
_SECONDS_PER_DAY = 86_400.0


def relation_matches(wanted: str, relation: str) -> bool:
    """Whether a stored ``relation`` answers a request for ``wanted``: the same name, a name that starts
    with it, or one sharing a prefix of at least ``max(6, len(wanted) - 1)`` characters (word forms:
    ``substitute`` / ``substitutable_category``). Case-insensitive."""
    a, b = wanted.lower().strip(), relation.lower().strip()
    if not a:
        return False
    if a == b or b.startswith(a):
        return True
    common = 0
    for x, y in zip(a, b):
        if x != y:
            break
        common += 1
    return common >= max(6, len(a) - 1)


@dataclass(frozen=True)
class RelatedItem:
    """An item related to another: its id, the stored relation name, and the concept it went through."""

    item_id: str
    relation: str
    via: str | None


class ItemRelations:
    """The service's view of item relations: an index over a `KnowledgeGraph` that PUTs extend.

    Args:
        kg: the graph (None: an empty one).
        model_relations: relation names the served model was trained with (None: the model has no graph).
    """

    def __init__(self, kg: KnowledgeGraph | None, model_relations: Iterable[str] | None = None) -> None:
        self.kg = kg if kg is not None else KnowledgeGraph(_empty_triples())
        self.model_relations = None if model_relations is None else set(model_relations)
        self.seq = 0  # the last `RelationLog` row applied (`catch_up`)
        self._lock = threading.Lock()  # writes (PUTs, catch-ups) from several request threads
        self._last_sync = time.monotonic()
        self._members: dict[str, set[str]] = defaultdict(set)
        for item in self.kg.links:
            self._index(item)

    @classmethod
    def for_model(cls, model: Any, model_dir: str | Path | None) -> ItemRelations:
        """The graph of ``model_dir/kg`` if saved there, else the one the model was fit with (if any)."""
        graph = model_graph(model)
        relations = None if graph is None else graph.relations
        kg_dir = None if model_dir is None else Path(model_dir) / "kg"
        if kg_dir is not None and (kg_dir / "kg.json").exists():
            return cls(KnowledgeGraph.load(kg_dir), relations)
        if graph is None:
            return cls(None, None)
        ids = model.item_map_.ids
        rows = [(ids[i], r, e) for i, r, e in graph.item_edges()]
        ents = graph.entities
        rows += [(ents[h], graph.relations[r], ents[t]) for h, r, t in graph.entity_edges.tolist()]
        import pandas as pd

        triples = pd.DataFrame(rows, columns=["head", "relation", "tail"])
        return cls(KnowledgeGraph(triples, {i: i for i in ids}, "the model's graph"), relations)

    def _index(self, item: str) -> None:
        for rel, tail in self.kg.item_edges(item):
            if rel in MEMBERSHIP:
                self._members[tail].add(item)

    def __len__(self) -> int:
        return len(self.kg)

    # ------------------------------------------------------------------ writes
    def put(self, item_id: str, relations: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
        """Store an item's relations (all of them, known to the model or not).

        Returns:
            ``{"stored": [...], "ignored_by_model": [...]}`` as ``relation -> target`` strings: the second
            lists relations the served model was not trained with (or all, when it has no graph).
        """
        pairs = clean_relations(relations)
        with self._lock:
            self.kg.add_item_relations(item_id, pairs)
            self._index(item_id)
        labels = [f"{r} -> {t}" for r, t in pairs]
        known = self.model_relations or set()
        return {"stored": labels, "ignored_by_model": [f"{r} -> {t}" for r, t in pairs if r not in known]}

    def catch_up(self, log: RelationLog) -> int:
        """Add the relations stored in ``log`` after the last row applied (all of them at start-up).

        Returns:
            how many stored rows were read.
        """
        rows = log.since(self.seq)
        by_item: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for _, item_id, relation, target in rows:
            by_item[item_id].append((relation, target))
        for item_id, pairs in by_item.items():
            self.put(item_id, pairs)
        if rows:
            self.seq = max(self.seq, rows[-1][0])
        return len(rows)

    def maybe_catch_up(self, log: RelationLog, interval_s: float) -> None:
        """`catch_up` at most every ``interval_s`` seconds (0: never): relations other processes sharing
        the store PUT, as `lmrec.serve.catalog.ItemUpdates.maybe_sync` does for items."""
        now = time.monotonic()
        if interval_s <= 0 or now - self._last_sync < interval_s:
            return
        self._last_sync = now
        self.catch_up(log)

    # ------------------------------------------------------------------ reads
    def related(self, item_id: str, relation: str) -> list[RelatedItem]:
        """Items related to ``item_id`` by ``relation`` (module docstring), each once, graph order."""
        out: dict[str, RelatedItem] = {}
        edges = self.kg.item_edges(item_id)

        def add_tail(rel: str, tail: str, via: str | None) -> None:
            for other in [*self.kg.items_of(tail), *sorted(self._members.get(tail, ()))]:
                if other != item_id and other not in out:
                    out[other] = RelatedItem(other, rel, via)

        for rel, tail in edges:
            if rel not in MEMBERSHIP and relation_matches(relation, rel):
                add_tail(rel, tail, tail)
        for rel, concept in edges:
            if rel in MEMBERSHIP:
                for rel2, tail2 in self.kg.edges_of(concept):
                    if relation_matches(relation, rel2):
                        add_tail(rel2, tail2, tail2)
        return list(out.values())

    def link(self, item_id: str, history: Sequence[str]) -> tuple[str, str] | None:
        """``(relation, history item)``: the first history item (most recent first) that ``item_id``
        relates to by any relation, or None."""
        relations = {r for r in self.kg.relations if r not in MEMBERSHIP}
        names = sorted({_family(r) for r in relations})
        for hist in history:
            for name in names:
                if any(r.item_id == item_id for r in self.related(hist, name)):
                    return name, hist
        return None


def clean_relations(relations: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """``(relation, target)`` pairs stripped of surrounding blanks, pairs with an empty side dropped."""
    pairs = [(str(r).strip(), str(t).strip()) for r, t in relations]
    return [(r, t) for r, t in pairs if r and t]


def _family(relation: str) -> str:
    """The short name of a relation for reasons: ``complementary_category`` -> ``complement``,
    ``substitutable_category`` -> ``substitute``; other names as they are."""
    if not relation.endswith("_category"):
        return relation
    head = relation[: -len("_category")]
    if head.endswith("ary") and len(head) > 7:
        return head[:-3]
    if head.endswith("able") and len(head) > 8:
        return head[:-4] + "e"
    return head


def _empty_triples() -> Any:
    import pandas as pd

    return pd.DataFrame(columns=["head", "relation", "tail"], dtype=str)


def rank_related(
    candidates: Sequence[str],
    anchor: np.ndarray,
    vectors: Any,
    rows: Any,
    k: int,
) -> list[tuple[str, float]]:
    """Top-``k`` of ``candidates`` by the inner product of their served vector with ``anchor``.

    Args:
        candidates: item ids.
        anchor: (dim,) the item's served vector.
        vectors: row -> (dim,) vector (`lmrec.serve.items.ServedItems.vector`).
        rows: item id -> live row or None (`lmrec.serve.items.ServedItems.row`).
        k: how many.
    """
    scored = [(c, float(vectors(r) @ anchor)) for c in candidates if (r := rows(c)) is not None]
    scored.sort(key=lambda x: -x[1])
    return scored[:k]


_PAST = {
    "purchase": "bought",
    "buy": "bought",
    "view": "viewed",
    "click": "clicked",
    "cart": "added",
    "rating": "rated",
}


def past_tense(event_type: str) -> str:
    """The verb of an event type for reasons (``purchase`` -> ``bought``; unknown types as they are)."""
    return _PAST.get(event_type, event_type)


def ago(ts: float | None, now: float | None = None) -> str:
    """``"2 days ago"`` / ``"today"`` for a Unix time (empty for None)."""
    if ts is None:
        return ""
    days = int(max(0.0, (time.time() if now is None else now) - ts) // _SECONDS_PER_DAY)
    return "today" if days == 0 else ("1 day ago" if days == 1 else f"{days} days ago")


def related_items(
    relations: ItemRelations, items: ServedItems, item_id: str, relation: str, k: int
) -> tuple[list[ScoredItem], int]:
    """``GET /items/{id}/related``: graph neighbours ranked by the model, then model neighbours.

    Returns:
        ``(items, n_graph)``: up to ``k`` live items, the first ``n_graph`` from the graph.
    """
    row = items.row(item_id)
    assert row is not None  # the caller answers 404 first
    anchor = items.vector(row)
    title = items.title(row)
    graph = {r.item_id: r for r in relations.related(item_id, relation)}
    top = rank_related(list(graph), anchor, items.vector, items.row, k)
    out = [
        ScoredItem(item_id=i, score=s, reason=f'{_family(graph[i].relation)} of "{title}"' + _via(graph[i]))
        for i, s in top
    ]
    if len(out) < k:
        allowed = items.live_mask()
        allowed[row] = False
        for i, _ in top:
            r = items.row(i)
            if r is not None:
                allowed[r] = False
        rows, scores = items.index.search(anchor, k - len(out), allowed)
        out += [
            ScoredItem(item_id=items.ids[r], score=float(s), reason=f'similar to "{title}"')
            for r, s in zip(rows, scores)
        ]
    return out, len(top)


def _via(item: RelatedItem) -> str:
    return f" (via {item.via})" if item.via else ""


def complement_rows(
    relations: ItemRelations, items: ServedItems, history: Sequence[str], relation: str = "complement"
) -> np.ndarray:
    """Rows of the live items related by ``relation`` to any of ``history`` (item ids), sorted."""
    rows = {r for h in history for rel in relations.related(h, relation) if (r := items.row(rel.item_id)) is not None}
    return np.asarray(sorted(rows), dtype=np.int64)


def relation_reason(
    relations: ItemRelations,
    items: ServedItems,
    item_id: str,
    history: Sequence[tuple[str, float | None, str]],
    now: float | None = None,
) -> tuple[str, str] | None:
    """``(relation, reason)`` when a relation links ``item_id`` to the history, e.g.
    ``('complement', 'complement of "Laser printer", bought 2 days ago')``; None otherwise.

    Args:
        history: ``(item id, Unix time or None, verb)``, most recent first.
    """
    found = relations.link(item_id, [h for h, _, _ in history])
    if found is None:
        return None
    name, hist = found
    _, ts, verb = next(h for h in history if h[0] == hist)
    row = items.any_row(hist)
    title = items.title(row) if row is not None else hist
    when = ago(ts, now)
    return name, f'{name} of "{title}"' + (f", {verb} {when}" if when else "")


def store_relations(
    relations: ItemRelations,
    log: RelationLog,
    items: ServedItems,
    space_name: str,
    item_id: str,
    pairs: Sequence[tuple[str, str]],
    attributes: Mapping[str, Any],
    vector: np.ndarray | None,
) -> dict[str, list[str]]:
    """Make an item's relations durable, then live: the pairs (`RelationLog.put`) and, when the relations
    give the live item a new vector, its ``items`` row commit in one transaction; only then do the
    served graph (`ItemRelations.put`) and the item's vector (`ServedItems.apply`) change.

    Args:
        pairs: ``(relation, target)``, cleaned (`clean_relations`).
        vector: (dim,) the item's vector with its relations, or None (the vector stays).

    Returns:
        `ItemRelations.put`'s answer.

    Raises:
        ValueError: ``vector`` does not fit the index (nothing was stored or changed).
    """
    store = log.store
    with items.lock:
        row = items.row(item_id)
        change = None
        if vector is not None and row is not None:
            change = items.prepare(item_id, items.texts[row], attributes, vector)
        with store.write() as tx:
            log.put(tx, item_id, pairs)
            if change is not None:
                store.put_item(tx, ItemRecord(item_id, change.text, dict(attributes), change.vector, space_name))
        if change is not None:
            items.apply(change)
        return relations.put(item_id, pairs)
