"""Scoring under a scenario: the read-out side of the multi-scenario model (`LMScenarioRecommender`).

Scenario ``s`` reads users out as ``u_s = u + e_s + B A u`` and items as ``v_{i,s} = v_i + B' A' v_i``
(`lmrec.models.lm.adapters`); scenario id ``-1`` (or None, or an unknown name) is the shared path,
the backbone's own vectors. `ScenarioReadout` holds these methods over the composed backbone
(``backbone``, an `LMRecommender`) and the per-scenario item vectors cached by `refresh_vectors`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from lmrec.encoders.base import TextEncoder
from lmrec.models.base import Recommender, top_k
from lmrec.models.lm.model import LMRecommender

__all__ = ["ScenarioReadout"]


class ScenarioReadout(Recommender):
    """Vectors and scores of the multi-scenario model, per scenario (the base of `LMScenarioRecommender`).

    Attributes:
        backbone: the composed `LMRecommender` (settings, network, histories).
        scenario_names_: scenario names, position = scenario id.
    """

    backbone: LMRecommender
    scenario_names_: list[str]
    _scenario_items: list[np.ndarray]
    _scenario_history: list[torch.Tensor | None]

    # ------------------------------------------------------------------ the backbone's answers
    def get_text_encoder(self) -> TextEncoder:
        """The backbone's text encoder (`LMRecommender.get_text_encoder`)."""
        return self.backbone.get_text_encoder()

    def item_vectors(self) -> np.ndarray:
        """(n_items, d) shared item vectors (`LMRecommender.item_vectors`)."""
        return self.backbone.item_vectors()

    def item_text(self, values: Mapping[str, object]) -> str:
        """See `LMRecommender.item_text`."""
        return self.backbone.item_text(values)

    def encode_items(self, texts: Sequence[str]) -> np.ndarray:
        """Shared vectors of items known by their text (`LMRecommender.encode_items`)."""
        return self.backbone.encode_items(texts)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Shared vectors of queries (`LMRecommender.encode_queries`)."""
        return self.backbone.encode_queries(texts)

    def explain(self, user_idx: int, item_idx: int, query: str | None = None, k: int = 3) -> dict[str, Any]:
        """Why ``item_idx`` is recommended on the shared path (`LMRecommender.explain`)."""
        return self.backbone.explain(user_idx, item_idx, query=query, k=k)

    # ------------------------------------------------------------------ vectors
    @torch.no_grad()
    def refresh_vectors(self) -> None:
        """Recompute the backbone's cached vectors and each scenario's item vectors."""
        self.backbone.refresh_vectors()
        net = self.backbone.net_
        was_training = net.training
        net.eval()
        self._scenario_items = [
            net.scenario.items(self.backbone.item_raw_, s, net.project, net.item_tower).numpy().astype(np.float32)
            for s in range(len(net.scenario))
        ]
        # the item vectors each scenario's user histories are read through (None: the shared ones)
        self._scenario_history = [
            a.history(self.backbone.item_raw_, net.item_tower) if a.text_history else None
            for a in net.scenario.adapters
        ]
        net.train(was_training)

    def scenario_ids(self, scenario: int | str | np.ndarray | Sequence | None, n: int) -> np.ndarray:
        """(n,) scenario ids from None (shared path, -1), one id or name, or n ids / names
        (unknown names map to -1, the shared path; ids must be in [-1, n_scenarios))."""
        self._check_fitted()
        if scenario is None:
            return np.full(n, -1, np.int64)
        lookup = {name: i for i, name in enumerate(self.scenario_names_)}
        if isinstance(scenario, str):
            return np.full(n, lookup.get(scenario, -1), np.int64)
        arr = np.asarray(scenario)
        if arr.dtype.kind in "OUS":
            arr = np.array([lookup.get(str(s), -1) for s in arr.reshape(-1)], np.int64)
        arr = np.broadcast_to(arr.astype(np.int64), (n,)) if arr.ndim == 0 else arr.astype(np.int64)
        if arr.shape != (n,):
            raise ValueError(f"scenario must be one id or an ({n},) array, got shape {arr.shape}")
        bad = (arr < -1) | (arr >= len(self.scenario_names_))
        if bad.any():
            raise ValueError(f"scenario id {int(arr[bad][0])} out of range [-1, {len(self.scenario_names_)})")
        return np.ascontiguousarray(arr)

    def scenario_item_vectors(self, scenario: int | str | None) -> np.ndarray:
        """(n_items, d) item vectors under one scenario (None: the shared ones, `item_vectors`)."""
        s = int(self.scenario_ids(scenario, 1)[0])
        return self.item_vectors() if s < 0 else self._scenario_items[s]

    @torch.no_grad()
    def encode_users(
        self,
        histories: Sequence[Sequence[int]],
        texts: Sequence[str] | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
        *,
        known_users: np.ndarray | None = None,
        scenario: int | str | np.ndarray | None = None,
        batch_size: int = 1024,
    ) -> np.ndarray:
        """`LMRecommender.encode_users` read out under ``scenario`` (see `scenario_ids`); (n, d).

        Users of a scenario whose adapter corrects the history (``text_history``) are encoded from
        that scenario's corrected item vectors.
        """
        ids = self.scenario_ids(scenario, len(histories))
        # rows read through a scenario's corrected items, by scenario; every other row reads the shared ones
        corrected = [s for s in np.unique(ids[ids >= 0]).tolist() if self._scenario_history[s] is not None]
        if not corrected:
            shared = self.backbone.encode_users(
                histories, texts, timestamps, known_users=known_users, batch_size=batch_size
            )
        else:
            groups = [(np.flatnonzero(~np.isin(ids, corrected)), None)]
            groups += [(np.flatnonzero(ids == s), self._scenario_history[s]) for s in corrected]
            shared = np.empty((len(ids), self.backbone.item_vectors_.shape[1]), np.float32)
            for rows, table in groups:
                if len(rows):
                    shared[rows] = self.backbone.encode_users(
                        [histories[int(r)] for r in rows],
                        None if texts is None else [texts[int(r)] for r in rows],
                        None if timestamps is None else [timestamps[int(r)] for r in rows],
                        known_users=None if known_users is None else np.asarray(known_users)[rows],
                        batch_size=batch_size,
                        item_raw=table,
                    )
        if (ids < 0).all():
            return shared
        net = self.backbone.net_
        return net.scenario.users(torch.from_numpy(shared), torch.from_numpy(ids), net.project).numpy()

    def user_vectors(self, user_idx: np.ndarray, scenario: int | str | np.ndarray | None = None) -> np.ndarray:
        """(n, d) vectors of known users under ``scenario`` (None: the shared path)."""
        self._check_fitted()
        user_idx = self._check_users(user_idx)
        histories = [self.backbone.hist_items_[u] for u in user_idx]
        times = [self.backbone.hist_times_[u] for u in user_idx]
        return self.encode_users(histories, None, times, known_users=user_idx, scenario=scenario)

    def score_all(self, user_idx: np.ndarray, scenario: int | str | np.ndarray | None = None) -> np.ndarray:
        """(n, n_items) scores, each user's row under their scenario (an id, a name or an (n,) array)."""
        user_idx = self._check_users(user_idx)
        ids = self.scenario_ids(scenario, len(user_idx))
        users = self.user_vectors(user_idx, ids)
        out = np.empty((len(user_idx), self.n_items), np.float32)
        for s in np.unique(ids):
            rows = ids == s
            out[rows] = users[rows] @ self.scenario_item_vectors(int(s)).T
        return out

    def recommend(
        self,
        user_idx: np.ndarray | int,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        candidates: np.ndarray | None = None,
        batch_size: int = 1024,
        scenario: int | str | np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """`Recommender.recommend` under ``scenario`` (None: the shared path)."""
        if scenario is None:
            return super().recommend(
                user_idx, k, exclude_seen=exclude_seen, candidates=candidates, batch_size=batch_size
            )
        user_idx = self._check_users(user_idx)
        ids = self.scenario_ids(scenario, len(user_idx))
        scores = self.score_all(user_idx, ids)
        if exclude_seen:
            r, c = self.backbone.seen_[user_idx].nonzero()
            scores[r, c] = -np.inf
        if candidates is not None:
            allowed = np.zeros(self.n_items, dtype=bool)
            allowed[np.asarray(candidates, dtype=np.int64)] = True
            scores[:, ~allowed] = -np.inf
        return top_k(scores, k)
