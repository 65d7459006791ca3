"""Knowledge graphs: RecBole .kg/.link files, item-column links, triples tables, bad triples."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lmrec.config import DataConfig
from lmrec.data import load_recbole
from lmrec.data.dataset import Dataset, LoadReport
from lmrec.data.kg import KnowledgeGraph
from lmrec.data.loaders import load_from_config
from lmrec.data.loaders.kg import build_kg, load_kg


def _write(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture()
def office_like(tmp_path: Path) -> Path:
    """Three items linked by an ``asin`` column, as Amazon Office's graph is (no .link file)."""
    d = tmp_path / "shop"
    d.mkdir()
    _write(
        d / "shop.inter",
        "user_id:token\titem_id:token\ttimestamp:float",
        ["u1\t0\t1", "u1\t1\t2", "u2\t1\t3", "u2\t2\t4"],
    )
    _write(
        d / "shop.item",
        "item_id:token\tasin:token\ttitle:token_seq",
        ["0\tA0\tlaser printer", "1\tA1\ttoner cartridge", "2\tA2\tstapler"],
    )
    _write(
        d / "shop.kg",
        "head_id:token\trelation_id:token\ttail_id:token",
        [
            "A0\tcomplementary_category\tToner",  # kept
            "A1\tsubstitutable_category\tToner",  # kept
            "A0\tcomplementary_category\tToner",  # duplicate
            "Toner\tcomplement\tPrinters",  # category -> category, reachable through A0 / A1
            "Lonely\tcomplement\tPrinters",  # dangling: no item reaches 'Lonely'
            "A2\t\tToner",  # missing relation
            "ZZ9\tcomplement\tToner",  # dangling: an ASIN of no item
        ],
    )
    return d


def test_recbole_kg_linked_through_an_item_column(office_like: Path) -> None:
    data = load_recbole(office_like)
    kg = data.kg
    assert kg is not None
    # 7 rows: 1 duplicate, 1 missing field, 2 dangling -> 3 triples kept
    assert len(kg) == 3
    assert kg.links == {"0": "A0", "1": "A1", "2": "A2"}
    assert kg.item_edges("0") == [("complementary_category", "Toner")]
    assert kg.item_edges("2") == []
    report = data.reports[-1]
    assert report.rows_read == 7 and report.rows_kept == 3
    assert report.rejected == {
        "missing head, relation or tail": 1,
        "duplicate triple": 1,
        "dangling triple (no item reaches its head)": 2,
    }
    summary = data.summary()
    # entities: A0, A1, A2 (links), Toner, Printers -> 5; items with a relation: 0 and 1 of 3
    assert summary["kg_entities"] == 5
    assert summary["kg_relations"] == {"complement": 1, "complementary_category": 1, "substitutable_category": 1}
    assert summary["kg_items_linked"] == pytest.approx(2 / 3)
    assert summary["rejected_rows"] == 0 and summary["kg_rejected_triples"] == 4


def test_link_file_and_unmatched_links(office_like: Path) -> None:
    _write(office_like / "shop.link", "item_id:token\tentity_id:token", ["0\tA0", "1\tA1", "9\tA9"])
    data = load_recbole(office_like)
    assert data.kg is not None and data.kg.links == {"0": "A0", "1": "A1"}
    assert data.reports[-1].rejected is not None
    assert data.reports[-1].rejected["link to an unknown item (" + str(office_like / "shop.link") + ")"] == 1


def test_links_matching_no_item_name_the_file(office_like: Path) -> None:
    link = _write(office_like / "shop.link", "item_id:token\tentity_id:token", ["x1\tA0", "x2\tA1"])
    with pytest.raises(ValueError, match=r"shop\.link: none of its 2 links names an item.*\['x1', 'x2'\]"):
        load_recbole(office_like)
    assert link.exists()


def test_heads_matching_nothing_is_an_error(tmp_path: Path) -> None:
    kg = _write(tmp_path / "g.tsv", "head\trelation\ttail", ["Q1\tr\tQ2"])
    with pytest.raises(ValueError, match=r"no item links to the graph.*\['Q1'\]"):
        load_kg(kg, ["0", "1"])


