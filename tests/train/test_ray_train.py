"""Data-parallel training: batch sharding, DDP in a real two-process gloo group, and Ray Train's
TorchTrainer on a real local Ray cluster writing an ordinary model directory."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from lmrec.data import IdMap, Interactions
from lmrec.train.distributed import data_parallel, shard_batches, unwrap, wrap_ddp

N_ITEMS = 10


def cyclic(n_users: int = 30, length: int = 8) -> Interactions:
    """User u watches items s, s+1, ... (mod 10) from a random start s: the next item is known."""
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n_users):
        start = int(rng.integers(N_ITEMS))
        rows += [(f"u{u}", f"i{(start + t) % N_ITEMS}", float(t)) for t in range(length)]
    return Interactions.from_frame(
        pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]),
        user_map=IdMap(f"u{u}" for u in range(n_users)),
        item_map=IdMap(f"i{i}" for i in range(N_ITEMS)),
    )


def sasrec_params() -> dict:
    return dict(max_len=6, hidden=16, n_layers=1, n_heads=1, dropout=0.1, epochs=30, batch_size=16, lr=1e-2)


# ---------------------------------------------------------------------- sharding
def test_each_rank_takes_its_part_of_every_global_batch() -> None:
    order = torch.arange(10)
    # global batches [0..3], [4..7], [8, 9]; two ranks split each in halves
    assert [b.tolist() for b in shard_batches(order, 4, 0, 2)] == [[0, 1], [4, 5], [8]]
    assert [b.tolist() for b in shard_batches(order, 4, 1, 2)] == [[2, 3], [6, 7], [9]]
    # three ranks: [0..3] -> [0], [1], [2, 3]; the last global batch (2 rows < 3 ranks) is dropped
    parts = [[b.tolist() for b in shard_batches(order, 4, r, 3)] for r in range(3)]
    assert parts == [[[0], [4]], [[1], [5]], [[2, 3], [6, 7]]]
    assert [b.tolist() for b in shard_batches(order, 4, 0, 1)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_outside_a_process_group_nothing_is_wrapped() -> None:
    net = torch.nn.Linear(2, 2)
    assert data_parallel() == (0, 1)
    assert wrap_ddp(net, torch.device("cpu")) is net and unwrap(net) is net


# ---------------------------------------------------------------------- DDP without Ray
def _rank(rank: int, world: int, init_file: str, out_dir: str, loss: str = "full") -> None:
    from lmrec.models import SASRec

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        model = SASRec(**sasrec_params(), loss=loss, n_negatives=4, num_threads=1, device="cpu").fit(cyclic())
        weights = {k: v.numpy() for k, v in model.net_.state_dict().items()}
        np.savez(os.path.join(out_dir, f"rank{rank}.npz"), **weights)
    finally:
        # both ranks leave together: a rank that exits while its peer still talks to it over gloo
        # makes the peer abort ("terminate called without an active exception")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_two_ddp_ranks_end_with_the_same_weights_and_learn_the_cycle(tmp_path, loss: str) -> None:
    import torch.multiprocessing as mp

    # with the sampled softmax each rank draws its own negatives: the averaged gradients still agree
    mp.spawn(_rank, args=(2, str(tmp_path / "init"), str(tmp_path), loss), nprocs=2, join=True)
    a, b = np.load(tmp_path / "rank0.npz"), np.load(tmp_path / "rank1.npz")
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)  # the gradients were averaged every step
    from lmrec.models import SASRec

    model = SASRec(**{**sasrec_params(), "epochs": 1}, device="cpu").fit(cyclic())
    model.net_.load_state_dict({k: torch.from_numpy(a[k]) for k in a.files})
    inter = cyclic()
    last = np.array([seq[-1] for seq in inter.sequences()])
    items, _ = model.recommend(np.arange(inter.n_users), k=1, exclude_seen=False)
    assert np.mean(items[:, 0] == (last + 1) % N_ITEMS) >= 0.9


def _lm_rank(rank: int, world: int, init_file: str, out_dir: str) -> None:
    from lmrec.data import Dataset, ItemCatalog
    from lmrec.encoders.fake import HashingEncoder
    from lmrec.models.lm import LMRecommender

    torch.distributed.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        inter = cyclic()
        titles = pd.DataFrame(
            {"title": [f"film {i % 3}" for i in range(N_ITEMS)]}, index=[f"i{i}" for i in range(N_ITEMS)]
        )
        model = LMRecommender(
            dim=8,
            user_tower={"max_len": 6, "n_layers": 1, "n_heads": 2, "use_user_text": False},
            item_tower={"whiten": False},
            optim={"epochs": 3, "batch_size": 8, "device": "cpu"},
            text_encoder=HashingEncoder(16),
            num_threads=1,
        ).fit(Dataset(inter, items=ItemCatalog(titles, text_fields=["title"])))
        weights = {k: v.numpy() for k, v in model.net_.state_dict().items()}
        np.savez(os.path.join(out_dir, f"lm{rank}.npz"), **weights)
    finally:
        # both ranks leave together: a rank that exits while its peer still talks to it over gloo
        # makes the peer abort ("terminate called without an active exception")
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()


@pytest.mark.slow
def test_two_lm_ranks_average_their_gradients_into_the_same_weights(tmp_path) -> None:
    import torch.multiprocessing as mp

    mp.spawn(_lm_rank, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    a, b = np.load(tmp_path / "lm0.npz"), np.load(tmp_path / "lm1.npz")
    assert len(a.files) > 5
    for key in a.files:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)


# ---------------------------------------------------------------------- Ray Train
@pytest.fixture(scope="module")
def ray_cluster():
    ray = pytest.importorskip("ray", reason="Ray is not installed (the lmrec[ray] extra)")
    from lmrec.encoders.ray_encode import connect_ray

    try:
        connect_ray("local", num_cpus=2)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"a local Ray cluster cannot start here: {exc}")
    # the workers cannot import this test module: ship its functions by value
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.shutdown()


@pytest.mark.slow
def test_ray_train_on_two_workers_writes_an_ordinary_model_directory(ray_cluster, tmp_path) -> None:
    from lmrec.models import SASRec, load_model
    from lmrec.models.bundle import ModelBundle
    from lmrec.train.ray_train import ray_train

    inter = cyclic()

    def fit() -> ModelBundle:
        return ModelBundle(SASRec(**sasrec_params(), num_threads=1, device="cpu").fit(inter), None, None, {})

    out = ray_train(fit, tmp_path / "model", workers=2, storage_path=tmp_path / "ray")
    assert out == tmp_path / "model" and not (tmp_path / "model.partial").exists()
    assert (out / "config.json").exists() and (out / "bundle.json").exists()
    model = load_model(out)
    assert isinstance(model, SASRec) and isinstance(ModelBundle.load(out).model, SASRec)
    last = np.array([seq[-1] for seq in inter.sequences()])
    items, _ = model.recommend(np.arange(inter.n_users), k=1, exclude_seen=False)
    assert np.mean(items[:, 0] == (last + 1) % N_ITEMS) >= 0.9


@pytest.mark.slow
def test_a_failing_worker_leaves_no_model_directory(ray_cluster, tmp_path) -> None:
    from lmrec.train.ray_train import ray_train

    def fit():
        raise ValueError("the data are broken")

    with pytest.raises(
        RuntimeError,
        match=r"(?s)Ray training failed .*the data are broken.*Ray's run directory: " + re.escape(str(tmp_path)),
    ):
        ray_train(fit, tmp_path / "model", workers=2, storage_path=tmp_path / "ray", max_failures=0)
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


class _Weights:
    """What the resume test's ``fit`` returns: the trained weights and the loop's history."""

    def __init__(self, net: torch.nn.Module, state) -> None:
        self.weight = net.weight.detach().numpy().copy()
        self.history, self.resumed_from = state.history, state.resumed_from

    def save(self, directory) -> None:
        import json

        os.makedirs(directory)
        np.save(os.path.join(directory, "weight.npy"), self.weight)
        with open(os.path.join(directory, "run.json"), "w") as f:
            json.dump({"history": self.history, "resumed_from": self.resumed_from}, f)


def _fit_that_dies_once(marker: str):
    """Rank 1 kills its process at the end of epoch 2 on the first attempt (``marker`` says it did)."""
    import time

    import ray.train

    from lmrec.train.callbacks import Callback
    from lmrec.train.loop import fit_loop

    class Die(Callback):
        def on_epoch_begin(self, state, module) -> None:
            time.sleep(1.0)  # an epoch of real length: Ray registers the reported checkpoints asynchronously

        def on_epoch_end(self, state, module) -> None:
            if state.epoch == 2 and ray.train.get_context().get_world_rank() == 1 and not os.path.exists(marker):
                open(marker, "w").close()
                os._exit(1)

    torch.manual_seed(0)
    net = torch.nn.Linear(1, 1)
    x = torch.linspace(-1, 1, 16).reshape(-1, 1)
    data = [(x, 3 * x + 1)]
    state = fit_loop(
        net,
        lambda epoch: data,
        lambda m, b: ((m(b[0]) - b[1]) ** 2).mean(),
        torch.optim.SGD(net.parameters(), lr=0.1),
        epochs=5,
        callbacks=[Die()],
    )
    return _Weights(net, state)


@pytest.mark.slow
def test_a_killed_worker_resumes_from_the_last_epoch_checkpoint(ray_cluster, tmp_path) -> None:
    import json

    from lmrec.train.ray_train import ray_train

    marker = str(tmp_path / "died")
    out = ray_train(
        lambda: _fit_that_dies_once(marker),
        tmp_path / "model",
        workers=2,
        storage_path=tmp_path / "ray",
        max_failures=1,
    )
    assert os.path.exists(marker)  # a worker did die
    run = json.loads((out / "run.json").read_text())
    # the restarted group went on after the last epoch Ray had registered (reports reach the controller
    # asynchronously, so 0, 1 or 2 of the epochs before the death), not from the start
    assert run["resumed_from"] in (0, 1, 2)
    assert [h["epoch"] for h in run["history"]] == [0.0, 1.0, 2.0, 3.0, 4.0]
    losses = [h["loss"] for h in run["history"]]
    assert losses == sorted(losses, reverse=True)  # one descent across the restart, not a fresh start


@pytest.mark.slow
def test_when_retries_are_spent_the_error_names_the_last_checkpoint(ray_cluster, tmp_path) -> None:
    from lmrec.train.ray_train import ray_train

    marker = str(tmp_path / "died")
    with pytest.raises(RuntimeError, match=r"(?s)Ray training failed .*last epoch checkpoint: .*Ray's run directory"):
        ray_train(
            lambda: _fit_that_dies_once(marker),
            tmp_path / "model",
            workers=2,
            storage_path=tmp_path / "ray",
            max_failures=0,
        )
    assert not (tmp_path / "model").exists() and not (tmp_path / "model.partial").exists()


# ---------------------------------------------------------------------- the command line
def _invoke(*args: str):
    from typer.testing import CliRunner

    from lmrec.cli import app

    return CliRunner().invoke(app, list(args))


@pytest.fixture()
def synth_dir(tmp_path):
    out = tmp_path / "synth"
    result = _invoke("data", "synth", "--out", str(out), "--users", "30", "--items", "20", "--events", "200")
    assert result.exit_code == 0, result.output
    return out


def test_train_ray_refuses_a_model_that_is_not_data_parallel(synth_dir, tmp_path) -> None:
    result = _invoke(
        "train", "--data", str(synth_dir), "--model", "ease", "--out", str(tmp_path / "m"), "--ray", "auto"
    )
    assert result.exit_code == 2
    assert "--ray trains the data-parallel models ['lm', 'sasrec']; 'ease' trains in one process" in result.output
    assert not (tmp_path / "m").exists()


def test_train_ray_with_a_dead_address_fails_fast_with_exit_2(synth_dir, tmp_path) -> None:
    args = [
        "train",
        "--data",
        str(synth_dir),
        "--model",
        "sasrec",
        "--out",
        str(tmp_path / "m"),
        "--ray",
        "127.0.0.1:1",
    ]
    result = _invoke(*args)
    assert result.exit_code == 2
    assert "Ray cluster at '127.0.0.1:1' does not answer" in re.sub(r"\s+", " ", result.output)
    assert not (tmp_path / "m").exists()
