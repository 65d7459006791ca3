"""Knowledge-graph relations in the lm item vector: tokens, the graph part, cold items, new items."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_model
from lm_helpers import COLD, GENRES, N_ITEMS, N_USERS, genre_dataset, genre_of_user

from lmrec.data import IdMap, leave_one_out
from lmrec.data.kg import KnowledgeGraph
from lmrec.models.lm import LMRecommender
from lmrec.models.lm.config import FusionConfig
from lmrec.models.lm.graph import (
    GraphInputs,
    GraphSettings,
    ItemGraph,
    build_graph_inputs,
    encode_items_with_relations,
    model_graph,
    set_item_relations,
)


def blind_genre_data():
    """The genre data set with every title "film": text cannot tell genres apart, only the graph can."""
    data = genre_dataset()
    data.items.frame["title"] = "film"
    triples = pd.DataFrame(
        [(f"i{i}", "in_genre", data.items.frame.loc[f"i{i}", "genre"]) for i in range(N_ITEMS)]
        + [("action", "similar_to", "horror")],
        columns=["head", "relation", "tail"],
    )
    data.kg = KnowledgeGraph(triples, {f"i{i}": f"i{i}" for i in range(N_ITEMS)})
    data.items.frame = data.items.frame.drop(columns=["genre"])  # item text is "film" and nothing else
    data.items.categorical = []
    return data


GRAPH = {"fusion.graph": True}


@pytest.fixture(scope="module")
def graph_fit():
    data = blind_genre_data()
    split = leave_one_out(data.interactions)
    model = make_model(use_user_text=False, **GRAPH).fit(data.with_interactions(split.train))
    return data, model


def test_tokens_and_weights_with_one_hop() -> None:
    triples = pd.DataFrame(
        [("a", "r", "C"), ("b", "r", "C"), ("C", "s", "D"), ("a", "q", "b")], columns=["head", "relation", "tail"]
    )
    kg = KnowledgeGraph(triples, {"a": "a", "b": "b", "c": "c"})
    inputs = build_graph_inputs(kg, IdMap(["a", "b", "c"]), GraphSettings(hop_weight=0.5))
    # a: r->C (1), r/s->D (0.5), q->b (1, on one item only: dropped by min_items 2)
    assert inputs.vocab == ["r\tC", "r/s\tD"]
    # weights 1 and 0.5 normalised: 2/3 and 1/3
    for row in inputs.rows[:2]:
        assert [j for j, _ in row] == [0, 1] and [w for _, w in row] == pytest.approx([2 / 3, 1 / 3])
    assert inputs.rows[2] == []
    assert inputs.neighbours == [[1], [], []]  # a -q-> b, b is an item
    named = [(i, inputs.relations[r], inputs.entities[e]) for i, r, e in inputs.edges.tolist()]
    assert named == [(0, "r", "C"), (0, "q", "b"), (1, "r", "C")]
    assert [(inputs.entities[h], inputs.relations[r], inputs.entities[t]) for h, r, t in inputs.entity_edges] == [
        ("C", "s", "D")
    ]


def test_graph_part_is_weighted_tokens_plus_neighbour_text() -> None:
    inputs = GraphInputs(
        vocab=["t0", "t1"],
        rows=[[(0, 0.75), (1, 0.25)], [], [(1, 1.0)]],
        neighbours=[[1, 2], [], []],
        relations=["r"],
        entities=["e"],
        edges=np.zeros((0, 3), np.int64),
        entity_edges=np.zeros((0, 3), np.int64),
    )
    module = ItemGraph(inputs, dim=2)
    with torch.no_grad():
        module.emb.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 4.0]]))
    text = torch.tensor([[0.0, 0.0], [2.0, 2.0], [4.0, 0.0]])
    out = module(text)
    # item 0: 0.75 * (1, 0) + 0.25 * (0, 4) + mean((2, 2), (4, 0)) + own text (0, 0) = (3.75, 2)
    # item 1: no tokens, no neighbours: its text (2, 2); item 2: (0, 4) + (4, 0) = (4, 4)
    np.testing.assert_allclose(out.detach().numpy(), [[3.75, 2.0], [2.0, 2.0], [4.0, 4.0]], rtol=1e-6)


def test_cold_items_take_their_genre_from_the_graph(graph_fit) -> None:
    _, model = graph_fit
    model.net_.eval()
    with torch.no_grad():  # the learned towers (what the cold-start paths add later is another component)
        items = torch.nn.functional.normalize(model.net_.item_tower(), dim=-1).numpy()
    users = model.user_vectors(np.arange(N_USERS))[:, : items.shape[1]]
    picked = (users @ items[COLD].T).argmax(axis=1)  # (users,) best of the 4 cold items
    right = np.array([genre_of_user(u) for u in range(N_USERS)])
    # the cold item of the user's genre wins for every user: nobody interacted with it, its text is
    # "film" like every item, so only its in_genre token tells
    assert (picked == right).all()


def test_without_the_graph_cold_items_are_indistinguishable() -> None:
    data = blind_genre_data()
    split = leave_one_out(data.interactions)
    model = make_model(use_user_text=False, epochs=2).fit(data.with_interactions(split.train))
    model.net_.eval()
    with torch.no_grad():
        vectors = model.net_.item_tower()[COLD].numpy()  # the learned item tower's output
    np.testing.assert_allclose(vectors, np.repeat(vectors[:1], len(COLD), axis=0), atol=1e-6)


def test_new_item_with_relations_equals_the_cold_item(graph_fit, tmp_path) -> None:
    data, model = graph_fit
    model.save(tmp_path / "m")
    loaded = LMRecommender.load(tmp_path / "m")
    np.testing.assert_allclose(loaded.item_vectors(), model.item_vectors(), atol=1e-6)
    graph = model_graph(loaded)
    assert graph is not None and ("i0", "in_genre", "action") in [
        (loaded.item_map_.ids[i], r, e) for i, r, e in graph.item_edges()
    ]
    (new,) = loaded.add_items(["brand-new"], ["film"])
    answer = set_item_relations(loaded, new, [("in_genre", "comedy"), ("made_by", "acme"), ("in_genre", "opera")])
    assert answer == {
        "used": ["in_genre -> comedy"],
        "unknown_relations": ["made_by -> acme"],
        "unknown_entities": ["in_genre -> opera"],
    }
    # same text, same tokens, no ID part: exactly the vector of comedy's cold item (index 25)
    vectors = loaded.item_vectors()
    np.testing.assert_allclose(vectors[new], vectors[COLD[GENRES.index("comedy")]], atol=1e-6)
    # the text-and-relations path (PUT /items with relations) gives the same vector without adding the item
    direct = encode_items_with_relations(loaded, ["film"], [[("in_genre", "comedy")]])
    np.testing.assert_allclose(direct[0], vectors[new], atol=1e-5)


def test_graph_needs_a_knowledge_graph_and_item_text() -> None:
    data = genre_dataset()
    with pytest.raises(ValueError, match=r"fusion.graph needs a data set with a knowledge graph"):
        make_model(epochs=1, **GRAPH).fit(data)
    with pytest.raises(ValueError, match=r"fusion.graph adds to the item text part; item_tower.repr is 'id'"):
        make_model(epochs=1, item_repr="id", **GRAPH).fit(blind_genre_data())


def test_config_is_checked_and_is_part_of_fusion() -> None:
    with pytest.raises(ValueError, match=r"FusionConfig.graph_hops must be one of \[0, 1\], got 2"):
        FusionConfig(graph_hops=2)
    with pytest.raises(ValueError, match=r"FusionConfig.graph must be True or False, got 'yes'"):
        LMRecommender.from_params({"fusion.graph": "yes"})
    with pytest.raises(ValueError, match=r"has no parameter 'graph.enabled'"):
        LMRecommender.from_params({"graph.enabled": True})  # a component of its own no longer
    assert LMRecommender().get_params()["fusion"]["graph"] is False
    params = LMRecommender.from_params({"fusion.graph": True, "fusion.graph_relations": ["in_genre"]}).get_params()
    assert params["fusion"]["graph"] is True and params["fusion"]["graph_relations"] == ["in_genre"]
    assert params["fusion"]["mode"] == "none"  # the graph part needs no modality fusion
    assert GraphSettings.of(FusionConfig(graph=True, graph_hops=0, graph_min_items=3)) == GraphSettings(
        hops=0, min_items=3
    )


def test_the_scenario_model_refuses_the_graph_part() -> None:
    from lmrec.models.lm import LMScenarioRecommender

    with pytest.raises(ValueError, match=r"does not support the knowledge-graph part; fusion.graph must be False"):
        LMScenarioRecommender.from_params({"fusion.graph": True}).check_params()
