"""The FastAPI application: ``create_app(settings)`` and ``run_server(settings)``.

The model, stores and index load in the lifespan (in a worker thread), not at import; the model can
be swapped while serving (``POST /admin/model`` or ``settings.model_dir_watch``, see
`lmrec.serve.swap`). Errors map to JSON ``{"detail": ..., "field": ...}``: 401/403 admin token,
404 unknown user/item, 409 swap already running, 413 oversized body or batch, 422 bad input with the
field named (and ``"errors"``, each bad field, when there are several). Any other exception is a 500
``{"error": ..., "request_id": ...}`` (`lmrec.serve.middleware.Instrument`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import faiss
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from threadpoolctl import threadpool_limits

from lmrec.serve.errors import ServeError
from lmrec.serve.loading import open_service
from lmrec.serve.metrics import Metrics
from lmrec.serve.middleware import Instrument
from lmrec.serve.ranking import BusinessRule
from lmrec.serve.routes import router
from lmrec.serve.service import RecService
from lmrec.serve.settings import ServeSettings
from lmrec.serve.swap import ModelHost, VersionWatcher

__all__ = ["create_app", "limit_threads", "run_server"]

log = logging.getLogger(__name__)


def _describe(metrics: Metrics) -> None:
    metrics.describe("lmrec_http_requests_total", "counter", "HTTP requests by method, route and status")
    metrics.describe("lmrec_http_request_duration_seconds", "histogram", "HTTP request latency by route, seconds")
    metrics.describe("lmrec_events_ingested_total", "counter", "events appended to the log")
    metrics.describe("lmrec_events_duplicate_total", "counter", "events skipped as duplicates (same event_id)")
    metrics.describe("lmrec_events_rejected_total", "counter", "events in batches answered 422 (one bad event rejects its batch)")
    metrics.describe("lmrec_http_server_errors_total", "counter", "answers with a 5xx status, by route and status")
    metrics.describe("lmrec_recommendations_total", "counter", "recommendation lists served, by strategy")
    metrics.describe("lmrec_index_items", "gauge", "rows in the item index (deleted ones included)")
    metrics.describe("lmrec_live_items", "gauge", "items that can be recommended")
    metrics.describe("lmrec_model_info", "gauge", "the model being served (value 1; its version and directory as labels)")
    metrics.describe("lmrec_model_swaps", "gauge", "model swaps since the process started")
    metrics.describe("lmrec_model_swaps_total", "counter", "model swaps since the process started")
    metrics.describe("lmrec_model_swap_failures_total", "counter", "model swaps that failed (the old model kept serving)")
    metrics.describe("lmrec_model_load_seconds", "histogram", "seconds to load a swapped-in model to the side",
                     buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0))


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "none"}


def _field(error: dict[str, Any]) -> str:
    """A pydantic error's location as a dotted field path, without the leading ``body``/``query``/``path``
    and the union-member tags pydantic adds (``attributes.genres.str`` -> ``attributes.genres``)."""
    if error.get("type") == "json_invalid":
        return "body"
    loc = error.get("loc", ())[1:]
    return ".".join(str(p) for p in loc if str(p) not in _TYPE_TAGS and "[" not in str(p)) or "body"


def create_app(
    settings: ServeSettings,
    *,
    encoder: Any = None,
    rules: Sequence[BusinessRule] = (),
    service: RecService | None = None,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """The recommendation service as an ASGI app.

    Args:
        settings: service settings.
        encoder: a `TextEncoder` for models without their own vectors (tests inject a `HashingEncoder`);
            None builds one from ``settings`` / the bundle.
        rules: business-rule hooks (`lmrec.serve.ranking`), applied before those in ``settings.rules``.
        service: an already opened service to serve (its lifecycle stays with the caller).
        on_ready: called once the service is open, before the first request (`run_server` limits
            the process's threads there, after the catalogue was encoded and indexed with all cores).

    Returns:
        A FastAPI app; the model and stores load when its lifespan starts.
    """
    metrics = service.metrics if service is not None else Metrics()
    _describe(metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        svc = service
        if svc is None:
            # a thread of the loop's default executor, not of the request threadpool: torch fixes its
            # intra-op thread count per thread on first use, so a request thread that encoded the
            # catalogue would keep the start-up setting instead of the one `on_ready` applies
            svc = await asyncio.to_thread(open_service, settings, encoder=encoder, rules=rules)
            svc.metrics = metrics
        host = ModelHost(svc, encoder=encoder)
        metrics.gauge("lmrec_index_items", lambda: len(host.service.items))
        metrics.gauge("lmrec_live_items", lambda: host.service.items.n_live)
        metrics.gauge("lmrec_model_swaps", lambda: host.service.swaps)
        metrics.gauge(
            "lmrec_model_info",
            lambda: 1.0,
            lambda: {"version": host.service.version, "model_dir": str(host.service.settings.model_dir)},
        )
        app.state.host = host
        watcher = None
        if settings.model_dir_watch is not None:
            watcher = VersionWatcher(host, settings.model_dir_watch, settings.model_watch_interval_s)
            watcher.start()
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if watcher is not None:
                await asyncio.to_thread(watcher.stop)
            await asyncio.to_thread(host.close)
            if service is None:
                host.service.close()

    app = FastAPI(
        title="lmrec",
        summary="Real-time recommendations: queries and live events change the next list, without retraining.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(router)

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        body: dict[str, Any] = {"detail": str(exc), "field": exc.field}
        if exc.errors:
            body["errors"] = exc.errors
        return JSONResponse(body, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e), "msg": e.get("msg", "invalid")} for e in exc.errors()]
        fields = list(dict.fromkeys(e["field"] for e in errors)) or ["body"]
        first = next(e for e in errors if e["field"] == fields[0]) if errors else {"msg": "invalid request"}
        detail = f"{fields[0]}: {first['msg']}"
        if len(fields) > 1:
            detail += f" (and {len(fields) - 1} more field{'s' if len(fields) > 2 else ''})"
        return JSONResponse({"detail": detail, "field": fields[0], "errors": errors}, status_code=422)

    app.add_middleware(Instrument, metrics=metrics, max_body_bytes=settings.max_body_bytes)
    return app


def run_server(settings: ServeSettings) -> None:
    """Serve ``create_app(settings)`` with uvicorn on ``settings.host:settings.port`` (blocks).

    Once the model is loaded and the catalogue indexed (with every core), caps the process's BLAS,
    FAISS and torch intra-op threads at ``settings.threads``: requests are served concurrently from a
    thread pool, and per-request parallelism on top of that oversubscribes the cores (OpenBLAS called
    from many threads at once slows down badly).
    """
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings, on_ready=lambda: limit_threads(settings.threads))
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)


def limit_threads(threads: int) -> None:
    """Cap BLAS (threadpoolctl), FAISS (OpenMP) and torch intra-op threads of this process."""
    threadpool_limits(threads)
    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)
