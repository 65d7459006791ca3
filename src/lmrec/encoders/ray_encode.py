"""Catalogue encoding on a Ray cluster: Ray Data ``map_batches`` over a pool of encoder actors.

`RayEncoder` is a `TextEncoder` whose ``encode`` ships the texts to a Ray cluster: each actor of
the pool builds the encoder once (one model load per worker) and encodes whole batches; the rows
come back keyed by their position, so the result has the same vectors in the same order as a local
``encode``. Wrapped in a `CachedEncoder` (``encode_catalog(..., cache_dir=...)``), only the texts the
cache lacks travel to the cluster, in one job, and the cache stores what comes back.

`connect_ray` joins a cluster: ``"auto"`` connects to the cluster this machine runs (``ray start``,
``RAY_ADDRESS``) or starts a local one; ``"local"`` always starts a local one; anything else is an
address (``HOST:PORT`` or ``ray://HOST:PORT``) that must answer within ``timeout_s`` seconds
(`probe_address`), else a ``ValueError`` says so instead of Ray's retry loop of minutes.

Ray (the ``lmrec[ray]`` extra) is imported only here, when used. Every node must have lmrec and the
model files installed (the actors import lmrec and load the model themselves).
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lmrec.encoders.base import check_encode_args
from lmrec.encoders.factory import check_backend, make_text_encoder

__all__ = ["EncodeActor", "RayEncoder", "connect_ray", "probe_address"]

log = logging.getLogger(__name__)


_JOIN_CHECK = (
    "import sys, ray; ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False); ray.shutdown()"
)


def probe_address(address: str, timeout_s: float = 25.0) -> None:
    """Raise a ``ValueError`` unless a Ray cluster answers at ``address`` within ``timeout_s`` seconds.

    First a TCP connection to ``HOST:PORT`` (optionally ``ray://``); then, because ``ray.init``
    waits for minutes on an endpoint that accepts connections without being a Ray cluster, a
    throw-away ``ray.init`` in a child process that is killed at the deadline.
    """
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"Ray address {address!r} must be 'auto', 'local', HOST:PORT or ray://HOST:PORT")
    hint = "Start one with `ray start --head`, or use --ray auto for a local cluster"
    started = time.monotonic()
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            pass
    except OSError as exc:
        waited = time.monotonic() - started
        raise ValueError(
            f"Ray cluster at {address!r} does not answer ({exc.__class__.__name__}: {exc}; "
            f"gave up after {waited:.1f} s). {hint}"
        ) from None
    left = max(1.0, timeout_s - (time.monotonic() - started))
    try:
        check = subprocess.run(
            [sys.executable, "-c", _JOIN_CHECK, address], capture_output=True, text=True, timeout=left
        )
    except subprocess.TimeoutExpired:
        raise ValueError(
            f"Ray cluster at {address!r} does not answer: the port accepts connections but no Ray cluster "
            f"replied (gave up after {time.monotonic() - started:.1f} s). {hint}"
        ) from None
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["no message"])[-1]
        raise ValueError(f"Ray cluster at {address!r} does not answer: {last}. {hint}")


def connect_ray(address: str = "auto", *, num_cpus: int | None = None, timeout_s: float = 25.0) -> Any:
    """Join (or start) a Ray cluster; returns the ``ray`` module. A session already open is reused.

    Args:
        address: ``"auto"``, ``"local"``, ``HOST:PORT`` or ``ray://HOST:PORT`` (see the module docstring).
        num_cpus: CPUs of a local cluster this call starts (None: all of the machine's).
        timeout_s: how long an explicit address may take to answer (`probe_address`).

    Raises:
        ValueError: ray is not installed, or the address does not answer.
    """
    try:
        import ray
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ValueError("Ray is not installed; install the extra: pip install 'lmrec[ray]'") from exc
    if address not in ("auto", "local"):
        probe_address(address, timeout_s)  # an explicit address must answer, even with a cluster already joined
    if ray.is_initialized():
        return ray
    options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if address == "local":
        ray.init(address="local", num_cpus=num_cpus, **options)
    elif address == "auto":
        ray.init(num_cpus=num_cpus, **options)  # an existing cluster of this machine, else a local one
    else:
        ray.init(address=address, **options)
    log.info("Ray cluster: %s", ray.cluster_resources())
    return ray


class EncodeActor:
    """One pool member: builds the encoder once, then encodes batches of ``{"row", "text"}`` rows.

    Args:
        spec: keyword arguments of `lmrec.encoders.make_text_encoder` (``model``, ``backend``, ...).
        kind: ``"passage"`` or ``"query"``.
        num_threads: torch threads of this actor (None: leave torch's setting).
    """

    def __init__(self, spec: dict[str, Any], kind: str = "passage", num_threads: int | None = 1) -> None:
        if num_threads is not None:
            import torch

            torch.set_num_threads(int(num_threads))
        self.encoder = make_text_encoder(**spec)
        self.kind = kind

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        texts = [str(t) for t in batch["text"]]
        vectors = self.encoder.encode(texts, batch_size=max(1, len(texts)), kind=self.kind)
        return {"row": np.asarray(batch["row"], dtype=np.int64), "vector": np.asarray(vectors, dtype=np.float32)}


class RayEncoder:
    """A `TextEncoder` that encodes on a Ray cluster with a pool of ``workers`` encoder actors.

    The driver builds the encoder once as well, on the CPU, for its ``name`` and ``dim`` (the cache
    key) and to fail early on a bad model; the workers never send it a text.

    Args:
        model: model path or name (None: the packaged MiniLM); as `make_text_encoder`.
        backend: as `make_text_encoder`.
        workers: actors in the pool (each loads the model once).
        batch_size: texts per actor call.
        address: the cluster (`connect_ray`).
        device: each actor's torch device (``"cuda"`` gives each actor one GPU).
        threads_per_worker: torch threads (and Ray CPUs) of each actor.
        max_seq_length: tokens per text (default: the model's limit).
    """

    def __init__(
        self,
        model: str | None = None,
        backend: str = "torch",
        *,
        workers: int = 2,
        batch_size: int = 64,
        address: str = "auto",
        device: str = "cpu",
        threads_per_worker: int = 1,
        max_seq_length: int | None = None,
    ) -> None:
        if workers < 1 or batch_size < 1 or threads_per_worker < 1:
            raise ValueError(
                f"RayEncoder workers, batch_size and threads_per_worker must be >= 1, got {workers}, {batch_size}, "
                f"{threads_per_worker}"
            )
        self.spec: dict[str, Any] = {"model": model, "backend": check_backend(backend), "device": device}
        if max_seq_length is not None:
            self.spec["max_seq_length"] = max_seq_length
        self.workers, self.batch_size, self.address = workers, batch_size, address
        self.threads_per_worker = threads_per_worker
        self._local = make_text_encoder(**{**self.spec, "device": "cpu"})

    @property
    def name(self) -> str:
        return self._local.name

    @property
    def dim(self) -> int:
        return int(self._local.dim)

    @property
    def tokenizer(self) -> Any:
        return getattr(self._local, "tokenizer", None)

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, *, kind: str = "passage", show_progress: bool = False
    ) -> np.ndarray:
        """(n, dim) float32 vectors of ``texts`` in their order, computed by the actor pool.

        ``batch_size`` is ignored: the pool's own ``batch_size`` sets what one actor call encodes
        (a `CachedEncoder` hands all its misses over in one call, see `encode_catalog`)."""
        check_encode_args(texts, max(1, batch_size))
        texts = [t or "" for t in texts]
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        connect_ray(self.address)
        import ray
        import ray.data

        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = bool(show_progress)
        blocks = max(1, min(len(texts) // self.batch_size, 4 * self.workers))
        dataset = ray.data.from_items([{"row": i, "text": t} for i, t in enumerate(texts)], override_num_blocks=blocks)
        gpus = 1 if str(self.spec["device"]).startswith("cuda") else 0
        encoded = dataset.map_batches(
            EncodeActor,
            fn_constructor_kwargs={"spec": self.spec, "kind": kind, "num_threads": self.threads_per_worker},
            batch_size=self.batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=self.workers),
            num_cpus=self.threads_per_worker,
            num_gpus=gpus,
        )
        seen = np.zeros(len(texts), dtype=bool)
        for batch in encoded.iter_batches(batch_size=None, batch_format="numpy"):
            rows = batch["row"]
            out[rows] = batch["vector"]
            seen[rows] = True
        if not seen.all():  # pragma: no cover - Ray lost rows without raising
            raise RuntimeError(f"Ray returned {int(seen.sum())} of {len(texts)} encoded rows")
        return out

    def __repr__(self) -> str:
        return f"RayEncoder({self.spec!r}, workers={self.workers}, address={self.address!r})"
