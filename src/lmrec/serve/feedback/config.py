"""Settings of the feedback loop: impressions, negative feedback, the adaptive re-ranker.

`FeedbackSettings` is one field of `lmrec.serve.settings.ServeSettings` (``feedback``; from the
environment ``LMREC_FEEDBACK='{"reranker": "thompson"}'``). The negative event types themselves and
their (negative) weights are ``ServeSettings.event_weights``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["FeedbackSettings", "RerankerMode"]

#: ``off``: retrieval order; ``greedy``: the learned linear model, no exploration; ``thompson``: a
#: request explores with probability ``explore_rate`` by ranking with a posterior sample; ``epsilon``:
#: a request explores with probability ``explore_rate`` by showing a uniformly random arrangement of
#: the pool (exact propensities, the logging policy off-policy estimates need)
RerankerMode = Literal["off", "greedy", "thompson", "epsilon"]


class FeedbackSettings(BaseModel):
    """What the service learns from the responses to its lists.

    Attributes:
        impression_sample: share of ``/recommend`` answers whose impression (items, positions,
            scores, propensities, the candidate pool's features) is logged to the SQLite store
            (0, the default: none, so the read path writes nothing; 1: all). Every answer carries a
            ``request_id`` either way, and the re-ranker learns from every answer of this process.
        impression_ttl_s: an event naming a ``request_id`` older than this (or unknown) is logged as a
            plain event and counted as unmatched.
        log_pool: also log the candidate pool and its features with each impression (what
            ``lmrec policy evaluate`` needs to re-rank the logged pools).
        positive_types: event types that count as a click on a shown item (reward 1).
        suppress_types: event types after which the item is never recommended to that user again.
        suppress_similar: also suppress items whose cosine to a suppressed item is at least this
            (near duplicates); None: the item only.
        skip_unclicked_above: when an event names a ``request_id`` and clicks the item in position
            ``p``, the unanswered items above ``p`` are logged as ``skip`` events (a weak negative:
            the user saw them and passed; ``skip`` must be in ``event_weights``).
        reranker: the re-ranking mode (`RerankerMode`).
        rerank_pool: candidates the re-ranker orders (at least ``k``).
        explore_rate: probability that a request explores, in [0, 1].
        prior_score_weight: the re-ranker's prior weight on the retrieval score (its ranking before
            it has learned anything is the retrieval order).
        l2: ridge penalty of the linear model (the prior's strength).
        noise: scale of the Thompson posterior sample.
        category_attribute: the item attribute read for the user's recent category affinity.
        save_every: updates between two saves of the re-ranker's state (and at shutdown).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    impression_sample: float = Field(0.0, ge=0.0, le=1.0)
    impression_ttl_s: float = Field(86_400.0, gt=0.0)
    log_pool: bool = True
    positive_types: tuple[str, ...] = ("click", "like", "cart", "purchase", "rating")
    suppress_types: tuple[str, ...] = ("dislike", "dismiss")
    suppress_similar: float | None = Field(None, gt=0.0, le=1.0)
    skip_unclicked_above: bool = False
    reranker: RerankerMode = "off"
    rerank_pool: int = Field(50, ge=1, le=1000)
    explore_rate: float = Field(0.1, ge=0.0, le=1.0)
    prior_score_weight: float = Field(0.1, ge=0.0)
    l2: float = Field(1.0, gt=0.0)
    noise: float = Field(0.1, gt=0.0)
    category_attribute: str | None = "category"
    save_every: int = Field(100, ge=1)
