"""Validation injected into training, and continual updates through an explicit state."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import make_model
from lm_helpers import N_USERS

from lmrec.data import Split
from lmrec.eval import evaluate
from lmrec.models.base import Recommender
from lmrec.models.lm import LMRecommender
from lmrec.models.lm.validation import ndcg_validator, ranking_metrics


def _evaluate_valid(model, split):
    res = evaluate(model, split, phase="valid", ks=(10,), metrics=("ndcg", "recall"), user_groups=())
    return res


def test_ranking_metrics_equal_evaluate_exactly(fitted, genre_split) -> None:
    """Early stopping must pick the same epoch as with the evaluator: the numbers are equal, not close."""
    _, split = genre_split
    ours = ranking_metrics(fitted.score_all, split.train, split.valid)
    theirs = _evaluate_valid(fitted, split).metrics
    assert ours == {"ndcg@10": theirs["ndcg@10"], "recall@10": theirs["recall@10"]}
    assert 0.0 < ours["ndcg@10"] < 1.0
    # the same with every known item of the test phase masked (a different `known`)
    known = split.train.subset(np.arange(0, len(split.train), 2))
    two = Split(known, split.valid, split.test, "half")
    assert (
        ranking_metrics(fitted.score_all, known, split.valid)["ndcg@10"]
        == _evaluate_valid(fitted, two).metrics["ndcg@10"]
    )


def test_ranking_metrics_by_hand() -> None:
    """Two users, three items: user 0's item 2 ranks 1st after masking item 0 (ndcg 1); user 1's item 0
    ranks 2nd (ndcg 1/log2(3)) -> mean (1 + 0.6309) / 2 = 0.8155; recall 1 each."""
    from lmrec.data import IdMap, Interactions

    users, items = IdMap(["a", "b"]), IdMap(["x", "y", "z"])
    known = Interactions(np.array([0]), np.array([0]), np.zeros(1), users, items)
    valid = Interactions(np.array([0, 1]), np.array([2, 0]), np.zeros(2), users, items)
    scores = np.array([[9.0, 1.0, 2.0], [1.0, 3.0, 0.0]], np.float32)
    got = ranking_metrics(lambda u: scores[u], known, valid, k=2)
    assert got["ndcg@2"] == pytest.approx((1 + 1 / np.log2(3)) / 2)
    assert got["recall@2"] == 1.0


def test_an_injected_validator_drives_early_stopping(genre_split) -> None:
    data, split = genre_split
    calls = []

    def falling(model, known, valid):
        calls.append((model, len(known), len(valid)))
        return {"ndcg@10": 1.0 / len(calls)}  # best after the first epoch, worse every epoch after

    model = make_model(epochs=20, patience=2).fit(data.with_interactions(split.train), valid=split, validator=falling)
    assert len(model.train_history_) == 3  # epoch 1 best, then 2 epochs without a gain
    assert all(m is model for m, _, _ in calls) and {(k, v) for _, k, v in calls} == {
        (len(split.train), len(split.valid))
    }
    assert getattr(model, "_validator", None) is None  # not kept after fit


def test_default_validator_keeps_the_evaluator_choice(genre_split) -> None:
    """fit(valid=...) with the default validator reports per epoch exactly what evaluate gives."""
    data, split = genre_split
    model = make_model(epochs=1).fit(data.with_interactions(split.train), valid=split)  # one epoch: its weights kept
    assert model.train_history_[-1]["ndcg@10"] == _evaluate_valid(model, split).metrics["ndcg@10"]
    assert ndcg_validator(model, split.train, split.valid)["ndcg@10"] == model.train_history_[-1]["ndcg@10"]


class _Guarded(LMRecommender):
    """Records reads of private attributes made from code in `lmrec.models.lm.continual`."""

    reads: list[str] = []

    def __getattribute__(self, name):
        if name.startswith("_") and not name.startswith("__"):
            caller = sys._getframe(1).f_code.co_filename
            if caller.endswith("continual.py"):
                type(self).reads.append(name)
        return super().__getattribute__(name)


def test_the_updater_never_reads_the_models_private_attributes(fitted, genre_split, tmp_path) -> None:
    _, split = genre_split
    fitted.save(tmp_path / "m")
    model = Recommender.load(tmp_path / "m")
    model.__class__ = _Guarded
    _Guarded.reads = []
    valid = split.test.subset(np.arange(0, len(split.test), 2))
    rest = split.test.subset(np.arange(1, len(split.test), 2))
    model.partial_fit(rest, epochs=2, valid=valid)
    assert _Guarded.reads == []
    assert model.last_update_["epochs"] == 2 and model.n_updates_ == 1
    # the state went back to the model: histories hold the new and the validation rows
    assert sum(len(h) for h in model.hist_items_) == len(split.train) + len(split.test)
    state = model.update_state()
    assert state.net is model.net_ and state.replay is model.replay_buffer_ and len(state.replay) > 0
    assert model.n_users == N_USERS
