"""The generic training loop and its callbacks."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

from lmrec.train import Callback, Checkpoint, EarlyStopping, LogMetrics, ProgressBar, TrainState, fit_loop


def regression_problem(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 3, generator=g)
    return x, x @ torch.tensor([[2.0], [-1.0], [0.5]])


def mse(module: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return ((module(x) - y) ** 2).mean()


def batches_of(x: torch.Tensor, y: torch.Tensor, size: int = 16):
    def batches(epoch: int):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for start in range(0, len(x), size):
            sel = order[start : start + size]
            yield x[sel], y[sel]

    return batches


class Recorder(Callback):
    """Keeps a copy of the weights after every epoch."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []
        self.events: list[str] = []

    def on_train_begin(self, state: TrainState, module: nn.Module) -> None:
        self.events.append("begin")

    def on_epoch_end(self, state: TrainState, module: nn.Module) -> None:
        self.weights.append(module.weight.detach().clone())
        self.events.append(f"epoch{state.epoch}")

    def on_train_end(self, state: TrainState, module: nn.Module) -> None:
        self.events.append("end")


def test_loop_learns_a_linear_map() -> None:
    torch.manual_seed(0)
    x, y = regression_problem()
    net = nn.Linear(3, 1, bias=False)
    state = fit_loop(net, batches_of(x, y), mse, torch.optim.SGD(net.parameters(), lr=0.1), epochs=40)
    torch.testing.assert_close(net.weight.detach(), torch.tensor([[2.0, -1.0, 0.5]]), atol=1e-3, rtol=0)
    assert state.step == 40 * 4  # 64 rows in batches of 16
    assert len(state.history) == 40 and state.history[-1]["loss"] < 1e-6
    assert not net.training  # left in eval mode


def test_early_stopping_restores_the_best_weights() -> None:
    torch.manual_seed(0)
    x, y = regression_problem()
    net = nn.Linear(3, 1, bias=False)
    scripted = iter([0.1, 0.5, 0.3, 0.2, 0.4, 0.9])  # best after epoch 1, then two worse ones
    recorder = Recorder()
    stopper = EarlyStopping("ndcg@10", mode="max", patience=2)
    state = fit_loop(
        net,
        batches_of(x, y),
        mse,
        torch.optim.SGD(net.parameters(), lr=0.05),
        epochs=6,
        callbacks=[recorder, stopper],
        validate=lambda: {"ndcg@10": next(scripted)},
    )
    assert state.epoch == 3 and state.stop  # epochs 2 and 3 did not improve on 0.5
    assert [h["ndcg@10"] for h in state.history] == [0.1, 0.5, 0.3, 0.2]
    assert stopper.best == 0.5 and stopper.best_epoch == 1
    torch.testing.assert_close(net.weight.detach(), recorder.weights[1], atol=0, rtol=0)
    assert not torch.equal(recorder.weights[1], recorder.weights[3])
    assert recorder.events == ["begin", "epoch0", "epoch1", "epoch2", "epoch3", "end"]


def test_early_stopping_on_min_loss() -> None:
    stopper = EarlyStopping("loss", mode="min", patience=1, restore_best=False)
    state = TrainState(epochs=3)
    net = nn.Linear(1, 1)
    stopper.on_train_begin(state, net)
    for epoch, loss in enumerate([1.0, 0.5, 0.7]):
        state.epoch, state.epoch_loss = epoch, loss
        stopper.on_epoch_end(state, net)
    assert stopper.best == 0.5 and state.stop


def test_validation_runs_every_n_epochs_and_in_eval_mode() -> None:
    x, y = regression_problem()
    net = nn.Linear(3, 1, bias=False)
    modes: list[bool] = []

    def validate() -> dict[str, float]:
        modes.append(net.training)
        assert not torch.is_grad_enabled()
        return {"score": 1.0}

    state = fit_loop(
        net,
        batches_of(x, y),
        mse,
        torch.optim.SGD(net.parameters(), lr=0.01),
        epochs=5,
        validate=validate,
        validate_every=2,
    )
    # after epochs 2 and 4, and after the last (5)
    assert modes == [False, False, False]
    assert ["score" in h for h in state.history] == [False, True, False, True, True]


def test_checkpoint_writes_safetensors_on_improvement(tmp_path) -> None:
    x, y = regression_problem()
    net = nn.Linear(3, 1, bias=False)
    scores = iter([0.2, 0.1, 0.3])
    ckpt = Checkpoint(tmp_path / "ckpt", monitor="ndcg@10", mode="max")
    recorder = Recorder()
    fit_loop(
        net,
        batches_of(x, y),
        mse,
        torch.optim.SGD(net.parameters(), lr=0.05),
        epochs=3,
        callbacks=[recorder, ckpt],
        validate=lambda: {"ndcg@10": next(scores)},
    )
    info = json.loads((tmp_path / "ckpt" / "checkpoint.json").read_text())
    assert info["epoch"] == 2 and info["ndcg@10"] == 0.3
    fresh = Checkpoint.load_into(nn.Linear(3, 1, bias=False), ckpt.path)
    torch.testing.assert_close(fresh.weight.detach(), recorder.weights[2], atol=0, rtol=0)


def test_checkpoint_handles_tied_weights(tmp_path) -> None:
    emb = nn.Embedding(4, 2)
    head = nn.Linear(2, 4, bias=False)
    head.weight = emb.weight  # shared storage: safetensors refuses it unless cloned
    tied = nn.ModuleDict({"emb": emb, "head": head})
    Checkpoint(tmp_path).save(tied, {"epoch": 0})
    copy = nn.ModuleDict({"emb": nn.Embedding(4, 2), "head": nn.Linear(2, 4, bias=False)})
    Checkpoint.load_into(copy, tmp_path / "model.safetensors")
    torch.testing.assert_close(copy["emb"].weight, emb.weight)


def test_bad_arguments_and_nan_loss() -> None:
    net = nn.Linear(1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="epochs must be >= 1, got 0"):
        fit_loop(net, lambda e: [], mse, opt, epochs=0)
    with pytest.raises(ValueError, match="validate_every must be >= 1, got 0"):
        fit_loop(net, lambda e: [], mse, opt, epochs=1, validate_every=0)
    with pytest.raises(FloatingPointError, match="loss is nan at epoch 0, step 0"):
        fit_loop(net, lambda e: [None], lambda m, b: torch.tensor(float("nan")), opt, epochs=1)
    with pytest.raises(ValueError, match="patience must be >= 1, got 0"):
        EarlyStopping(patience=0)
    with pytest.raises(ValueError, match="mode must be 'max' or 'min', got 'up'"):
        EarlyStopping(mode="up")


def test_progress_bar_and_log_metrics(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture) -> None:
    x, y = regression_problem()
    net = nn.Linear(3, 1, bias=False)
    with caplog.at_level(logging.INFO, logger="lmrec.train.callbacks"):
        fit_loop(
            net,
            batches_of(x, y),
            mse,
            torch.optim.SGD(net.parameters(), lr=0.05),
            epochs=2,
            callbacks=[LogMetrics()],
            validate=lambda: {"ndcg@10": 0.25},
            show_progress=True,
        )
    assert "epoch 2/2 loss=" in caplog.text and "ndcg@10=0.2500" in caplog.text
    assert "train" in capsys.readouterr().err  # the tqdm bar added by show_progress
    bar = ProgressBar()
    state = TrainState(epochs=1)
    bar.on_train_begin(state, net)
    bar.on_train_end(state, net)
    assert bar._bar is None
