"""Erasure reaches the next training run: ``lmrec train --exclude-erased STATE_DIR`` leaves out the users
a service erased (``DELETE /users/{id}``) and every row of theirs, and the saved model never holds their id."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from serve_helpers import DIM, make_settings
from typer.testing import CliRunner

from lmrec.cli import app as cli_app
from lmrec.data.catalog import UserTexts
from lmrec.data.dataset import Dataset
from lmrec.data.idmap import IdMap
from lmrec.data.interactions import Interactions
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.bundle import ModelBundle
from lmrec.pipeline import exclude_users
from lmrec.serve.app import create_app
from lmrec.serve.erased import erased_user_ids, erased_users
from lmrec.serve.loading import DB_NAME

# user -> items; u2 has 3 rows (b1, b2, s2), 11 rows in all
ROWS = {
    "u1": ["s1", "t1"],
    "u2": ["b1", "b2", "s2"],
    "u3": ["s1", "b1"],
    "u4": ["s1", "t1", "s2", "t2"],
}
TITLES = {
    "s1": "red running shoes",
    "s2": "blue running shoes",
    "t1": "cotton shirt",
    "t2": "linen shirt",
    "b1": "mystery novel",
    "b2": "italian cookbook",
}


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A RecBole directory: shop.inter (11 rows) and shop.item (6 titled items)."""
    directory = tmp_path / "data"
    directory.mkdir()
    rows = [(u, i, float(t)) for t, (u, i) in enumerate((u, i) for u, items in ROWS.items() for i in items)]
    inter = "user_id:token\titem_id:token\ttimestamp:float\n" + "".join(f"{u}\t{i}\t{t}\n" for u, i, t in rows)
    (directory / "shop.inter").write_text(inter)
    item = "item_id:token\ttitle:token_seq\n" + "".join(f"{i}\t{t}\n" for i, t in TITLES.items())
    (directory / "shop.item").write_text(item)
    return directory


def _train(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli_app, ["train", "--model", "pop", *args])
    return result.exit_code, result.output


def test_an_erased_user_is_left_out_of_the_next_training_run(data_dir: Path, tmp_path: Path) -> None:
    code, output = _train("--data", str(data_dir), "--out", str(tmp_path / "m1"))
    assert code == 0, output
    first = ModelBundle.load(tmp_path / "m1")
    assert sorted(first.model.user_map_.ids) == ["u1", "u2", "u3", "u4"]
    assert first.info["n_interactions"] == 11

    state = tmp_path / "state"
    settings = make_settings(tmp_path / "m1", state_dir=state)
    with TestClient(create_app(settings, encoder=HashingEncoder(DIM))) as client:
        click = {"event_id": "e1", "user_id": "u2", "item_id": "t2", "type": "click"}
        assert client.post("/events", json={"events": [click]}).json()["accepted"] == 1
        assert (state / f"{DB_NAME}-wal").stat().st_size > 0  # the event's commit is in the write-ahead log
        erased = client.delete("/users/u2").json()
        assert (erased["events_deleted"], erased["model_data_suppressed"]) == (1, True)
        # a user the served model never saw leaves a digest of their id: the next training data may hold them
        newcomer = {"event_id": "e2", "user_id": "newcomer", "item_id": "s1", "type": "click"}
        assert client.post("/events", json={"events": [newcomer]}).json()["accepted"] == 1
        assert client.delete("/users/newcomer").json()["model_data_suppressed"] is False
        # the erasure checkpointed the write-ahead log: the -wal file was truncated to nothing
        assert (state / f"{DB_NAME}-wal").stat().st_size == 0
        assert erased_user_ids(state) == {"u2"}  # read while the service holds the database open
        # the newcomer left only a digest of their id, which still finds them in later training data
        assert erased_users(state).matching(["u1", "u2", "newcomer", "u3"]) == {"u2", "newcomer"}
        assert len(erased_users(state)) == 2
        assert b"newcomer" not in b"".join(p.read_bytes() for p in state.glob(DB_NAME + "*"))

    code, output = _train("--data", str(data_dir), "--out", str(tmp_path / "m2"), "--exclude-erased", str(state))
    assert code == 0, output
    assert "excluded 1 erased users and 3 of their rows (2 erased in " in " ".join(output.split())
    second = ModelBundle.load(tmp_path / "m2")
    assert second.model.user_map_.ids == ["u1", "u3", "u4"]  # u2 gone, the others keep their order
    assert second.info["n_interactions"] == 11 - 3
    # popularity without u2's rows: s1 3 (u1, u3, u4), t1 2, b1 1 (u3), s2 1 (u4), t2 1, b2 0
    counts = dict(zip(second.model.item_map_.ids, np.asarray(second.model.seen_.sum(axis=0)).ravel().tolist()))
    assert counts == {"s1": 3, "t1": 2, "b1": 1, "b2": 0, "s2": 1, "t2": 1}
    held = b"".join(p.read_bytes() for p in (tmp_path / "m2").rglob("*") if p.is_file())
    assert b"u2" not in held  # no file of the new model holds the erased id
    # the state was only read: the erasure marker is still there for the service
    conn = sqlite3.connect(state / DB_NAME)
    assert conn.execute("SELECT user_id, forgotten FROM users").fetchall() == [("u2", 1)]
    conn.close()


