"""The main job, end to end on the embedded defaults: `lmrec demo` / ``bash scripts/demo.sh``.

1. Load the bundled MovieLens-100K (ratings, titles, genres, user attributes).
2. Leave-one-out split by time; fit the classic baselines and the language-model interest model
   (item text through the packaged all-MiniLM-L6-v2, users through their history and a profile
   sentence); evaluate all of them with full ranking and write ``report.{md,json,png}``.
3. Serve the fitted language-model model in-process on the embedded stack (SQLite event log and
   profiles, FAISS index) and walk through real-time personalisation: a user's list, the same list
   after a few live events, a natural-language query, and a brand-new item found from its text alone.
   The walk-through goes to ``serving.json``.

Nothing is downloaded; everything runs on the CPU. The epoch caps keep the whole job within a few
minutes on two cores (the benchmarks in ``benchmarks/`` train without them).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from lmrec.config import DataConfig, ExperimentConfig, ModelConfig, SplitConfig
from lmrec.eval import run_experiment
from lmrec.eval.report import write_report
from lmrec.models.bundle import ModelBundle
from lmrec.pipeline import load_dataset_and_split, make_model
from lmrec.serve import ServeSettings, create_app

__all__ = ["DEMO_MODELS", "run_demo", "serving_walkthrough"]

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


def run_demo(
    *, data: str = "ml-100k", out_dir: str | Path = "runs/demo", show_progress: bool = True, serve: bool = True
) -> dict[str, Any]:
    """Fit, evaluate and report every demo model, then (with ``serve``) the serving walk-through.

    Returns:
        The experiment's report dict, plus ``"serving"`` (the walk-through) and ``"report_files"``.
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
        k: list length.

    Returns:
        ``{"user": id, "before": [...], "after_events": [...], "query": ..., "with_query": [...],
        "new_item": ..., "new_item_rank_for_query": int | None, ...}`` with titles.
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
