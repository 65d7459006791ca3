"""A time budget for `lmrec.train.fit_loop`: stop before an epoch that would overrun it.

Continual updates (`lmrec.models.lm.continual`) bound their time by a share of the last fresh fit's,
so that an update stays a fraction of what a retrain costs on the same machine whatever the data.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from torch import nn

from lmrec.train.callbacks import Callback, TrainState

__all__ = ["TimeBudget"]


class TimeBudget(Callback):
    """Stops training when one more epoch would overrun a time budget (continual updates use it).

    After each epoch (its validation included) the mean epoch time so far estimates the next one;
    when ``spent + estimate > budget_s`` training stops there and ``bound`` is set. It never stops
    after the last allowed epoch (the epoch cap bound, not the budget) nor when another callback
    already stopped training (patience bound), so ``bound`` says exactly that time cut it short.

    Args:
        budget_s: seconds the whole run may take.
        started: the clock reading when the run began (work before training counts against the
            budget too: for an update, growing the maps, building its windows, the first validation).
        clock: seconds, monotonic (injectable for tests).

    Attributes:
        bound: whether the budget stopped training.
        epoch_s: the mean epoch time when training ended (None before the first epoch).
    """

    def __init__(self, budget_s: float, started: float, clock: Callable[[], float] = time.perf_counter) -> None:
        if not budget_s > 0:
            raise ValueError(f"TimeBudget budget_s must be > 0 seconds, got {budget_s!r}")
        self.budget_s, self.started, self.clock = float(budget_s), float(started), clock
        self.bound = False
        self.epoch_s: float | None = None
        self._train_t0 = float(started)

    def on_train_begin(self, state: TrainState, module: nn.Module) -> None:
        self._train_t0 = self.clock()

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        now = self.clock()
        done = state.epoch + 1
        self.epoch_s = (now - self._train_t0) / done
        if state.stop or done >= state.epochs:
            return
        if now - self.started + self.epoch_s > self.budget_s:
            state.stop, self.bound = True, True
