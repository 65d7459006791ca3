"""A replay simulator from real data that drives the service's own code path in-process.

Each user's interactions are split in time: the model is trained on the past, and the user's future
items are the ground truth. Over ``rounds`` rounds every simulated user asks ``RecService.recommend``
for ``k`` items, and clicks each shown item that is among their future items and not clicked before;
the clicks go back through ``RecService.ingest`` naming the answer's ``request_id`` (at once, so the
profiles, the seen-item exclusion and the re-ranker react, or after the round, so every list of the
round was made from the same state: what an off-policy check needs).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from lmrec.data.interactions import Interactions
from lmrec.data.splits import ratio_split
from lmrec.serve.schemas import EventIn
from lmrec.serve.service import RecService

__all__ = ["ReplayResult", "future_items", "replay"]

log = logging.getLogger(__name__)


def future_items(inter: Interactions, share: float = 0.3) -> tuple[Interactions, dict[str, set[str]]]:
    """Split each user's interactions in time: the first ``1 - share`` to train on, the rest as the
    user's future items (by external id)."""
    split = ratio_split(inter, (1.0 - share, 0.0, share), order="time")
    test = split.test
    future: dict[str, set[str]] = {}
    for u, i in zip(test.users, test.items):
        future.setdefault(str(test.user_map.ids[u]), set()).add(str(test.item_map.ids[i]))
    return split.train, future


@dataclass
class ReplayResult:
    """What a replay showed and what was clicked.

    Attributes:
        clicks: clicks over all rounds.
        lists: answers served.
        distinct_items: different items shown over all rounds.
        clicks_per_round: clicks of each round.
    """

    clicks: int = 0
    lists: int = 0
    distinct_items: int = 0
    clicks_per_round: list[int] = field(default_factory=list)

    @property
    def clicks_per_list(self) -> float:
        return self.clicks / max(self.lists, 1)


def replay(
    service: RecService,
    future: Mapping[str, set[str]],
    users: Sequence[str],
    *,
    rounds: int,
    k: int,
    seed: int,
    respond: Literal["now", "after_round"] = "now",
) -> ReplayResult:
    """Run the simulation (see the module docstring).

    Args:
        service: the service under test.
        future: user id -> their future item ids.
        users: who asks (each once per round, in a new random order every round).
        rounds: how many rounds.
        k: list length.
        seed: seed of the order of the users.
        respond: send the clicks at once, or after each round.
    """
    rng = np.random.default_rng(seed)
    clicked: dict[str, set[str]] = {u: set() for u in users}
    shown: set[str] = set()
    out = ReplayResult()
    for t in range(rounds):
        pending: list[EventIn] = []
        n_clicks = 0
        for idx in rng.permutation(len(users)):
            user = users[idx]
            answer = service.recommend(user_id=user, k=k)
            out.lists += 1
            items = [x.item_id for x in answer.items]
            shown.update(items)
            hits = [i for i in items if i in future.get(user, ()) and i not in clicked[user]]
            clicked[user].update(hits)
            n_clicks += len(hits)
            batch = [
                EventIn(
                    event_id=f"sim:{t}:{user}:{i}", user_id=user, item_id=i, type="click", request_id=answer.request_id
                )
                for i in hits
            ]
            if respond == "now" and batch:
                service.ingest(batch)
            else:
                pending.extend(batch)
        for start in range(0, len(pending), 500):
            service.ingest(pending[start : start + 500])
        out.clicks += n_clicks
        out.clicks_per_round.append(n_clicks)
        log.info("round %d: %d clicks", t, n_clicks)
    out.distinct_items = len(shown)
    return out
