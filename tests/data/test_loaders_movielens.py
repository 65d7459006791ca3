from __future__ import annotations

import numpy as np
import pytest

from lmrec.data.loaders import load_movielens
from lmrec.data.loaders.movielens import detect_movielens, year_of

FLAGS_TOY = ["0", "0", "0", "1", "1", "1"] + ["0"] * 13  # Animation, Children's, Comedy
FLAGS_UNKNOWN = ["1"] + ["0"] * 18


@pytest.fixture()
def ml100k_dir(tmp_path):
    d = tmp_path / "ml-100k"
    d.mkdir()
    (d / "u.data").write_text("1\t1\t5\t874965758\n1\t2\t3\t876893171\n2\t1\t4\t888550871\n3\t2\tx\t1\n")
    items = [
        "|".join(["1", "Toy Story (1995)", "01-Jan-1995", "", "http://x", *FLAGS_TOY]),
        "|".join(["2", "Café Society", "05-Sep-1997", "", "", *FLAGS_UNKNOWN]),  # year only in the date
    ]
    (d / "u.item").write_bytes(("\n".join(items) + "\n").encode("latin-1"))
    (d / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n3|23|M|writer|32067\n")
    return d


def test_100k_layout(ml100k_dir):
    ds = load_movielens(ml100k_dir)
    assert ds.name == "ml-100k" and len(ds.interactions) == 3
    assert ds.reports[0].rejected == {"unparseable rating": 1}
    assert f"{ml100k_dir / 'u.data'}, line 4, column 'rating': 'x' is not a number" in ds.reports[0].examples
    cat = ds.items
    assert (cat.text_fields, cat.categorical, cat.numeric) == (["title", "genres"], ["genres"], ["year"])
    assert cat.frame.loc["1", "genres"] == ["Animation", "Children's", "Comedy"]
    assert cat.frame.loc["2", "genres"] == []  # the "unknown" flag is not a genre
    assert cat.frame.loc["1", "year"] == 1995 and cat.frame.loc["2", "year"] == 1997
    assert cat.frame.loc["2", "title"] == "Café Society"  # latin-1 decoded
    assert cat.texts(ds.interactions.item_map) == ["Toy Story (1995). Animation, Children's, Comedy", "Café Society"]
    assert ds.users.for_user("1") == ["age: 24. gender: M. occupation: technician"]  # zip is not in the profile
    assert ds.users.attributes.loc["3", "zip_code"] == "32067"
    np.testing.assert_array_equal(ds.interactions.timestamps, [874965758, 876893171, 888550871])


def test_1m_layout(tmp_path):
    d = tmp_path / "ml-1m"
    d.mkdir()
    (d / "ratings.dat").write_text("1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n")
    (d / "movies.dat").write_bytes(
        "1193::One Flew Over the Cuckoo's Nest (1975)::Drama\n661::James and the Giant Peach (1996)::"
        "Animation|Children's|Musical\n".encode("latin-1")
    )
    (d / "users.dat").write_text("1::F::1::10::48067\n2::M::56::16::70072\n")
    ds = load_movielens(tmp_path)  # a directory holding one MovieLens directory is followed
    assert ds.name == "ml-1m" and (len(ds.interactions), ds.n_users, ds.n_items) == (3, 2, 2)
    assert ds.items.frame.loc["661", "genres"] == ["Animation", "Children's", "Musical"]
    assert ds.items.frame.loc["1193", "year"] == 1975
    # age bucket 1 is "Under 18", occupation 10 "K-12 student", 16 "self-employed" (ML-1M README)
    assert ds.users.for_user("1") == ["age: Under 18. gender: F. occupation: K-12 student"]
    assert ds.users.for_user("2") == ["age: 56+. gender: M. occupation: self-employed"]


def test_latest_small_layout_with_tags(tmp_path):
    d = tmp_path / "ml-latest-small"
    d.mkdir()
    (d / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,4.0,964982703\n1,3,4.5,964981247\n")
    (d / "movies.csv").write_text(
        'movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n3,"Grumpier Old Men, The (1995)",'
        "Comedy|Romance\n5,Untitled,(no genres listed)\n"
    )
    (d / "tags.csv").write_text("userId,movieId,tag,timestamp\n1,1,pixar,1139045764\n1,3,funny,1139045700\n2,1,,5\n")
    ds = load_movielens(d)
    assert ds.interactions.ratings.tolist() == [4.0, 4.5]
    cat = ds.items
    assert cat.frame.loc["3", "title"] == "Grumpier Old Men, The (1995)" and cat.frame.loc["3", "year"] == 1995
    assert cat.frame.loc["5", "genres"] == [] and np.isnan(cat.frame.loc["5", "year"])
    assert ds.users.for_user("1", kinds=("tag",)) == ["funny", "pixar"]  # oldest first
    assert ds.users.texts["item_id"].tolist() == ["1", "3"]  # the empty tag of user 2 holds no text
    assert detect_movielens(d) == (d, "latest")
    with pytest.raises(ValueError, match="is not a MovieLens directory"):
        load_movielens(d / "nowhere")


def test_year_of():
    assert year_of("Toy Story (1995)") == 1995
    assert year_of("Babylon 5 (1994-1998) ") == 1994
    assert year_of("Heat", "15-Dec-1995") == 1995
    assert np.isnan(year_of("Heat")) and np.isnan(year_of(None, None))
