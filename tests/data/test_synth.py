"""The synthetic data generator: determinism, loadability and the structure it promises."""

from __future__ import annotations

import re
from itertools import combinations

import numpy as np
import pandas as pd
import pytest

from lmrec.data.loaders import load, load_recbole
from lmrec.data.synth import BLOCK_EVENTS, FILLER_WORDS, THEMES, SynthConfig, SynthReport, synthesize


def _inter(report: SynthReport) -> pd.DataFrame:
    frame = pd.read_csv(report.inter_path, sep="\t", dtype={0: np.int64, 1: np.int64})
    frame.columns = ["user", "item", "rating", "timestamp"]
    return frame


def _items(report: SynthReport) -> pd.DataFrame:
    frame = pd.read_csv(report.item_path, sep="\t", quoting=3, keep_default_na=False)
    frame.columns = ["item", "title", "category", "description"]
    return frame


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> SynthReport:
    config = SynthConfig(n_users=500, n_items=800, n_events=30_000, n_interests=8, name="small", seed=3)
    return synthesize(config, tmp_path_factory.mktemp("small"))


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tmp_path):
    # more than one generation block, so the per-block streams are covered too
    config = SynthConfig(n_users=3000, n_items=2000, n_events=BLOCK_EVENTS + 40_000, seed=11)
    a = synthesize(config, tmp_path / "a")
    b = synthesize(config, tmp_path / "b")
    c = synthesize(SynthConfig(**{**config.to_dict(), "seed": 12}), tmp_path / "c")
    for x, y, z in zip(a.files, b.files, c.files):
        assert x.read_bytes() == y.read_bytes(), x.name
        if x.suffix != ".json":
            assert x.read_bytes() != z.read_bytes(), x.name
    assert a.bytes_written == sum(p.stat().st_size for p in a.files)
    assert a.events_per_second == pytest.approx(a.n_events / a.seconds)


