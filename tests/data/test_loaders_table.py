from __future__ import annotations

import gzip
import json
import logging

import numpy as np
import pandas as pd
import pytest

from lmrec.data.loaders import ColumnMap, ItemColumns, load_table
from lmrec.data.loaders.build import infer_item_roles

# line 1 header; line 2 good; line 3 missing item; line 4 bad rating; line 5 ISO date; line 6 repeated
# header; line 7 too few fields; line 8 empty timestamp; line 9 good
CSV = """userId,movieId,rating,timestamp
1,10,4.5,100
2,,3,200
3,12,abc,2014-07-23
3,12,5,2014-07-23T10:00:00Z
userId,movieId,rating,timestamp
4,13,5
5,14,2,
6,10,1,300
"""
COLS = {"user": "userId", "item": "movieId", "rating": "rating", "timestamp": "timestamp"}


def test_known_answer_and_counted_rejects(tmp_path, caplog):
    path = tmp_path / "ratings.csv"
    path.write_text(CSV)
    with caplog.at_level(logging.WARNING, logger="lmrec.data"):
        ds = load_table(path, columns=COLS)
    f = ds.interactions.to_frame()
    assert f["user_id"].tolist() == ["1", "3", "6"] and f["item_id"].tolist() == ["10", "12", "10"]
    # 2014-07-23 is day 16274 after 1970-01-01: 16274 * 86400 = 1406073600, plus 10 h = 36000 s
    np.testing.assert_array_equal(f["timestamp"], [100, 1406073600 + 36000, 300])
    np.testing.assert_array_equal(f["rating"], [4.5, 5, 1])
    report = ds.reports[0]
    assert report.rows_read == 8 and report.rows_kept == 3
    assert report.rejected == {
        "repeated header row": 1,
        "wrong number of fields": 1,
        "missing item id": 1,
        "unparseable rating": 1,
        "missing timestamp": 1,
    }
    assert f"{path}, line 4, column 'rating': 'abc' is not a number" in report.examples
    assert f"{path}, line 7: expected 4 fields, found 3" in report.examples
    assert "rejected" in caplog.text and "ratings.csv" in caplog.text  # warned with the summary
    assert ds.summary()["rejected_rows"] == 5


