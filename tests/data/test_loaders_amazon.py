from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

from lmrec.data.loaders import load_amazon2023


def _review(user, item, rating, ts, title="", text="", **extra):
    row = {
        "rating": rating,
        "title": title,
        "text": text,
        "images": [],
        "asin": item + "-v",
        "parent_asin": item,
        "user_id": user,
        "timestamp": ts,
        "helpful_vote": 2,
        "verified_purchase": True,
    }
    row.update(extra)
    return json.dumps(row)


@pytest.fixture()
def files(tmp_path):
    reviews = tmp_path / "Office_Products.jsonl.gz"
    lines = [
        _review("U1", "P1", 5.0, 1588687728923, "Great pen!", "Writes well."),  # line 1
        _review("U1", "P2", 3.0, 1588687729923, "", "Only text"),  # line 2
        "{not json",  # line 3
        _review("U2", "P1", "four", 1588687730000),  # line 4: bad rating
        _review("", "P2", 4.0, 1588687731000),  # line 5: no user
        _review("U2", "P3", 1.0, 1588687732000, "Meh", ""),  # line 6
        json.dumps({"user_id": "U3", "asin": "P4", "rating": 2, "timestamp": 1000}),  # line 7: asin only
    ]
    with gzip.open(reviews, "wt", encoding="utf-8") as fh:
        fh.write("\n".join(lines) + "\n")
    meta = tmp_path / "meta_Office_Products.jsonl"
    metas = [
        {
            "main_category": "Office Products",
            "title": "Gel Pen",
            "average_rating": 4.5,
            "features": ["Smooth", "Black"],
            "description": ["A pen."],
            "price": 12.99,
            "store": "Pilot",
            "categories": ["Office", "Pens"],
            "details": {"Brand": "Pilot", "Color": "Black"},
            "parent_asin": "P1",
        },
        {
            "main_category": "Office Products",
            "title": "Stapler",
            "features": [],
            "description": [],
            "price": "None",
            "store": None,
            "categories": [],
            "details": {},
            "parent_asin": "P2",
        },
        {"title": "Desk", "price": "$1,299.00", "parent_asin": "P3"},
        {"title": "Desk again", "parent_asin": "P3"},
        {"title": "No id"},
    ]
    meta.write_text("\n".join(json.dumps(m) for m in metas) + "\n")
    return reviews, meta


def test_reviews_and_meta(files):
    reviews, meta = files
    ds = load_amazon2023(reviews, meta)
    assert ds.name == "Office_Products"
    f = ds.interactions.to_frame()
    assert list(zip(f["user_id"], f["item_id"])) == [("U1", "P1"), ("U1", "P2"), ("U2", "P3"), ("U3", "P4")]
    # milliseconds -> seconds: 1588687728923 ms = 1588687728.923 s
    np.testing.assert_allclose(f["timestamp"], [1588687728.923, 1588687729.923, 1588687732.0, 1.0])
    np.testing.assert_array_equal(f["rating"], [5, 3, 1, 2])
    assert ds.reports[0].rejected == {"invalid JSON": 1, "unparseable rating": 1, "missing user id": 1}
    assert f"{reviews}, line 4, column 'rating': 'four' is not a number" in ds.reports[0].examples
    texts = ds.users.texts
    assert ds.users.for_user("U1") == ["Great pen! Writes well.", "Only text"]
    assert ds.users.for_user("U2") == ["Meh"]
    assert set(texts["kind"]) == {"review"} and texts["item_id"].tolist() == ["P1", "P2", "P3"]
    assert texts["helpful_vote"].tolist() == [2, 2, 2]
    cat = ds.items
    assert cat.text_fields == ["title", "features", "description", "categories"]
    assert cat.categorical == ["store", "main_category"] and cat.numeric == ["price"]
    assert cat.frame.loc["P1", "price"] == 12.99 and np.isnan(cat.frame.loc["P2", "price"])
    assert cat.frame.loc["P3", "price"] == 1299.0
    assert cat.frame.loc["P1", "details"] == "Brand: Pilot; Color: Black"
    order = ds.interactions.item_map
    assert cat.texts(order)[:3] == ["Gel Pen. Smooth, Black. A pen. Office, Pens", "Stapler", "Desk"]
    assert ds.reports[1].rejected == {"duplicate item id": 1, "missing item id": 1}


def test_strict_names_the_line(files):
    reviews, meta = files
    with pytest.raises(ValueError, match=r"Office_Products\.jsonl\.gz, line 3: invalid JSON"):
        load_amazon2023(reviews, strict=True)
    with pytest.raises(
        ValueError,
        match=r"meta_Office_Products\.jsonl, line 4, column 'parent_asin': item id 'P3' "
        r"already on line 3",
    ):
        load_amazon2023(_only_good(reviews), meta, strict=True)


def _only_good(reviews):
    good = reviews.with_name("good.jsonl")
    good.write_text(_review("U1", "P1", 5.0, 1000) + "\n")
    return good
