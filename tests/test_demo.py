"""The demo's serving walk-through and cold-items view on the genre data set (tiny lm model, hashing
encoder, SQLite + FAISS).

The full demo trains on MovieLens-100K and takes minutes; here the same code path runs on a data set
with a known right answer: user u0 has watched only action films, so live clicks on horror films
must pull horror films into the very next list, a comedy query must bring comedies, an anonymous
session of drama films must bring dramas (and the answer the offline model gives), and an item
added while serving must be found by a query that repeats its text. In the cold-items view the
ID-only models cannot tell the held-out items apart, while the text models rank them by genre.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "models" / "lm"))

from lm_helpers import GENRES, genre_dataset, genre_of_item  # noqa: E402

from lmrec.data import cold_item_split, leave_one_out  # noqa: E402
from lmrec.demo import (  # noqa: E402
    COLD_VIEW_MODELS,
    DEMO_MODELS,
    cold_items_view,
    cold_view_markdown,
    serving_walkthrough,
)
from lmrec.encoders.fake import HashingEncoder  # noqa: E402
from lmrec.models import EASE, MatrixFactorization, Popularity, TfidfRecommender  # noqa: E402
from lmrec.models.itemknn import ItemKNN  # noqa: E402
from lmrec.models.lm import LMRecommender  # noqa: E402

HORROR = GENRES.index("horror")
COMEDY = GENRES.index("comedy")
DRAMA = GENRES.index("drama")


def _genre(item_id: str) -> int | None:
    return genre_of_item(int(item_id[1:])) if item_id.startswith("i") else None


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    data = genre_dataset()
    split = leave_one_out(data.interactions)
    model = _lm(epochs=40).fit(data.with_interactions(split.train))
    model.observe(split.valid)
    out = tmp_path_factory.mktemp("demo")
    result = serving_walkthrough(
        model,
        data,
        split,
        out,
        user="u0",
        events=(("i18", "click"), ("i19", "click"), ("i20", "purchase")),
        query="comedy film",
        new_item=("new-western", "western film cowboy saloon"),
        new_item_query="western film cowboy saloon",
        session=("i12", "i13", "i14", "i15", "i16"),  # five of the six drama films
        k=4,
    )
    return result, out


def test_live_events_change_the_next_list(walk):
    result, _ = walk
    before = [_genre(it["item_id"]) for it in result["before"]]
    after = [_genre(it["item_id"]) for it in result["after_events"]]
    assert before.count(HORROR) < after.count(HORROR)
    assert after.count(HORROR) >= 2  # 4 unseen horror items remain (i21-i23 and cold i27)
    acted = {e["item_id"] for e in result["events"]}
    assert not acted & {it["item_id"] for it in result["after_events"]}  # acted-on items are now seen
    assert result["events_response"]["accepted"] == 3


def test_query_and_new_item(walk):
    result, out = walk
    assert [_genre(it["item_id"]) for it in result["with_query"]].count(COMEDY) >= 3
    assert result["new_item_rank_for_query"] == 1
    assert (out / "model").is_dir() and list((out / "serve_state").glob("*.sqlite*"))
    json.dumps(result)  # the walk-through is written as JSON by the demo


def test_demo_models_include_the_language_model():
    names = [m.name for m in DEMO_MODELS]
    assert names[-1] == "lm" and {"pop", "ease", "sasrec"} <= set(names)


def test_anonymous_session_is_served_as_the_offline_model_reads_it(walk):
    result, _ = walk
    assert result["session_strategy"] == "session" and result["session_used"] == ["session_items"]
    assert [it["title"] for it in result["session_items"]] == ["drama film"] * 5
    served = [it["item_id"] for it in result["session"]]
    assert not set(served) & {"i12", "i13", "i14", "i15", "i16"}  # the session's own items are left out
    assert _genre(served[0]) == DRAMA  # i17, the one drama film the session has not had
    assert served == result["session_offline"] and result["session_matches_offline"] is True
    assert result["session_max_score_diff"] < 1e-5  # FAISS (float32) vs numpy (float64) on the same vectors


def _lm(seed: int = 0, epochs: int = 30) -> LMRecommender:
    return LMRecommender(
        dim=16,
        item_tower={"whiten": False},
        user_tower={"max_len": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.1},
        optim={"epochs": epochs, "batch_size": 8, "lr": 1e-2},
        num_threads=1,
        text_encoder=HashingEncoder(32),
        random_state=seed,
    )


@pytest.fixture(scope="module")
def cold_view():
    data = genre_dataset()
    models = {
        "pop": Popularity(),
        "itemknn": ItemKNN(),
        "ease": EASE(),
        "mf": MatrixFactorization(factors=4, iterations=3, num_threads=1),
        "tfidf": TfidfRecommender(),
        "lm": _lm(),
    }
    return data, cold_items_view(data, models, seed=0, k=2)


def test_cold_view_split_and_structure(cold_view):
    data, view = cold_view
    split = cold_item_split(data.interactions, 0.1, 0.1, random_state=0)
    # 24 items have interactions: round(0.1 * 24) = 2 test and 2 validation items; with the 4 items
    # nobody ever met, 2 + 2 + 4 = 8 items have no training interaction
    assert view["split"]["test_items"] == 2 and view["split"]["new_items"] == 8
    # the two test items are of two genres (action, horror), each met by its genre's 8 users
    assert view["split"]["test_users"] == len(set(split.test.users.tolist())) == 16
    assert list(view["rows"]) == ["pop", "itemknn", "ease", "mf", "tfidf", "lm"]
    assert [r["reads_text"] for r in view["rows"].values()] == [False] * 4 + [True] * 2
    assert {"recall@2", "ndcg@2", "recall@2 new items", "new_items_tied", "fit_s"} <= set(view["rows"]["lm"])
    json.dumps(view)  # written as JSON by the demo
    table = cold_view_markdown(view)  # lines "| ...": the header, one per model, the random row
    assert table.count("\n| ") == 8 and "| pop | IDs only |" in table and "| lm | text |" in table


def test_id_only_models_cannot_rank_new_items(cold_view):
    _, view = cold_view
    for name in ("pop", "itemknn", "ease", "mf"):
        assert view["rows"][name]["new_items_tied"] == 1.0, name  # one score for every unseen item
    # pop ranks the >= 14 warm items a test user has not met (count >= 1) above every new one (count 0)
    assert view["rows"]["pop"]["recall@2"] == 0.0
    # all four tie on every new item, so the same seeded random orders (one per user) decide for all four
    assert len({view["rows"][name]["recall@2 new items"] for name in ("pop", "itemknn", "ease", "mf")}) == 1


def test_text_models_rank_new_items_by_their_text(cold_view):
    _, view = cold_view
    rnd = view["random"]["recall@2 new items"]
    # seed 0 holds out i4 (action) and i18 (horror) for test, i10 (comedy) and i21 (horror) for
    # validation: the 8 action users have all 8 new items as candidates, the 8 horror users 7 (they
    # met i21), so a random ranking's expected Recall@2 is (2 / 8 + 2 / 7) / 2
    assert rnd == pytest.approx((2 / 8 + 2 / 7) / 2)
    for name in ("tfidf", "lm"):
        row = view["rows"][name]
        assert row["new_items_tied"] == 0.0, name
        # the only new items that name the user's genre are the test item and the never-met item of
        # that genre (identical text, so tied): both fit in the top 2, whatever the tie break
        assert row["recall@2 new items"] == 1.0, name
    assert view["rows"]["lm"]["recall@2 new items"] > view["rows"]["pop"]["recall@2 new items"]


def test_cold_view_models_are_the_text_and_id_only_ones():
    names = [m.name for m in COLD_VIEW_MODELS]
    assert names[-2:] == ["tfidf", "lm"] and {"pop", "ease", "mf"} <= set(names)
