"""Knowledge-graph relations in the item vector of the language-model interest model.

With ``FusionConfig.graph`` (``fusion.graph``) an item's vector draws on its relations in the data set's knowledge graph
(`lmrec.data.kg.KnowledgeGraph`):

- **relation-typed entity embeddings**: each ``(relation, entity)`` pair an item points to (for
  example ``complementary_category -> Printers``) is a token with a learned embedding; with
  ``hops=1`` the pairs one step further over entity-entity triples join with ``hop_weight``
  (``Printers -complement-> Toner`` gives the token ``complementary_category/complement -> Toner``), so
  what is known about a concept propagates to the items that reach it. The graph part of item ``i``
  is ``g_i = sum_t w_it e_t`` with the weights of its tokens summing to 1.
- **related items' text** (``neighbor_text``): where a relation's tail is another item, the mean of
  the related items' text-path vectors is added.

The item vector becomes ``text part (fused, if fusion is on) + g_i + ID part``. Tokens met on fewer
than ``min_items`` items are dropped (a token that names one item is an item ID in disguise). An item
that arrives with relations but without behaviour (a cold item of the catalogue, or one added later
with `set_item_relations`) gets the embeddings its tokens learned on other items.

`ItemGraph` sits in the item tower's ``fusion`` slot and wraps the modality fusion (if any), so the
item tower itself is unchanged; the text path (queries, items known only by text) stays text-only.
Its spec (vocabulary, relation and entity names) goes into the model's saved fusion spec and its
per-item edges into the state dict, so a loaded model still knows every item's relations.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from lmrec.data.idmap import IdMap
from lmrec.data.kg import KnowledgeGraph
from lmrec.models.lm.config import FusionConfig, ItemTowerConfig
from lmrec.models.lm.fusion import ItemFusion
from lmrec.models.lm.text import encode_texts
from lmrec.models.lm.training import with_content

__all__ = [
    "GraphInputs",
    "GraphSettings",
    "ItemGraph",
    "attach_graph",
    "build_graph_inputs",
    "check_graph",
    "encode_items_with_relations",
    "fusion_from_state",
    "model_graph",
    "set_item_relations",
]

_HOP = "/"


@dataclasses.dataclass(frozen=True)
class GraphSettings:
    """The ``graph_*`` fields of `FusionConfig` (checked there), as the graph code reads them."""

    relations: Sequence[str] | None = None
    hops: int = 1
    hop_weight: float = 0.5
    min_items: int = 2
    neighbor_text: bool = True

    @classmethod
    def of(cls, fusion: FusionConfig) -> GraphSettings:
        return cls(
            fusion.graph_relations,
            fusion.graph_hops,
            fusion.graph_hop_weight,
            fusion.graph_min_items,
            fusion.graph_neighbor_text,
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["relations"] = None if self.relations is None else list(self.relations)
        return out


@dataclasses.dataclass
class GraphInputs:
    """What `ItemGraph` is built from, in item index order.

    Attributes:
        vocab: token strings ``"relation\\tentity"`` in embedding order.
        rows: (n_items,) list of ``[(token index, weight), ...]`` (weights sum to 1 per item with tokens).
        neighbours: (n_items,) list of related item indices (item-valued tails).
        relations: every relation name the graph had (items' and entities').
        entities: entity names of ``edges`` (index order).
        edges: (m, 3) int64 ``(item index, relation index, entity index)``: every item relation.
        entity_edges: (p, 3) int64 ``(entity index, relation index, entity index)``.
    """

    vocab: list[str]
    rows: list[list[tuple[int, float]]]
    neighbours: list[list[int]]
    relations: list[str]
    entities: list[str]
    edges: np.ndarray
    entity_edges: np.ndarray


def _token(relation: str, entity: str) -> str:
    return f"{relation}\t{entity}"


def _weighted(
    pairs: Iterable[tuple[str, str]], entity_out: dict[str, list[tuple[str, str]]], config: GraphSettings
) -> dict[str, float]:
    """Token -> raw weight of an item's ``(relation, tail)`` pairs (and one hop further with ``hops``)."""
    allowed = None if config.relations is None else set(config.relations)
    out: dict[str, float] = {}
    for rel, tail in pairs:
        if allowed is not None and rel not in allowed:
            continue
        out[_token(rel, tail)] = max(out.get(_token(rel, tail), 0.0), 1.0)
        if config.hops >= 1:
            for rel2, tail2 in entity_out.get(tail, ()):
                if allowed is None or rel2 in allowed:
                    key = _token(f"{rel}{_HOP}{rel2}", tail2)
                    out[key] = max(out.get(key, 0.0), config.hop_weight)
    return out


