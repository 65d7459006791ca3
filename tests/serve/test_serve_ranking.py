from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrec.serve.attributes import AttributeTable, FilterError, FilterSpec
from lmrec.serve.metrics import Metrics
from lmrec.serve.ranking import Candidates, RankContext, apply_rules, load_rules, mmr


def table() -> AttributeTable:
    frame = pd.DataFrame(
        {"color": ["red", "blue", None, "red", ""], "price": [10.0, 20.0, 30.0, None, 50.0]},
        index=["a", "b", "c", "d", "e"],
    )
    return AttributeTable.from_frame(frame, categorical=["color"], numeric=["price"])


def test_filters_equals_in_range_and_missing_values() -> None:
    t = table()
    assert t.mask(FilterSpec(equals={"color": "red"})).tolist() == [True, False, False, True, False]
    assert t.mask(FilterSpec(isin={"color": ["blue", "green"]})).tolist() == [False, True, False, False, False]
    assert t.mask(FilterSpec(range={"price": (15.0, None)})).tolist() == [False, True, True, False, True]
    assert t.mask(FilterSpec(range={"price": (None, 30.0)}, equals={"color": "red"})).tolist() == [True] + [False] * 4
    assert t.mask(FilterSpec(equals={"price": 20})).tolist() == [False, True, False, False, False]
    assert t.mask(FilterSpec()).all()


def test_filter_errors_name_the_field() -> None:
    t = table()
    with pytest.raises(
        FilterError, match=r"filters\.equals\.colour: unknown attribute 'colour'; known: \['color', 'price'\]"
    ):
        t.mask(FilterSpec(equals={"colour": "red"}))
    with pytest.raises(FilterError, match=r"filters\.range\.color: attribute 'color' is categorical"):
        t.mask(FilterSpec(range={"color": (0, 1)}))
    with pytest.raises(FilterError, match=r"filters\.in\.price: attribute 'price' is numeric"):
        t.mask(FilterSpec(isin={"price": ["cheap"]}))


def test_new_rows_and_columns_keep_codes_distinct() -> None:
    t = table()  # "" was factorised and dropped: codes are red=0, blue=1, and the next must not reuse one
    t.add_rows(2)
    t.set_row(5, {"color": "green", "material": "wool", "price": 5})
    t.set_row(6, {"color": "blue"})
    assert t.mask(FilterSpec(equals={"color": "green"})).tolist() == [False] * 5 + [True, False]
    assert t.mask(FilterSpec(equals={"color": "blue"})).tolist() == [False, True, False, False, False, False, True]
    assert t.row(5) == {"color": "green", "price": 5.0, "material": "wool"}
    assert t.kind("material") == "categorical"
    with pytest.raises(FilterError, match=r"attributes\.price: expected a number, got 'free'"):
        t.set_row(6, {"price": "free"})


def test_mmr_known_answer() -> None:
    # A and B point almost the same way, C is orthogonal; relevance 1.0, 0.9, 0.5 -> rel 1, 0.8, 0
    vectors = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]])
    scores = np.array([1.0, 0.9, 0.5])
    assert mmr(scores, vectors, 3, 0.0).tolist() == [0, 1, 2]
    # diversity 0.5 after A: B = 0.5 * 0.8 - 0.5 * 0.99 = -0.095, C = 0.5 * 0 - 0.5 * 0 = 0 -> C first
    assert mmr(scores, vectors, 3, 0.5).tolist() == [0, 2, 1]
    assert mmr(scores, vectors, 2, 0.2).tolist() == [0, 1]  # B: 0.8*0.8 - 0.2*0.99 = 0.44 > C: 0
    assert mmr(scores, vectors, 0, 0.5).tolist() == []
    with pytest.raises(ValueError, match="diversity must lie in"):
        mmr(scores, vectors, 2, 1.5)


def test_rules_rescore_and_must_return_candidates() -> None:
    cands = Candidates(np.array([3, 1, 2]), np.array([0.9, 0.5, 0.1], np.float32), ("x", "y", "z"))
    ctx = RankContext("u", None, "home", 2, lambda row: {"brand": "acme" if row == 2 else "other"})

    def boost(c: Candidates, context: RankContext) -> Candidates:
        bonus = np.array([context.attributes(r)["brand"] == "acme" for r in c.rows], np.float32)
        return c.rescored(c.scores + bonus)

    out = apply_rules(cands, ctx, [boost])
    assert out.item_ids == ("z", "x", "y")
    np.testing.assert_allclose(out.scores, [1.1, 0.9, 0.5])
    with pytest.raises(TypeError, match="returned list, expected Candidates"):
        apply_rules(cands, ctx, [lambda c, x: []])
    with pytest.raises(ValueError, match="cannot import 'no.such.module:f'"):
        load_rules(["no.such.module:f"])
    assert load_rules(["numpy:sort"])[0] is np.sort


def test_metrics_exposition() -> None:
    m = Metrics()
    m.describe("lat_seconds", "histogram", "latency", buckets=(0.01, 0.1))
    m.describe("hits_total", "counter", "hits")
    m.inc("hits_total", route="/a")
    m.inc("hits_total", 2, route="/a")
    m.observe("lat_seconds", 0.005, route="/a")
    m.observe("lat_seconds", 0.01, route="/a")  # le is inclusive
    m.observe("lat_seconds", 0.5, route="/a")
    m.gauge("items", lambda: 7)
    text = m.render()
    assert 'hits_total{route="/a"} 3' in text
    assert 'lat_seconds_bucket{route="/a",le="0.01"} 2' in text
    assert 'lat_seconds_bucket{route="/a",le="0.1"} 2' in text
    assert 'lat_seconds_bucket{route="/a",le="+Inf"} 3' in text
    assert 'lat_seconds_count{route="/a"} 3' in text
    assert "# TYPE lat_seconds histogram" in text and "items 7" in text


def test_list_valued_attributes_match_any_member() -> None:
    frame = pd.DataFrame({"genres": [["Comedy", "Drama"], ["Drama"], None, ["Horror"]]}, index=list("abcd"))
    t = AttributeTable.from_frame(frame, categorical=["genres"], numeric=[])
    assert t.kind("genres") == "multi"
    assert t.mask(FilterSpec(equals={"genres": "Drama"})).tolist() == [True, True, False, False]
    assert t.mask(FilterSpec(isin={"genres": ["Comedy", "Horror"]})).tolist() == [True, False, False, True]
    t.add_rows(1)
    t.set_row(4, {"genres": ["Comedy"]})
    t.set_row(0, {"genres": "Horror"})  # replaces the row's members
    assert t.mask(FilterSpec(equals={"genres": "Comedy"})).tolist() == [False, False, False, False, True]
    assert t.row(0) == {"genres": ["Horror"]} and t.row(2) == {}
    with pytest.raises(FilterError, match=r"filters\.range\.genres: attribute 'genres' is multi"):
        t.mask(FilterSpec(range={"genres": (1, 2)}))


def test_one_value_and_the_codes_of_a_text_attribute() -> None:
    t = table()
    assert [t.value(r, "color") for r in range(5)] == ["red", "blue", None, "red", None]
    assert t.value(1, "price") == 20.0 and t.value(0, "size") is None
    codes = t.codes("color", np.array([0, 3, 1, 2, 4]))
    assert codes is not None
    # equal values share a code, missing ones (None, "") are -1
    assert codes[0] == codes[1] >= 0 and codes[2] not in (codes[0], -1) and codes[3] == codes[4] == -1
    assert t.codes("price", np.array([0])) is None and t.codes("size", np.array([0])) is None