def test_files_load_with_the_recbole_loader(small):
    ds = load_recbole(small.inter_path.parent)
    inter = ds.interactions
    assert len(inter) == 30_000
    assert inter.n_users == 500  # every user has at least one event
    assert set(inter.item_map.to_ids(np.arange(inter.n_items))) <= {str(i) for i in range(800)}
    assert len(ds.items.frame) == 800
    assert ds.items.text_fields == ["title", "categories", "description"]
    assert ds.items.categorical == ["categories"]
    assert inter.ratings is not None and set(np.unique(inter.ratings)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    header = small.inter_path.read_text().splitlines()[0]
    assert header == "user_id:token\titem_id:token\trating:float\ttimestamp:float"
    assert (small.n_users, small.n_items, small.n_events) == (500, 800, 30_000)
    assert len(load(small.inter_path.parent).interactions) == 30_000  # the generic loader picks RecBole


def test_timestamps_rise_within_each_user_and_stay_in_the_span(small):
    f = _inter(small)
    assert f["user"].is_monotonic_increasing  # written user by user
    assert (f.groupby("user")["timestamp"].diff().dropna() >= 0).all()
    start, span = 1_600_000_000, 730 * 86_400
    assert f["timestamp"].min() >= start and f["timestamp"].max() <= start + span


def test_no_repeated_pair_without_repeats(small):
    assert not _inter(small).duplicated(["user", "item"]).any()


@pytest.mark.parametrize(
    ("n_users", "n_items", "n_events", "exponent"),
    [
        (7, 30, 210, 1.0),  # the densest possible case: every user holds every item exactly once
        (7, 300, 2100, 10.0),  # dense and steep: nearly all redraws fall to the users' unseen items
        (300, 5000, 30_000, 4.0),  # steep: the popular items of each interest run out, long-tail ones fill in
    ],
)
def test_no_repeats_even_when_popular_items_run_out(tmp_path, n_users, n_items, n_events, exponent):
    config = SynthConfig(
        n_users=n_users, n_items=n_items, n_events=n_events, n_interests=3, popularity_exponent=exponent
    )
    f = _inter(synthesize(config, tmp_path, show_progress=True))
    assert len(f) == n_events
    assert not f.duplicated(["user", "item"]).any()
    if n_events == n_users * n_items:
        assert (f.groupby("user").size() == n_items).all()


@pytest.mark.parametrize(
    ("exponent", "low", "high"),
    [
        # Zipf over 2000 items: the top 1 % (20 items) hold sum_{r<=20} r^-a / sum_{r<=2000} r^-a of the mass.
        # a=1:   H(20) / H(2000) = 3.598 / 8.178 = 0.44 (seeds 0-4 gave 0.446-0.458)
        # a=1.5: (2.612 - 2/sqrt(20.5)) / (2.612 - 2/sqrt(2000.5)) = 2.170 / 2.567 = 0.845 (seen 0.836-0.857)
        # a=0:   uniform, 1 % plus the noise of taking the 20 largest of 2000 counts (seen 0.017-0.018)
        (1.0, 0.38, 0.50),
        (1.5, 0.78, 0.90),
        (0.0, 0.0, 0.03),
    ],
)
def test_item_popularity_follows_the_exponent(tmp_path, exponent, low, high):
    config = SynthConfig(n_users=1000, n_items=2000, n_events=50_000, popularity_exponent=exponent, allow_repeats=True)
    counts = np.bincount(_inter(synthesize(config, tmp_path))["item"], minlength=2000)
    top = np.sort(counts)[::-1][:20].sum() / counts.sum()
    assert low < top < high


def test_popularity_stays_heavy_tailed_without_repeats(small):
    # without repeats an item has at most one event per user, which flattens the head; the top 1 %
    # (8 items) still hold several times their uniform 1 % share (seeds 0-2 gave 0.076-0.078)
    counts = np.bincount(_inter(small)["item"], minlength=800)
    assert np.sort(counts)[::-1][:8].sum() / counts.sum() > 0.05


def test_user_activity_is_heavy_tailed(small):
    sizes = _inter(small).groupby("user").size().to_numpy()
    assert sizes.min() >= 5  # the minimum per user (30,000 events allow it)
    assert sizes.max() > 8 * np.median(sizes)  # log-normal sigma 1.2: the max of 500 is ~e^(1.2*2.9) ~ 30x
    # (seeds 0-2 gave 22-26x; a uniform split would give about 1x)


def test_interest_vocabularies_are_disjoint_real_words():
    # the text signal rests on this: no word belongs to two interests or to the shared filler
    words = [w for text in THEMES.values() for w in text.split()]
    assert len(THEMES) == 16 and len(words) == 16 * 24 == len(set(words))
    assert not set(words) & set(FILLER_WORDS)


def test_same_interest_items_share_more_words(small):
    items = _items(small)
    words = [set(f"{t} {d}".lower().split()) for t, d in zip(items["title"], items["description"])]
    same, other = [], []
    for i, j in combinations(range(120), 2):
        jaccard = len(words[i] & words[j]) / len(words[i] | words[j])
        (same if items["category"][i] == items["category"][j] else other).append(jaccard)
    assert len(same) > 100
    # seeds 0-2: same-interest Jaccard 0.16, different-interest 0.03 (shared filler words only)
    assert np.mean(same) > 3 * np.mean(other)


def test_sessions_stay_in_one_interest_and_ratings_follow_the_match(small):
    f = _inter(small).merge(_items(small)[["item", "category"]], on="item")
    f = f.sort_values(["user", "timestamp"], kind="stable")
    same_user = f["user"].to_numpy()[1:] == f["user"].to_numpy()[:-1]
    same_cat = f["category"].to_numpy()[1:] == f["category"].to_numpy()[:-1]
    # 8 interests: independent draws would repeat the interest about 1/8 of the time
    assert same_cat[same_user].mean() > 0.4  # seeds 0-2 gave 0.54-0.56
    share = f.groupby(["user", "category"])["item"].transform("size") / f.groupby("user")["item"].transform("size")
    assert np.corrcoef(share, f["rating"])[0, 1] > 0.3  # seeds 0-2 gave 0.55-0.59


def _quarter_shift(report: SynthReport) -> float:
    """Mean total-variation distance between each user's interest shares in the first and last quarter."""
    f = _inter(report).merge(_items(report)[["item", "category"]], on="item")
    shifts = []
    for _, g in f.groupby("user"):
        if len(g) < 40:
            continue
        q = len(g) // 4
        a = g["category"][:q].value_counts(normalize=True)
        b = g["category"][-q:].value_counts(normalize=True)
        shifts.append(0.5 * a.sub(b, fill_value=0).abs().sum())
    return float(np.mean(shifts))


def test_drift_moves_interests_over_time(tmp_path):
    # drift=0 leaves only sampling noise between quarters; drift=1 fades one interest and adds another.
    # Seeds 0-3 gave still 0.28-0.33 and moving 0.39-0.44 (a gap of 0.09-0.11).
    base = dict(n_users=200, n_items=1000, n_events=60_000, n_interests=8, seed=0)
    still = _quarter_shift(synthesize(SynthConfig(**base, drift=0.0), tmp_path / "still"))
    moving = _quarter_shift(synthesize(SynthConfig(**base, drift=1.0), tmp_path / "moving"))
    assert moving > still + 0.05


def test_more_than_sixteen_interests_get_generated_words(tmp_path):
    report = synthesize(SynthConfig(n_users=50, n_items=200, n_events=500, n_interests=20), tmp_path)
    items = _items(report)
    assert set(items["category"]) == {
        "kitchen",
        "garden",
        "music",
        "sport",
        "travel",
        "office",
        "books",
        "toys",
        "pets",
        "beauty",
        "tools",
        "games",
        "camping",
        "baby",
        "art",
        "auto",
        "interest16",
        "interest17",
        "interest18",
        "interest19",
    }


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"n_users": 4, "n_items": 5, "n_events": 21},
            "n_events=21 is more than n_users * n_items = 20, the most events possible without repeats; "
            "lower n_events or set allow_repeats=True",
        ),
        ({"n_users": 10, "n_events": 9}, "n_events=9 is less than n_users=10; every user needs at least one event"),
        ({"n_items": 3, "n_interests": 4}, "n_interests=4 is more than n_items=3; every interest needs an item"),
        ({"n_users": 0}, "n_users must be >= 1, got 0"),
        ({"n_items": 2.5}, "n_items must be an integer, got 2.5"),
        ({"n_events": True}, "n_events must be an integer, got True"),
        ({"seed": -1}, "seed must be >= 0, got -1"),
        ({"drift": 1.5}, "drift must be in [0.0, 1.0], got 1.5"),
        ({"popularity_exponent": float("nan")}, "popularity_exponent must be in [0.0, 10.0], got nan"),
        ({"text_words": 0}, "text_words must be >= 1, got 0"),
        ({"text_words": 5000}, "text_words must be <= 1000, got 5000"),
        ({"allow_repeats": 1}, "allow_repeats must be a bool, got 1"),
        ({"time_span_days": 0}, "time_span_days must be in [0.001, 100000.0], got 0"),
        (
            {"name": "a/b"},
            "name must be letters, digits, '_', '.' or '-' (not starting with one of the last three), got 'a/b'",
        ),
    ],
)
def test_bad_fields_raise_naming_the_field(overrides, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SynthConfig(**{"n_users": 10, "n_items": 10, "n_events": 50, "n_interests": 2, **overrides})


def test_repeats_lift_the_size_limit_and_unknown_keys_are_rejected(tmp_path):
    report = synthesize(SynthConfig(n_users=4, n_items=5, n_events=100, n_interests=2, allow_repeats=True), tmp_path)
    assert len(_inter(report)) == 100
    with pytest.raises(ValueError, match=re.escape("unknown SynthConfig key(s) ['n_user']; valid: ['n_users',")):
        SynthConfig.from_dict({"n_user": 5})
    with pytest.raises(ValueError, match="config must be a SynthConfig, got dict"):
        synthesize({"n_users": 5}, tmp_path)  # type: ignore[arg-type]
