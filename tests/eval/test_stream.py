"""Streaming (prequential) evaluation, the champion/challenger gate and the stream CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lmrec.data import Dataset, IdMap, Interactions, ItemCatalog, Split
from lmrec.data.splits import holdout_rows, last_row_split, stream_windows
from lmrec.encoders.fake import HashingEncoder
from lmrec.eval.gate import champion_challenger, clone_model, gated_partial_fit, history_of
from lmrec.eval.stream import fit_fresh, prequential, update_fresh
from lmrec.models.itemknn import ItemKNN
from lmrec.models.lm import LMRecommender
from lmrec.models.lm.config import ContinualConfig
from lmrec.models.popularity import Popularity

GENRES = ["action", "comedy", "drama", "horror"]
N_USERS, PER_GENRE, N_EVENTS = 24, 5, 10


def stream_frame() -> pd.DataFrame:
    """Each user watches items of their genre in a cycle, one event per 1000 s (all users in step)."""
    rows = []
    for u in range(N_USERS):
        g = u % 4
        for t in range(N_EVENTS):
            rows.append((f"u{u}", f"i{g * PER_GENRE + (t + u) % PER_GENRE}", 1000.0 * t + u))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def stream_dataset() -> Dataset:
    inter = Interactions.from_frame(stream_frame(), item_map=IdMap(f"i{i}" for i in range(4 * PER_GENRE)))
    catalog = ItemCatalog(
        pd.DataFrame(
            {"title": [f"{GENRES[i // PER_GENRE]} film {i}" for i in range(4 * PER_GENRE)]},
            index=[f"i{i}" for i in range(4 * PER_GENRE)],
        ),
        text_fields=["title"],
    )
    return Dataset(inter, catalog, name="stream")


def lm(**kw) -> LMRecommender:
    """A small model; ``kw`` go through `LMRecommender.from_params` (dotted keys or flat names)."""
    params = {
        "dim": 16,
        "user_tower": {"max_len": 8, "n_layers": 1, "n_heads": 2},
        "optim": {"epochs": 8, "batch_size": 8, "lr": 1e-2},
        "item_tower": {"whiten": False},
        "continual": {"update_epochs": 3, "replay_size": 50},
        "num_threads": 1,
        "text_encoder": HashingEncoder(32),
        "random_state": 0,
    }
    return LMRecommender.from_params({**params, **kw})


# ---------------------------------------------------------------------- windows
def test_windows_are_time_ordered_disjoint_and_cover_every_row():
    rng = np.random.default_rng(0)
    ts = rng.permutation(100).astype(float)  # rows in shuffled time order
    inter = Interactions(np.zeros(100, np.int64), np.arange(100), ts, IdMap(["u"]), IdMap(range(100)))
    for split_by in ("rows", "time"):
        initial, windows = stream_windows(inter, train_frac=0.6, n_windows=4, split_by=split_by)
        parts = [initial, *windows]
        # rows: 60 then 10 each; time: span 0..99, edges 59.4, 69.3, 79.2, 89.1 -> the same 60/10/10/10/10
        assert [len(p) for p in parts] == [60, 10, 10, 10, 10]
        assert sorted(np.concatenate(parts).tolist()) == list(range(100))
        for a, b in zip(parts[:-1], parts[1:]):
            assert ts[a].max() <= ts[b].min()


def test_window_errors():
    inter = Interactions(np.zeros(3, np.int64), np.arange(3), np.zeros(3), IdMap(["u"]), IdMap(range(3)))
    with pytest.raises(ValueError, match="train_frac must be in \\(0, 1\\), got 1.0"):
        stream_windows(inter, train_frac=1.0)
    with pytest.raises(ValueError, match="n_windows must be an integer >= 1, got 0"):
        stream_windows(inter, n_windows=0)
    with pytest.raises(ValueError, match="part\\(s\\) \\[.*\\] are empty"):
        stream_windows(inter, n_windows=4)


# ---------------------------------------------------------------------- prequential
def test_popularity_stream_incremental_equals_full_retrain():
    data = stream_dataset()
    res = prequential(data, Popularity, n_windows=4)
    assert [r["window"] for r in res.windows] == [0, 1, 2, 3]
    starts = [r["start"] for r in res.windows]
    assert starts == sorted(starts) and all(a["end"] <= b["start"] for a, b in zip(res.windows, res.windows[1:]))
    assert sum(r["n_rows"] for r in res.windows) + res.initial["n_rows"] == len(data.interactions)
    for row in res.windows:
        # counts add up, so partial_fit on every past window is a full retrain
        assert row["incremental"]["ndcg@10"] == pytest.approx(row["full_retrain"]["ndcg@10"], abs=1e-12)
        assert row["incremental"]["recall@10"] == pytest.approx(row["full_retrain"]["recall@10"], abs=1e-12)
    assert res.windows[0]["no_update"]["ndcg@10"] == res.windows[0]["incremental"]["ndcg@10"]
    assert res.windows[0]["incremental"]["train_s"] == 0.0
    assert "skipped" in res.forgetting


def test_model_without_partial_fit_skips_incremental_with_a_reason():
    res = prequential(stream_dataset(), lambda: ItemKNN(), n_windows=2)
    assert res.windows[1]["incremental"] == {"skipped": "ItemKNN has no partial_fit; the incremental arm is skipped"}
    assert "ndcg@10" in res.windows[1]["full_retrain"] and res.notes
    quiet = prequential(stream_dataset(), Popularity, n_windows=1, arms=("full_retrain",), forgetting=False)
    assert set(quiet.windows[0]) == {"window", "n_rows", "start", "end", "full_retrain"}
    assert quiet.forgetting == {"skipped": "not requested (forgetting=False)"}
    with pytest.raises(ValueError, match="unknown arm\\(s\\) \\['partial'\\]"):
        prequential(stream_dataset(), Popularity, arms=("partial",))


def test_lm_stream_has_every_arm_and_forgetting():
    # fixed epochs (no early stopping), so the reference refit below is the same fit
    res = prequential(stream_dataset(), lm, n_windows=2, early_stopping=False)
    for row in res.windows:
        for arm in ("no_update", "incremental", "incremental_no_replay", "full_retrain"):
            assert 0.0 <= row[arm]["ndcg@10"] <= 1.0
        assert row["incremental"]["train_s"] >= 0 and row["full_retrain"]["train_s"] > 0
    assert res.windows[1]["incremental"]["train_s"] > 0
    f = res.forgetting
    for name in ("replay", "no_replay", "full_retrain"):
        assert f[name]["forgetting"] == pytest.approx(1 - f[name]["after_last"] / f[name]["right_after"])
    assert f["replay_kind"] == "reservoir" and f["protocol"] == "held-back"
    # window 0 = 24 rows (240 rows, 60% initial, 2 windows of 48 -> window 0 has 48); 20% -> round(9.6) = 10
    assert f["n_rows"] == 10 and f["full_retrain"]["final_refit_s"] > 0
    # the reference's "after last" is a fresh fit on everything but the held-back rows, scored on them
    from lmrec.eval.stream import _task0

    data = stream_dataset()
    inter = data.interactions
    initial, windows = stream_windows(inter, n_windows=2)
    kept, held = holdout_rows(windows[0], 0.2, 0)
    everything = np.concatenate([initial, kept, windows[1]])
    refit = lm().fit(data.with_interactions(inter.subset(everything)))
    expected = _task0(refit, inter.subset(np.concatenate([initial, kept])), inter.subset(held))
    assert f["full_retrain"]["after_last"] == pytest.approx(expected, abs=1e-9)


# ---------------------------------------------------------------------- held-back forgetting
class Recorder:
    """A fake model that records every row it learns or reads and scores by what it has trained on.

    Rows are named by their timestamps (unique in the data used here). Item scores depend only on the
    latest timestamp trained on (``fit`` / ``partial_fit``) and on ``continual.replay``, so every NDCG is known.
    """

    events: list[tuple[str, set[float]]] = []  # on the class: shared by every deep copy (clone_model)
    window0: tuple[float, float] = (10.0, 15.0)  # [start, end) of window 0's timestamps

    def __init__(self) -> None:
        self.continual = ContinualConfig(replay="reservoir")  # the no-replay arm replaces it
        self.last_t_ = -1.0

    def _learn(self, kind: str, inter: Interactions) -> None:
        Recorder.events.append((kind, set(inter.timestamps.tolist())))
        self.n_items_ = inter.n_items
        if kind != "observe":
            self.last_t_ = max(self.last_t_, float(inter.timestamps.max()))

    def fit(self, dataset: Dataset) -> Recorder:
        self.last_t_ = -1.0
        self._learn("fit", dataset.interactions)
        return self

    def partial_fit(self, inter: Interactions) -> Recorder:
        self._learn("partial_fit", inter)
        return self

    def observe(self, inter: Interactions) -> Recorder:
        self._learn("observe", inter)
        return self

    def _scores(self) -> np.ndarray:
        lo, hi = Recorder.window0
        s = np.zeros(self.n_items_, np.float32)
        if self.last_t_ < lo:  # initial model: 9 > 8 > ... > 0
            s[:] = np.arange(self.n_items_)
        elif self.last_t_ < hi:  # learnt window 0: 0 > 1 > ... > 9
            s[:] = -np.arange(self.n_items_)
        elif self.continual.replay == "none":  # learnt later windows without replay: item 1, then item 0
            s[[1, 0]] = [2.0, 1.0]
        else:  # ... with replay (or a refit): items 1, 2, then item 0
            s[[1, 2, 0]] = [3.0, 2.0, 1.0]
        return s

    def score_all(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self._scores(), (len(users), 1))

    def item_vectors(self) -> np.ndarray:
        return self._scores()[:, None]  # (n_items, 1)

    def encode_users(self, items, texts, times, known_users=None) -> np.ndarray:
        Recorder.events.append(("encode", {float(t) for ts in times for t in ts}))
        return np.ones((len(items), 1), np.float32)  # (n_users, 1): every user scores items alike


class ValidRecorder(Recorder):
    """A Recorder whose ``fit`` takes ``valid`` (as models with early stopping do)."""

    def fit(self, dataset: Dataset, valid: Split | None = None) -> ValidRecorder:
        super().fit(dataset)
        Recorder.events.append(("valid", set() if valid is None else set(valid.valid.timestamps.tolist())))
        return self


def test_last_row_split_holds_out_each_users_last_row():
    # users 0-2 with 3 / 1 / 2 rows; user 0's rows out of time order in the file, user 2's two rows tie
    inter = Interactions(
        np.array([0, 0, 1, 2, 0, 2]),
        np.arange(6),
        np.array([5.0, 9.0, 4.0, 7.0, 1.0, 7.0]),
        IdMap(range(3)),
        IdMap(range(6)),
    )
    split = last_row_split(inter)
    # user 0: latest is row 1 (t=9); user 1 has one row and keeps it; user 2: tie, the later file row (5)
    assert sorted(split.valid.items.tolist()) == [1, 5]
    assert sorted(split.train.items.tolist()) == [0, 2, 3, 4] and len(split.test) == 0


def test_fresh_fits_early_stop_on_the_last_rows_then_observe_them():
    data = stream_dataset()
    inter = data.interactions
    Recorder.events = []
    model = fit_fresh(ValidRecorder, data, inter)
    # 24 users x 10 events; each user's last event is at 9000 + u
    last = {9000.0 + u for u in range(N_USERS)}
    every = set(inter.timestamps.tolist())
    assert Recorder.events == [("fit", every - last), ("valid", last), ("observe", last)]
    assert model.last_t_ == max(every - last)
    Recorder.events = []
    fit_fresh(ValidRecorder, data, inter, early_stopping=False)
    assert Recorder.events == [("fit", every), ("valid", set())]
    Recorder.events = []
    fit_fresh(Recorder, data, inter)  # a fit without valid: every row
    assert Recorder.events == [("fit", every)]


def test_stream_refits_early_stop_by_default():
    data = stream_dataset()
    Recorder.events = []
    try:
        prequential(data, ValidRecorder, n_windows=2, forgetting=False)
    finally:
        Recorder.window0 = (10.0, 15.0)
    kinds = [k for k, _ in Recorder.events]
    # the initial fit and one refit (window 1), each validated on its users' last rows
    assert kinds.count("fit") == 2 and kinds.count("valid") == 2
    assert all(rows for kind, rows in Recorder.events if kind == "valid")


class ValidUpdateRecorder(ValidRecorder):
    """A ValidRecorder whose ``partial_fit`` takes ``valid`` too (and, like the lm model, then observes it)."""

    def partial_fit(self, inter: Interactions, valid: Interactions | None = None) -> ValidUpdateRecorder:
        super().partial_fit(inter)
        if valid is not None:
            Recorder.events.append(("update_valid", set(valid.timestamps.tolist())))
        return self


def test_updates_early_stop_on_the_windows_last_rows():
    data = stream_dataset()
    window = data.interactions.subset(data.interactions.timestamps >= 8000)  # 2 rows per user
    last = {9000.0 + u for u in range(N_USERS)}
    every = set(window.timestamps.tolist())
    Recorder.events = []
    update_fresh(ValidUpdateRecorder(), window)
    assert Recorder.events == [("partial_fit", every - last), ("update_valid", last)]
    Recorder.events = []
    update_fresh(ValidUpdateRecorder(), window, early_stopping=False)
    assert Recorder.events == [("partial_fit", every)]
    Recorder.events = []
    update_fresh(Recorder(), window)  # a partial_fit without valid: every row, fixed epochs
    assert Recorder.events == [("partial_fit", every)]
    Recorder.events = []
    one = data.interactions.subset(data.interactions.timestamps >= 9000)  # one row per user: nothing to validate
    update_fresh(ValidUpdateRecorder(), one)
    assert Recorder.events == [("partial_fit", set(one.timestamps.tolist()))]


def test_stream_updates_early_stop_by_default():
    data = stream_dataset()
    Recorder.events = []
    try:
        prequential(data, ValidUpdateRecorder, n_windows=2, forgetting=False)
        updates = [rows for kind, rows in Recorder.events if kind == "partial_fit"]
        checks = [rows for kind, rows in Recorder.events if kind == "update_valid"]
        # 240 rows: 144 initial, two windows of 48 (2 rows per user, at 6000 + u and 7000 + u for window 0);
        # each update trains on the earlier row of each user and validates on the later one
        assert [len(r) for r in updates] == [N_USERS, N_USERS] and [len(r) for r in checks] == [N_USERS, N_USERS]
        assert checks[0] == {7000.0 + u for u in range(N_USERS)} and updates[0] == {6000.0 + u for u in range(N_USERS)}
        Recorder.events = []
        prequential(data, ValidUpdateRecorder, n_windows=4, forgetting=False)
        # windows of 24 rows (one per user): nothing to validate on, each update trains on its whole window
        assert [kind for kind, _ in Recorder.events].count("update_valid") == 0
    finally:
        Recorder.window0 = (10.0, 15.0)


class BudgetRecorder(ValidUpdateRecorder):
    """A ValidUpdateRecorder whose updates report what stopped them, as the lm model's do."""

    REPORT = {
        "rows": 3,
        "epochs_run": 7,
        "budget_s": 1.5,
        "budget_bound": True,
        "stopped_by": "budget",
        "best_epoch": 6,
    }

    def partial_fit(self, inter: Interactions, valid: Interactions | None = None) -> BudgetRecorder:
        super().partial_fit(inter, valid)
        self.last_update_ = dict(self.REPORT)
        return self


