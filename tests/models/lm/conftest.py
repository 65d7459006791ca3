"""One fitted language-model interest model on the genre data set, shared by the tests here."""

from __future__ import annotations

import pytest
from lm_helpers import genre_dataset

from lmrec.data import leave_one_out
from lmrec.encoders.fake import HashingEncoder
from lmrec.models.lm import LMRecommender


def make_model(**overrides) -> LMRecommender:
    """Fast settings that learn the genre data. No whitening: the hashing encoder's vectors have no
    anisotropy to remove, and whitening 28 items in 32 dimensions gives every item-unique token as
    much weight as the shared genre token.

    ``overrides`` go through `LMRecommender.from_params`: dotted keys, components or flat names."""
    params = {
        "dim": 16,
        "user_tower": {"max_len": 8, "n_layers": 1, "n_heads": 2, "dropout": 0.1},
        "optim": {"epochs": 50, "batch_size": 8, "lr": 1e-2},
        "item_tower": {"whiten": False},
        "num_threads": 1,
        "text_encoder": HashingEncoder(32),
        "random_state": 0,
    }
    return LMRecommender.from_params({**params, **overrides})


@pytest.fixture(scope="session")
def genre_split():
    data = genre_dataset()
    return data, leave_one_out(data.interactions)


@pytest.fixture(scope="session")
def fitted(genre_split):
    """Fitted on train only (no observe), so tests that observe must work on a copy (load a save)."""
    data, split = genre_split
    return make_model(rating_weight=0.1).fit(data.with_interactions(split.train))
