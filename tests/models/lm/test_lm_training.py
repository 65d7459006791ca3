"""Training windows, inference inputs and the objective."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmrec.models.lm.item_tower import ItemTower
from lmrec.models.lm.net import LMNet
from lmrec.models.lm.training import (
    BOS,
    PAD,
    Objective,
    batches_of,
    history_tokens,
    make_windows,
)
from lmrec.models.lm.user_tower import UserTower


def test_make_windows_known_answer() -> None:
    # one user, items 5, 6, 7 a minute apart; windows of 2 from the newest end
    items = [np.array([5, 6, 7]), np.array([], dtype=np.int64)]
    times = [np.array([0.0, 60.0, 120.0]), np.array([])]
    ratings = [np.array([4.0, np.nan, 2.0], np.float32), np.array([], np.float32)]
    w = make_windows(items, times, max_len=2, n_buckets=20, ratings=ratings)
    # inputs BOS,5,6 -> targets 5,6,7; window 1 = inputs [5, 6] -> [6, 7]; window 2 = [BOS] -> [5]
    np.testing.assert_array_equal(w.tokens, [[5, 6], [BOS, PAD]])
    np.testing.assert_array_equal(w.targets, [[6, 7], [5, -100]])
    np.testing.assert_array_equal(w.lengths, [2, 1])
    np.testing.assert_array_equal(w.users, [0, 0])  # the empty user has no window
    # input 6 follows 5 by one minute: bucket 1 + floor(log2(2)) = 2; item 5 has no predecessor
    np.testing.assert_array_equal(w.buckets, [[0, 2], [0, 0]])
    np.testing.assert_array_equal(w.ratings[0], [np.nan, 2.0])
    np.testing.assert_array_equal(w.events, [[-1, -1], [-1, -100]])  # -1: no event type, -100: padding
    with pytest.raises(ValueError, match="at least one user with a training interaction"):
        make_windows([np.array([], dtype=np.int64)], [np.array([])], 2, 20)


def test_history_tokens_keeps_the_newest() -> None:
    tokens, buckets, lengths = history_tokens(
        [np.array([5, 6, 7]), np.array([], dtype=np.int64), np.array([3])],
        [np.array([0.0, 60.0, 120.0]), np.array([]), np.array([9.0])],
        max_len=3,
        n_buckets=20,
    )
    # BOS + history, last 3 tokens: [5, 6, 7]; [BOS]; [BOS, 3]
    np.testing.assert_array_equal(tokens, [[5, 6, 7], [BOS, PAD, PAD], [BOS, 3, PAD]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    np.testing.assert_array_equal(buckets[0], [0, 2, 2])


def _net(rating: bool = False) -> LMNet:
    torch.manual_seed(0)
    text = np.random.default_rng(0).standard_normal((6, 8)).astype(np.float32)
    item = ItemTower(text, np.array([1, 1, 1, 1, 1, 0], bool), 8, id_dropout=0.3)
    user = UserTower(8, 4, n_layers=1, n_heads=2, n_time_buckets=4)
    return LMNet(item, user, rating_head=rating)


def test_objective_log_q_and_sampling_distribution() -> None:
    obj = Objective("sampled", np.array([1, 3, 0]))
    # in-batch positives appear in proportion to counts: 1/4, 3/4; an item never seen gets ~0
    np.testing.assert_allclose(obj.log_pos_q[:2].numpy(), np.log([0.25, 0.75]), rtol=1e-6)
    # negatives are drawn from counts ** 0.75, never the item without training data
    p = np.array([1.0, 3**0.75, 0.0])
    np.testing.assert_allclose(obj.neg_p.numpy(), p / p.sum(), rtol=1e-6)


@pytest.mark.parametrize("loss", ["full", "sampled", "bpr"])
def test_every_loss_trains_both_towers(loss: str) -> None:
    net = _net(rating=True).train()
    windows = make_windows(
        [np.array([0, 1, 2, 3]), np.array([4, 0])],
        [np.arange(4.0), np.arange(2.0)],
        3,
        4,
        ratings=[np.array([5, 4, 3, 2], np.float32), np.array([1, 2], np.float32)],
    )
    batch = next(iter(batches_of(windows, 8, seed=0)(0)))
    obj = Objective(
        loss, np.array([2, 2, 1, 1, 1, 0]), n_negatives=4, rating_weight=0.5, generator=torch.Generator().manual_seed(0)
    )
    value = obj(net, batch)
    assert value.dim() == 0 and torch.isfinite(value)
    value.backward()
    assert net.item_tower.adaptor.experts.weight.grad.abs().sum() > 0
    assert net.user_tower.bos.grad.abs().sum() > 0
    assert net.rating_head[0].weight.grad.abs().sum() > 0


def test_full_softmax_is_cross_entropy_of_cosines() -> None:
    net = _net().eval()  # eval: no dropout, no ID dropout, so the loss is deterministic
    windows = make_windows([np.array([0, 1, 2])], [np.zeros(3)], 3, 4)
    batch = next(iter(batches_of(windows, 8, seed=0)(0)))
    with torch.no_grad():
        got = Objective("full", np.ones(6))(net, batch)
        vecs = net.item_tower()
        states = net.user_tower(vecs, batch["tokens"], batch["lengths"], batch["buckets"])[0]  # (3, d)
        u = states / states.norm(dim=1, keepdim=True)
        v = vecs / vecs.norm(dim=1, keepdim=True)
        logits = u @ v.T / 0.07
        expected = -torch.log_softmax(logits, dim=1)[torch.arange(3), torch.tensor([0, 1, 2])].mean()
    torch.testing.assert_close(got, expected)


def test_items_without_training_data_are_never_negatives() -> None:
    # item 5 has count 0: changing its text must not change the full-softmax or BPR loss
    windows = make_windows([np.array([0, 1, 2, 3])], [np.zeros(4)], 4, 4)
    batch = next(iter(batches_of(windows, 8, seed=0)(0)))
    counts = np.array([1, 1, 1, 1, 3, 0])
    for loss in ("full", "bpr"):
        net = _net().eval()
        with torch.no_grad():
            before = Objective(loss, counts, generator=torch.Generator().manual_seed(0))(net, batch)
            net.item_tower.text[5] += 10.0
            after = Objective(loss, counts, generator=torch.Generator().manual_seed(0))(net, batch)
        torch.testing.assert_close(before, after)