def test_stream_windows_carry_the_updates_epochs_budget_and_time_share():
    Recorder.events = []
    try:
        res = prequential(stream_dataset(), BudgetRecorder, n_windows=2, forgetting=False)
    finally:
        Recorder.window0 = (10.0, 15.0)
    inc, full = res.windows[1]["incremental"], res.windows[1]["full_retrain"]
    # every stopping field of the report, not the others ("rows")
    assert {k: inc[k] for k in ("epochs_run", "budget_s", "budget_bound", "stopped_by", "best_epoch")} == {
        "epochs_run": 7,
        "budget_s": 1.5,
        "budget_bound": True,
        "stopped_by": "budget",
        "best_epoch": 6,
    }
    assert "rows" not in inc
    assert inc["time_share"] == pytest.approx(inc["train_s"] / full["train_s"])
    assert "time_share" not in res.windows[0]["incremental"]  # window 0: no update yet


def test_stream_table_prints_epochs_share_and_the_budget():
    from lmrec.eval.stream import stream_table

    def window(w, stopped):
        inc = {"ndcg@10": 0.19, "train_s": 2.0, "time_share": 0.125, "epochs_run": 4, "best_epoch": 3}
        inc |= {"stopped_by": stopped, "budget_bound": stopped == "budget"}
        return {
            "window": w,
            "no_update": {"ndcg@10": 0.1},
            "incremental": inc,
            "full_retrain": {"ndcg@10": 0.2, "train_s": 16.0},
        }

    table = stream_table({"results": {"lm": {"stream": [window(1, "budget"), window(2, "patience")]}}})
    lines = table.splitlines()
    assert "update epochs" in lines[0] and "stopped by" in lines[0] and "inc time share" in lines[0]
    # 0.19 / 0.2 = 0.950; 2.0 / 16.0 = 12 % (0.125 rounds to even)
    assert lines[2] == "| lm | 1 | 0.1000 | 0.1900 | 0.2000 | 0.950 | 2.0 | 16.0 | 12% | 4 | 3 | budget |"
    assert lines[3].endswith("| 12% | 4 | 3 | patience |")


