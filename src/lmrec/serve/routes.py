"""HTTP routes: each a few lines over `RecService`. Plain ``def`` routes run in the threadpool, so
encoding and scoring never block the event loop.

A request gets the service of the current model once (`get_service`), so a model swap never changes
the model under a running request; write routes go through `ModelHost.writing`, which a swap waits
for before it replaces the service.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lmrec.serve.attributes import FilterSpec
from lmrec.serve.auth import AccessControl, Scope
from lmrec.serve.metrics import CONTENT_TYPE
from lmrec.serve.schemas import (
    ErrorResponse,
    EventsRequest,
    EventsResponse,
    ExplainRequest,
    ExplainResponse,
    Filters,
    HealthResponse,
    ItemDeleted,
    ItemUpsert,
    ItemWritten,
    ModelStatus,
    ModelSwapRequest,
    ModelSwapResponse,
    RecommendRequest,
    RecommendResponse,
    RelatedResponse,
    ServerError,
    SimilarResponse,
    UserErased,
    UserExport,
    UserSummary,
)
from lmrec.serve.service import RecService
from lmrec.serve.swap import ModelHost

__all__ = ["Require", "ScopedRoute", "get_host", "get_service", "router"]

#: the security scheme of the OpenAPI schema: ``Authorization: Bearer <API key>``
bearer = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    bearerFormat="API key",
    description="An API key (lmrec.serve.auth) as 'Authorization: Bearer <key>'; each route names the scope it needs.",
)


async def get_host(request: Request) -> ModelHost:
    """The holder of the current model's service (the lifespan made it)."""
    return request.app.state.host


async def get_service(request: Request) -> RecService:
    """The current model's service, fixed for the whole request (tests may override this dependency).
    ``async`` because it does no work: a plain ``def`` dependency would cost every request an extra
    hop through the threadpool."""
    return request.app.state.host.service


async def authorize(request: Request, scope: str) -> None:
    """Check the request's API key for ``scope`` (`lmrec.serve.auth.AccessControl`) once per request;
    the first verification of a key (scrypt) runs in the threadpool, a cached one inline."""
    state = request.scope.setdefault("state", {})
    if "api_key" in state:
        return
    access: AccessControl = request.app.state.access
    if access.is_open(scope):
        state["api_key"] = None
        return
    key = access.check_key(request.headers.get("authorization"))
    hit, entry = access.cached(key)
    if not hit:
        entry = await run_in_threadpool(access.identify, key)
    state["api_key"] = access.permit(entry, scope).name


class Require:
    """The dependency that declares a route's scope (and the security scheme, in the OpenAPI schema).

    `ScopedRoute` runs the same check before the body is read; this dependency checks again only
    when a route was mounted without it.
    """

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    async def __call__(
        self, request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)]
    ) -> None:
        await authorize(request, self.scope)


class ScopedRoute(APIRoute):
    """A route whose `Require` scope is checked before anything else of the request (body parsing and
    validation included): a request without a valid key is a 401, one without the scope a 403."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        scopes = [d.dependency.scope for d in self.dependencies if isinstance(d.dependency, Require)]
        if not scopes:
            return handler
        scope = scopes[0]

        async def guarded(request: Request) -> Response:
            await authorize(request, scope)
            return await handler(request)

        return guarded


def _answers(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI ``responses`` of a route: each error status it can answer, with its body and headers."""
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        if code == 500:
            out[code] = {"model": ServerError, "description": "an unexpected failure (logged with the request id)"}
        elif code == 401:
            out[code] = {
                "model": ErrorResponse,
                "description": "no API key, or not a valid one",
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "description": 'Bearer realm="lmrec"'}},
            }
        elif code == 429:
            out[code] = {
                "model": ErrorResponse,
                "description": "the API key's rate limit is spent",
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "description": "seconds to wait"}},
            }
        else:
            out[code] = {"model": ErrorResponse}
    return out


_GUARDED = (401, 403, 429)
#: what each kind of route can answer besides 200
READ_ANSWERS = _answers(*_GUARDED, 404, 422, 500)
BODY_ANSWERS = _answers(400, *_GUARDED, 404, 413, 422, 500)

router = APIRouter(route_class=ScopedRoute)
Service = Annotated[RecService, Depends(get_service)]
Host = Annotated[ModelHost, Depends(get_host)]
ItemId = Annotated[str, Path(min_length=1, max_length=256)]
UserId = Annotated[str, Path(min_length=1, max_length=256)]


def scoped(scope: Scope) -> dict[str, Any]:
    """Route keyword arguments of a route that needs ``scope``."""
    return {"dependencies": [Depends(Require(scope))], "openapi_extra": {"x-required-scope": scope}}


def _filters(filters: Filters | None) -> FilterSpec | None:
    if filters is None:
        return None
    return FilterSpec(
        equals=filters.equals,
        isin=filters.in_,
        range={name: (r.min, r.max) for name, r in filters.range.items()},
    )


@router.post(
    "/recommend", response_model=RecommendResponse, tags=["recommend"], responses=BODY_ANSWERS, **scoped("recommend")
)
def recommend(body: RecommendRequest, service: Service) -> RecommendResponse:
    """Ranked items for a user, a natural-language query, or both; for a user without history, from an
    anonymous session's items and/or a profile text (the answer's ``strategy``, ``used`` and ``notes``
    say how); popular items for none of these."""
    return service.recommend(
        user_id=body.user_id,
        query=body.query,
        scenario=body.scenario,
        k=body.k,
        filters=_filters(body.filters),
        exclude_seen=body.exclude_seen,
        diversity=body.diversity,
        session_items=body.session_items,
        user_text=body.user_text,
        mode=body.mode,
    )


