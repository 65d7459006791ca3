"""HTTP routes: each a few lines over `RecService`. Plain ``def`` routes run in the threadpool, so
encoding and scoring never block the event loop."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from lmrec.serve.attributes import FilterSpec
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
    RecommendRequest,
    RecommendResponse,
    SimilarResponse,
    UserErased,
    UserSummary,
)
from lmrec.serve.service import RecService

__all__ = ["get_service", "router"]


async def get_service(request: Request) -> RecService:
    """The service the lifespan opened (tests may override this dependency). ``async`` because it does
    no work: a plain ``def`` dependency would cost every request an extra hop through the threadpool."""
    return request.app.state.service


Service = Annotated[RecService, Depends(get_service)]
_errors = {code: {"model": ErrorResponse} for code in (404, 413, 422)}
router = APIRouter(responses=_errors)


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
def post_events(body: EventsRequest, service: Service) -> EventsResponse:
    """Log a batch of events durably and update each user's online profile before answering."""
    return service.ingest(body.events)


@router.put("/items/{item_id}", response_model=ItemWritten, tags=["items"])
def put_item(item_id: str, body: ItemUpsert, service: Service) -> ItemWritten:
    """Add or replace an item; it is recommendable as soon as this answers."""
    return service.put_item(item_id, body.text, body.attributes)


@router.delete("/items/{item_id}", response_model=ItemDeleted, tags=["items"])
def delete_item(item_id: str, service: Service) -> ItemDeleted:
    """Remove an item from every result."""
    return service.delete_item(item_id)


@router.get("/items/{item_id}/similar", response_model=SimilarResponse, tags=["items"])
def similar_items(item_id: str, service: Service, k: Annotated[int, Query(ge=1)] = 10) -> SimilarResponse:
    """Items nearest to one item."""
    return service.similar(item_id, k)


@router.get("/users/{user_id}", response_model=UserSummary, tags=["users"])
def get_user(
    user_id: str, service: Service, limit: Annotated[int | None, Query(ge=0, le=1000)] = None
) -> UserSummary:
    """Profile summary and recent events (404 for a user the service does not know)."""
    return service.user_summary(user_id, limit)


@router.delete("/users/{user_id}", response_model=UserErased, tags=["users"])
def delete_user(user_id: str, service: Service) -> UserErased:
    """Erase a user's events and profile (right to be forgotten)."""
    return service.forget_user(user_id)


@router.post("/explain", response_model=ExplainResponse, tags=["recommend"])
def explain(body: ExplainRequest, service: Service) -> ExplainResponse:
    """The history items and query terms behind recommending one item."""
    return service.explain(body.item_id, body.user_id, body.query)


@router.get("/health", response_model=HealthResponse, tags=["ops"])
def health(service: Service) -> HealthResponse:
    return service.health()


@router.get("/metrics", tags=["ops"], response_class=Response)
def metrics(service: Service) -> Response:
    """Prometheus text: request counts, latency histograms, events ingested, index size."""
    return Response(service.metrics.render(), media_type=CONTENT_TYPE)