def known_dataset() -> Dataset:
    """5 users; rows 0-9: each user has items 5 and 6; rows 10-14 (window 0): each user item 0;
    rows 15-19 (window 1): each user item 7. Timestamp = row index."""
    users = [u for u in range(5) for _ in range(2)] + list(range(5)) * 2
    items = [5, 6] * 5 + [0] * 5 + [7] * 5
    inter = Interactions(
        np.array(users), np.array(items), np.arange(20, dtype=float), IdMap(range(5)), IdMap(range(10))
    )
    return Dataset(inter, name="known")


def test_forgetting_arithmetic_on_known_scores():
    Recorder.events = []
    res = prequential(known_dataset(), Recorder, train_frac=0.5, n_windows=2, forget_holdout=0.4, forget_seed=0)
    f = res.forgetting
    # window 0 = rows 10-14 (one item-0 row per user); round(0.4 * 5) = 2 rows held back, 2 users.
    # Each held-back user: history {5, 6} (masked), relevant {0}; one relevant item, so NDCG = 1/log2(rank + 1).
    assert (f["n_rows"], f["n_users"], f["holdout"], f["seed"]) == (2, 2, 0.4, 0)
    # initial model: 9 8 7 (6 5 masked) 4 3 2 1 0 -> item 0 at rank 8 -> 1/log2(9)
    assert f["initial"] == pytest.approx(1 / np.log2(9))
    # right after window 0 every variant ranks item 0 first -> 1.0
    # after the last window: replay 1 2 0 -> rank 3 -> 1/log2(4) = 0.5, forgetting 1 - 0.5 / 1 = 0.5;
    # no replay 1 0 -> rank 2 -> 1/log2(3) = 0.6309, forgetting 0.3691
    assert {k: f["replay"][k] for k in ("right_after", "after_last", "forgetting")} == pytest.approx(
        {"right_after": 1.0, "after_last": 0.5, "forgetting": 0.5}
    )
    assert {k: f["no_replay"][k] for k in ("right_after", "after_last", "forgetting")} == pytest.approx(
        {"right_after": 1.0, "after_last": 1 / np.log2(3), "forgetting": 1 - 1 / np.log2(3)}
    )
    # full retrain: the refit ranking window 1 learnt through window 0 (1.0, also the last stream refit);
    # the final refit on everything scores like the replay model: 0.5
    full = f["full_retrain"]
    assert (full["right_after"], full["after_last"], full["forgetting"]) == pytest.approx((1.0, 0.5, 0.5))
    assert full["last_stream_refit"] == pytest.approx(1.0)
    # window 0's catalogue = items with a row in rows 0-14: {0, 5, 6}; 5 and 6 are masked history, so
    # item 0 ranks first for every model (the later winners 1 and 2 are outside it): NDCG 1.0, no forgetting
    assert f["catalogue0"] == pytest.approx({"n_items": 3, "initial": 1.0})
    for name in ("replay", "no_replay", "full_retrain"):
        assert f[name]["catalogue0"] == pytest.approx({"right_after": 1.0, "after_last": 1.0, "forgetting": 0.0})


