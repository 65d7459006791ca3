"""The FastAPI application: ``create_app(settings)`` and ``run_server(settings)``.

The model, stores and index load in the lifespan (in a worker thread), not at import; the model can
be swapped while serving (``POST /admin/model`` or ``settings.model_dir_watch``, see
`lmrec.serve.swap`). Errors map to JSON ``{"detail": ..., "field": ...}``: 401 no or an invalid API
key (with ``WWW-Authenticate``), 403 a key without the route's scope, 404 unknown user/item, 409 swap
already running, 413 oversized body or batch, 422 bad input with the field named (and ``"errors"``,
each bad field, when there are several), 429 a key's rate limit spent (with ``Retry-After``). Any
other exception is a 500 ``{"error": ..., "request_id": ...}`` (`lmrec.serve.middleware.Instrument`).
Access control (API keys with scopes, checked before the body is read) is `lmrec.serve.auth`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import faiss
import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from threadpoolctl import threadpool_limits

from lmrec.serve import heap
from lmrec.serve.auth import AccessControl, check_bind
from lmrec.serve.errors import ServeError
from lmrec.serve.loading import open_service
from lmrec.serve.metrics import Metrics
from lmrec.serve.middleware import Instrument
from lmrec.serve.ranking import BusinessRule
from lmrec.serve.retention import RetentionJob
from lmrec.serve.routes import router
from lmrec.serve.service import RecService
from lmrec.serve.settings import ServeSettings
from lmrec.serve.swap import ModelHost, VersionWatcher
from lmrec.serve.ui import mount_console

__all__ = ["create_app", "limit_threads", "run_server"]

log = logging.getLogger(__name__)


def _describe(metrics: Metrics) -> None:
    metrics.describe("lmrec_http_requests_total", "counter", "HTTP requests by method, route and status")
    metrics.describe("lmrec_http_request_duration_seconds", "histogram", "HTTP request latency by route, seconds")
    metrics.describe("lmrec_events_ingested_total", "counter", "events appended to the log")
    metrics.describe("lmrec_events_duplicate_total", "counter", "events skipped as duplicates (same event_id)")
    metrics.describe(
        "lmrec_events_rejected_total", "counter", "events in batches answered 422 (one bad event rejects its batch)"
    )
    metrics.describe("lmrec_http_server_errors_total", "counter", "answers with a 5xx status, by route and status")
    metrics.describe("lmrec_recommendations_total", "counter", "recommendation lists served, by strategy")
    metrics.describe(
        "lmrec_events_expired_total",
        "counter",
        "logged events deleted by the retention job (their effect stays in the profiles)",
    )
    metrics.describe("lmrec_queries_expired_total", "counter", "stored queries deleted by the retention job")
    metrics.describe(
        "lmrec_impressions_expired_total", "counter", "logged /recommend answers deleted by the retention job"
    )
    metrics.describe("lmrec_index_items", "gauge", "rows in the item index (deleted ones included)")
    metrics.describe("lmrec_live_items", "gauge", "items that can be recommended")
    metrics.describe(
        "lmrec_model_info", "gauge", "the model being served (value 1; its version and directory as labels)"
    )
    metrics.describe("lmrec_model_swaps", "gauge", "model swaps since the process started")
    metrics.describe("lmrec_model_swaps_total", "counter", "model swaps since the process started")
    metrics.describe(
        "lmrec_model_swap_failures_total", "counter", "model swaps that failed (the old model kept serving)"
    )
    metrics.describe(
        "lmrec_model_load_seconds",
        "histogram",
        "seconds to load a swapped-in model to the side",
        buckets=(0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
    )


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
    access: AccessControl | None = None,
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
        access: who may call what; None builds it from ``settings`` (``api_keys_file``, ``api_keys``,
            ``model_admin_token``; `lmrec.serve.auth.AccessControl.from_settings`).

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
        follower = svc.profile_sync.stream  # the Redis store: follow the shared stream in the background
        del svc  # the host holds the service: a local here would keep the first model alive after a swap
        start_follower = getattr(follower, "start", None)
        if start_follower is not None:
            start_follower(metrics)
        watcher = None
        if settings.model_dir_watch is not None:
            watcher = VersionWatcher(host, settings.model_dir_watch, settings.model_watch_interval_s)
            watcher.start()
        retention = None
        if settings.retention_days:
            retention = RetentionJob(host, settings.retention_interval_s)
            retention.start()
        heap.freeze()  # the loaded model out of the garbage collector's full walks (`lmrec.serve.heap`)
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if retention is not None:
                await asyncio.to_thread(retention.stop)
            if watcher is not None:
                await asyncio.to_thread(watcher.stop)
            stop_follower = getattr(follower, "stop", None)
            if stop_follower is not None:
                await asyncio.to_thread(stop_follower)
            await asyncio.to_thread(host.close)
            if service is None:
                host.service.close()
            heap.thaw()

    app = FastAPI(
        title="lmrec",
        summary="Real-time recommendations: queries and live events change the next list, without retraining.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.include_router(router)
    if settings.console_enabled:
        mount_console(app, settings)
    app.state.access = AccessControl.from_settings(settings) if access is None else access
    app.state.models_root = settings.resolved_models_root
    app.openapi = lambda: _openapi(app, settings)  # type: ignore[method-assign]

    @app.exception_handler(ServeError)
    async def _serve_error(request: Request, exc: ServeError) -> JSONResponse:
        body: dict[str, Any] = {"detail": str(exc), "field": exc.field}
        if exc.errors:
            body["errors"] = exc.errors
        return JSONResponse(body, status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e), "msg": e.get("msg", "invalid")} for e in exc.errors()]
        fields = list(dict.fromkeys(e["field"] for e in errors)) or ["body"]
        first = next(e for e in errors if e["field"] == fields[0]) if errors else {"msg": "invalid request"}
        detail = f"{fields[0]}: {first['msg']}"
        if len(fields) > 1:
            detail += f" (and {len(fields) - 1} more field{'s' if len(fields) > 2 else ''})"
        return JSONResponse({"detail": detail, "field": fields[0], "errors": errors}, status_code=422)

    app.add_middleware(Instrument, metrics=metrics, max_body_bytes=settings.max_body_bytes, scrub=settings.scrubber())
    return app


def run_server(settings: ServeSettings) -> None:
    """Serve ``create_app(settings)`` with uvicorn on ``settings.host:settings.port`` (blocks).

    Once the model is loaded and the catalogue indexed (with every core), caps the process's BLAS,
    FAISS and torch intra-op threads at ``settings.threads``: requests are served concurrently from a
    thread pool, and per-request parallelism on top of that oversubscribes the cores (OpenBLAS called
    from many threads at once slows down badly).
    """
    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    access = AccessControl.from_settings(settings)
    check_bind(settings.host, has_keys=access.has_keys, insecure=settings.insecure)
    if settings.workers > 1:  # uvicorn's worker processes build their apps from the settings' JSON
        os.environ["LMREC_SERVE_SETTINGS_JSON"] = settings.model_dump_json()
        uvicorn.run(
            "lmrec.serve.workers:worker_app",
            factory=True,
            workers=settings.workers,
            host=settings.host,
            port=settings.port,
            log_level=settings.log_level,
        )
        return
    app = create_app(settings, on_ready=lambda: limit_threads(settings.threads), access=access)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=settings.log_level)


def _openapi(app: FastAPI, settings: ServeSettings) -> dict[str, Any]:
    """The OpenAPI schema with this server's limits as schema bounds (``k`` at most ``max_k``, query, user
    and item text lengths, session items, events per batch), built once."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
    )
    props = {
        name: model.get("properties", {}) for name, model in schema.get("components", {}).get("schemas", {}).items()
    }
    limits = {
        ("RecommendRequest", "k"): {"maximum": settings.max_k},
        ("RecommendRequest", "query"): {"maxLength": settings.max_query_chars},
        ("RecommendRequest", "user_text"): {"maxLength": settings.max_user_text_chars},
        ("RecommendRequest", "session_items"): {"maxItems": settings.max_session_items},
        ("ExplainRequest", "query"): {"maxLength": settings.max_query_chars},
        ("ItemUpsert", "text"): {"maxLength": settings.max_item_text_chars},
        ("EventsRequest", "events"): {"maxItems": settings.max_events_per_batch},
    }
    for (model, field), bound in limits.items():
        prop = props.get(model, {}).get(field)
        if prop is None:
            continue
        for target in prop.get("anyOf", [prop]):  # optional fields: the non-null member
            if target.get("type") in ("integer", "string", "array"):
                target.update(bound)
    for path in schema.get("paths", {}).values():
        for op in path.values():
            for param in op.get("parameters", []):
                if param.get("name") == "k" and param.get("in") == "query":
                    param["schema"]["maximum"] = settings.max_k
    app.openapi_schema = schema
    return schema


def limit_threads(threads: int) -> None:
    """Cap BLAS (threadpoolctl), FAISS (OpenMP) and torch intra-op threads of this process."""
    threadpool_limits(threads)
    faiss.omp_set_num_threads(threads)
    torch.set_num_threads(threads)