def test_exclude_erased_names_a_directory_without_a_service_database(data_dir: Path, tmp_path: Path) -> None:
    code, output = _train("--data", str(data_dir), "--out", str(tmp_path / "m"), "--exclude-erased", str(tmp_path))
    assert code == 2
    assert f"error: exclude_erased: no service database {DB_NAME} in {tmp_path}" in " ".join(output.split())
    assert not (tmp_path / "m").exists()
    bad = tmp_path / "not-a-db"
    bad.write_text("hello")
    with pytest.raises(ValueError, match=r"exclude_erased: .*not-a-db is not a service database"):
        erased_user_ids(bad)


def test_exclude_users_drops_rows_map_entries_texts_and_attributes() -> None:
    frame = pd.DataFrame({"user_id": ["a", "b", "a", "c", "b"], "item_id": ["x", "y", "y", "x", "z"]})
    frame["timestamp"] = np.arange(5, dtype=float)
    frame["rating"] = [5.0, 4.0, 3.0, 2.0, 1.0]
    inter = Interactions.from_frame(frame, rating_col="rating", item_map=IdMap(["x", "y", "z"]))
    texts = pd.DataFrame({"user_id": ["a", "b", "c"], "kind": "profile", "text": ["A likes", "B likes", "C likes"]})
    attrs = pd.DataFrame({"age": [30, 40, 50]}, index=["a", "b", "c"])
    data = Dataset(inter, users=UserTexts(texts, attrs), name="t")

    kept = exclude_users(data, {"b", "not-there"})
    ki = kept.interactions
    assert ki.user_map.ids == ["a", "c"] and ki.item_map.ids == ["x", "y", "z"]  # items stay, even z (only b's)
    assert list(zip(ki.user_map.to_ids(ki.users), ki.item_map.to_ids(ki.items))) == [("a", "x"), ("a", "y"), ("c", "x")]
    assert ki.ratings.tolist() == [5.0, 3.0, 2.0] and ki.timestamps.tolist() == [0.0, 2.0, 3.0]
    assert kept.users is not None and kept.users.texts["user_id"].tolist() == ["a", "c"]
    assert kept.users.attributes is not None and kept.users.attributes.index.tolist() == ["a", "c"]
    assert len(data.interactions) == 5 and data.users.texts["user_id"].tolist() == ["a", "b", "c"]  # input untouched
    assert exclude_users(data, {"nobody"}) is data
    assert exclude_users(data, set()) is data
