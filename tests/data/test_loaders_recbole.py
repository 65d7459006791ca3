from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lmrec.data import leave_one_out
from lmrec.data.loaders import load_recbole, load_recbole_benchmark, read_atomic, write_recbole
from lmrec.data.loaders.bundled import bundled_files

LONG = "word " * 40_000  # a 200,000-character description


def _write(path, header, rows, bom=False):
    text = "\t".join(header) + "\n" + "".join("\t".join(r) + "\n" for r in rows)
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")


@pytest.fixture()
def weird(tmp_path):
    """Atomic files with a BOM, quotes, empty fields, a very long text and some bad rows."""
    header = ["user_id:token", "item_id:token", "rating:float", "timestamp:float", "source:token"]
    _write(
        tmp_path / "shop.inter",
        header,
        [
            ["u1", "i1", "5", "10", "web"],  # line 2
            ["u1", "i2", "", "11", "app"],  # line 3: missing rating
            ["u2", "i1", "4", "12", ""],  # line 4: empty source is fine
            ["u2", "i3", "3.5", "13", "web", "x"],  # line 5: a tab too many
            ["", "i2", "1", "14", "web"],  # line 6: missing user
            ["u3", "i2", "x", "15", "web"],  # line 7: bad rating
            ["u3", "i3", "2", "16", "app"],  # line 8
        ],
        bom=True,
    )
    _write(
        tmp_path / "shop.item",
        ["item_id:token", "title:token_seq", "brand:token", "price:float", "description:token_seq"],
        [
            ["i1", 'The "Best" pen, 12" ruler', "Bic", "1.5", LONG],
            ["i2", "", "", "", ""],
            ["i3", "Café notebook", "Bic", "abc", "short"],
        ],
    )
    return tmp_path


def test_weird_files_are_read_and_bad_rows_counted(weird):
    ds = load_recbole(weird, scenario="source")
    f = ds.interactions.to_frame()
    assert list(zip(f["user_id"], f["item_id"])) == [("u1", "i1"), ("u2", "i1"), ("u3", "i3")]
    np.testing.assert_array_equal(f["rating"], [5, 4, 2])
    assert f["scenario"].tolist() == ["web", "", "app"]
    report = ds.reports[0]
    assert report.rejected == {
        "wrong number of fields": 1,
        "missing user id": 1,
        "missing rating": 1,
        "unparseable rating": 1,
    }
    assert f"{weird / 'shop.inter'}, line 5: expected 5 fields, found 6" in report.examples
    assert f"{weird / 'shop.inter'}, line 7, column 'rating': 'x' is not a number" in report.examples
    cat = ds.items
    assert (cat.text_fields, cat.categorical, cat.numeric) == (["title", "description"], ["brand"], ["price"])
    assert cat.frame.loc["i1", "title"] == 'The "Best" pen, 12" ruler'  # quotes are text
    assert len(cat.frame.loc["i1", "description"]) == len(LONG)
    assert np.isnan(cat.frame.loc["i3", "price"]) and cat.frame.loc["i1", "price"] == 1.5
    assert cat.texts(ds.interactions.item_map, template="{title} ({brand})")[1] == "Café notebook (Bic)"
    assert ds.interactions.meta["recbole_types"]["source"] == "token"


def test_strict_and_header_errors(weird):
    with pytest.raises(ValueError, match=r"shop\.inter, line 3, column 'rating': empty value"):
        load_recbole(weird / "shop.inter", strict=True)
    bad = weird / "bad.inter"
    bad.write_text("user_id:token\titem_id:tok\n1\t2\n")
    with pytest.raises(ValueError, match=r"bad\.inter, line 1, column 'item_id:tok': unknown type 'tok'"):
        read_atomic(bad)
    bad.write_text("user_id:token\titem_id\n1\t2\n")
    with pytest.raises(ValueError, match=r"column 'item_id': header field is not 'name:type'"):
        read_atomic(bad)
    with pytest.raises(ValueError, match=r"holds several RecBole data sets \['bad', 'shop'\]; pass name="):
        load_recbole(weird)
    with pytest.raises(ValueError, match=r"field 'channel' not found"):
        load_recbole(weird, name="shop", event="channel")


def test_office_counts_and_catalogue(office_dir):
    ds = load_recbole(office_dir)
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (53_258, 4_905, 2_420)
    assert ds.name == "Office" and ds.summary()["rejected_rows"] == 0
    cat = ds.items
    assert len(cat) == 2_420
    assert cat.text_fields == ["title", "categories", "description"]
    assert cat.categorical == ["brand"] and cat.numeric == []  # asin is id-like: left out
    first = cat.texts(ds.interactions.item_map)[0]
    assert first.startswith("600 ml HP Printer 920 XL") and "Inkjet Printer Ink" in first
    assert ds.interactions.ratings.min() == 1 and ds.interactions.ratings.max() == 5


def test_office_write_read_round_trip(office_dir, tmp_path):
    ds = load_recbole(office_dir)
    written = write_recbole(ds, tmp_path, "Office")
    assert [p.name for p in written] == ["Office.inter", "Office.item"]
    back = load_recbole(tmp_path / "Office")
    pd.testing.assert_frame_equal(back.interactions.to_frame(), ds.interactions.to_frame())
    assert back.items.text_fields == ds.items.text_fields and back.items.categorical == ds.items.categorical
    assert back.items.texts(back.interactions.item_map) == ds.items.texts(ds.interactions.item_map)


