"""The update's time budget (`TimeBudget`, ``continual.update_budget``) and what stops an update."""

from __future__ import annotations

import pytest
import torch
from conftest import make_model
from lm_helpers import genre_dataset

from lmrec.data import leave_one_out
from lmrec.data.splits import last_row_split
from lmrec.eval.gate import clone_model
from lmrec.models.base import Recommender
from lmrec.models.lm.config import ContinualConfig
from lmrec.train.budget import TimeBudget
from lmrec.train.callbacks import TrainState


class FakeClock:
    """Returns the readings it is given, in order."""

    def __init__(self, *readings: float) -> None:
        self.readings = list(readings)

    def __call__(self) -> float:
        return self.readings.pop(0)


def _run_epochs(budget: TimeBudget, epochs: int, stop_at: int | None = None) -> TrainState:
    """Drive the callback as `fit_loop` does; ``stop_at``: an epoch at which another callback stops."""
    state = TrainState(epochs=epochs)
    module = torch.nn.Linear(1, 1)
    budget.on_train_begin(state, module)
    for epoch in range(epochs):
        state.epoch = epoch
        if stop_at == epoch:
            state.stop = True
        budget.on_epoch_end(state, module)
        if state.stop:
            break
    return state


# ---------------------------------------------------------------------- the rule, on a fake clock
def test_budget_stops_when_the_next_epoch_would_overrun():
    # budget 10 s from t=0; training begins at t=1; each epoch takes 2 s, ending at 3, 5, 7, 9.
    # after epoch 1: spent 3 + mean epoch 2 = 5 <= 10, go on; epoch 2: 5 + 2 = 7; epoch 3: 7 + 2 = 9;
    # epoch 4: 9 + 2 = 11 > 10 -> stop after 4 of the 20 epochs allowed
    budget = TimeBudget(10.0, started=0.0, clock=FakeClock(1.0, 3.0, 5.0, 7.0, 9.0))
    state = _run_epochs(budget, 20)
    assert (state.epoch + 1, state.stop, budget.bound, budget.epoch_s) == (4, True, True, 2.0)


def test_budget_uses_the_mean_epoch_time_so_far():
    # begins at 0; epochs end at 1 (1 s), then 7 (6 s): after epoch 2 the mean is 3.5 s;
    # spent 7 + 3.5 = 10.5 > 10 -> stop (the first epoch alone, 1 + 1 = 2, did not)
    budget = TimeBudget(10.0, started=0.0, clock=FakeClock(0.0, 1.0, 7.0))
    state = _run_epochs(budget, 20)
    assert (state.epoch + 1, budget.bound, budget.epoch_s) == (2, True, 3.5)


def test_budget_is_not_what_stopped_a_patience_stop_or_the_last_epoch():
    # patience stops at epoch 1 (0-based) although the budget (3 s, epochs of 2 s) would stop there too
    budget = TimeBudget(3.0, started=0.0, clock=FakeClock(0.0, 2.0, 4.0))
    state = _run_epochs(budget, 20, stop_at=0)
    assert state.stop and not budget.bound
    # the epoch cap (2 epochs) is reached at t=4 > 3: the cap ended training, not the budget
    budget = TimeBudget(3.0, started=0.0, clock=FakeClock(0.0, 1.0, 4.0))
    state = _run_epochs(budget, 2)
    assert (state.epoch + 1, state.stop, budget.bound) == (2, False, False)


def test_budget_errors():
    with pytest.raises(ValueError, match="TimeBudget budget_s must be > 0 seconds, got 0"):
        TimeBudget(0, started=0.0)
    with pytest.raises(ValueError, match=r"ContinualConfig.update_budget must be None or a number > 0, got 0"):
        ContinualConfig(update_budget=0)
    with pytest.raises(ValueError, match=r"ContinualConfig.update_patience must be an integer >= 1, got 0"):
        ContinualConfig(update_patience=0)
    with pytest.raises(ValueError, match=r"ContinualConfig.update_max_epochs must be an integer >= 1, got 0"):
        ContinualConfig(update_max_epochs=0)


