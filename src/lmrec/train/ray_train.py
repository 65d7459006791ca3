"""Data-parallel training on a Ray cluster with Ray Train's `TorchTrainer` (DDP: gloo on the CPU,
nccl on GPUs), ending in an ordinary lmrec model directory.

`ray_train` runs ``fit()`` in every worker, inside the ``torch.distributed`` group that Ray Train
sets up; a model whose ``fit`` is data-parallel (`lmrec.train.distributed`: SASRec and the lm
model) then trains one network across the workers. Rank 0 saves what ``fit`` returned (anything with ``save(directory)``,
such as a `lmrec.models.bundle.ModelBundle`) as a Ray checkpoint; the driver copies it to
``out_dir`` through a temporary sibling directory and a rename, so a failed run never leaves a
directory that looks like a complete model.

Every training loop inside ``fit()`` (`lmrec.train.loop.fit_loop`) checkpoints each epoch through
Ray (`RayEpochStore`, `lmrec.train.resume`): when a worker dies, Ray restarts the worker group up
to ``max_failures`` times and the loop goes on from the epoch after the last checkpoint. When the
retries are spent the run raises a ``RuntimeError`` that names the last checkpoint's directory and
Ray's run directory.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmrec.encoders.ray_encode import connect_ray
from lmrec.train.resume import from_bytes, resuming, to_bytes

__all__ = ["RayEpochStore", "ray_train"]

log = logging.getLogger(__name__)


EPOCH_FILE = "epoch_state.pt"


class RayEpochStore:
    """An `lmrec.train.resume.EpochStore` on Ray Train's checkpoints: every rank reports each epoch
    (Ray asks all workers to report alike), rank 0 with the state; `load` reads the checkpoint Ray
    restarted the worker group from."""

    def load(self) -> dict[str, Any] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            path = Path(directory) / EPOCH_FILE
            return from_bytes(path.read_bytes()) if path.exists() else None

    def save(self, state: dict[str, Any], metrics: dict[str, float]) -> None:
        import ray.train

        report = {"loop": float(state["loop"]), "epoch": float(state["epoch"]), **metrics}
        if ray.train.get_context().get_world_rank() != 0:
            ray.train.report(report)
            return
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / EPOCH_FILE).write_bytes(to_bytes(state))
            ray.train.report(report, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: threads, ``fit()`` with epoch checkpoints, and rank 0's result reported
    as the final checkpoint."""
    import ray.train
    import torch

    torch.set_num_threads(int(config["threads"]))
    with resuming(RayEpochStore()):
        result = config["fit"]()
    context = ray.train.get_context()
    if context.get_world_rank() == 0:
        with tempfile.TemporaryDirectory() as tmp:
            result.save(Path(tmp) / "model")
            ray.train.report({"done": 1}, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report({"done": 1})


def ray_train(
    fit: Callable[[], Any],
    out_dir: str | Path,
    *,
    workers: int = 2,
    address: str = "auto",
    threads_per_worker: int = 1,
    use_gpu: bool = False,
    storage_path: str | Path | None = None,
    max_failures: int = 2,
) -> Path:
    """Run ``fit()`` on ``workers`` Ray Train workers and write rank 0's result to ``out_dir``.

    Args:
        fit: builds and fits a model, returns an object with ``save(directory)``; it is pickled to the
            workers (closures over a loaded data set are fine for data that fits in memory).
        out_dir: the model directory to write (replaced when it exists).
        workers: Ray Train workers (DDP processes).
        address: the cluster (`lmrec.encoders.ray_encode.connect_ray`).
        threads_per_worker: torch threads and Ray CPUs of each worker.
        use_gpu: one GPU per worker (nccl); the CPU and gloo otherwise.
        storage_path: where Ray keeps run state and checkpoints (default: a temporary directory;
            on a multi-node cluster, a path every node shares).
        max_failures: worker-group restarts after a worker dies, each going on from the last epoch
            checkpoint (0: fail at the first death).

    Returns:
        ``out_dir``.

    Raises:
        ValueError: ``workers`` or ``threads_per_worker`` below 1, ``max_failures`` below 0, or the
            cluster does not answer.
        RuntimeError: the run failed (the message names the last epoch checkpoint and Ray's run directory).
    """
    if workers < 1 or threads_per_worker < 1:
        raise ValueError(f"ray_train workers and threads_per_worker must be >= 1, got {workers}, {threads_per_worker}")
    if max_failures < 0:
        raise ValueError(f"ray_train max_failures must be >= 0, got {max_failures}")
    connect_ray(address)
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage = Path(storage_path) if storage_path is not None else Path(tempfile.mkdtemp(prefix="lmrec-ray-train-"))
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"fit": fit, "threads": threads_per_worker},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": threads_per_worker}
        ),
        run_config=RunConfig(
            storage_path=str(storage.resolve()),
            name="lmrec",
            failure_config=FailureConfig(max_failures=max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps the worker's error; keep its message, name where things are
        last = _last_checkpoint(storage / "lmrec")
        where = f"last epoch checkpoint: {last}; " if last is not None else "no epoch checkpoint was written; "
        raise RuntimeError(f"Ray training failed ({exc}); {where}Ray's run directory: {storage / 'lmrec'}") from exc
    if result.checkpoint is None:
        raise RuntimeError(f"Ray training ended without a checkpoint; Ray's run directory: {storage / 'lmrec'}")
    out = Path(out_dir)
    staging = out.with_name(out.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with result.checkpoint.as_directory() as checkpoint:
        shutil.copytree(Path(checkpoint) / "model", staging)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    log.info("ray_train: %d workers; wrote %s", workers, out)
    return out


def _last_checkpoint(run_dir: Path) -> Path | None:
    """The newest epoch checkpoint directory under Ray's run directory (None when there is none)."""
    found = sorted(run_dir.rglob(EPOCH_FILE), key=lambda p: p.stat().st_mtime)
    return found[-1].parent if found else None