def test_held_back_rows_never_reach_training_or_scoring_histories():
    data = stream_dataset()
    inter = data.interactions
    initial, windows = stream_windows(inter, n_windows=4)
    bounds = (inter.timestamps[windows[0]].min(), inter.timestamps[windows[1]].min())  # 6000, 7000
    Recorder.window0 = bounds
    Recorder.events = []
    try:
        res = prequential(data, Recorder, n_windows=4, forget_holdout=0.25, forget_seed=3)
    finally:
        Recorder.window0 = (10.0, 15.0)
    # the draw, derived independently: 240 rows, 144 initial, windows of 24; round(0.25 * 24) = 6 rows
    pos = np.random.default_rng(3).choice(24, size=6, replace=False)
    held = set(inter.timestamps[windows[0][pos]].tolist())
    assert len(held) == 6 and res.forgetting["n_rows"] == 6
    other = set(inter.timestamps[windows[0][np.random.default_rng(4).choice(24, size=6, replace=False)]].tolist())
    assert other != held  # the seed matters
    every = set(inter.timestamps.tolist())
    kinds = [k for k, _ in Recorder.events]
    # initial fit + 3 refits + the final refit; 4 windows x (replay + no replay) updates; 4 observes
    assert (kinds.count("fit"), kinds.count("partial_fit"), kinds.count("observe")) == (5, 8, 4)
    for kind, rows in Recorder.events:
        assert not rows & held, kind
    learnt = [rows for kind, rows in Recorder.events if kind != "encode"]
    assert set().union(*learnt) == every - held  # nothing else is lost
    fits = [rows for kind, rows in Recorder.events if kind == "fit"]
    assert fits[-1] == every - held  # the final refit: everything but the held-back rows
    w0 = set(inter.timestamps[windows[0]].tolist())
    updates = [rows for kind, rows in Recorder.events if kind in ("partial_fit", "observe")]
    assert sum(u == w0 - held for u in updates) == 3  # window 0: replay, no replay, observe
    # scoring histories of the forgetting task: the held-back users' rows before window 0 and kept rows
    held_users = set(inter.users[windows[0][pos]].tolist())
    hist0 = {
        t
        for t, u in zip(inter.timestamps.tolist(), inter.users.tolist())
        if u in held_users and t not in held and t < bounds[1]
    }
    encodes = [rows for kind, rows in Recorder.events if kind == "encode"]
    assert encodes and all(rows == hist0 for rows in encodes)