def test_defaults_are_documented_values():
    cfg = ContinualConfig()
    assert (cfg.update_epochs, cfg.update_max_epochs, cfg.update_patience, cfg.update_budget) == (5, 50, 5, 0.2)


# ---------------------------------------------------------------------- partial_fit on real data
@pytest.fixture(scope="module")
def setup():
    """A model fitted 2 epochs on the genre data's training part; the valid + test rows as a window
    whose users' last rows validate the update."""
    data = genre_dataset()
    split = leave_one_out(data.interactions)
    model = make_model(epochs=2).fit(data.with_interactions(split.train))
    return model, last_row_split(split.valid.concat(split.test))


def _update(model, cut, *, fit_s: float, validator=None, **continual):
    twin = clone_model(model)
    twin.continual = twin.continual.replace(**continual)
    twin.fit_s_ = fit_s
    twin.partial_fit(cut.train, valid=cut.valid, validator=validator)
    return twin


def test_fit_records_its_time_and_save_load_keeps_it(setup, tmp_path):
    model, _ = setup
    assert model.fit_s_ > 0
    model.save(tmp_path / "m")
    assert Recommender.load(tmp_path / "m").fit_s_ == pytest.approx(model.fit_s_)


def test_a_tiny_budget_binds_after_one_epoch(setup):
    model, cut = setup
    # budget 0.2 * 1e-6 s: spent after one epoch, so the update stops there (one epoch always runs)
    twin = _update(model, cut, fit_s=1e-6, update_budget=0.2, update_max_epochs=10)
    rep = twin.last_update_
    assert rep["budget_s"] == pytest.approx(2e-7)
    assert (rep["epochs_run"], rep["budget_bound"], rep["stopped_by"]) == (1, True, "budget")
    assert len(twin.update_history_) == 1


def test_patience_binds_under_a_large_budget(setup):
    model, cut = setup
    # validation NDCG before the update, then after each epoch: the best is epoch 2; with patience 2
    # epochs 3 and 4 bring no gain, so the update stops after 4 of its 30 epochs, well inside the budget
    values = iter([0.1, 0.3, 0.5, 0.4, 0.45, 0.9, 0.9])
    twin = _update(
        model,
        cut,
        fit_s=1e6,
        validator=lambda *_args, **_kw: {"ndcg@10": next(values)},
        update_patience=2,
        update_max_epochs=30,
    )
    rep = twin.last_update_
    assert (rep["epochs_run"], rep["budget_bound"], rep["stopped_by"], rep["best_epoch"]) == (4, False, "patience", 2)
    assert rep["valid_ndcg@10"] == 0.5 and rep["budget_s"] == pytest.approx(2e5)


def test_the_cap_binds_and_no_budget_without_a_fit_time(setup):
    model, cut = setup
    rep = _update(model, cut, fit_s=1e6, update_max_epochs=2, update_patience=50).last_update_
    assert (rep["epochs_run"], rep["budget_bound"], rep["stopped_by"]) == (2, False, "cap")
    # fit time unknown (a model saved before it was recorded): no bound, the epoch cap rules
    twin = clone_model(model)
    twin.fit_s_ = None
    twin.continual = twin.continual.replace(update_epochs=3)
    twin.partial_fit(cut.train)  # no validation rows: update_epochs, not update_max_epochs
    rep = twin.last_update_
    assert (rep["epochs"], rep["epochs_run"], rep["budget_s"], rep["stopped_by"]) == (3, 3, None, "cap")


def test_patience_defaults_to_the_fits(setup):
    model, cut = setup
    # update_patience None -> optim.patience (1 here): one epoch without a gain after epoch 1 stops it
    values = iter([0.1, 0.3, 0.2, 0.9, 0.9])
    twin = clone_model(model)
    twin.optim = twin.optim.replace(patience=1)
    twin.continual = twin.continual.replace(update_patience=None, update_budget=None)
    twin.partial_fit(cut.train, valid=cut.valid, validator=lambda *_a, **_k: {"ndcg@10": next(values)})
    assert (twin.last_update_["epochs_run"], twin.last_update_["stopped_by"]) == (2, "patience")
