"""How much an update replays: ``ReplayBuffer.sample`` and ``continual.replay_share``."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import make_model
from lm_helpers import genre_dataset

from lmrec.data import leave_one_out
from lmrec.eval.gate import clone_model
from lmrec.models.lm.config import ContinualConfig, ItemTowerConfig, ObjectiveConfig, OptimConfig, UserTowerConfig
from lmrec.models.lm.continual import ContinualUpdater, ReplayBuffer


def _buffer(n: int = 100) -> ReplayBuffer:
    buf = ReplayBuffer(n, "reservoir", random_state=0)
    rows = np.arange(n)
    buf.add(rows, rows + 1000, rows.astype(float))  # user r, item r + 1000, time r
    return buf


def test_sample_draws_distinct_rows_of_the_buffer_in_buffer_order():
    buf = _buffer(100)
    users, items, times = buf.sample(10, random_state=3)
    assert len(users) == len(items) == len(times) == 10 and len(np.unique(users)) == 10
    position = {int(u): p for p, u in enumerate(buf.users)}
    assert np.all(np.diff([position[int(u)] for u in users]) > 0)  # buffer order kept
    np.testing.assert_array_equal(items, users + 1000)  # rows stay whole
    np.testing.assert_array_equal(times, users.astype(float))
    again = buf.sample(10, random_state=3)
    np.testing.assert_array_equal(again[0], users)  # seeded
    assert len(buf) == 100  # the buffer is unchanged


def test_sample_of_more_than_the_buffer_or_none_is_the_whole_buffer():
    buf = _buffer(20)
    for n in (None, 20, 500):
        users, _, _ = buf.sample(n)
        np.testing.assert_array_equal(users, buf.users)
    assert len(buf.sample(0)[0]) == 0
    with pytest.raises(ValueError, match="ReplayBuffer.sample n must be >= 0, got -1"):
        buf.sample(-1)


def test_sample_is_uniform_over_the_buffer():
    buf = _buffer(50)
    counts = np.zeros(50)
    for seed in range(400):
        counts[buf.sample(5, random_state=seed)[0]] += 1
    # each row is drawn with probability 5 / 50 = 0.1; 400 draws: sd sqrt(0.1 * 0.9 / 400) = 0.015,
    # the mean of each group of 10 rows has sd 0.0047
    np.testing.assert_allclose(counts.reshape(5, 10).mean(axis=1) / 400, 0.1, atol=0.02)


def test_replay_count_is_the_share_of_new_rows_rounded_up():
    def updater(share):
        return ContinualUpdater(
            ContinualConfig(replay_share=share),
            objective=ObjectiveConfig(),
            optim=OptimConfig(),
            user_tower=UserTowerConfig(),
            item_tower=ItemTowerConfig(),
        )

    assert updater(None).replay_count(3228) is None  # the whole buffer
    assert updater(0.1).replay_count(3228) == 323  # ceil(322.8)
    assert updater(0.1).replay_count(9840) == 984  # ceil(984.0): no rounding up of an exact product
    assert updater(2.0).replay_count(7) == 14


@pytest.mark.parametrize("value", [0, -0.5, "0.1"])
def test_replay_share_must_be_a_positive_number(value):
    with pytest.raises(ValueError, match=rf"ContinualConfig.replay_share must be None or a number > 0, got {value!r}"):
        ContinualConfig(replay_share=value)


@pytest.fixture(scope="module")
def fitted():
    data = genre_dataset()
    split = leave_one_out(data.interactions)
    return split, make_model(epochs=2).fit(data.with_interactions(split.train))


@pytest.mark.parametrize("share", [None, 0.25])
def test_an_update_replays_its_share_of_the_new_rows(fitted, share):
    split, model = fitted
    twin = clone_model(model)
    twin.continual = twin.continual.replace(replay_share=share, update_budget=None, replay_size=10_000)
    twin.partial_fit(split.valid, epochs=1)
    history_rows = len(split.train)  # the buffer holds every earlier row: it is larger than the history
    expected = history_rows if share is None else math.ceil(share * len(split.valid))
    assert twin.last_update_["replayed"] == expected
    assert twin.replay_buffer_.n_seen == history_rows + len(split.valid)  # the new rows joined the buffer


def test_replay_share_is_a_dotted_parameter():
    model = make_model(**{"continual.replay_share": 0.3})
    assert model.continual.replay_share == 0.3
    assert model.get_params()["continual"]["replay_share"] == 0.3


def test_the_default_replays_the_whole_buffer(fitted):
    split, model = fitted
    assert ContinualConfig().replay_share is None
    twin = clone_model(model)
    twin.continual = twin.continual.replace(update_budget=None)
    twin.partial_fit(split.valid, epochs=1)
    assert twin.last_update_["replayed"] == min(1000, len(split.train))  # the default buffer holds 1,000 rows