def test_triples_table_in_a_data_config(office_like: Path, tmp_path: Path) -> None:
    table = _write(
        tmp_path / "rel.csv", "src,rel,dst,weight", ["0,also_bought,1,1", "1,also_bought,0,1", "0,bad_rel,2,1"]
    )
    (office_like / "shop.kg").unlink()
    config = DataConfig(
        source=str(office_like),
        format="recbole",
        kg={
            "path": str(table),
            "columns": {"head": "src", "relation": "rel", "tail": "dst"},
            "relations": ["also_bought"],
        },
    )
    data = load_from_config(config)
    assert data.kg is not None
    # linked through the item ids themselves; item 0 <-> item 1 kept, the bad relation counted
    assert data.kg.item_edges("0") == [("also_bought", "1")]
    assert data.kg.items_of("1") == ["1"]
    assert data.reports[-1].rejected == {"unknown relation": 1}


def test_data_config_rejects_unknown_kg_keys() -> None:
    from lmrec.config import ConfigError

    with pytest.raises(ConfigError, match=r"data.kg: unknown keys \['linkpath'\]"):
        DataConfig(kg={"path": "x.kg", "linkpath": "x.link"})


def test_strict_raises_on_first_bad_triple() -> None:
    triples = pd.DataFrame({"head": ["a", "a"], "relation": ["r", None], "tail": ["b", "c"]})
    with pytest.raises(ValueError, match=r"missing head, relation or tail: kg, triple 2"):
        build_kg(triples, ["a"], source="kg", strict=True)


def test_round_trip_and_added_relations(office_like: Path, tmp_path: Path) -> None:
    data = load_recbole(office_like)
    data.save(tmp_path / "saved")
    back = Dataset.load(tmp_path / "saved")
    assert back.kg is not None and data.kg is not None
    pd.testing.assert_frame_equal(back.kg.triples, data.kg.triples)
    assert back.kg.links == data.kg.links
    back.kg.add_item_relations("new", [("complementary_category", "Toner"), ("complementary_category", "Toner")])
    assert back.kg.item_edges("new") == [("complementary_category", "Toner")]
    assert back.kg.links["new"] == "new" and len(back.kg) == 4


def test_report_counts_sum() -> None:
    report = LoadReport("kg")
    triples = pd.DataFrame({"head": ["i1", "i1", "x"], "relation": ["r", "r", "r"], "tail": ["e", "e", "e"]})
    kg = build_kg(triples, ["i1"], report=report, source="kg")
    assert isinstance(kg, KnowledgeGraph)
    # 3 read = 1 kept + 1 duplicate + 1 dangling
    assert (report.rows_read, report.rows_kept, report.n_rejected) == (3, 1, 2)


def test_train_saves_the_graph_where_the_service_reads_it(office_like: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lmrec.cli import app
    from lmrec.models.bundle import ModelBundle
    from lmrec.serve.related import ItemRelations

    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", "--data", str(office_like), "--model", "pop", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = load_recbole(office_like)
    assert data.kg is not None
    saved = KnowledgeGraph.load(out / "kg")
    pd.testing.assert_frame_equal(saved.triples, data.kg.triples)
    assert saved.links == {"0": "A0", "1": "A1", "2": "A2"} and saved.source == data.kg.source
    bundle = ModelBundle.load(out)  # the directory still loads as any model directory
    served = ItemRelations.for_model(bundle.model, out)  # pop has no graph of its own: this one is from kg/
    assert served.kg.item_edges("0") == [("complementary_category", "Toner")]
    assert served.kg.source == data.kg.source and served.model_relations is None


def test_train_without_a_graph_writes_no_kg_folder(office_like: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from lmrec.cli import app

    (office_like / "shop.kg").unlink()
    out = tmp_path / "model"
    result = CliRunner().invoke(app, ["train", "--data", str(office_like), "--model", "pop", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "config.json").exists() and not (out / "kg").exists()
