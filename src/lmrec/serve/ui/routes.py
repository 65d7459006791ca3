"""The console's routes: three HTML pages and the JSON they fetch, under ``/ui``.

The pages (``/ui``, ``/ui/inspect``, ``/ui/reports``) are shells with no data in them, open to
anyone who can reach the server; everything they show comes from ``fetch`` calls to the API itself
(``/recommend``, ``/events``, ``/users/{id}``, ``/explain``, ``PUT /items/{id}``, ``/health``) and to
the JSON routes below, which use the same access control as the API (`lmrec.serve.routes.ScopedRoute`):

===============================  ==========  ================================================
route                            scope       what
===============================  ==========  ================================================
``GET /ui/api/items?ids=a,b``    recommend   item cards: title, text, attributes, image URL
``GET /ui/api/catalog?q=...``    recommend   catalogue search by id and text
``GET /ui/api/users?q=...``      users       user ids the model knows
``GET /ui/api/model``            admin       the served model and its offline metrics
``GET /ui/api/live``             admin       totals and latency percentiles from the metrics
``GET /ui/api/reports``          admin       evaluation reports under ``reports_dir``
``GET /ui/api/reports/file``     admin       one report file (``md``, ``json`` or ``png``)
===============================  ==========  ================================================

With API keys configured the browser asks for a key once and sends it as ``Authorization: Bearer``
(kept in the tab's ``sessionStorage``; never in a URL, never in a page). Every page is sent with a
Content-Security-Policy that allows only the console's own script and style, so markup smuggled into
an item's text could not run even if it were ever inserted as HTML (the script inserts text only).
"""

from __future__ import annotations

import functools
import html
import json
from pathlib import Path
from string import Template
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse

from lmrec.serve.errors import NotFound
from lmrec.serve.routes import READ_ANSWERS, Host, ScopedRoute, Service, scoped
from lmrec.serve.settings import ServeSettings
from lmrec.serve.ui.live import summarize_metrics
from lmrec.serve.ui.reports import find_report_file, list_reports
from lmrec.serve.ui.views import catalog_search, item_cards, model_info, user_search

__all__ = ["CSP", "console_router", "mount_console"]

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data: https: http:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
#: the pages: path -> (template, title)
PAGES: dict[str, tuple[str, str]] = {
    "/ui": ("try.html", "Try it"),
    "/ui/inspect": ("inspect.html", "Look inside"),
    "/ui/reports": ("reports.html", "Reports"),
}
MAX_IDS = 200
#: the static files: name -> media type
ASSETS = {"console.js": "text/javascript; charset=utf-8", "console.css": "text/css; charset=utf-8"}


@functools.cache
def _template(name: str) -> Template:
    return Template((TEMPLATES / name).read_text(encoding="utf-8"))


def render_page(path: str, settings: ServeSettings, *, auth_required: bool) -> str:
    """The HTML of one console page; every value put into it is HTML-escaped.

    Args:
        path: one of `PAGES`.
        settings: the service settings (event types, ``max_k``, ``max_query_chars``, ...).
        auth_required: API keys are configured (the page shows the key form up front).
    """
    body_name, title = PAGES[path]
    nav = "".join(
        f'<a href="{html.escape(p)}"{" aria-current=page" if p == path else ""}>{html.escape(t)}</a>'
        for p, (_, t) in PAGES.items()
    )
    config = {
        "eventTypes": sorted(settings.event_weights),
        "maxK": settings.max_k,
        "maxQueryChars": settings.max_query_chars,
        "maxItemTextChars": settings.max_item_text_chars,
        "authRequired": auth_required,
        "reports": settings.reports_dir is not None,
    }
    body = _template(body_name).safe_substitute()
    return _template("layout.html").substitute(
        title=html.escape(title),
        page=html.escape(body_name.removesuffix(".html")),
        nav=nav,
        body=body,
        config=html.escape(json.dumps(config), quote=True),
    )


