"""The main job, end to end on the embedded defaults: `lmrec demo` / ``bash scripts/demo.sh``.

1. Load the bundled MovieLens-100K (ratings, titles, genres, user attributes).
2. Leave-one-out split by time; fit the classic baselines and the language-model interest model
   (item text through the packaged all-MiniLM-L6-v2, users through their history and a profile
   sentence); evaluate all of them with full ranking and write ``report.{md,json,png}``.
3. Serve the fitted language-model model in-process on the embedded stack (SQLite event log and
   profiles, FAISS index) and walk through real-time personalisation: a user's list, the same list
   after a few live events, a natural-language query, and a brand-new item found from its text alone.
   The walk-through goes to ``serving.json``. It also serves an anonymous session (five item ids, no
   user) through the model's own user tower and checks the answer against the offline model.
4. The cold-items view (`cold_items_view`): a second split holds whole items out of training, and the
   text models (``lm``, TF-IDF) and the ID-only ones rank them. An ID-only model knows nothing of an
   item without training interactions and gives all of them one score, so it ranks them by chance.
   The view goes to ``cold_items.{json,md}``.

Nothing is downloaded; everything runs on the CPU. The epoch caps keep the whole job within a few
minutes on two cores (the benchmarks in ``benchmarks/`` train without them).
"""

from __future__ import annotations

import inspect
import json
import logging
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
from fastapi.testclient import TestClient

from lmrec.config import DataConfig, ExperimentConfig, ModelConfig, SplitConfig
from lmrec.data import Dataset, cold_item_split
from lmrec.eval import evaluate, run_experiment
from lmrec.eval.report import write_report
from lmrec.models.base import Recommender
from lmrec.models.bundle import ModelBundle
from lmrec.pipeline import load_dataset_and_split, make_model
from lmrec.serve import ServeSettings, create_app

__all__ = [
    "COLD_VIEW_MODELS",
    "DEMO_MODELS",
    "TEXT_MODELS",
    "cold_items_view",
    "cold_view_markdown",
    "run_demo",
    "serving_walkthrough",
    "session_offline",
]

log = logging.getLogger(__name__)

#: the demo's models; the caps on the two neural models keep the job short (benchmarks run uncapped)
DEMO_MODELS: tuple[ModelConfig, ...] = (
    ModelConfig("pop"),
    ModelConfig("itemknn"),
    ModelConfig("ease"),
    ModelConfig("mf"),
    ModelConfig("sasrec", {"epochs": 30, "patience": 5, "show_progress": True}),
    ModelConfig("lm", {"max_len": 50, "lr": 3e-3, "epochs": 25, "patience": 5, "show_progress": True}),
)

#: the cold-items view's models: the text models and the ID-only baselines of the main table (SASRec,
#: ID-only too, is left out for time); the lm's epochs are capped lower than in the main table
COLD_VIEW_MODELS: tuple[ModelConfig, ...] = (
    ModelConfig("pop"),
    ModelConfig("itemknn"),
    ModelConfig("ease"),
    ModelConfig("mf"),
    ModelConfig("tfidf"),
    ModelConfig("lm", {"max_len": 50, "lr": 3e-3, "epochs": 8, "patience": 3, "show_progress": True}),
)
#: the models of the view that read item text (the others know items by their ID alone)
TEXT_MODELS = frozenset({"lm", "tfidf"})
#: largest random addition to a score in the view: breaks exact ties at random, reorders nothing else
TIE_BREAK = 1e-6

#: the live events of the walk-through: a user who rated mostly dramas starts clicking sci-fi
_DEMO_USER = "1"
_DEMO_EVENTS = (
    ("172", "click"),
    ("181", "click"),
    ("271", "purchase"),
)  # Empire Strikes Back, Return of the Jedi, Starship Troopers
_DEMO_QUERY = "a light-hearted animated film for children"
_DEMO_NEW_ITEM = (
    "demo-new-1",
    "Orbit Station Zero (2027). A lost space station drifts between stars. Sci-Fi, Adventure",
)
_DEMO_NEW_ITEM_QUERY = "a film about a lost space station drifting between stars"
#: an anonymous session, most recent last: Toy Story, The Lion King, Aladdin, Snow White, Cinderella
_DEMO_SESSION = ("1", "71", "95", "99", "418")