@router.post("/events", response_model=EventsResponse, tags=["events"], responses=BODY_ANSWERS, **scoped("events"))
def post_events(body: EventsRequest, host: Host) -> EventsResponse:
    """Log a batch of events durably and update each user's online profile before answering. A batch
    with a bad event is answered 422, naming every bad event, and nothing of it is logged."""
    with host.writing() as service:
        return service.ingest(body.events)


@router.put(
    "/items/{item_id}",
    response_model=ItemWritten,
    response_model_exclude_unset=True,  # the relation fields only when relations were sent
    tags=["items"],
    responses=BODY_ANSWERS,
    **scoped("catalog"),
)
def put_item(item_id: ItemId, body: ItemUpsert, host: Host) -> ItemWritten:
    """Add or replace an item; it is recommendable as soon as this answers (and after model swaps)."""
    with host.writing() as service:
        relations = [(r.relation, r.target) for r in body.relations or []]
        return service.put_item(item_id, body.text, body.attributes, relations)


@router.delete(
    "/items/{item_id}", response_model=ItemDeleted, tags=["items"], responses=READ_ANSWERS, **scoped("catalog")
)
def delete_item(item_id: ItemId, host: Host) -> ItemDeleted:
    """Remove an item from every result."""
    with host.writing() as service:
        return service.delete_item(item_id)


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarResponse,
    tags=["items"],
    responses=READ_ANSWERS,
    **scoped("recommend"),
)
def similar_items(item_id: ItemId, service: Service, k: Annotated[int, Query(ge=1)] = 10) -> SimilarResponse:
    """Items nearest to one item."""
    return service.similar(item_id, k)


@router.get(
    "/items/{item_id}/related",
    response_model=RelatedResponse,
    tags=["items"],
    responses=READ_ANSWERS,
    **scoped("recommend"),
)
def related_items(
    item_id: ItemId,
    service: Service,
    relation: Annotated[str, Query(min_length=1, max_length=128)] = "complement",
    k: Annotated[int, Query(ge=1)] = 10,
) -> RelatedResponse:
    """Items the knowledge graph relates to one item by ``relation`` (``complement``, ``substitute``, ...),
    ranked by the model; the model's nearest items fill the list when the graph has fewer than ``k``."""
    return service.related_items(item_id, relation, k)


@router.get("/users/{user_id}", response_model=UserSummary, tags=["users"], responses=READ_ANSWERS, **scoped("users"))
def get_user(
    user_id: UserId, service: Service, limit: Annotated[int | None, Query(ge=0, le=1000)] = None
) -> UserSummary:
    """Profile summary and recent events (404 for a user the service does not know)."""
    return service.user_summary(user_id, limit)


@router.get(
    "/users/{user_id}/export", response_model=UserExport, tags=["users"], responses=READ_ANSWERS, **scoped("users")
)
def export_user(user_id: UserId, service: Service) -> UserExport:
    """Everything the service holds about a user, machine-readable: training interactions, logged
    events, the online profile, stored queries, erasure state (404 when it holds nothing)."""
    return service.export_user(user_id)


@router.delete("/users/{user_id}", response_model=UserErased, tags=["users"], responses=READ_ANSWERS, **scoped("users"))
def delete_user(user_id: UserId, host: Host) -> UserErased:
    """Erase a user's events and profile (right to be forgotten)."""
    with host.writing() as service:
        return service.forget_user(user_id)


@router.post(
    "/explain", response_model=ExplainResponse, tags=["recommend"], responses=BODY_ANSWERS, **scoped("recommend")
)
def explain(body: ExplainRequest, service: Service) -> ExplainResponse:
    """The history items and query terms behind recommending one item."""
    return service.explain(body.item_id, body.user_id, body.query)


@router.get("/health", response_model=HealthResponse, tags=["ops"], responses=_answers(500))
def health(request: Request, service: Service) -> HealthResponse:
    """Liveness, the model version being served, the model swap count, and whether the catalogue and the
    item index agree (``status: degraded`` with the ``problems`` when not); stored records set aside at
    start-up are counted in ``quarantined``. Open to all; when API keys are configured, a request
    without a valid key (any scope) gets ``status`` only."""
    access: AccessControl = request.app.state.access
    full = service.health()
    if not access.has_keys:
        return full
    key = access.bearer(request.headers.get("authorization"))
    if key is not None and len(key) <= 512 and access.identify(key) is not None:
        return full
    return HealthResponse(status=full.status)


@router.get(
    "/metrics",
    tags=["ops"],
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE: {}}}, **_answers(*_GUARDED, 500)},
    **scoped("admin"),
)
def metrics(service: Service) -> Response:
    """Prometheus text: request counts, latency histograms, events ingested, index size."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


@router.post(
    "/admin/model",
    response_model=ModelSwapResponse,
    tags=["admin"],
    responses=_answers(400, *_GUARDED, 409, 413, 422, 500),
    **scoped("admin"),
)
def swap_model(request: Request, body: ModelSwapRequest, host: Host) -> ModelSwapResponse:
    """Load the model directory ``path`` (absolute, or relative to the models root; it must lie below
    the models root) to the side and swap it in atomically: running requests finish on the old model,
    later ones use the new one; events, profiles and PUT items carry over. A path that is not a model
    directory below the root is a 422 with one generic message; a model directory that does not load
    is a 422 naming the problem; the old model keeps serving."""
    return host.swap(body.path, root=request.app.state.models_root)


@router.get(
    "/admin/model", response_model=ModelStatus, tags=["admin"], responses=_answers(*_GUARDED, 500), **scoped("admin")
)
def model_status(host: Host) -> ModelStatus:
    """The model being served, the swap count and the last swap error."""
    return host.status()
