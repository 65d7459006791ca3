"""HTTP routes: each a few lines over `RecService`. Plain ``def`` routes run in the threadpool, so
encoding and scoring never block the event loop.

A request gets the service of the current model once (`get_service`), so a model swap never changes
the model under a running request; write routes go through `ModelHost.writing`, which a swap waits
for before it replaces the service.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response

from lmrec.serve.attributes import FilterSpec
from lmrec.serve.errors import Forbidden, Unauthorized
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
    ServerError,
    SimilarResponse,
    UserErased,
    UserSummary,
)
from lmrec.serve.service import RecService
from lmrec.serve.swap import ModelHost

__all__ = ["get_host", "get_service", "router"]


async def get_host(request: Request) -> ModelHost:
    """The holder of the current model's service (the lifespan made it)."""
    return request.app.state.host


async def get_service(request: Request) -> RecService:
    """The current model's service, fixed for the whole request (tests may override this dependency).
    ``async`` because it does no work: a plain ``def`` dependency would cost every request an extra
    hop through the threadpool."""
    return request.app.state.host.service


async def check_admin(request: Request, authorization: Annotated[str | None, Header()] = None) -> None:
    """``Authorization: Bearer <admin_token>`` when the server has a ``model_admin_token`` (401 missing, 403 wrong)."""
    token = request.app.state.host.service.settings.model_admin_token
    if token is None:
        return
    if authorization is None or not authorization.startswith("Bearer "):
        raise Unauthorized("authorization", "admin routes need the header 'Authorization: Bearer <admin token>'")
    if not hmac.compare_digest(authorization[len("Bearer ") :].encode(), token.encode()):
        raise Forbidden("authorization", "wrong admin token")


Service = Annotated[RecService, Depends(get_service)]
Host = Annotated[ModelHost, Depends(get_host)]
ItemId = Annotated[str, Path(min_length=1, max_length=256)]
UserId = Annotated[str, Path(min_length=1, max_length=256)]
_errors: dict[int | str, dict] = {code: {"model": ErrorResponse} for code in (404, 413, 422)}
_errors[500] = {"model": ServerError, "description": "an unexpected failure (logged with the request id)"}
router = APIRouter(responses=_errors)
_admin_errors: dict[int | str, dict] = {code: {"model": ErrorResponse} for code in (401, 403, 409, 422)}


def _filters(filters: Filters | None) -> FilterSpec | None:
    if filters is None:
        return None
    return FilterSpec(
        equals=filters.equals,
        isin=filters.in_,
        range={name: (r.min, r.max) for name, r in filters.range.items()},
    )


@router.post("/recommend", response_model=RecommendResponse, tags=["recommend"])
def recommend(body: RecommendRequest, service: Service) -> RecommendResponse:
    """Ranked items for a user, a natural-language query, or both; popular items for neither."""
    return service.recommend(
        user_id=body.user_id,
        query=body.query,
        scenario=body.scenario,
        k=body.k,
        filters=_filters(body.filters),
        exclude_seen=body.exclude_seen,
        diversity=body.diversity,
    )


@router.post("/events", response_model=EventsResponse, tags=["events"])
def post_events(body: EventsRequest, host: Host) -> EventsResponse:
    """Log a batch of events durably and update each user's online profile before answering. A batch
    with a bad event is answered 422, naming every bad event, and nothing of it is logged."""
    with host.writing() as service:
        return service.ingest(body.events)


@router.put("/items/{item_id}", response_model=ItemWritten, tags=["items"])
def put_item(item_id: ItemId, body: ItemUpsert, host: Host) -> ItemWritten:
    """Add or replace an item; it is recommendable as soon as this answers (and after model swaps)."""
    with host.writing() as service:
        return service.put_item(item_id, body.text, body.attributes)


@router.delete("/items/{item_id}", response_model=ItemDeleted, tags=["items"])
def delete_item(item_id: ItemId, host: Host) -> ItemDeleted:
    """Remove an item from every result."""
    with host.writing() as service:
        return service.delete_item(item_id)


@router.get("/items/{item_id}/similar", response_model=SimilarResponse, tags=["items"])
def similar_items(item_id: ItemId, service: Service, k: Annotated[int, Query(ge=1)] = 10) -> SimilarResponse:
    """Items nearest to one item."""
    return service.similar(item_id, k)


@router.get("/users/{user_id}", response_model=UserSummary, tags=["users"])
def get_user(
    user_id: UserId, service: Service, limit: Annotated[int | None, Query(ge=0, le=1000)] = None
) -> UserSummary:
    """Profile summary and recent events (404 for a user the service does not know)."""
    return service.user_summary(user_id, limit)


@router.delete("/users/{user_id}", response_model=UserErased, tags=["users"])
def delete_user(user_id: UserId, host: Host) -> UserErased:
    """Erase a user's events and profile (right to be forgotten)."""
    with host.writing() as service:
        return service.forget_user(user_id)


@router.post("/explain", response_model=ExplainResponse, tags=["recommend"])
def explain(body: ExplainRequest, service: Service) -> ExplainResponse:
    """The history items and query terms behind recommending one item."""
    return service.explain(body.item_id, body.user_id, body.query)


@router.get("/health", response_model=HealthResponse, tags=["ops"])
def health(service: Service) -> HealthResponse:
    """Liveness, the model version being served, the model swap count, and whether the catalogue and the
    item index agree (``status: degraded`` with the ``problems`` when not); stored records set aside at
    start-up are counted in ``quarantined``."""
    return service.health()


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics(service: Service) -> Response:
    """Prometheus text: request counts, latency histograms, events ingested, index size."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)


@router.post(
    "/admin/model", response_model=ModelSwapResponse, tags=["admin"], dependencies=[Depends(check_admin)],
    responses=_admin_errors,
)
def swap_model(body: ModelSwapRequest, host: Host) -> ModelSwapResponse:
    """Load the model directory ``path`` to the side and swap it in atomically: running requests
    finish on the old model, later ones use the new one; events, profiles and PUT items carry over.
    A bad directory is a 422 naming the problem, and the old model keeps serving."""
    return host.swap(body.path)


@router.get("/admin/model", response_model=ModelStatus, tags=["admin"], dependencies=[Depends(check_admin)],
            responses=_admin_errors)
def model_status(host: Host) -> ModelStatus:
    """The model being served, the swap count and the last swap error."""
    return host.status()