def test_strict_raises_on_the_first_bad_row(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text(CSV)
    with pytest.raises(ValueError, match=r"ratings\.csv, line 3, column 'movieId': empty value"):
        load_table(path, columns=COLS, strict=True)
    path.write_text("userId,movieId,rating\n1,2,3\n1,2,3,4\n1,2,x\n")
    with pytest.raises(ValueError, match=r"ratings\.csv, line 3: expected 3 fields, found 4"):
        load_table(path, columns={"user": "userId", "item": "movieId", "rating": "rating"}, strict=True)


def test_line_numbers_count_quoted_line_breaks(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('user_id,item_id,rating,note\n1,a,5,"two\nlines"\n2,b,zz,x\n')
    with pytest.raises(ValueError, match=r"multi\.csv, line 4, column 'rating': 'zz' is not a number"):
        load_table(path, columns={"rating": "rating"}, strict=True)


def test_column_map_guesses_and_errors(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("userId,movieId,rating,timestamp\n1,10,4,5\n")
    ds = load_table(path)
    assert ds.interactions.meta["columns"] == COLS
    with pytest.raises(ValueError, match=r"unknown column map key 'usr'; valid keys: \['user', 'item'"):
        load_table(path, columns={"usr": "userId"})
    with pytest.raises(ValueError, match=r"r\.csv: column 'stars' \(the rating column\) not found"):
        load_table(path, columns=ColumnMap(user="userId", item="movieId", rating="stars"))
    other = tmp_path / "o.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match=r"cannot tell which column holds the user ids among \['a', 'b'\]"):
        load_table(other)


def test_header_problems_and_encoding(tmp_path):
    dup = tmp_path / "dup.csv"
    dup.write_text("user_id,item_id,user_id\n1,2,3\n")
    with pytest.raises(ValueError, match=r"dup\.csv, line 1, column 'user_id': the header repeats this name"):
        load_table(dup)
    latin = tmp_path / "latin.csv"
    latin.write_bytes("user_id,item_id\n1,caf\xe9\n2,b\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv, line 2: bytes that are not valid utf-8"):
        load_table(latin)
    assert load_table(latin, encoding="latin-1").interactions.item_map.ids == ["café", "b"]


def test_tsv_keeps_quotes_bom_and_gzip(tmp_path):
    path = tmp_path / "inter.tsv.gz"
    text = '\ufeffuser_id\titem_id\tevent\n1\t"quoted item\tclick\n2\tb\t\n'
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        fh.write(text)
    ds = load_table(path, columns={"event": "event"})
    assert ds.interactions.item_map.ids == ['"quoted item', "b"]  # no quoting in tsv: the quote is text
    assert list(ds.interactions.events) == ["click", ""]  # an empty event is kept as ""
    np.testing.assert_array_equal(ds.interactions.timestamps, [0, 1])  # no time column: row order


def test_several_files_parquet_and_jsonl(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.jsonl"
    pd.DataFrame({"user_id": [1, 2], "item_id": [10.0, 11.0], "weight": [0.5, 2]}).to_parquet(a)
    b.write_text(
        json.dumps({"user_id": "3", "item_id": "10", "weight": 1})
        + "\nnot json\n"
        + json.dumps([1, 2])
        + "\n"
        + json.dumps({"user_id": None, "item_id": "1", "weight": 1})
        + "\n"
    )
    ds = load_table([a, b], columns={"weight": "weight"})
    f = ds.interactions.to_frame()
    assert f["user_id"].tolist() == ["1", "2", "3"] and f["item_id"].tolist() == ["10", "11", "10"]
    np.testing.assert_array_equal(f["timestamp"], [0, 1, 2])  # row order runs on across files
    np.testing.assert_array_equal(f["weight"], [0.5, 2, 1])
    assert ds.reports[1].rejected == {"invalid JSON": 1, "not a JSON object": 1, "missing user id": 1}
    assert f"{b}, line 4, column 'user_id': empty value" in ds.reports[1].examples
    with pytest.raises(ValueError, match=r"cannot tell the format of '.*data\.xyz'"):
        load_table(tmp_path / "data.xyz")


def test_items_and_users_files(tmp_path):
    inter, items, users = tmp_path / "i.csv", tmp_path / "items.csv", tmp_path / "users.csv"
    inter.write_text("user_id,item_id\nu1,p1\nu2,p2\n")
    items.write_text(
        "item_id,title,brand,price,tags\n"
        "p1,Blue ballpoint pen with grip,Bic,1.5,office|pens\n"
        "p2,Red gel ink refill pack,Bic,,office\n"
        "p3,Stapler with 100 staples,Acme,3,office|tools\n"
        ",No id here,Acme,1,\n"
        "p1,Duplicate,Acme,1,\n"
    )
    users.write_text("user_id,age,gender,bio\nu1,24,M,likes pens\nu2,,F,\n")
    ds = load_table(
        inter, items_path=items, item_columns={"list_sep": "|"}, users_path=users, user_columns={"text": ["bio"]}
    )
    cat = ds.items
    # inferred: title free text, brand and tags (lists on "|") categorical, price numeric
    assert (cat.text_fields, cat.categorical, cat.numeric) == (["title"], ["brand", "tags"], ["price"])
    assert len(cat) == 3 and cat.frame.loc["p3", "tags"] == ["office", "tools"]
    assert cat.frame.loc["p1", "price"] == 1.5 and np.isnan(cat.frame.loc["p2", "price"])
    assert ds.reports[1].rejected == {"missing item id": 1, "duplicate item id": 1}
    assert f"{items}, line 6, column 'item_id': item id 'p1' already on line 2" in ds.reports[1].examples
    assert ds.users.for_user("u1", kinds=("profile",)) == ["age: 24. gender: M"]
    assert ds.users.for_user("u2", kinds=("profile",)) == ["gender: F"]
    assert ds.users.for_user("u1", kinds=("bio",)) == ["likes pens"]
    assert ds.users.attributes.columns.tolist() == ["age", "gender"]
    explicit = load_table(inter, items_path=items, item_columns=ItemColumns(text=("title", "brand"), numeric=()))
    assert explicit.items.text_fields == ["title", "brand"] and explicit.items.numeric == []
    items.write_text("item_id,title,price\np1,Pen,1.5\np2,Ink,abc\n")
    as_numbers = load_table(inter, items_path=items, item_columns={"numeric": ["price"]})
    assert as_numbers.items.frame["price"].tolist()[0] == 1.5 and np.isnan(as_numbers.items.frame.loc["p2", "price"])
    with pytest.raises(ValueError, match=r"unknown item columns key 'txt'; valid keys: \['id', 'text'"):
        load_table(inter, items_path=items, item_columns={"txt": ["title"]})


def test_item_role_inference_leaves_out_id_like_columns():
    n = 30
    frame = pd.DataFrame(
        {
            "asin": [f"B{k:04d}" for k in range(n)],  # distinct single tokens: another id
            "title": [f"Gel pen number {k}" for k in range(n)],
            "brand": ["Bic", "Pilot", "Uni"] * 10,
            "zip_code": [f"{10000 + k}" for k in range(n)],  # digits, but a code: not numeric
            "year": [str(1990 + k % 5) for k in range(n)],
            "empty": [""] * n,
        }
    )
    assert infer_item_roles(frame, set()) == (["title"], ["brand"], ["year"])


def test_jsonl_bom_and_bad_bytes(tmp_path):
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"user_id": "a", "item_id": "x"}\n\n{"user_id": "b", "item_id": "\xff"}\n')
    with pytest.raises(ValueError, match=r"e\.jsonl, line 3: bytes that are not valid utf-8"):
        load_table(path)
    path.write_bytes(b"\xef\xbb\xbf" + b'{"user_id": "a", "item_id": "x"}\n\n{"user_id": "b", "item_id": "y"}\n')
    ds = load_table(path)
    assert ds.interactions.user_map.ids == ["a", "b"] and ds.reports[0].rows_read == 2  # the blank line is no row
