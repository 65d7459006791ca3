"""Typed, strict settings of the recommendation service.

`ServeSettings` is the one object ``create_app`` and ``run_server`` take. It is a frozen pydantic
model that rejects unknown keys; ``ServeSettings.from_env`` is the only place in ``lmrec.serve`` that
reads the environment (variables ``LMREC_<FIELD>``, e.g. ``LMREC_PORT=8080``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lmrec.data.pii import ALL_KINDS, PIIKind, PIIScrubber, ScrubConfig
from lmrec.encoders.config import Backend
from lmrec.serve.auth import KeyEntry, is_loopback
from lmrec.serve.feedback.config import FeedbackSettings

__all__ = ["DEFAULT_EVENT_WEIGHTS", "RETENTION_KEYS", "ServeSettings"]

#: how strongly one event of each type pulls the online profile towards its item (times ``profile_alpha``)
DEFAULT_EVENT_WEIGHTS: dict[str, float] = {
    "view": 0.25,
    "click": 0.5,
    "like": 0.75,
    "cart": 0.75,
    "purchase": 1.0,
    "rating": 1.0,
    # negative feedback: the profile moves away from the item (`lmrec.serve.profiles.absorb`); dislike and
    # dismiss also suppress the item for the user (`FeedbackSettings.suppress_types`)
    "dislike": -1.0,
    "dismiss": -0.5,
    "skip": -0.1,
}

ENV_PREFIX = "LMREC_"


#: ``retention_days`` keys that are not event types: the default, stored queries, logged answers
RETENTION_KEYS = ("*", "query", "impression")


class ServeSettings(BaseModel):
    """Settings of ``lmrec serve``.

    Attributes:
        model_dir: a trained model directory (`lmrec.models.ModelBundle` layout); may be left out
            when ``model_dir_watch`` is set (the newest complete version there is served).
        model_dir_watch: a directory of model versions, one subdirectory each, polled every
            ``model_watch_interval_s`` seconds; the newest complete version (see `lmrec.serve.swap`:
            subdirectories with a ``READY`` marker file, written last, newest by name) is loaded in a
            background thread and swapped in. None: no watching.
        model_watch_interval_s: seconds between two looks at ``model_dir_watch``.
        model_admin_token: when set, ``/admin/*`` (model swap) requests must send ``Authorization: Bearer <token>``;
            None leaves them open (the default host is loopback only). It acts as a key with the ``admin``
            scope; with ``api_keys`` configured too, it is one more key.
        api_keys_file: a keys file (JSON or YAML, `lmrec.serve.auth.load_keys`: name, scrypt hash, scopes,
            optional rate limit per key); its keys and ``api_keys`` together guard every route but
            ``/health`` (`lmrec.serve.auth`). No keys: every route is open, on loopback only.
        api_keys: key entries given inline (``LMREC_API_KEYS`` takes them as JSON).
        insecure: serve a non-loopback ``host`` without API keys (refused otherwise; logged loudly).
        models_root: ``POST /admin/model`` loads only directories below it (symlinks and ``..``
            resolved); default: ``model_dir_watch``, else the served model directory's parent.
        state_dir: where the SQLite database, the FAISS index and the vector cache live
            (default ``<model_dir>/serve_state``, else ``<model_dir_watch>/serve_state``); it stays
            the same across model swaps, so the event log, profiles and PUT items carry over.
        host, port: where `run_server` listens.
        log_level: uvicorn's log level.
        profile_store: ``"sqlite"`` (embedded, default) or ``"redis"`` (``lmrec serve --store redis``): all
            shared state in Redis, for replicas behind a load balancer: the event log and item writes as
            a Redis Stream every replica follows, profiles and popularity counters
            (`lmrec.serve.stores.redis_stream`, `lmrec.serve.follower`).
        redis_url: the Redis server for ``profile_store="redis"`` (None: ``redis://127.0.0.1:6379/0``).
        redis_prefix: key prefix of everything the service keeps in Redis.
        redis_aof: ``"require"`` refuses to start against a Redis without ``appendonly yes``
            (acknowledged events would not survive a Redis restart); ``"warn"`` (default) serves and
            logs it loudly (``/health`` ``stream.aof`` says so too).
        workers: server processes `run_server` starts on one port (each loads the model; use them with
            ``profile_store="redis"`` so they share events, items and profiles).
        sqlite_synchronous: ``"FULL"`` fsyncs the WAL at every commit (survives power loss);
            ``"NORMAL"`` survives a process crash (kill -9) but may lose the last commits on power loss.
        index: ``"auto"`` (exact inner product up to ``exact_max_items`` items, IVF beyond, IVF-PQ when
            IVF would exceed ``index_max_mb``: `lmrec.serve.index.choose_kind`), ``"flat"``, ``"hnsw"``,
            ``"ivf"``, ``"ivfpq"``, or ``"numpy"`` (exact numpy scoring over every item, no FAISS: the
            naive baseline of the benchmark).
        exact_max_items: catalogue size up to which ``index="auto"`` stays exact; with ``"auto"``, an
            exact index that grows past it by item PUTs is rebuilt into IVF in the background.
        index_max_mb: memory budget of the ANN structure for ``index="auto"`` (None: no limit).
        hnsw_m, hnsw_ef_construction, hnsw_ef_search: HNSW graph degree and beam widths.
        index_target_recall: after each build or load of an approximate index its search width
            (``hnsw_ef_search`` or ``ivf_nprobe``) is raised (doubled) until recall@10 against exact
            search reaches this on sampled queries (`lmrec.serve.index.VectorIndex.tune_search`);
            None keeps the widths as set.
        ivf_nlist, ivf_nprobe: IVF cells (default ``4 * sqrt(n)``) and cells visited per query.
        encoder: text encoder of models that are not `VectorRecommender`s: a model name or path for
            ``lmrec.encoders.make_text_encoder`` (``"hashing-DIM"`` with ``encoder_backend="fake"`` for
            the deterministic test encoder), or None for the bundle's encoder, else the packaged MiniLM.
        encoder_backend: ``make_text_encoder`` backend; None: the bundle's, else ``"torch"``.
        query_weight: weight of the query vector when a known user also sends a query
            (``q = w * query + (1 - w) * profile``, each unit-normalised).
        online_weight: weight of the online profile against the offline (trained) user vector.
        profile_alpha: step of the online profile update ``P <- a * H + (1 - a) * P`` for an event of
            weight 1; an event of type weight ``w`` uses ``a = min(1, profile_alpha * w)``.
        profile_half_life_s: optional time decay: the old profile also loses half its weight per
            this many seconds between events. None: decay by event count only.
        event_weights: event type -> weight; a batch with another type is rejected whole (422). A negative
            weight (dislike, dismiss, skip) moves the profile away from the item.
        rating_scale: a rating event of value ``v`` has weight ``event_weights["rating"] * v / rating_scale``.
        candidate_pool: candidates retrieved before re-ranking (at least ``k``; more when diversity > 0).
        max_k: largest ``k`` a request may ask for.
        max_events_per_batch: largest ``POST /events`` batch.
        max_body_bytes: largest request body; larger bodies get 413.
        max_query_chars: longest query text (``/recommend`` and ``/explain``).
        max_item_text_chars: longest item text of ``PUT /items/{id}``.
        max_user_text_chars: longest ``user_text`` of ``/recommend`` (a new user's profile text).
        max_session_items: most ``session_items`` of ``/recommend`` (a new user's anonymous session).
        recent_events_shown: events listed by ``GET /users/{id}`` unless ``limit`` says otherwise.
        items_sync_interval_s: how often a process picks up items that other processes PUT or DELETEd
            (0 disables).
        threads: intra-op threads for FAISS and torch (1 keeps concurrent requests from oversubscribing).
        rules: business-rule hooks as ``"package.module:function"`` import paths (see `lmrec.serve.ranking`).
        show_progress: progress bars while encoding the catalogue at start-up.
        scrub_pii: pass text from requests (queries, user texts, item texts of ``PUT /items``) through the PII
            scrubber (`lmrec.data.pii`) before it reaches an encoder, the store, an answer or a log.
        pii_kinds: what the scrubber replaces (``email``, ``phone``, ``card``, ``ssn``, ``uk_nino``,
            ``iban``, ``cn_id``, ``ip``; default all).
        pii_backend: ``"patterns"`` (built in) or ``"presidio"`` (where Presidio and a spaCy model are installed).
        store_queries: ``"none"`` (default: query texts are never stored), ``"scrubbed"`` or ``"raw"``:
            keep each query of ``/recommend`` with its user id and time (exported, erased and expired
            with the user's other data).
        retention_days: days a logged event is kept after it was received, by event type; ``"*"``
            covers the types not named, ``"query"`` the stored queries, ``"impression"`` the logged
            ``/recommend`` answers and their responses (`lmrec.serve.feedback`). An expired event is deleted
            once its user's profile has absorbed it, so the profile keeps its effect (`lmrec.serve.retention`).
            Empty: kept until the user is erased.
        retention_interval_s: seconds between two runs of the retention job.
        console: serve the web console at ``/ui`` (`lmrec.serve.ui`); None: on when ``host`` is loopback.
        reports_dir: where the console finds evaluation reports (``lmrec evaluate --report``); None: none.
        feedback: impressions, negative feedback and the adaptive re-ranker (`lmrec.serve.feedback.config`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_dir: Path | None = None
    model_dir_watch: Path | None = None
    model_watch_interval_s: float = Field(5.0, gt=0.0)
    model_admin_token: str | None = Field(None, min_length=1, repr=False)
    api_keys_file: Path | None = None
    api_keys: tuple[KeyEntry, ...] = Field((), repr=False)
    insecure: bool = False
    models_root: Path | None = None
    state_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    profile_store: Literal["sqlite", "redis"] = "sqlite"
    redis_url: str | None = None
    redis_prefix: str = "lmrec:"
    redis_aof: Literal["require", "warn"] = "warn"
    workers: int = Field(1, ge=1)
    sqlite_synchronous: Literal["FULL", "NORMAL"] = "FULL"
    index: Literal["auto", "flat", "hnsw", "ivf", "ivfpq", "numpy"] = "auto"
    exact_max_items: int = Field(20_000, ge=0)
    index_max_mb: float | None = Field(None, gt=0)
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_construction: int = Field(80, ge=8)
    hnsw_ef_search: int = Field(128, ge=8)
    index_target_recall: float | None = Field(0.95, gt=0.0, le=1.0)
    ivf_nlist: int | None = Field(None, ge=1)
    ivf_nprobe: int = Field(16, ge=1)
    encoder: str | None = None
    encoder_backend: Backend | None = None
    query_weight: float = Field(0.7, ge=0.0, le=1.0)
    online_weight: float = Field(0.5, ge=0.0, le=1.0)
    profile_alpha: float = Field(0.3, gt=0.0, le=1.0)
    profile_half_life_s: float | None = Field(None, gt=0.0)
    event_weights: dict[str, float] = Field(default_factory=lambda: dict(DEFAULT_EVENT_WEIGHTS))
    rating_scale: float = Field(5.0, gt=0.0)
    candidate_pool: int = Field(100, ge=1, le=10_000)
    max_k: int = Field(100, ge=1, le=10_000)
    max_events_per_batch: int = Field(1000, ge=1)
    max_body_bytes: int = Field(2_000_000, ge=1024)
    max_query_chars: int = Field(1000, ge=1)
    max_item_text_chars: int = Field(20_000, ge=1)
    max_user_text_chars: int = Field(2000, ge=1)
    max_session_items: int = Field(50, ge=1, le=10_000)
    recent_events_shown: int = Field(20, ge=0)
    items_sync_interval_s: float = Field(1.0, ge=0.0)
    threads: int = Field(1, ge=1)
    rules: tuple[str, ...] = ()
    show_progress: bool = False
    scrub_pii: bool = True
    pii_kinds: tuple[PIIKind, ...] = tuple(sorted(cast("frozenset[PIIKind]", ALL_KINDS)))
    pii_backend: Literal["patterns", "presidio"] = "patterns"
    store_queries: Literal["none", "scrubbed", "raw"] = "none"
    retention_days: dict[str, float] = Field(default_factory=dict)
    retention_interval_s: float = Field(3600.0, gt=0.0)
    console: bool | None = None
    reports_dir: Path | None = None
    feedback: FeedbackSettings = Field(default_factory=FeedbackSettings)

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown(cls, values: Any) -> Any:
        if isinstance(values, Mapping):
            unknown = sorted(set(values) - set(cls.model_fields))
            if unknown:
                raise ValueError(f"unknown serve setting(s) {unknown}; valid: {sorted(cls.model_fields)}")
        return values

    @model_validator(mode="after")
    def _need_a_model(self) -> ServeSettings:
        if self.model_dir is None and self.model_dir_watch is None:
            raise ValueError("model_dir: give a model directory, or model_dir_watch (a directory of model versions)")
        return self

    @model_validator(mode="after")
    def _check_retention(self) -> ServeSettings:
        bad = {k: v for k, v in self.retention_days.items() if not v > 0}
        if bad:
            raise ValueError(f"retention_days must be positive numbers of days; got {bad}")
        unknown = sorted(set(self.retention_days) - set(self.event_weights) - set(RETENTION_KEYS))
        if unknown:
            valid = sorted({*self.event_weights, *RETENTION_KEYS})
            raise ValueError(f"retention_days: unknown event type(s) {unknown}; valid: {valid}")
        return self

    @field_validator("event_weights")
    @classmethod
    def _check_weights(cls, value: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in value.items() if not -10.0 <= v <= 10.0}
        if bad:
            raise ValueError(f"event_weights must lie in [-10, 10] (negative: away from the item); got {bad}")
        if not value:
            raise ValueError("event_weights is empty: no event type would be accepted")
        return value

    @field_validator("rules")
    @classmethod
    def _check_rules(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [r for r in value if ":" not in r]
        if bad:
            raise ValueError(f"rules must be 'package.module:function' import paths; got {bad}")
        return value

    @property
    def resolved_state_dir(self) -> Path:
        """``state_dir``, or ``<model_dir>/serve_state`` (``<model_dir_watch>/serve_state``) when it is not set."""
        if self.state_dir is not None:
            return self.state_dir
        base = self.model_dir if self.model_dir is not None else self.model_dir_watch
        assert base is not None  # _need_a_model
        return base / "serve_state"

    def scrubber(self) -> PIIScrubber | None:
        """The PII scrubber these settings ask for (``scrub_pii``, ``pii_kinds``, ``pii_backend``); None when off.

        Raises:
            ImportError: ``pii_backend="presidio"`` and Presidio or its spaCy model is not installed.
        """
        if not self.scrub_pii:
            return None
        return PIIScrubber(ScrubConfig(kinds=frozenset(self.pii_kinds), backend=self.pii_backend))

    @property
    def console_enabled(self) -> bool:
        """``console``, or True when it is not set and ``host`` is a loopback address."""
        return is_loopback(self.host) if self.console is None else self.console

    @property
    def resolved_models_root(self) -> Path:
        """``models_root``, else ``model_dir_watch``, else the parent of ``model_dir``."""
        if self.models_root is not None:
            return self.models_root
        if self.model_dir_watch is not None:
            return self.model_dir_watch
        assert self.model_dir is not None  # _need_a_model
        return Path(self.model_dir).resolve().parent

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> ServeSettings:
        """Settings from ``LMREC_<FIELD>`` variables, then ``overrides`` (keyword arguments win).

        Only variables naming a field are read (``LMREC_`` is shared with the rest of lmrec).
        Dict, list, tuple and nested-settings fields take JSON (``LMREC_EVENT_WEIGHTS='{"view": 0.1}'``,
        ``LMREC_FEEDBACK='{"reranker": "thompson"}'``).

        Raises:
            pydantic.ValidationError: an override names no field, or a value is invalid.
            ValueError: a variable of a JSON field does not hold JSON.
        """
        environ = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for name, info in cls.model_fields.items():
            raw = environ.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            ann = info.annotation
            nested = isinstance(ann, type) and issubclass(ann, BaseModel)  # e.g. feedback
            if nested or str(ann).startswith(("dict", "tuple", "list")):
                try:
                    values[name] = json.loads(raw)
                except ValueError as exc:
                    raise ValueError(f"{ENV_PREFIX}{name.upper()} must be JSON, got {raw!r}: {exc}") from exc
            else:
                values[name] = raw
        values.update(overrides)
        return cls.model_validate(values)
