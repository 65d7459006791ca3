from __future__ import annotations

import numpy as np
import pytest

from lmrec.serve.profiles import absorb, blend, event_weight, unit
from lmrec.serve.stores.base import Profile, StoredEvent

WEIGHTS = {"view": 0.5, "purchase": 1.0, "rating": 1.0}
E1, E2 = np.array([1.0, 0.0], np.float32), np.array([0.0, 2.0], np.float32)  # E2 is not unit: absorb normalises


def ev(seq: int, kind: str = "view", value: float | None = None, ts: float = 0.0) -> StoredEvent:
    return StoredEvent(f"e{seq}", "u", "i", kind, value, ts, None, seq=seq)


def test_two_views_follow_the_update_rule_by_hand() -> None:
    # a = min(1, alpha * w) = 0.5 * 0.5 = 0.25 for a view
    # P1 = 0.25 * [1, 0] = [0.25, 0]
    # P2 = 0.25 * [0, 1] + 0.75 * [0.25, 0] = [0.1875, 0.25]
    p = absorb(None, [ev(1), ev(2)], [E1, E2], alpha=0.5, weights=WEIGHTS, space="s")
    np.testing.assert_allclose(p.vector, [0.1875, 0.25], rtol=1e-6)
    assert (p.n_events, p.last_seq, p.space) == (2, 2, "s")


def test_incremental_equals_batch() -> None:
    batch = absorb(None, [ev(1), ev(2, "purchase")], [E1, E2], alpha=0.5, weights=WEIGHTS, space="s")
    first = absorb(None, [ev(1)], [E1], alpha=0.5, weights=WEIGHTS, space="s")
    both = absorb(first, [ev(2, "purchase")], [E2], alpha=0.5, weights=WEIGHTS, space="s")
    np.testing.assert_allclose(both.vector, batch.vector)
    assert both.n_events == batch.n_events == 2


def test_rating_weight_scales_with_value_and_heavier_events_pull_harder() -> None:
    assert event_weight("rating", 4.0, WEIGHTS, rating_scale=5.0) == pytest.approx(0.8)
    assert event_weight("rating", 9.0, WEIGHTS, rating_scale=5.0) == pytest.approx(1.0)  # clipped
    start = Profile(np.array([1.0, 0.0], np.float32), 1, 1, 0.0, "s")
    view = absorb(start, [ev(2)], [E2], alpha=0.5, weights=WEIGHTS, space="s")
    buy = absorb(start, [ev(2, "purchase")], [E2], alpha=0.5, weights=WEIGHTS, space="s")
    # view: a = 0.25 -> [0.75, 0.25]; purchase: a = 0.5 -> [0.5, 0.5]
    np.testing.assert_allclose(view.vector, [0.75, 0.25])
    np.testing.assert_allclose(buy.vector, [0.5, 0.5])


def test_half_life_decays_the_old_profile_by_elapsed_time() -> None:
    start = Profile(np.array([1.0, 0.0], np.float32), 1, 1, 100.0, "s")
    # 10 s later with a 10 s half-life: P = 0.5 * [0, 1] + (1 - 0.5) * 0.5 * [1, 0] = [0.25, 0.5]
    p = absorb(start, [ev(2, "purchase", ts=110.0)], [E2], alpha=0.5, weights=WEIGHTS, space="s", half_life_s=10.0)
    np.testing.assert_allclose(p.vector, [0.25, 0.5])
    assert p.last_ts == 110.0


def test_profile_from_another_space_restarts_and_missing_vectors_still_count() -> None:
    old = Profile(np.array([5.0, 5.0, 5.0], np.float32), 7, 7, 0.0, "old")
    p = absorb(old, [ev(8), ev(9)], [None, E1], alpha=1.0, weights=WEIGHTS, space="new")
    # a = 0.5 for the view of E1; the first event has no vector (item gone) but counts
    np.testing.assert_allclose(p.vector, [0.5, 0.0])
    assert (p.n_events, p.last_seq, p.space) == (2, 9, "new")


def test_absorb_checks_lengths() -> None:
    with pytest.raises(ValueError, match="2 events but 1 item vectors"):
        absorb(None, [ev(1), ev(2)], [E1], alpha=0.5, weights=WEIGHTS, space="s")


def test_blend_weights_unit_parts_and_skips_missing_ones() -> None:
    # 0.7 * [1, 0] + 0.3 * [0, 1], normalised: [0.7, 0.3] / sqrt(0.58)
    np.testing.assert_allclose(blend([(E1 * 3, 0.7), (E2, 0.3)]), np.array([0.7, 0.3]) / np.sqrt(0.58), rtol=1e-6)
    np.testing.assert_allclose(blend([(None, 0.9), (E2, 0.1)]), [0.0, 1.0])
    np.testing.assert_allclose(blend([(E2, 0.0)]), [0.0, 1.0])  # a lone part with weight 0 still counts
    assert blend([(None, 1.0), (np.zeros(2), 1.0)]) is None
    np.testing.assert_array_equal(unit(np.zeros(3)), np.zeros(3))
