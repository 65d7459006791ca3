"""The service's pure ASGI middleware: request ids, request metrics, body limits, and 500s as JSON.

Every answer carries an ``X-Request-ID`` header: the request's own (when it sent a printable one of
at most 128 characters) or a new random one. An exception no handler turned into an answer is
logged with its traceback and the request id, counted, and answered ``500 {"error": ...,
"request_id": ...}`` (nothing about the failure leaks to the client; the id finds it in the log).
Metrics: ``lmrec_http_requests_total`` (method, route, status), ``lmrec_http_request_duration_seconds``
(route), ``lmrec_http_server_errors_total`` (route, status) for every 5xx answer.
"""

from __future__ import annotations

import logging
import re
import time
import traceback
import uuid
from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse

from lmrec.serve.metrics import Metrics

__all__ = ["REQUEST_ID_HEADER", "Instrument"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_HEADER = REQUEST_ID_HEADER.lower().encode()
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:@/+=-]{1,128}")


def request_id(headers: dict[bytes, bytes]) -> str:
    """The request's ``X-Request-ID`` when it is printable and at most 128 characters, else a new one."""
    given = headers.get(_HEADER)
    if given is not None and _GOOD_ID.fullmatch(given):
        return given.decode()
    return uuid.uuid4().hex


class Instrument:
    """Request ids, counts and latency by route template; 413 for oversized bodies; 500 as JSON.

    Args:
        app: the ASGI app it wraps.
        metrics: where counts go.
        max_body_bytes: larger request bodies are answered 413 unread.
        scrub: applied to an exception's message before it is logged (the PII scrubber), or None.
    """

    def __init__(
        self, app: Any, metrics: Metrics, max_body_bytes: int, scrub: Callable[[str], str] | None = None
    ) -> None:
        self.scrub = scrub
        self.app = app
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        headers = dict(scope.get("headers") or [])
        rid = request_id(headers)
        scope.setdefault("state", {})["request_id"] = rid
        status = {"code": 500, "started": False}

        async def tagged_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["started"] = message["status"], True
                message = {**message, "headers": [*message.get("headers", []), (_HEADER, rid.encode())]}
            await send(message)

        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body_bytes:
            await self._too_large(tagged_send, int(length))
            self._record(scope, 413, start)
            return
        if length is None and scope["method"] in ("POST", "PUT", "PATCH"):
            # no declared length (chunked): read the body here, bounded, and replay it to the app
            chunks, size, more = [], 0, True
            while more:
                message = await receive()
                if message["type"] != "http.request":
                    break
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                more = message.get("more_body", False)
                if size > self.max_body_bytes:
                    await self._too_large(tagged_send, size)
                    self._record(scope, 413, start)
                    return
            body = b"".join(chunks)
            replayed = False

            async def replay() -> dict:
                nonlocal replayed
                if replayed:
                    return await receive()
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            receive = replay

        try:
            await self.app(scope, receive, tagged_send)
        except Exception as exc:  # noqa: BLE001 - every unexpected failure becomes a JSON 500
            route = getattr(scope.get("route"), "path", "unmatched")
            # the message may quote user text: scrubbed, and the traceback without the message
            message = str(exc) if self.scrub is None else self.scrub(str(exc))
            trace = "".join(traceback.format_tb(exc.__traceback__))
            log.error(
                "request %s %s %s failed: %s: %s\nTraceback (most recent call last):\n%s",
                rid,
                scope["method"],
                route,
                type(exc).__name__,
                message,
                trace,
            )
            if status["started"]:  # the answer is half sent: nothing sensible can follow
                self._record(scope, 500, start)
                raise
            response = JSONResponse({"error": "internal server error", "request_id": rid}, status_code=500)
            await tagged_send({"type": "http.response.start", "status": 500, "headers": response.raw_headers})
            await tagged_send({"type": "http.response.body", "body": response.body})
        self._record(scope, status["code"], start)

    async def _too_large(self, send: Any, size: int) -> None:
        body = JSONResponse(
            {
                "detail": f"body: request body of {size} bytes exceeds max_body_bytes={self.max_body_bytes}",
                "field": "body",
            },
            status_code=413,
        )
        await send({"type": "http.response.start", "status": 413, "headers": body.raw_headers})
        await send({"type": "http.response.body", "body": body.body})

    def _record(self, scope: dict, status: int, start: float) -> None:
        route = scope.get("route")
        path = getattr(route, "path", "unmatched")
        self.metrics.inc("lmrec_http_requests_total", method=scope["method"], route=path, status=str(status))
        self.metrics.observe("lmrec_http_request_duration_seconds", time.perf_counter() - start, route=path)
        if status >= 500:
            self.metrics.inc("lmrec_http_server_errors_total", route=path, status=str(status))
