"""`seeded`: a forked, seeded torch RNG and a temporary thread count."""

from __future__ import annotations

import pytest
import torch

from lmrec.train.seeding import seeded


def test_body_draws_as_after_manual_seed_and_outside_rng_is_untouched() -> None:
    torch.manual_seed(123)
    expected_outside = torch.rand(3)
    torch.manual_seed(123)
    with seeded(7):
        inside = torch.rand(3)
    after = torch.rand(3)
    torch.manual_seed(7)
    assert torch.equal(inside, torch.rand(3))  # the body sees manual_seed(7)
    assert torch.equal(after, expected_outside)  # the caller's stream continues as if nothing was drawn


def test_threads_are_set_inside_and_restored_even_after_an_error() -> None:
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    with pytest.raises(RuntimeError, match="boom"), seeded(0, threads=target):
        assert torch.get_num_threads() == target
        raise RuntimeError("boom")
    assert torch.get_num_threads() == before
    with seeded(0, threads=None):
        assert torch.get_num_threads() == before
