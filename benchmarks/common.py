"""Helpers shared by the benchmark scripts: paths, data, logging, timing, the lm factory, the server.

Scripts import this as a sibling module (``import common``): running ``python benchmarks/<script>.py``
puts ``benchmarks/`` on ``sys.path``, so no script changes the path itself. Scripts under
``experiments/`` reuse it with ``PYTHONPATH=benchmarks``.

- Paths: ``OUT`` (``benchmarks/out``, every run's raw output), ``RESULTS_DIR`` (``benchmarks/results``,
  the reports kept in git) and ``EMBED_CACHE`` (the text-embedding cache every lm benchmark shares, so
  item texts are encoded once per encoder).
- Data: the Amazon Office directory comes from ``--office DIR`` (``add_office_arg``), whose default is
  the ``LMREC_OFFICE`` environment variable, else ``../shared/datasets/amazon-office`` next to the
  repository; ``office_dir`` fails with a message naming the path and both ways to set it.
- ``make_lm``: the language-model recommenders are built through ``lmrec.pipeline.make_model``, the
  way the CLI builds them, never by calling the class with flat keyword arguments.
- Server: ``free_port``, ``start_server`` (``lmrec serve`` in a child process, waiting for
  ``/health``) and ``stop_server``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
OUT = BENCH_DIR / "out"
RESULTS_DIR = BENCH_DIR / "results"
#: the text-embedding cache shared by every lm benchmark (``cache_dir`` of the lm models)
EMBED_CACHE = OUT / "lm_cache"
OFFICE_ENV = "LMREC_OFFICE"
DEFAULT_OFFICE = REPO.parent / "shared" / "datasets" / "amazon-office"
DATA_SETS = ("ml-100k", "office")

log = logging.getLogger("benchmarks.common")


# ---------------------------------------------------------------------- data
def default_office() -> Path:
    """The Office directory when no ``--office`` is given: ``$LMREC_OFFICE``, else ``DEFAULT_OFFICE``."""
    return Path(os.environ.get(OFFICE_ENV) or DEFAULT_OFFICE)


def add_office_arg(parser: argparse.ArgumentParser, *aliases: str) -> None:
    """Add ``--office DIR`` (and any ``aliases``, e.g. ``--data``) to ``parser``, stored as ``args.office``."""
    parser.add_argument(
        "--office",
        *aliases,
        dest="office",
        type=Path,
        default=default_office(),
        metavar="DIR",
        help=f"Amazon Office data in RecBole atomic files (default: {default_office()}, "
        f"from ${OFFICE_ENV} when set, else ../shared/datasets/amazon-office)",
    )


def office_dir(path: str | Path | None = None) -> Path:
    """The Office data directory (``path``, else the default), checked to hold ``Office.inter``.

    Raises:
        SystemExit: the directory or its ``Office.inter`` is missing; the message names the path.
    """
    directory = Path(path) if path is not None else default_office()
    if not (directory / "Office.inter").is_file():
        raise SystemExit(
            f"Amazon Office data not found: {directory} has no Office.inter; pass --office DIR or set {OFFICE_ENV}"
        )
    return directory


def load_data(name: str, office: str | Path | None = None):
    """A benchmark data set by name: ``ml-100k`` (bundled) or ``office`` (from ``office_dir(office)``)."""
    if name == "ml-100k":
        from lmrec.datasets import load

        return load("ml-100k")
    if name == "office":
        from lmrec.data import load_recbole

        return load_recbole(office_dir(office))
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATA_SETS)}")


# ---------------------------------------------------------------------- models
def make_lm(params: Mapping[str, Any], seed: int | None, *, name: str = "lm"):
    """An lm-family recommender (``name``: ``lm`` or ``lm-scenario``) from its parameters and seed.

    Goes through ``lmrec.pipeline.make_model`` (as ``lmrec evaluate --param`` does), so parameter names
    are checked there and the seed becomes the model's ``random_state``.
    """
    from lmrec.config import ModelConfig
    from lmrec.pipeline import make_model

    return make_model(ModelConfig(name, dict(params)), seed)


# ---------------------------------------------------------------------- logging and timing
def setup_logging(
    level: int = logging.INFO, fmt: str = "%(asctime)s %(name)s %(message)s", quiet: Iterable[str] = ()
) -> None:
    """Configure the root logger; the loggers named in ``quiet`` only report warnings and worse."""
    logging.basicConfig(level=level, format=fmt)
    for name in quiet:
        logging.getLogger(name).setLevel(logging.WARNING)


class Timer:
    """Wall-clock seconds of a ``with`` block (``time.perf_counter``), in ``.seconds`` afterwards."""

    def __init__(self) -> None:
        self.start = 0.0
        self.seconds = float("nan")

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


# ---------------------------------------------------------------------- server
SERVER_CODE = (
    "import sys; from lmrec.serve import ServeSettings, run_server; "
    "run_server(ServeSettings.model_validate_json(sys.argv[1]))"
)
#: the server never downloads: its encoder is the packaged one or the hashing fake
SERVER_ENV = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    settings: Mapping[str, Any], log_path: Path, *, timeout_s: float = 600.0, poll_s: float = 0.05
) -> tuple[subprocess.Popen, float]:
    """Start ``lmrec serve`` with ``settings`` (``ServeSettings`` fields; ``port`` required) in a child
    process whose output is appended to ``log_path``; return it once ``/health`` answers 200, with the
    seconds that took.

    Raises:
        RuntimeError: the server exited, or was not healthy within ``timeout_s`` (then it is killed).
    """
    env = {**os.environ, **SERVER_ENV}
    started = time.perf_counter()
    with open(log_path, "ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", SERVER_CODE, json.dumps(dict(settings), default=str)],
            stdout=sink,
            stderr=sink,
            env=env,
        )
    url = f"http://127.0.0.1:{settings['port']}/health"
    import httpx

    while time.perf_counter() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}; see {log_path}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                startup_s = time.perf_counter() - started
                log.info("server up in %.1fs (%s)", startup_s, settings.get("index", "default index"))
                return proc, startup_s
        except httpx.HTTPError:
            time.sleep(poll_s)
    proc.kill()
    raise RuntimeError(f"server not healthy after {timeout_s:.0f}s; see {log_path}")


def stop_server(proc: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """SIGTERM the server and wait ``timeout_s`` for it to exit; kill it if it does not."""
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
