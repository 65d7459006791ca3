"""Epoch checkpoints: a training loop goes on from the last saved epoch with its weights, optimiser,
history and early-stopping state, and only the loop the state belongs to takes it."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from lmrec.train.callbacks import Callback, EarlyStopping, TrainState
from lmrec.train.loop import fit_loop
from lmrec.train.resume import MemoryEpochStore, active_store, from_bytes, next_loop, resuming, to_bytes

X = torch.linspace(-1, 1, 32).reshape(-1, 1)
Y = 3 * X + 1


def net(seed: int) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(1, 1)


def batches(epoch: int):
    return [(X[i : i + 8], Y[i : i + 8]) for i in range(0, 32, 8)]


def mse(module: nn.Module, batch) -> torch.Tensor:
    x, y = batch
    return ((module(x) - y) ** 2).mean()


class Crash(Callback):
    """Raises at the end of one epoch, before that epoch is saved."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        if state.epoch == self.epoch:
            raise RuntimeError("worker died")


def test_a_loop_goes_on_from_the_last_saved_epoch() -> None:
    store = MemoryEpochStore()
    first = net(0)
    with resuming(store), pytest.raises(RuntimeError, match="worker died"):
        fit_loop(first, batches, mse, torch.optim.Adam(first.parameters(), lr=0.05), epochs=5, callbacks=[Crash(2)])
    assert [s["epoch"] for s in store.saved] == [0, 1]  # epoch 2 crashed before it was saved
    kept = store.saved[-1]
    second = net(1)  # a fresh process: other initial weights
    opt = torch.optim.Adam(second.parameters(), lr=0.05)
    seen: list[torch.Tensor] = []

    class Peek(Callback):
        def on_epoch_begin(self, state: TrainState, module: nn.Module) -> None:
            if not seen:
                seen.append(module.weight.detach().clone())

    with resuming(store):
        state = fit_loop(second, batches, mse, opt, epochs=5, callbacks=[Peek()])
    assert state.resumed_from == 1
    torch.testing.assert_close(seen[0], kept["module"]["weight"])  # epoch 2 started from epoch 1's weights
    assert [h["epoch"] for h in state.history] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert state.step == 5 * 4  # 4 batches an epoch, counted across the restart
    assert opt.state_dict()["state"][0]["step"].item() == 20  # Adam's moments came back with its step count
    assert [s["epoch"] for s in store.saved] == [0, 1, 2, 3, 4]


def test_early_stopping_keeps_its_best_across_a_restart() -> None:
    store = MemoryEpochStore()
    scores = iter([0.5, 0.9, 0.4, 0.3, 0.2, 0.1])  # best at epoch 1, then worse

    def validate() -> dict[str, float]:
        return {"ndcg@10": next(scores)}

    first = net(0)
    with resuming(store), pytest.raises(RuntimeError):
        fit_loop(
            first,
            batches,
            mse,
            torch.optim.SGD(first.parameters(), lr=0.01),
            epochs=6,
            validate=validate,
            callbacks=[EarlyStopping(patience=2), Crash(2)],
        )
    best_weights = store.saved[1]["module"]["weight"].clone()  # after epoch 1, the best
    second = net(1)
    stopper = EarlyStopping(patience=2)
    with resuming(store):
        state = fit_loop(
            second,
            batches,
            mse,
            torch.optim.SGD(second.parameters(), lr=0.01),
            epochs=6,
            validate=validate,
            callbacks=[stopper],
        )
    # epoch 2 runs again (0.4: one bad), epoch 3 (0.3: two bad) stops; the best of before the crash is restored
    assert (stopper.best, stopper.best_epoch) == (0.9, 1)
    assert [h["epoch"] for h in state.history] == [0.0, 1.0, 2.0, 3.0] and state.stop
    torch.testing.assert_close(second.weight.detach(), best_weights)


def test_a_saved_state_goes_only_to_its_own_loop() -> None:
    store = MemoryEpochStore()
    with resuming(store):
        assert active_store() is store and (next_loop(), next_loop()) == (0, 1)
    assert active_store() is None and next_loop() == 0
    pre, main = net(0), net(0)
    with resuming(store):
        fit_loop(pre, batches, mse, torch.optim.SGD(pre.parameters(), lr=0.01), epochs=2)
        fit_loop(main, batches, mse, torch.optim.SGD(main.parameters(), lr=0.01), epochs=3)
    assert [(s["loop"], s["epoch"]) for s in store.saved] == [(0, 0), (0, 1), (1, 0), (1, 1), (1, 2)]
    resumed = MemoryEpochStore(store.saved[3])  # loop 1 after its epoch 1
    pre2, main2 = net(0), net(5)
    with resuming(resumed):
        s0 = fit_loop(pre2, batches, mse, torch.optim.SGD(pre2.parameters(), lr=0.01), epochs=2)
        s1 = fit_loop(main2, batches, mse, torch.optim.SGD(main2.parameters(), lr=0.01), epochs=3)
    assert s0.resumed_from is None and len(s0.history) == 2  # loop 0 ran again from the start
    assert s1.resumed_from == 1 and [h["epoch"] for h in s1.history] == [0.0, 1.0, 2.0]
    torch.testing.assert_close(main2.weight, main.weight)  # deterministic: the same end as the uninterrupted run


def test_outside_resuming_nothing_is_saved_and_states_round_trip() -> None:
    m = net(0)
    state = fit_loop(m, batches, mse, torch.optim.SGD(m.parameters(), lr=0.01), epochs=2)
    assert state.resumed_from is None
    blob = to_bytes({"w": torch.ones(2), "history": [{"epoch": 0.0}], "stop": False, "scheduler": None})
    back = from_bytes(blob)
    assert back["history"] == [{"epoch": 0.0}] and torch.equal(back["w"], torch.ones(2)) and back["scheduler"] is None
    with pytest.raises(ValueError, match="holds a list, expected a dict"):
        from_bytes(to_bytes([1]))  # type: ignore[arg-type]
