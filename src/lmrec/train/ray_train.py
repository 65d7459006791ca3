"""Data-parallel training on a Ray cluster with Ray Train's `TorchTrainer` (DDP: gloo on the CPU,
nccl on GPUs), ending in an ordinary lmrec model directory.

`ray_train` runs ``fit()`` in every worker, inside the ``torch.distributed`` group that Ray Train
sets up; a model whose ``fit`` is data-parallel (`lmrec.train.distributed`: SASRec and the lm
model) then trains one network across the workers. Rank 0 saves what ``fit`` returned (anything with ``save(directory)``,
such as a `lmrec.models.bundle.ModelBundle`) as a Ray checkpoint; the driver copies it to
``out_dir`` through a temporary sibling directory and a rename, so a failed run never leaves a
directory that looks like a complete model. A failed run raises a ``RuntimeError`` that names the
run directory where Ray keeps what the workers wrote.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lmrec.encoders.ray_encode import connect_ray

__all__ = ["ray_train"]

log = logging.getLogger(__name__)


def _worker(config: dict[str, Any]) -> None:
    """One Ray Train worker: threads, ``fit()``, and rank 0's result reported as the checkpoint."""
    import ray.train
    import torch

    torch.set_num_threads(int(config["threads"]))
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

    Returns:
        ``out_dir``.

    Raises:
        ValueError: ``workers`` or ``threads_per_worker`` below 1, or the cluster does not answer.
        RuntimeError: the run failed (the message names Ray's run directory).
    """
    if workers < 1 or threads_per_worker < 1:
        raise ValueError(f"ray_train workers and threads_per_worker must be >= 1, got {workers}, {threads_per_worker}")
    connect_ray(address)
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    storage = Path(storage_path) if storage_path is not None else Path(tempfile.mkdtemp(prefix="lmrec-ray-train-"))
    trainer = TorchTrainer(
        _worker,
        train_loop_config={"fit": fit, "threads": threads_per_worker},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=use_gpu, resources_per_worker={"CPU": threads_per_worker}
        ),
        run_config=RunConfig(storage_path=str(storage.resolve()), name="lmrec"),
    )
    try:
        result = trainer.fit()
    except Exception as exc:  # Ray wraps the worker's error; keep its message, name the run directory
        raise RuntimeError(f"Ray training failed ({exc}); Ray's run directory: {storage / 'lmrec'}") from exc
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
