"""Request and response bodies of the HTTP API, named by role. Ids are strings on the wire."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

__all__ = [
    "ErrorResponse",
    "FieldError",
    "ServerError",
    "EventIn",
    "EventRejection",
    "EventsRequest",
    "EventsResponse",
    "ExplainRequest",
    "ExplainResponse",
    "FeedbackHealth",
    "Filters",
    "HealthResponse",
    "HistoryContribution",
    "ItemDeleted",
    "ItemUpsert",
    "ItemRelationIn",
    "ItemWritten",
    "ModelStatus",
    "ModelSwapRequest",
    "ModelSwapResponse",
    "OnlineProfile",
    "Quarantined",
    "RangeFilter",
    "RecommendRequest",
    "RecommendResponse",
    "ScoredItem",
    "RelatedResponse",
    "SimilarResponse",
    "TermContribution",
    "Erasure",
    "ExportedEvent",
    "ExportedImpression",
    "ExportedProfile",
    "StoredQuery",
    "StreamStatus",
    "UserErased",
    "UserEvent",
    "UserExport",
    "UserSummary",
]

Id = Field(min_length=1, max_length=256)
Scalar = str | int | float | bool
Strategy = Literal[
    "profile",
    "query",
    "query+profile",
    "model",
    "model+online",
    "session",
    "user_text",
    "session+user_text",
    "popularity",
]
#: what shaped a ``/recommend`` list (`RecommendResponse.used`)
Input = Literal["user_id", "query", "session_items", "user_text", "popularity"]
ItemIdStr = Annotated[str, StringConstraints(min_length=1, max_length=256)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RangeFilter(_Strict):
    """Inclusive numeric range; either end may be left open."""

    min: float | None = None
    max: float | None = None


class Filters(_Strict):
    """Attribute filters; an item must pass all of them. Missing attribute values never match."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    equals: dict[str, Scalar] = Field(default_factory=dict, description="attribute -> required value")
    in_: dict[str, list[Scalar]] = Field(default_factory=dict, alias="in", description="attribute -> allowed values")
    range: dict[str, RangeFilter] = Field(default_factory=dict, description="numeric attribute -> bounds")


class RecommendRequest(_Strict):
    """Who and what to recommend for; every field is optional (an empty request gets popular items)."""

    user_id: str | None = Field(None, min_length=1, max_length=256)
    query: str | None = Field(
        None,
        description="natural-language request, e.g. 'warm waterproof boots' (at most the server's max_query_chars)",
    )
    scenario: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description=(
            "where the list is shown (e.g. 'home', 'cart'); passed to business rules. A scenario-aware model "
            "scores in it: an unknown name is a 422 listing the valid ones (GET /health shows them); other "
            "models ignore it, and the response's scenario_applied is false"
        ),
    )
    session_items: list[ItemIdStr] | None = Field(
        None,
        description=(
            "for a user without history (no user_id, or an unknown one): the item ids of an anonymous "
            "session, most recent last (at most the server's max_session_items). The model's user tower "
            "reads them as a known user's history; unknown ids are ignored and listed in the answer"
        ),
    )
    user_text: str | None = Field(
        None,
        description=(
            "for a user without history: a profile sentence or free text about them (at most the server's "
            "max_user_text_chars); scrubbed of personal data before it is encoded, never stored"
        ),
    )
    k: int = Field(10, ge=1, description="list length (at most the server's max_k)")
    filters: Filters | None = None
    exclude_seen: bool = Field(True, description="leave out the user's seen items (and the session's items)")
    diversity: float = Field(0.0, ge=0.0, le=1.0, description="MMR weight: 0 pure relevance, 1 maximal novelty")
    mode: Literal["default", "complements"] = Field(
        "default",
        description=(
            "'complements': only items the knowledge graph relates as complements of the user's recent items "
            "(ranked as usual); when there are none, the usual list and a note"
        ),
    )


class ScoredItem(BaseModel):
    item_id: str
    score: float
    reason: str


class RecommendResponse(BaseModel):
    items: list[ScoredItem]
    model_version: str
    strategy: Strategy
    user_id: str | None = None
    known_user: bool = False
    scenario: str | None = None
    scenario_applied: bool = Field(
        False, description="true when the scenario reached the model (a scenario-aware model scored this list)"
    )
    used: list[Input] = Field(default_factory=list, description="the request's inputs that shaped this list")
    unknown_session_items: list[str] = Field(
        default_factory=list, description="session_items ids the service does not know (ignored)"
    )
    notes: list[str] = Field(
        default_factory=list,
        description="how session_items / user_text were read when not by the model's own user tower, or why not",
    )
    request_id: str | None = Field(
        None, description="this answer's id: events that respond to it name it (POST /events, request_id)"
    )