def run_demo(
    *,
    data: str = "ml-100k",
    out_dir: str | Path = "runs/demo",
    show_progress: bool = True,
    serve: bool = True,
    cold_view: bool = True,
) -> dict[str, Any]:
    """Fit, evaluate and report every demo model, then (with ``serve``) the serving walk-through and
    (with ``cold_view``) the cold-items view.

    Returns:
        The experiment's report dict, plus ``"serving"`` (the walk-through), ``"cold_items"`` (the
        view, see `cold_items_view`) and ``"report_files"``.
    """
    cfg = ExperimentConfig(data=DataConfig(source=data), split=SplitConfig(kind="loo"), models=DEMO_MODELS)
    dataset, split = load_dataset_and_split(cfg.data, cfg.split)
    models = {m.name: make_model(m, cfg.seed) for m in cfg.models}
    result = run_experiment(
        models, dataset, split, ks=cfg.eval.ks, metrics=cfg.eval.metrics, show_progress=show_progress
    )
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result["report_files"] = [str(p) for p in write_report(result, out_dir / "report")]
    if serve and "lm" in getattr(result, "runs", {}):
        walk = serving_walkthrough(result.runs["lm"].model, dataset, split, out_dir)
        (out_dir / "serving.json").write_text(json.dumps(walk, indent=2))
        result["serving"] = walk
        result["report_files"].append(str(out_dir / "serving.json"))
    if cold_view:
        cold_models = {m.name: make_model(m, cfg.seed) for m in COLD_VIEW_MODELS}
        view = cold_items_view(dataset, cold_models, seed=cfg.seed, show_progress=show_progress)
        (out_dir / "cold_items.json").write_text(json.dumps(view, indent=2))
        (out_dir / "cold_items.md").write_text(cold_view_markdown(view))
        result["cold_items"] = view
        result["report_files"] += [str(out_dir / "cold_items.json"), str(out_dir / "cold_items.md")]
    return result


def serving_walkthrough(
    model: Any,
    dataset: Any,
    split: Any,
    out_dir: Path,
    *,
    user: str = _DEMO_USER,
    events: tuple[tuple[str, str], ...] = _DEMO_EVENTS,
    query: str = _DEMO_QUERY,
    new_item: tuple[str, str] = _DEMO_NEW_ITEM,
    new_item_query: str = _DEMO_NEW_ITEM_QUERY,
    session: tuple[str, ...] = _DEMO_SESSION,
    k: int = 5,
) -> dict[str, Any]:
    """Serve ``model`` (fitted on ``split.train``, having observed valid) on SQLite + FAISS and show
    how live events, a query and a new item change the very next answer.

    Args:
        model, dataset, split: the fitted model and what it was fitted and evaluated on.
        out_dir: the bundle goes to ``out_dir/model``, the service state to ``out_dir/serve_state``.
        user: external id of the user of the walk-through.
        events: ``(item id, event type)`` pairs posted as that user's live events.
        query: a natural-language query blended with the user's profile.
        new_item: ``(item id, text)`` of an item added while serving.
        new_item_query: a query (no user) that should find the new item.
        session: item ids of an anonymous session (most recent last), served with ``session_items``
            and no user id, before the new item is added.
        k: list length.

    Returns:
        ``{"user": id, "before": [...], "after_events": [...], "query": ..., "with_query": [...],
        "session_items": [...], "session": [...], "session_strategy": ..., "session_offline": [ids],
        "session_matches_offline": bool | None, "new_item": ..., "new_item_rank_for_query": int | None,
        ...}`` with titles. ``session_offline`` is the top ``k`` of ``model.encode_users`` on the same
        items (None where the model has no ``encode_users``).
    """
    model.observe(split.test)  # the served model knows the whole history
    bundle = ModelBundle(model, dataset.items, dataset.users, {"dataset": dataset.name, "model": model.model_name})
    model_dir = bundle.save(out_dir / "model")
    state_dir = out_dir / "serve_state"
    for stale in state_dir.glob("*") if state_dir.exists() else ():
        if stale.is_file():
            stale.unlink()  # a rerun starts from an empty event log
    settings = ServeSettings(model_dir=model_dir, state_dir=state_dir)
    titles = dataset.items.frame["title"].astype(str).to_dict() if "title" in dataset.items.frame else {}

    def named(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "item_id": it["item_id"],
                "title": titles.get(it["item_id"], it["item_id"]),
                "score": round(float(it["score"]), 4),
            }
            for it in items
        ]

    walk: dict[str, Any] = {"user": user, "store": "sqlite", "index": settings.index}
    with TestClient(create_app(settings)) as client:

        def recommend(**body: Any) -> list[dict[str, Any]]:
            resp = client.post("/recommend", json={"k": k, **body})
            resp.raise_for_status()
            return named(resp.json()["items"])

        walk["before"] = recommend(user_id=user)
        posted = [
            {"event_id": f"demo-{i}", "user_id": user, "item_id": item, "type": kind}
            for i, (item, kind) in enumerate(events)
        ]
        resp = client.post("/events", json={"events": posted})
        resp.raise_for_status()
        walk["events"] = [
            {"item_id": e["item_id"], "title": titles.get(e["item_id"], e["item_id"]), "type": e["type"]}
            for e in posted
        ]
        walk["events_response"] = resp.json()
        walk["after_events"] = recommend(user_id=user)
        walk["query"] = query
        walk["with_query"] = recommend(user_id=user, query=query)
        resp = client.post("/recommend", json={"k": k, "session_items": list(session)})
        resp.raise_for_status()
        answer = resp.json()
        walk["session_items"] = [{"item_id": i, "title": titles.get(i, i)} for i in session]
        walk["session"] = named(answer["items"])
        walk["session_strategy"], walk["session_used"] = answer["strategy"], answer["used"]
        offline = session_offline(model, session, k)
        walk["session_offline"] = None if offline is None else offline[0]
        walk["session_matches_offline"] = None
        if offline is not None:
            served_ids = [it["item_id"] for it in answer["items"]]
            served_scores = np.asarray([it["score"] for it in answer["items"]], dtype=np.float64)
            walk["session_matches_offline"] = served_ids == offline[0]
            if served_ids == offline[0]:
                walk["session_max_score_diff"] = float(np.max(np.abs(served_scores - offline[1]), initial=0.0))
        new_id, new_text = new_item
        resp = client.put(f"/items/{new_id}", json={"text": new_text, "attributes": {"title": new_text.split(".")[0]}})
        resp.raise_for_status()
        titles[new_id] = new_text.split(".")[0]
        walk["new_item"] = {"item_id": new_id, "text": new_text}
        found = recommend(query=new_item_query)
        walk["new_item_query_results"] = found
        ranks = [i for i, it in enumerate(found) if it["item_id"] == new_id]
        walk["new_item_rank_for_query"] = ranks[0] + 1 if ranks else None
    return walk