def test_holdout_rows_share_seed_and_errors():
    rows = np.arange(100, 124)
    kept, held = holdout_rows(rows, 0.25, 3)
    expected = rows[np.sort(np.random.default_rng(3).choice(24, size=6, replace=False))]
    np.testing.assert_array_equal(held, expected)
    np.testing.assert_array_equal(kept, np.setdiff1d(rows, expected))  # input order kept (rows ascending)
    assert len(holdout_rows(rows, 0.5, 0)[1]) == 12
    for bad in (0.0, 1.0, -0.1, True, "0.2"):
        with pytest.raises(ValueError, match=f"forget_holdout must be in \\(0, 1\\), got {bad!r}"):
            holdout_rows(rows, bad, 0)
    with pytest.raises(ValueError, match="forget_holdout=0.01 of window 0's 24 rows holds back 0"):
        holdout_rows(rows, 0.01, 0)
    with pytest.raises(ValueError, match="forget_holdout must be in \\(0, 1\\), got 1.5"):
        prequential(stream_dataset(), Popularity, forget_holdout=1.5)
    with pytest.raises(ValueError, match="forget_seed must be a non-negative integer, got -1"):
        prequential(stream_dataset(), Popularity, forget_seed=-1)


# ---------------------------------------------------------------------- champion / challenger
@pytest.fixture(scope="module")
def fitted_lm():
    data = stream_dataset()
    inter = data.interactions
    early = inter.timestamps < 7000
    return data, lm().fit(data.with_interactions(inter.subset(early))), inter.subset(~early)