def build_graph_inputs(kg: KnowledgeGraph, item_map: IdMap, config: GraphSettings) -> GraphInputs:
    """Read every item's relations from ``kg`` in ``item_map`` order and build the token vocabulary."""
    ids = item_map.ids
    index = {i: j for j, i in enumerate(ids)}
    item_entities = {kg.links[i] for i in ids if i in kg.links}
    relations = sorted(set(kg.triples["relation"]))
    rel_index = {r: j for j, r in enumerate(relations)}
    entities: dict[str, int] = {}

    def ent(name: str) -> int:
        return entities.setdefault(name, len(entities))

    entity_out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    entity_edges: list[tuple[int, int, int]] = []
    for h, r, t in kg.triples.itertuples(index=False, name=None):
        if h not in item_entities:
            entity_out[h].append((r, t))
            entity_edges.append((ent(h), rel_index[r], ent(t)))
    pairs = [kg.item_edges(i) for i in ids]
    edges = [(j, rel_index[r], ent(t)) for j, ps in enumerate(pairs) for r, t in ps]
    raw = [_weighted(ps, entity_out, config) for ps in pairs]
    counts: dict[str, int] = defaultdict(int)
    for tokens in raw:
        for tok in tokens:
            counts[tok] += 1
    vocab = sorted(t for t, c in counts.items() if c >= config.min_items)
    tok_index = {t: j for j, t in enumerate(vocab)}
    rows = [_normalised(tokens, tok_index) for tokens in raw]
    allowed = None if config.relations is None else set(config.relations)
    neighbours = [
        sorted(
            {
                index[item]
                for r, t in ps
                if allowed is None or r in allowed
                for item in kg.items_of(t)
                if item in index and index[item] != j
            }
        )
        if config.neighbor_text
        else []
        for j, ps in enumerate(pairs)
    ]

    def array(rows_: list[tuple[int, int, int]]) -> np.ndarray:
        return np.asarray(rows_, dtype=np.int64).reshape(-1, 3)

    return GraphInputs(vocab, rows, neighbours, relations, list(entities), array(edges), array(entity_edges))


def _normalised(tokens: dict[str, float], tok_index: dict[str, int]) -> list[tuple[int, float]]:
    kept = [(tok_index[t], w) for t, w in tokens.items() if t in tok_index]
    total = sum(w for _, w in kept)
    return [(j, w / total) for j, w in sorted(kept)] if total > 0 else []


def _flatten(rows: Sequence[Sequence[tuple[int, float]]]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lengths = [len(r) for r in rows]
    offsets = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) if rows else np.zeros(0, np.int64)
    tokens = np.asarray([j for r in rows for j, _ in r], dtype=np.int64)
    weights = np.asarray([w for r in rows for _, w in r], dtype=np.float32)
    return torch.as_tensor(offsets), torch.as_tensor(tokens), torch.as_tensor(weights)


