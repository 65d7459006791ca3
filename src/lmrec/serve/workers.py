"""Several server processes on one port (``lmrec serve --workers N``).

`lmrec.serve.app.run_server` hands the settings to uvicorn's worker processes through the
environment (``LMREC_SERVE_SETTINGS_JSON``: the validated settings as JSON, so every worker serves
exactly the same settings) and names `worker_app` as their app factory. Each worker loads the model
and its index on its own; with ``profile_store="redis"`` they share events, item writes and
profiles through the stream (`lmrec.serve.follower`), like replicas on separate machines do.
"""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from lmrec.serve.app import create_app, limit_threads
from lmrec.serve.auth import AccessControl
from lmrec.serve.settings import ServeSettings

__all__ = ["SETTINGS_ENV", "worker_app"]

SETTINGS_ENV = "LMREC_SERVE_SETTINGS_JSON"


def worker_app() -> FastAPI:
    """The app of one worker process, from the settings its parent put in ``LMREC_SERVE_SETTINGS_JSON``.

    Raises:
        RuntimeError: the variable is not set (the factory runs outside ``run_server``).
    """
    raw = os.environ.get(SETTINGS_ENV)
    if raw is None:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: start workers with `lmrec serve --workers N`")
    settings = ServeSettings.model_validate_json(raw)
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    access = AccessControl.from_settings(settings)
    return create_app(settings, on_ready=lambda: limit_threads(settings.threads), access=access)