def test_champion_kept_when_challenger_is_worse(fitted_lm):
    data, champion, later = fitted_lm
    challenger = clone_model(champion)
    # a broken challenger: each user's own genre scores lowest, so none of its 5 items reaches the
    # top 10 of the 20 (15 other-genre items rank above them)
    scores = np.zeros((N_USERS, 4 * PER_GENRE), np.float32)
    for u in range(N_USERS):
        g = u % 4
        scores[u, g * PER_GENRE : (g + 1) * PER_GENRE] = -1.0
    challenger.score_all = lambda users: scores[np.asarray(users)]
    split = Split(history_of(champion), later.subset(np.zeros(0, np.int64)), later, "gate")
    res = champion_challenger(champion, challenger, split, tolerance=0.05)
    assert not res.accepted and res.model is champion
    assert res.challenger == 0.0 and res.champion > 0.9  # every relevant item is of the user's own genre
    assert "keeping the champion" in res.reason and res.to_dict()["accepted"] is False
    same = champion_challenger(champion, clone_model(champion), split, tolerance=0.0)
    assert same.accepted and same.champion == same.challenger  # a tie accepts
    with pytest.raises(ValueError, match="tolerance must be in \\[0, 1\\], got 1.5"):
        champion_challenger(champion, champion, split, tolerance=1.5)