class ItemGraph(nn.Module):
    """The graph part of every item vector, wrapped around the modality fusion (or the text alone).

    Args:
        inputs: the per-item tokens and neighbours.
        dim: model width ``d``.
        inner: the `ItemFusion` the text part goes through first (None: the text part as it is).
    """

    offsets: torch.Tensor
    tokens: torch.Tensor
    weights: torch.Tensor
    nb_rows: torch.Tensor
    nb_cols: torch.Tensor
    nb_vals: torch.Tensor
    edges: torch.Tensor
    entity_edges: torch.Tensor

    def __init__(self, inputs: GraphInputs, dim: int, inner: ItemFusion | None = None) -> None:
        super().__init__()
        self.inner = inner
        self.vocab = list(inputs.vocab)
        self.vocab_index = {t: j for j, t in enumerate(self.vocab)}
        self.relations, self.entities = list(inputs.relations), list(inputs.entities)
        self.emb = nn.EmbeddingBag(max(1, len(self.vocab)), dim, mode="sum")
        nn.init.normal_(self.emb.weight, std=0.02)
        self._rows = [list(r) for r in inputs.rows]
        offsets, tokens, weights = _flatten(self._rows)
        self.register_buffer("offsets", offsets)
        self.register_buffer("tokens", tokens)
        self.register_buffer("weights", weights)
        nb = [(i, j, 1.0 / len(ns)) for i, ns in enumerate(inputs.neighbours) for j in ns]
        self.register_buffer("nb_rows", torch.as_tensor([r for r, _, _ in nb], dtype=torch.long))
        self.register_buffer("nb_cols", torch.as_tensor([c for _, c, _ in nb], dtype=torch.long))
        self.register_buffer("nb_vals", torch.as_tensor([v for _, _, v in nb], dtype=torch.float32))
        self.register_buffer("edges", torch.as_tensor(inputs.edges, dtype=torch.long).reshape(-1, 3))
        self.register_buffer("entity_edges", torch.as_tensor(inputs.entity_edges, dtype=torch.long).reshape(-1, 3))

    @property
    def n_items(self) -> int:
        return int(self.offsets.shape[0])

    def graph_part(self, text_vectors: torch.Tensor) -> torch.Tensor:
        """(n_items, d) text-path vectors -> (n_items, d) graph part ``g`` (zero rows for items without tokens)."""
        g = self.emb(self.tokens, self.offsets, per_sample_weights=self.weights)  # (n_items, d)
        if len(self.nb_rows):
            related = text_vectors[self.nb_cols] * self.nb_vals.unsqueeze(1)  # (n_edges, d)
            g = g.index_add(0, self.nb_rows, related)  # + mean text part of the related items
        return g

    def forward(self, text_vectors: torch.Tensor) -> torch.Tensor:
        """(n_items, d) text-path vectors -> (n_items, d): the (fused) text part plus the graph part."""
        base = self.inner(text_vectors) if self.inner is not None else text_vectors
        return base + self.graph_part(text_vectors)

    @torch.no_grad()
    def grow(self, n_new: int) -> None:
        """Append ``n_new`` items without relations."""
        if isinstance(self.inner, ItemFusion):
            self.inner.grow(n_new)
        self._rows.extend([] for _ in range(n_new))
        self.offsets = torch.cat([self.offsets, self.offsets.new_full((n_new,), len(self.tokens))])

    @torch.no_grad()
    def set_rows(self, rows: dict[int, list[tuple[int, float]]]) -> None:
        """Replace the tokens of some items (index -> ``[(token, weight), ...]``)."""
        for i, row in rows.items():
            self._rows[i] = list(row)
        self.offsets, self.tokens, self.weights = _flatten(self._rows)

    def item_edges(self) -> list[tuple[int, str, str]]:
        """Every stored ``(item index, relation, entity)``."""
        return [(int(i), self.relations[r], self.entities[e]) for i, r, e in self.edges.tolist()]

    def spec(self, inner_spec: dict[str, Any] | None, config: GraphSettings) -> dict[str, Any]:
        """What config.json needs to rebuild this module (the arrays are in the state dict)."""
        return {
            "graph": config.to_dict(),
            "vocab": self.vocab,
            "relations": self.relations,
            "entities": self.entities,
            "inner": inner_spec,
        }

    @classmethod
    def from_state(cls, spec: dict[str, Any], arrays: dict[str, np.ndarray], dim: int) -> ItemGraph:
        """Rebuild from `spec` and the ``item_tower.fusion.*`` arrays of a saved state dict."""
        prefix = "item_tower.fusion."
        inner = None
        if spec.get("inner"):
            inner_arrays = {
                "item_tower.fusion." + k[len(prefix + "inner.") :]: v
                for k, v in arrays.items()
                if k.startswith(prefix + "inner.")
            }
            inner = ItemFusion.from_state(spec["inner"], inner_arrays, dim)
        offsets, tokens, weights = (np.asarray(arrays[prefix + k]) for k in ("offsets", "tokens", "weights"))
        ends = np.append(offsets[1:], len(tokens))
        rows = [list(zip(tokens[s:e].tolist(), weights[s:e].tolist())) for s, e in zip(offsets, ends)]
        nb_rows, nb_cols = np.asarray(arrays[prefix + "nb_rows"]), np.asarray(arrays[prefix + "nb_cols"])
        neighbours: list[list[int]] = [[] for _ in range(len(offsets))]
        for r, c in zip(nb_rows.tolist(), nb_cols.tolist()):
            neighbours[r].append(c)
        inputs = GraphInputs(
            list(spec["vocab"]),
            rows,
            neighbours,
            list(spec["relations"]),
            list(spec["entities"]),
            np.asarray(arrays[prefix + "edges"]),
            np.asarray(arrays[prefix + "entity_edges"]),
        )
        return cls(inputs, dim, inner)


# ---------------------------------------------------------------------------------------- the model's hooks
def check_graph(fusion: FusionConfig, item_tower: ItemTowerConfig) -> None:
    """Checks across components: the graph part joins the text part, so it needs item text."""
    if fusion.graph and item_tower.repr == "id":
        raise ValueError("LMRecommender fusion.graph adds to the item text part; item_tower.repr is 'id'")


