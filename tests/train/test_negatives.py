"""Popularity-sampled negatives: the sampling distribution, both log-Q terms, and bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lmrec.train.negatives import PopularityNegatives


def test_tables_follow_popularity_and_smoothing() -> None:
    sampler = PopularityNegatives(np.array([2, 0, 6]), n_negatives=4)
    # positives: Q = count / total = 2/8, 0 (clamped to 1e-12), 6/8
    np.testing.assert_allclose(sampler.log_pos_q.numpy(), np.log([0.25, 1e-12, 0.75]), rtol=1e-6)
    # negatives: count ** 0.75 normalised; 2 ** 0.75 = 1.6818, 6 ** 0.75 = 3.8337, sum 5.5155
    np.testing.assert_allclose(sampler.neg_p.numpy(), [1.6818 / 5.5155, 0.0, 3.8337 / 5.5155], atol=1e-4)


def test_draws_never_pick_an_item_without_counts_and_carry_their_correction() -> None:
    sampler = PopularityNegatives(np.array([2, 0, 6]), n_negatives=4000)
    ids, log_q = sampler.draw(torch.Generator().manual_seed(0))
    assert ids.shape == (4000,) and log_q.shape == (4000,)
    assert not (ids == 1).any()
    # the share of draws matches p within sampling noise (sd of a share at p=0.305, n=4000: 0.007)
    assert abs((ids == 0).float().mean().item() - 1.6818 / 5.5155) < 0.03
    # log-Q of a negative is log(M * p): expected draws of that item in one batch
    np.testing.assert_allclose(log_q.numpy(), np.log(4000 * sampler.neg_p[ids].numpy()), rtol=1e-6)


def test_uniform_power_ignores_popularity_but_not_absence() -> None:
    sampler = PopularityNegatives(np.array([1, 0, 100]), n_negatives=2, power=0.0)
    np.testing.assert_allclose(sampler.neg_p.numpy(), [0.5, 0.0, 0.5])


def test_same_generator_seed_same_draws() -> None:
    sampler = PopularityNegatives(np.arange(1, 50), n_negatives=16)
    a, _ = sampler.draw(torch.Generator().manual_seed(3))
    b, _ = sampler.draw(torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("counts", "n", "match"),
    [
        (np.zeros(3), 4, "at least one positive count"),
        (np.array([1, -1]), 4, "item_counts must be >= 0"),
        (np.array([1, 2]), 0, "n_negatives must be >= 1, got 0"),
    ],
)
def test_bad_input(counts: np.ndarray, n: int, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PopularityNegatives(counts, n_negatives=n)