def test_gated_partial_fit_never_changes_the_input_model(fitted_lm):
    data, champion, later = fitted_lm
    before = champion.item_vectors().copy()
    n_hist = sum(len(h) for h in champion.hist_items_)
    res = gated_partial_fit(champion, later, holdout_frac=0.25, tolerance=1.0)  # tolerance 1: always accept
    assert res.accepted and res.n_users > 0
    np.testing.assert_array_equal(champion.item_vectors(), before)
    assert sum(len(h) for h in champion.hist_items_) == n_hist
    # the kept model has absorbed the whole window, held-back rows included
    assert sum(len(h) for h in res.model.hist_items_) == n_hist + len(later)
    with pytest.raises(TypeError, match="Popularity has none"):
        gated_partial_fit(Popularity().fit(data.interactions), later)


# ---------------------------------------------------------------------- CLI
def test_cli_stream_on_a_recbole_directory(tmp_path):
    from typer.testing import CliRunner

    from lmrec.cli import app

    d = tmp_path / "tiny"
    d.mkdir()
    frame = stream_frame()
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    lines += [f"{r.user_id}\t{r.item_id}\t{r.timestamp}" for r in frame.itertuples()]
    (d / "tiny.inter").write_text("\n".join(lines) + "\n")
    items = ["item_id:token\ttitle:token_seq"] + [f"i{i}\t{GENRES[i // PER_GENRE]} film {i}" for i in range(20)]
    (d / "tiny.item").write_text("\n".join(items) + "\n")
    out = tmp_path / "out.json"
    params = [
        "lm.encoder_backend=fake",
        "lm.epochs=2",
        "lm.update_epochs=1",
        "lm.dim=16",
        "lm.n_layers=1",
        "lm.max_len=8",
        "lm.num_threads=1",
        "lm.whiten=false",
        "lm.replay_size=20",
    ]
    args = [
        "evaluate",
        "--data",
        str(d),
        "--models",
        "lm",
        "--protocol",
        "stream",
        "--windows",
        "4",
        "--json",
        str(out),
    ]
    for p in params:
        args += ["--param", p]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stream = json.loads(out.read_text())["results"]["lm"]["stream"]
    assert [w["window"] for w in stream] == [0, 1, 2, 3]
    for w in stream:
        assert set(w) >= {"window", "no_update", "incremental", "full_retrain"}
        assert "ndcg@10" in w["no_update"]
        assert {"ndcg@10", "train_s"} <= set(w["incremental"]) and {"ndcg@10", "train_s"} <= set(w["full_retrain"])
    for w in stream[1:]:  # each window after an update: what the update ran and its share of the refit's time
        inc = w["incremental"]
        assert {"epochs_run", "budget_s", "budget_bound", "stopped_by", "time_share"} <= set(inc)
        assert inc["stopped_by"] in ("budget", "patience", "cap") and inc["epochs_run"] >= 1
        assert inc["budget_bound"] == (inc["stopped_by"] == "budget")
    assert "stopped by" in result.output and "update epochs" in result.output
    bad = CliRunner().invoke(app, ["evaluate", "--data", str(d), "--models", "pop", "--protocol", "sideways"])
    assert bad.exit_code == 2 and "--protocol must be 'full' or 'stream', got 'sideways'" in bad.output