def attach_graph(
    net: Any, fusion: FusionConfig, dataset: Any, dim: int, fusion_spec: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Wrap the item tower's fusion slot in an `ItemGraph` when ``fusion.graph`` (returns the
    spec to save as the model's fusion spec; ``fusion_spec`` unchanged when the graph is off).

    Raises:
        ValueError: the graph is on but the data set has no knowledge graph.
    """
    if not fusion.graph:
        return fusion_spec
    if dataset.kg is None:
        raise ValueError(
            "LMRecommender fusion.graph needs a data set with a knowledge graph (dataset.kg); this one has none"
        )
    config = GraphSettings.of(fusion)
    inputs = build_graph_inputs(dataset.kg, dataset.interactions.item_map, config)
    module = ItemGraph(inputs, dim, net.item_tower.fusion)
    net.item_tower.fusion = module
    return module.spec(fusion_spec, config)


def fusion_from_state(spec: dict[str, Any], arrays: dict[str, np.ndarray], dim: int) -> nn.Module:
    """The module of a saved fusion spec: an `ItemGraph` (with its inner fusion) or an `ItemFusion`."""
    if "graph" in spec and "vocab" in spec:
        return ItemGraph.from_state(spec, arrays, dim)
    return ItemFusion.from_state(spec, arrays, dim)


def model_graph(model: Any) -> ItemGraph | None:
    """The `ItemGraph` of a fitted lm model (None when its graph is off or it has no network)."""
    net = getattr(model, "net_", None)
    tower = getattr(net, "item_tower", None)
    module = getattr(tower, "fusion", None)
    return module if isinstance(module, ItemGraph) else None


def set_item_relations(model: Any, item_idx: int, relations: Sequence[tuple[str, str]]) -> dict[str, list[str]]:
    """Give an item of a fitted lm model its relations (a new item: they are its only signal).

    Relations the model was not trained with, and ``(relation, entity)`` pairs it has no embedding
    for, are ignored (and returned as such); the model's item vectors are refreshed.

    Returns:
        ``{"used": [...], "unknown_relations": [...], "unknown_entities": [...]}`` (``relation -> entity`` strings).
    """
    graph = model_graph(model)
    out: dict[str, list[str]] = {"used": [], "unknown_relations": [], "unknown_entities": []}
    if graph is None:
        out["unknown_relations"] = sorted({r for r, _ in relations})
        return out
    config = GraphSettings.of(model.fusion)
    known = set(graph.relations)
    entity_out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for h, r, t in graph.entity_edges.tolist():
        entity_out[graph.entities[h]].append((graph.relations[r], graph.entities[t]))
    pairs = [(str(r), str(t)) for r, t in relations]
    for r, t in pairs:
        label = f"{r} -> {t}"
        if r not in known:
            out["unknown_relations"].append(label)
        elif _token(r, t) not in graph.vocab_index:
            out["unknown_entities"].append(label)
        else:
            out["used"].append(label)
    weighted = _weighted([(r, t) for r, t in pairs if r in known], entity_out, config)
    graph.set_rows({int(item_idx): _normalised(weighted, graph.vocab_index)})
    model.refresh_vectors()
    return out


def encode_items_with_relations(
    model: Any, texts: Sequence[str], relations: Sequence[Sequence[tuple[str, str]]]
) -> np.ndarray:
    """(n, d) vectors of items known by their text and relations, as `LMRecommender.encode_items` gives
    text-only items but with each item's graph part added to its learned part (relations the model has
    no token for add nothing; without a graph this is ``encode_items``)."""
    graph = model_graph(model)
    if graph is None:
        return np.asarray(model.encode_items(list(texts)), dtype=np.float32)
    config = GraphSettings.of(model.fusion)
    entity_out: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for h, r, t in graph.entity_edges.tolist():
        entity_out[graph.entities[h]].append((graph.relations[r], graph.entities[t]))
    rows = [_normalised(_weighted(list(pairs), entity_out, config), graph.vocab_index) for pairs in relations]
    offsets, tokens, weights = _flatten(rows)
    net = model.net_
    was_training = net.training
    net.eval()
    with torch.no_grad():
        raw = torch.from_numpy(encode_texts(model.get_text_encoder(), list(texts), kind="passage"))
        g = graph.emb(tokens, offsets, per_sample_weights=weights)  # (n, d)
        learned = net.project(net.item_tower.encode_text(raw) + g)
        cw = model.item_tower.content_weight
        content = net.item_tower.content(raw) if cw > 0 else None
        vectors = with_content(learned, content, cw).numpy()
        paths = getattr(model, "cold_paths_", None)
        if paths is not None:
            vectors = paths.text_vectors(vectors, net.item_tower.content(raw).numpy(), "passage")
    net.train(was_training)
    return np.asarray(vectors, dtype=np.float32)