@pytest.fixture(scope="module")
def recbole_ml100k(tmp_path_factory):
    """MovieLens 100K written in RecBole's own layout from the bundled parquet files, independently of lmrec."""
    files = bundled_files("ml-100k")
    if files is None:
        pytest.skip("bundled MovieLens 100K not installed")
    data, items, users = (pd.read_parquet(p) for p in files)
    d = tmp_path_factory.mktemp("recbole") / "ml-100k"
    d.mkdir()
    _write(
        d / "ml-100k.inter",
        ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
        data[["user_id", "movie_id", "rating", "timestamp"]].astype(str).values.tolist(),
    )
    genres = items.columns[5:]
    rows = [
        [
            str(r.movie_id),
            r.movie_title,
            r.release_date[-4:] if isinstance(r.release_date, str) else "",
            " ".join(g for g in genres if getattr(r, g.replace("'", "").replace("-", "_"), 0) == 1),
        ]
        for r in items.rename(columns={g: g.replace("'", "").replace("-", "_") for g in genres}).itertuples()
    ]
    header = ["item_id:token", "movie_title:token_seq", "release_year:token", "class:token_seq"]
    _write(d / "ml-100k.item", header, rows)
    _write(
        d / "ml-100k.user",
        ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
        users.astype(str).values.tolist(),
    )
    return d


def test_recbole_ml100k(recbole_ml100k):
    ds = load_recbole(recbole_ml100k)
    assert (len(ds.interactions), ds.n_users, ds.n_items) == (100_000, 943, 1_682)
    cat = ds.items
    assert cat.text_fields == ["movie_title", "class"]
    # class is a token_seq over a small vocabulary (19 genres): also categorical, as token lists
    assert cat.categorical == ["release_year", "class"]
    assert cat.frame.loc["1", "class"] == ["Animation", "Children's", "Comedy"]
    assert (
        cat.texts(ds.interactions.item_map, fields=["movie_title", "class"])[ds.interactions.item_map.index("1")]
        == "Toy Story (1995). Animation, Children's, Comedy"
    )
    assert ds.users.for_user("1", kinds=("profile",)) == ["age: 24. gender: M. occupation: technician. zip_code: 85711"]
    assert ds.users.attributes.loc["2", "occupation"] == "other"


def test_benchmark_split_round_trip(ml100k, tmp_path):
    split = leave_one_out(ml100k.interactions)
    write_recbole(split, tmp_path, "ml", items=ml100k.items, users=ml100k.users)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "ml.item",
        "ml.test.inter",
        "ml.train.inter",
        "ml.user",
        "ml.valid.inter",
    ]
    ds, back = load_recbole_benchmark(tmp_path, "ml")
    assert back.sizes() == split.sizes() == {"train": 98_114, "valid": 943, "test": 943}
    assert back.train.user_map is back.test.user_map is ds.interactions.user_map
    assert len(ds.interactions) == 100_000 and ds.n_items == 1_682
    for part in ("train", "valid", "test"):
        pd.testing.assert_frame_equal(getattr(back, part).to_frame(), getattr(split, part).to_frame())
    # genres were written as a token_seq and read back as text and categories
    assert ds.items.frame.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]
    assert ds.items.numeric == ["year"]
    (tmp_path / "ml.valid.inter").write_text("user_id:token\titem_id:token\n1\t2\n")
    with pytest.raises(ValueError, match=r"ml\.valid\.inter: header .* differs from the train file's"):
        load_recbole_benchmark(tmp_path, "ml")


def test_unconventional_field_names(tmp_path):
    _write(
        tmp_path / "yelp.inter",
        ["review_id:token", "user_id:token", "business_id:token", "stars:float", "date:float"],
        [["r1", "a", "b1", "4", "100"], ["r2", "b", "b2", "2", "50"]],
    )
    _write(
        tmp_path / "yelp.item",
        ["business_id:token", "name:token_seq", "city:token"],
        [["b1", "Good Cafe", "Austin"], ["b2", "Bad Bar", "Reno"]],
    )
    ds = load_recbole(tmp_path / "yelp.inter")
    assert ds.interactions.meta["columns"] == {
        "user": "user_id",
        "item": "business_id",
        "timestamp": "date",
        "rating": "stars",
    }
    assert ds.interactions.item_map.ids == ["b1", "b2"] and ds.items.text_fields == ["name"]
    np.testing.assert_array_equal(ds.interactions.timestamps, [100, 50])
    _write(
        tmp_path / "ctr.inter", ["user_id:token", "item_id:token", "label:float"], [["a", "x", "1"], ["a", "y", "0"]]
    )
    ctr = load_recbole(tmp_path, name="ctr")
    np.testing.assert_array_equal(ctr.interactions.ratings, [1, 0])  # label stands in for rating
    np.testing.assert_array_equal(ctr.interactions.timestamps, [0, 1])  # no time field: row order
    _write(
        tmp_path / "lastfm.inter",
        ["user_id:token", "artist_id:token", "weight:float", "tag_value:token_seq"],
        [["a", "x", "13", "rock pop"], ["b", "x", "2", ""]],
    )
    fm = load_recbole(tmp_path, name="lastfm")
    assert fm.interactions.item_map.ids == ["x"] and fm.interactions.ratings is None
    np.testing.assert_array_equal(fm.interactions.weights, [13, 2])  # a float "weight" field is the weights