def console_router(settings: ServeSettings) -> APIRouter:
    """The console's pages and JSON routes (not in the OpenAPI schema)."""
    router = APIRouter(route_class=ScopedRoute, include_in_schema=False)
    reports_dir = settings.reports_dir

    def page(path: str) -> Any:
        def show(request: Request) -> HTMLResponse:
            text = render_page(path, settings, auth_required=request.app.state.access.has_keys)
            return HTMLResponse(text, headers=_HEADERS)

        show.__name__ = "console_" + (path.rsplit("/", 1)[-1] or "home")
        return show

    for path in PAGES:
        router.add_api_route(path, page(path), methods=["GET"], response_class=HTMLResponse)

    @router.get("/ui/", response_class=HTMLResponse)
    def console_slash(request: Request) -> HTMLResponse:
        return page("/ui")(request)

    @router.get("/ui/static/{name}")
    def console_asset(name: str) -> FileResponse:
        media = ASSETS.get(name)
        if media is None:
            raise NotFound("name", f"no console file {name!r}")
        return FileResponse(STATIC / name, media_type=media, headers={"Cache-Control": "no-cache"})

    @router.get("/ui/api/items", responses=READ_ANSWERS, **scoped("recommend"))
    def console_items(service: Service, ids: Annotated[str, Query(max_length=20_000)] = "") -> JSONResponse:
        wanted = [i for i in ids.split(",") if i][:MAX_IDS]
        return JSONResponse({"items": item_cards(service, wanted)}, headers=_HEADERS)

    @router.get("/ui/api/catalog", responses=READ_ANSWERS, **scoped("recommend"))
    def console_catalog(
        service: Service,
        q: Annotated[str, Query(max_length=1000)] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> JSONResponse:
        return JSONResponse({"items": catalog_search(service, q, limit)}, headers=_HEADERS)

    @router.get("/ui/api/users", responses=READ_ANSWERS, **scoped("users"))
    def console_users(
        service: Service,
        q: Annotated[str, Query(max_length=256)] = "",
        limit: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> JSONResponse:
        return JSONResponse({"users": user_search(service, q, limit)}, headers=_HEADERS)

    @router.get("/ui/api/model", responses=READ_ANSWERS, **scoped("admin"))
    def console_model(host: Host) -> JSONResponse:
        status = host.status()
        info = model_info(host.service, status.model_dir)
        info.update(swap_failures=status.swap_failures, last_error=status.last_error, watching=status.watching)
        return JSONResponse(info, headers=_HEADERS)

    @router.get("/ui/api/live", responses=READ_ANSWERS, **scoped("admin"))
    def console_live(service: Service) -> JSONResponse:
        summary = summarize_metrics(service.metrics.render())
        summary["health"] = service.health().model_dump()
        return JSONResponse(summary, headers=_HEADERS)

    @router.get("/ui/api/reports", responses=READ_ANSWERS, **scoped("admin"))
    def console_reports() -> JSONResponse:
        entries = [{"name": e.name, "kinds": list(e.kinds), "modified": e.modified} for e in list_reports(reports_dir)]
        return JSONResponse({"configured": reports_dir is not None, "reports": entries}, headers=_HEADERS)

    @router.get("/ui/api/reports/file", responses=READ_ANSWERS, **scoped("admin"))
    def console_report_file(
        name: Annotated[str, Query(min_length=1, max_length=1000)],
        kind: Annotated[str, Query(pattern="^(md|json|png)$")],
    ) -> Any:
        path = find_report_file(reports_dir, name, kind)
        if path is None:
            raise NotFound("name", f"no {kind} file of a report named {name!r}")
        if kind == "png":
            return FileResponse(path, media_type="image/png", headers=_HEADERS)
        media = "application/json" if kind == "json" else "text/plain; charset=utf-8"
        return PlainTextResponse(path.read_text(encoding="utf-8", errors="replace"), media_type=media, headers=_HEADERS)

    return router


def mount_console(app: FastAPI, settings: ServeSettings) -> None:
    """Serve the console at ``/ui`` on ``app``: its pages, JSON routes and static files."""
    app.include_router(console_router(settings))