class EventIn(_Strict):
    """One user action. ``timestamp``: seconds since the epoch or ISO 8601; default the arrival time."""

    event_id: str = Id
    user_id: str = Id
    item_id: str = Id
    type: str = Field(min_length=1, max_length=64, description="view, click, cart, purchase, rating, ...")
    value: float | None = Field(None, description="rating value, quantity, ...; required for ratings")
    timestamp: float | datetime | None = None
    scenario: str | None = Field(None, max_length=128)
    request_id: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="the /recommend answer this event responds to (unknown or expired ids: logged, counted unmatched)",
    )


class EventsRequest(_Strict):
    events: list[EventIn]


class EventRejection(BaseModel):
    index: int
    event_id: str
    error: str


class EventsResponse(BaseModel):
    accepted: int
    duplicates: int = Field(description="events whose event_id was already logged (skipped: retries are safe)")
    rejected: list[EventRejection] = Field(
        default_factory=list,
        description="always empty: a batch with a bad event is answered 422, naming every bad event, and is not logged",
    )


class ItemRelationIn(_Strict):
    """One relation of an item: ``relation`` (e.g. ``complementary_category``) to ``target`` (an item id or
    a concept such as a category)."""

    relation: str = Field(min_length=1, max_length=128)
    target: str = Field(min_length=1, max_length=256)


class ItemUpsert(_Strict):
    """An item's text and attributes. Without ``text``, the text is built from the attributes with the
    catalogue's template (or their string values joined)."""

    text: str | None = Field(None, description="at most the server's max_item_text_chars characters")
    attributes: dict[str, Scalar | list[Scalar] | None] = Field(
        default_factory=dict, description="attribute -> value; a list for multi-valued attributes (genres, tags)"
    )
    relations: list[ItemRelationIn] | None = Field(
        None,
        description=(
            "knowledge-graph relations of the item; a relation the model was not trained with is stored and "
            "ignored by the model (the answer lists it)"
        ),
    )


class ItemWritten(BaseModel):
    item_id: str
    created: bool
    reencoded: bool
    index_size: int
    relations_stored: list[str] = Field(default_factory=list, description="the item's relations, 'relation -> target'")
    relations_ignored: list[str] = Field(
        default_factory=list, description="stored relations the served model was not trained with (it ignores them)"
    )
    notes: list[str] = Field(default_factory=list)


class RelatedResponse(BaseModel):
    item_id: str
    relation: str
    items: list[ScoredItem]
    from_graph: int = Field(description="how many of items came from the knowledge graph (the rest: nearest items)")
    model_version: str


class ItemDeleted(BaseModel):
    item_id: str
    deleted: bool


class UserEvent(BaseModel):
    event_id: str
    item_id: str
    type: str
    value: float | None
    timestamp: float
    scenario: str | None = None


class OnlineProfile(BaseModel):
    n_events: int
    last_event_at: float
    top_items: list[ScoredItem]


class UserSummary(BaseModel):
    user_id: str
    known_to_model: bool
    n_training_items: int
    n_events: int
    first_event_at: float | None
    last_event_at: float | None
    online_profile: OnlineProfile | None
    recent_events: list[UserEvent]


class UserErased(BaseModel):
    user_id: str
    events_deleted: int
    profile_deleted: bool
    model_data_suppressed: bool


class ExportedEvent(BaseModel):
    seq: int = Field(description="position in the event log")
    event_id: str
    item_id: str
    type: str
    value: float | None
    timestamp: float
    scenario: str | None
    received_at: float = Field(description="when the service logged it (seconds since the epoch)")


class ExportedProfile(BaseModel):
    space: str = Field(description="the vector space the profile lives in")
    n_events: int
    last_event_at: float
    vector: list[float]


class StoredQuery(BaseModel):
    query: str
    at: float


class Erasure(BaseModel):
    forgotten: bool = Field(description="the user was erased (DELETE /users/{id}); only an erasure marker is kept")
    model_data_suppressed: bool = Field(
        description="the served model was trained on the user's data; the service does not use it until a retrained model is served"
    )


class ExportedImpression(BaseModel):
    """A logged ``/recommend`` answer shown to the user (`lmrec.serve.feedback`)."""

    request_id: str
    at: float = Field(description="when it was served (seconds since the epoch)")
    items: list[str] = Field(description="the items shown, in position order")
    policy: str = Field(description="the ranking that made it: static, greedy, thompson or epsilon")


class UserExport(BaseModel):
    """Everything the service holds about one user (``GET /users/{id}/export``)."""

    user_id: str
    exported_at: float
    known_to_model: bool
    training_items: list[str] = Field(description="the user's interactions the served model was trained on")
    n_events_logged: int = Field(description="events ever logged for the user (expired ones included)")
    first_event_at: float | None
    last_event_at: float | None
    erasure: Erasure
    events: list[ExportedEvent] = Field(description="the logged events still held, oldest first")
    online_profile: ExportedProfile | None
    queries: list[StoredQuery] = Field(description="stored query texts (only when the server stores queries)")
    retention_days: dict[str, float] = Field(description="how long each event type is kept (empty: until erasure)")
    impressions: list[ExportedImpression] = Field(
        default_factory=list, description="logged answers shown to the user, oldest first (impression_sample > 0)"
    )


