"""Relations PUT with items are stored in the SQLite store and read back in write order."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lmrec.data.kg import KnowledgeGraph
from lmrec.serve.related import ItemRelations, clean_relations
from lmrec.serve.stores.relations import RelationLog
from lmrec.serve.stores.sqlite import SQLiteStore


def test_the_log_keeps_distinct_pairs_in_write_order(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    log = RelationLog(store)
    with store.write() as tx:
        assert log.put(tx, "x", [("belongs_to", "Printers"), ("complement", "Toner")]) == 2
    with store.write() as tx:  # one repeated pair, one new
        assert log.put(tx, "x", [("complement", "Toner"), ("made_in", "Japan")]) == 1
        assert log.put(tx, "y", [("belongs_to", "Toner")]) == 1
    assert log.of_item("x") == [("belongs_to", "Printers"), ("complement", "Toner"), ("made_in", "Japan")]
    assert [(i, r, t) for _, i, r, t in log.since(0)] == [
        ("x", "belongs_to", "Printers"),
        ("x", "complement", "Toner"),
        ("x", "made_in", "Japan"),
        ("y", "belongs_to", "Toner"),
    ]
    seqs = [s for s, *_ in log.since(0)]
    assert seqs == sorted(set(seqs))  # increasing (not always by one: an ignored pair may use a number)
    assert [r for _, _, r, _ in log.since(seqs[1])] == ["made_in", "belongs_to"]
    store.close()
    reopened = SQLiteStore(tmp_path / "db.sqlite")  # the table and its rows outlive the process's store
    assert RelationLog(reopened).of_item("y") == [("belongs_to", "Toner")]
    reopened.close()


def test_a_failed_write_stores_no_relation(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    log = RelationLog(store)
    try:
        with store.write() as tx:
            log.put(tx, "x", [("complement", "Toner")])
            raise RuntimeError("disk full")
    except RuntimeError:
        pass
    assert log.since(0) == []
    store.close()


def test_catch_up_adds_stored_relations_to_the_served_graph_once(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite")
    log = RelationLog(store)
    # the graph of the model: t1 belongs to Toner, Printers -complement-> Toner
    triples = pd.DataFrame(
        [("t1", "belongs_to", "Toner"), ("Printers", "complement", "Toner")], columns=["head", "relation", "tail"]
    )
    relations = ItemRelations(KnowledgeGraph(triples, {"t1": "t1"}), ["belongs_to", "complement"])
    with store.write() as tx:
        log.put(tx, "p9", [("belongs_to", "Printers")])
    assert relations.catch_up(log) == 1 and relations.seq == log.since(0)[-1][0]
    assert [r.item_id for r in relations.related("p9", "complement")] == ["t1"]  # through Printers
    assert relations.catch_up(log) == 0  # nothing new
    with store.write() as tx:
        log.put(tx, "t9", [("belongs_to", "Toner")])
    assert relations.catch_up(log) == 1 and relations.seq == log.since(0)[-1][0]
    assert sorted(r.item_id for r in relations.related("p9", "complement")) == ["t1", "t9"]
    store.close()


def test_clean_relations_strips_and_drops_empty_sides() -> None:
    assert clean_relations([(" complement ", "Toner "), ("", "x"), ("made_in", "  ")]) == [("complement", "Toner")]
