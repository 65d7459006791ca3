from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from lmrec.serve.stores.base import (
    Event,
    ItemRecord,
    Profile,
    ProfileStore,
    StoredEvent,
)
from lmrec.serve.stores.sqlite import SQLiteProfileStore, SQLiteStore


def events(user: str, ids: list[str], item: str = "i1") -> list[Event]:
    return [Event(e, user, item, "view", None, float(n), None) for n, e in enumerate(ids)]


def count_update(profile: Profile | None, new: list[StoredEvent]) -> Profile:
    """A stand-in for the profile math: vector[0] counts events, vector[1] sums their seqs."""
    vec = np.zeros(2, np.float32) if profile is None else profile.vector.copy()
    vec += [len(new), sum(e.seq for e in new)]
    n = (profile.n_events if profile else 0) + len(new)
    return Profile(vec, n, max(e.seq for e in new), new[-1].ts, "s")


def test_append_dedupes_by_event_id_and_orders_by_seq(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    with store.write() as tx:
        out = store.append_events(tx, events("u", ["a", "b", "a"]))
    assert [e.seq if e else None for e in out] == [1, 2, None]
    with store.write() as tx:
        again = store.append_events(tx, events("u", ["b", "c"]) + events("v", ["d"]))
    # an ignored duplicate may still use up a seq (SQLite AUTOINCREMENT); seqs only need to grow
    assert again[0] is None and 2 < again[1].seq < again[2].seq
    assert [e.event_id for e in store.events_since("u", 1)] == ["b", "c"]
    assert [e.event_id for e in store.recent_events("u", 2)] == ["c", "b"]
    user = store.user("u")
    assert (user.n_events, user.first_event_at, user.last_event_at) == (3, 0.0, 1.0)
    assert store.event_watermarks() == {"u": again[1].seq, "v": again[2].seq}
    assert store.item_event_counts() == {"i1": 4}
    assert store.item_event_counts(types={"view"}) == {"i1": 4} and store.item_event_counts(types={"dislike"}) == {}
    assert store.item_event_counts(since_seq=again[1].seq) == {"i1": 1}  # only "d" of user v after it
    assert store.item_event_counts(types=set()) == {}


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    with pytest.raises(RuntimeError, match="boom"), store.write() as tx:
        store.append_events(tx, events("u", ["a"]))
        raise RuntimeError("boom")
    assert store.count_events() == 0 and store.user("u") is None


def test_erase_user_and_forgotten_marker(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    with store.write() as tx:
        store.append_events(tx, events("known", ["a", "b"]) + events("anon", ["c"]))
    with store.write() as tx:
        assert store.erase_user(tx, "known", mark_forgotten=True) == 2
        assert store.erase_user(tx, "anon", mark_forgotten=False) == 1
    assert store.count_events() == 0
    assert store.user("anon") is None
    assert store.user("known").forgotten and store.user("known").n_events == 0
    assert store.forgotten_users() == {"known"}


def test_items_are_versioned_and_vectors_round_trip(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    vec = np.array([0.5, -1.25, 3.0], np.float32)
    with store.write() as tx:
        assert store.put_item(tx, ItemRecord("x", "text", {"price": 3.5}, vec, "s")) == 1
        assert store.put_item(tx, ItemRecord("y", "t", {}, None, "s", deleted=True)) == 2
        assert store.put_item(tx, ItemRecord("x", "text 2", {}, vec, "s")) == 3
    recs = store.items_since(1)
    assert [(r.item_id, r.text, r.deleted, r.version) for r in recs] == [("y", "t", True, 2), ("x", "text 2", False, 3)]
    np.testing.assert_array_equal(recs[1].vector, vec)
    assert store.items_since(0)[0].item_id == "y" and store.max_item_version() == 3


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path):
    store = SQLiteStore(tmp_path / "db.sqlite3")
    if request.param == "sqlite":
        profiles: ProfileStore = SQLiteProfileStore(store)
    else:
        from lmrec.serve.stores.redis import RedisProfileStore

        url = request.getfixturevalue("redis_url")
        profiles = RedisProfileStore(url, prefix=f"test-{tmp_path.name}:")
    yield store, profiles
    profiles.close()
    store.close()


def test_profile_store_contract(backend) -> None:
    store, profiles = backend
    with store.write() as tx:
        store.append_events(tx, events("u", ["a", "b"]) + events("w", ["c"]))
    assert profiles.get("u") is None
    assert profiles.watermarks(["u", "w"]) == {"u": 0, "w": 0}
    p = profiles.catch_up("u", lambda seq: store.events_since("u", seq), count_update)
    # events a (seq 1) and b (seq 2): count 2, seq sum 3
    np.testing.assert_array_equal(p.vector, [2, 3])
    assert profiles.get("u").last_seq == 2
    # catching up again absorbs nothing new
    np.testing.assert_array_equal(
        profiles.catch_up("u", lambda seq: store.events_since("u", seq), count_update).vector, [2, 3]
    )
    with store.write() as tx:
        store.append_events(tx, events("u", ["d"]))  # seq 4
    p = profiles.catch_up("u", lambda seq: store.events_since("u", seq), count_update)
    np.testing.assert_array_equal(p.vector, [3, 7])
    assert profiles.watermarks(["u", "w"]) == {"u": 4, "w": 0}
    assert profiles.delete("u") and not profiles.delete("u")
    profiles.catch_up("w", lambda seq: store.events_since("w", seq), count_update)
    profiles.delete_all()
    assert profiles.get("w") is None


def test_concurrent_catch_ups_absorb_each_event_once(backend) -> None:
    store, profiles = backend
    n_threads, per_thread = 4, 10

    def worker(t: int) -> None:
        for j in range(per_thread):
            with store.write() as tx:
                store.append_events(tx, events("u", [f"{t}-{j}"]))
            if profiles.transactional:
                with store.write() as tx:
                    profiles.catch_up("u", lambda seq: store.events_since("u", seq, tx), count_update, tx)
            else:
                profiles.catch_up("u", lambda seq: store.events_since("u", seq), count_update)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    p = profiles.get("u")
    total = n_threads * per_thread
    # every seq 1..40 absorbed exactly once: count 40, seq sum 40 * 41 / 2 = 820
    np.testing.assert_array_equal(p.vector, [total, total * (total + 1) / 2])
    assert p.n_events == total and p.last_seq == total


def test_catch_up_many_equals_one_by_one(backend) -> None:
    store, profiles = backend
    with store.write() as tx:
        store.append_events(tx, events("a", ["1", "2"]) + events("b", ["3"]) + events("a", ["4"]))
    profiles.catch_up("b", lambda seq: store.events_since("b", seq), count_update)  # b already current
    profiles.catch_up_many(["a", "b", "c", "a"], lambda user, seq: store.events_since(user, seq), count_update)
    # a: seqs 1, 2, 4 -> count 3, sum 7; b: seq 3 once (not absorbed twice); c: no events, no profile
    np.testing.assert_array_equal(profiles.get("a").vector, [3, 7])
    np.testing.assert_array_equal(profiles.get("b").vector, [1, 3])
    assert profiles.get("c") is None
    assert profiles.watermarks(["a", "b", "c"]) == {"a": 4, "b": 3, "c": 0}


def test_concurrent_batched_catch_ups_absorb_each_event_once(backend) -> None:
    store, profiles = backend
    n_threads, per_thread = 4, 10

    def worker(t: int) -> None:
        for j in range(per_thread):
            with store.write() as tx:
                store.append_events(tx, events("u", [f"{t}-{j}"]) + events("v", [f"v{t}-{j}"]))
            profiles.catch_up_many(["u", "v"], lambda user, seq: store.events_since(user, seq), count_update)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert profiles.get("u").n_events == profiles.get("v").n_events == n_threads * per_thread


def test_snapshot_reads_one_state_while_another_thread_commits(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "db.sqlite3")
    with store.write() as tx:
        store.append_events(tx, events("u", ["a"]))
    other = threading.Thread(target=_append, args=(store, "b"))
    with store.snapshot():
        before = store.user("u").n_events
        other.start()
        other.join()
        assert store.user("u").n_events == before == 1  # the commit of the other thread is not seen yet
        assert [e.event_id for e in store.recent_events("u", 5)] == ["a"]
    assert store.user("u").n_events == 2


def _append(store: SQLiteStore, event_id: str) -> None:
    with store.write() as tx:
        store.append_events(tx, events("u", [event_id]))