def session_offline(model: Any, session: tuple[str, ...] | list[str], k: int) -> tuple[list[str], np.ndarray] | None:
    """What the offline model gives an anonymous session: ``model.encode_users`` on the session's
    items, scored against every item vector, the session's items left out.

    Returns:
        (the top ``k`` item ids, their (k,) scores), or None for a model without ``encode_users``.
    """
    encode = getattr(model, "encode_users", None)
    if encode is None:
        return None
    rows = model.item_map_.to_index(list(session), unknown="missing")
    rows = rows[rows >= 0]
    user_vec = np.asarray(encode([rows.tolist()])[0], dtype=np.float64)  # (d,)
    scores = np.asarray(model.item_vectors(), dtype=np.float64) @ user_vec  # (n_items,)
    scores[rows] = -np.inf
    top = np.argsort(-scores, kind="stable")[:k]
    return [str(i) for i in model.item_map_.to_ids(top)], scores[top]


class _RandomTies:
    """A model's scores plus a tiny random number per (user, item), drawn from ``(seed, user)``: equal
    scores (an ID-only model's for every item it never saw) are ordered at random for each user
    instead of by item index, and every model of the view gets the same draws."""

    def __init__(self, model: Recommender, seed: int) -> None:
        self.model, self.seed = model, seed

    def score_all(self, user_idx: np.ndarray) -> np.ndarray:
        scores = np.asarray(self.model.score_all(user_idx), dtype=np.float64)  # (n, n_items)
        for row, user in enumerate(np.asarray(user_idx).tolist()):
            scores[row] += np.random.default_rng([self.seed, user]).random(scores.shape[1]) * TIE_BREAK
        return scores


def _tied_share(model: Recommender, users: np.ndarray, pool: np.ndarray, history: sp.csr_matrix) -> float:
    """Share of ``users`` for whom ``model`` gives every ``pool`` item outside their history one score."""
    tied = counted = 0
    for start in range(0, len(users), 256):
        batch = users[start : start + 256]
        scores = np.asarray(model.score_all(batch), dtype=np.float64)[:, pool]  # (batch, len(pool))
        seen = history[batch][:, pool].toarray() > 0
        for row, mask in zip(scores, seen):
            left = row[~mask]
            if len(left):
                counted += 1
                tied += int(np.ptp(left) == 0.0)
    return tied / counted if counted else float("nan")


def _random_recall(history: sp.csr_matrix, users: np.ndarray, n_items: int, k: int, pool: np.ndarray | None) -> float:
    """Expected Recall@k of a uniformly random ranking of the items outside each user's history (of
    ``pool``, when given) for users whose relevant items are all candidates: min(k, c) / c."""
    if pool is None:
        candidates = n_items - history[users].getnnz(axis=1)
    else:
        candidates = len(pool) - history[users][:, pool].getnnz(axis=1)
    candidates = np.asarray(candidates, dtype=np.float64)
    return float(np.mean(np.minimum(k, candidates) / np.maximum(candidates, 1.0)))