class SimilarResponse(BaseModel):
    item_id: str
    items: list[ScoredItem]
    model_version: str


class ExplainRequest(_Strict):
    item_id: str = Id
    user_id: str | None = Field(None, min_length=1, max_length=256)
    query: str | None = None


class HistoryContribution(BaseModel):
    item_id: str
    source: Literal["event", "training", "session"]
    event_type: str | None
    similarity: float


class TermContribution(BaseModel):
    term: str
    contribution: float


class ExplainResponse(BaseModel):
    item_id: str
    score: float | None
    strategy: Strategy
    reason: str
    history: list[HistoryContribution]
    query_terms: list[TermContribution]
    model_version: str
    relation: str | None = Field(None, description="the knowledge-graph relation linking the item to the history")


class Quarantined(BaseModel):
    """Stored records set aside instead of served: item rows that did not check at replay (still in
    the store; they are skipped at every start until rewritten), event rows moved to the store's
    ``quarantine`` table at a start-up."""

    items: int = 0
    events: int = 0


class StreamStatus(BaseModel):
    """A replica's place in the shared Redis Stream (``profile_store="redis"``)."""

    redis_url: str
    redis_up: bool = Field(description="false while Redis is unreachable (writes answer 503)")
    aof: bool = Field(description="whether Redis runs with appendonly yes")
    position: str = Field(description="id of the last stream entry this replica applied")
    applied: int = Field(description="entries this replica applied since it started")
    lag_entries: int | None = Field(None, description="entries not yet applied (capped at 10000; null: unknown)")
    lag_s: float | None = Field(None, description="stream time between the last entry and the last applied one")


class FeedbackHealth(BaseModel):
    """The feedback loop (`lmrec.serve.feedback`): the re-ranker and the responses to answers."""

    reranker: str = Field(description="off, greedy, thompson or epsilon")
    state: str = Field(description="off; loaded (from its saved state); fresh (new, or the saved state did not load)")
    problem: str | None = Field(None, description="why the saved re-ranker state was not used")
    updates: int = Field(description="shown items the re-ranker has learned from")
    open_impressions: int = Field(description="answers held in memory, waiting for responses")
    unmatched_responses: int = Field(description="events naming an unknown, expired or foreign request_id")


class HealthResponse(BaseModel):
    """Liveness and what is served; with API keys configured, a caller without a valid key gets
    ``status`` only (the other fields are null)."""

    status: Literal["ok", "degraded"] = Field(
        description="'degraded' when the catalogue and the item index disagree (see 'problems')"
    )
    problems: list[str] = Field(default_factory=list, description="why the status is 'degraded'")
    quarantined: Quarantined | None = None
    model: str | None = None
    model_version: str | None = None
    model_dir: str | None = None
    swaps: int | None = Field(None, description="model swaps since the process started")
    scenarios: list[str] | None = Field(None, description="a scenario-aware model's scenario names; None otherwise")
    space: str | None = None
    index: str | None = None
    index_tuning: dict[str, float] | None = Field(
        None,
        description="an approximate index's search width ('ef_search' or 'nprobe') and the recall_at_10 against "
        "exact search it measured on 'queries' sampled queries (index_target_recall); null when not tuned",
    )
    items: int | None = None
    live_items: int | None = None
    profile_store: str | None = None
    events: int | None = None
    feedback: FeedbackHealth | None = None
    stream: StreamStatus | None = Field(None, description="the Redis store: this replica's place in the shared stream")


class ModelSwapRequest(_Strict):
    """A model directory to serve next (``lmrec train --out`` layout), on the server's file system."""

    path: str = Field(min_length=1, max_length=4096)


class ModelSwapResponse(BaseModel):
    model_version: str
    previous_version: str
    model_dir: str
    swaps: int
    load_s: float = Field(description="seconds spent loading the model and building its index, off to the side")


class ModelStatus(BaseModel):
    model_version: str
    model_dir: str
    swaps: int
    swap_failures: int
    last_error: str | None
    swapping: bool
    watching: str | None = Field(None, description="the directory of versions polled for new models, if any")


class FieldError(BaseModel):
    field: str
    msg: str


class ErrorResponse(BaseModel):
    """A 4xx answer: what is wrong (``detail``), the field at fault, and each problem when there are several."""

    detail: str
    field: str | None = None
    errors: list[FieldError] | None = None


class ServerError(BaseModel):
    """A 500 answer: nothing about the failure leaks; ``request_id`` finds it in the server's log."""

    error: str
    request_id: str
