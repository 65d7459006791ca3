from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrec.data import IdMap, ItemCatalog, UserTexts
from lmrec.data.text import profile_sentence, render_template


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"title": "T", "brand": "B", "cats": "C"}, "T. B. C"),
        ({"title": "T", "brand": "", "cats": "C"}, "T. C"),
        ({"title": np.nan, "brand": "B", "cats": None}, "B"),
        ({"title": "T", "brand": float("nan"), "cats": []}, "T"),
        ({"title": "nan", "brand": pd.NA, "cats": pd.NaT}, ""),
        ({"title": "T", "brand": np.float32("nan"), "cats": ["x", np.nan, "y"]}, "T. x, y"),
    ],
)
def test_render_template_drops_empty_fields(values, expected):
    assert render_template("{title}. {brand}. {cats}", values) == expected


def test_render_template_labels_and_brackets():
    assert render_template("Title: {title}. Brand: {brand}", {"title": "", "brand": "Acme"}) == "Brand: Acme"
    assert render_template("Title: {title}. Brand: {brand}", {"title": "Pen", "brand": None}) == "Title: Pen"
    assert render_template("{title} ({year}).", {"title": "Heat", "year": np.nan}) == "Heat."
    assert render_template("{title} ({year}).", {"title": "Heat", "year": 1995}) == "Heat (1995)."
    assert render_template("Title: {title}", {"title": float("nan")}) == ""
    assert render_template("{title}. {text}", {"title": "Great!", "text": "Works."}) == "Great! Works."
    with pytest.raises(ValueError, match=r"template field\(s\) \['brand'\] not found"):
        render_template("{title} {brand}", {"title": "x"})


def test_render_template_never_emits_nan_for_any_missing_marker():
    markers = [None, np.nan, np.float32("nan"), pd.NA, pd.NaT, "nan", "NaN", "None", "<NA>", "  "]
    for m in markers:
        out = render_template("A {x}; B {y}", {"x": m, "y": "ok"})
        assert out == "B ok", (m, out)
        assert "nan" not in out.lower()


def test_profile_sentence_skips_empty_values():
    assert profile_sentence({"age": 24, "gender": "M", "occupation": "technician"}) == (
        "age: 24. gender: M. occupation: technician"
    )
    assert profile_sentence({"age": np.nan, "gender": "F", "zip": ""}) == "gender: F"


def test_catalog_texts_in_item_map_order():
    frame = pd.DataFrame(
        {"title": ["Pen", "Ink", None], "brand": ["Bic", np.nan, "X"], "price": [1.5, 2.0, np.nan]},
        index=[1, 2, 3],
    )
    cat = ItemCatalog(frame, text_fields=["title", "brand"], categorical=["brand"], numeric=["price"])
    order = IdMap(["3", "1", "9", "2"])  # "9" is not in the catalogue
    assert cat.texts(order) == ["X", "Pen. Bic", "", "Ink"]
    assert ItemCatalog(pd.DataFrame({"a": ["One.", "Two"], "b": ["x", "y"]}), ["a", "b"]).texts(IdMap([0, 1])) == [
        "One. x",
        "Two. y",
    ]  # no doubled full stop
    # "by " is the label of the brand segment: it stays with the brand and goes with it
    assert cat.texts(order, template="{title} by {brand}") == ["by X", "Pen by Bic", "", "Ink"]
    assert cat.field_values(order, "price") == ["", "1.5", "", "2.0"]
    with pytest.raises(ValueError, match=r"ItemCatalog.text_fields names columns not in the frame: \['desc'\]"):
        ItemCatalog(frame, text_fields=["desc"])
    with pytest.raises(ValueError, match="duplicate item ids"):
        ItemCatalog(pd.DataFrame({"title": ["a", "b"]}, index=["1", "1"]))


def test_user_texts_joined_by_time_and_round_trip(tmp_path):
    texts = pd.DataFrame(
        {
            "user_id": [1, 1, 2, 3],
            "kind": ["review", "review", "review", "query"],
            "text": ["second", "first", np.nan, "q"],
            "timestamp": [20, 10, 5, 1],
        }
    )
    ut = UserTexts(texts, pd.DataFrame({"age": [30]}, index=[1]))
    assert ut.for_user(1) == ["first", "second"]
    assert ut.joined(IdMap(["2", "1", "3"]), kinds=("review",)) == ["", "first second", ""]
    ut.save(tmp_path)
    back = UserTexts.load(tmp_path)
    assert back.for_user("1") == ["first", "second"] and back.attributes.loc["1", "age"] == 30
