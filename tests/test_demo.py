"""The demo's serving walk-through on the genre data set (tiny lm model, hashing encoder, SQLite + FAISS).

The full demo trains on MovieLens-100K and takes minutes; here the same code path runs on a data set
with a known right answer: user u0 has watched only action films, so live clicks on horror films
must pull horror films into the very next list, a comedy query must bring comedies, and an item
added while serving must be found by a query that repeats its text.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent / "models" / "lm"))

from lm_helpers import GENRES, genre_dataset, genre_of_item  # noqa: E402

from lmrec.data import leave_one_out  # noqa: E402
from lmrec.demo import DEMO_MODELS, serving_walkthrough  # noqa: E402
from lmrec.encoders.fake import HashingEncoder  # noqa: E402
from lmrec.models.lm import LMRecommender  # noqa: E402

HORROR = GENRES.index("horror")
COMEDY = GENRES.index("comedy")


def _genre(item_id: str) -> int | None:
    return genre_of_item(int(item_id[1:])) if item_id.startswith("i") else None


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    data = genre_dataset()
    split = leave_one_out(data.interactions)
    model = LMRecommender(
        dim=16,
        item_tower={"whiten": False},
        user_tower={"max_len": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.1},
        optim={"epochs": 40, "batch_size": 8, "lr": 1e-2},
        num_threads=1,
        text_encoder=HashingEncoder(32),
        random_state=0,
    ).fit(data.with_interactions(split.train))
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