def cold_items_view(
    dataset: Dataset,
    models: Mapping[str, Recommender],
    *,
    seed: int = 0,
    test_frac: float = 0.1,
    valid_frac: float = 0.1,
    k: int = 10,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Fit ``models`` on a cold-item split of ``dataset`` and measure how they rank items they never saw.

    The split (`lmrec.data.cold_item_split`) holds ``test_frac`` and ``valid_frac`` of the items out of
    training entirely: every interaction with a test item is a test row. Each model is fitted on the
    training rows (with the split as ``valid`` when its ``fit`` takes one: the lm early-stops and
    calibrates its cold-start paths there), then reads the validation rows as known history and is
    evaluated with full ranking, over all items and over the new items only (no training
    interaction). Exact score ties are broken at random (`TIE_BREAK`), not by item index, so a model
    that cannot tell new items apart scores as chance does.

    Args:
        dataset: the data set, with its item catalogue (the text models read it).
        models: name -> unfitted recommender; names in `TEXT_MODELS` are marked as reading text.
        seed: the split's and the tie break's seed.
        test_frac, valid_frac: shares of the items held out for test and validation.
        k: the cut-off.
        show_progress: log each model's fit.

    Returns:
        ``{"data", "k", "split": {...sizes}, "rows": {name: {"reads_text", "recall@k", "ndcg@k",
        "recall@k new items", "new_items_tied", "fit_s"}}, "random": {"recall@k", "recall@k new items"}}``;
        ``new_items_tied`` is the share of test users for whom the model gives all new items outside
        their history one score.
    """
    split = cold_item_split(dataset.interactions, test_frac, valid_frac, random_state=seed)
    n_items = split.train.n_items
    new_items = np.flatnonzero(split.train.item_counts() == 0)
    history = (split.train.to_csr("binary") + split.valid.to_csr("binary")).tocsr()
    users = np.unique(split.test.users)
    train = dataset.with_interactions(split.train)
    rows: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        started = time.perf_counter()
        if "valid" in inspect.signature(model.fit).parameters:
            model.fit(train, valid=split)  # type: ignore[call-arg]
        else:
            model.fit(train)
        fit_s = time.perf_counter() - started
        model.observe(split.valid)
        scorer = _RandomTies(model, seed)
        full = evaluate(scorer, split, phase="test", ks=(k,), metrics=("recall", "ndcg"))
        new = evaluate(scorer, split, phase="test", ks=(k,), metrics=("recall",), item_pool=new_items)
        rows[name] = {
            "reads_text": name in TEXT_MODELS,
            f"recall@{k}": full.metrics[f"recall@{k}"],
            f"ndcg@{k}": full.metrics[f"ndcg@{k}"],
            f"recall@{k} new items": new.metrics[f"recall@{k}"],
            "new_items_tied": _tied_share(model, users, new_items, history),
            "fit_s": round(fit_s, 1),
        }
        if show_progress:
            log.info("cold-items view: %s fitted in %.1fs, %s", name, fit_s, rows[name])
    return {
        "data": dataset.name,
        "k": k,
        "split": {
            "seed": seed,
            "test_items": int(len(np.unique(split.test.items))),
            "new_items": int(len(new_items)),
            "test_users": int(len(users)),
            **split.sizes(),
        },
        "rows": rows,
        "random": {
            f"recall@{k}": _random_recall(history, users, n_items, k, None),
            f"recall@{k} new items": _random_recall(history, users, n_items, k, new_items),
        },
    }


def cold_view_markdown(view: Mapping[str, Any]) -> str:
    """The cold-items view as a Markdown table with a short reading, ending in a newline."""
    k, sizes = view["k"], view["split"]
    lines = [
        f"Cold items ({view['data']}): {sizes['test_items']} test items never seen in training "
        f"({sizes['new_items']} items without a training interaction in all), {sizes['test_users']} test users",
        "",
        f"| model | reads | Recall@{k}, all items | NDCG@{k}, all items | Recall@{k}, new items only "
        "| new items tied |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, row in view["rows"].items():
        lines.append(
            f"| {name} | {'text' if row['reads_text'] else 'IDs only'} | {row[f'recall@{k}']:.4f} "
            f"| {row[f'ndcg@{k}']:.4f} | {row[f'recall@{k} new items']:.4f} | {row['new_items_tied']:.2f} |"
        )
    rnd = view["random"]
    lines += [
        f"| random (expected) | | {rnd[f'recall@{k}']:.4f} | | {rnd[f'recall@{k} new items']:.4f} | |",
        "",
        "An ID-only model knows nothing of an item without training interactions: it gives all of them one "
        "score (new items tied: the share of users for whom it does), so it orders them by chance (ties are "
        "broken at random) and ranks them below the items it knows wherever it scores those above zero.",
    ]
    return "\n".join(lines) + "\n"
