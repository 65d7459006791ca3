"""Composition of data, split, models and evaluation from typed configs.

The CLI is a thin shell over these functions, and users can call them from Python too.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from lmrec.config import DataConfig, ExperimentConfig, ModelConfig, SplitConfig
from lmrec.data import Dataset, Split, cold_item_split, kcore_filter, leave_one_out, ratio_split, temporal_split
from lmrec.data.catalog import _clean_text
from lmrec.models.base import MODEL_REGISTRY, Recommender

__all__ = [
    "assign_scenarios",
    "load_dataset",
    "make_model",
    "make_split",
    "recommend_for",
    "run_config",
    "run_demo",
    "train_bundle",
]

if TYPE_CHECKING:
    from lmrec.models.bundle import ModelBundle

log = logging.getLogger(__name__)


def assign_scenarios(dataset: Dataset, field: str, level: int = 0) -> Dataset:
    """Set each interaction's scenario from an interaction column or an item column.

    For list-valued item columns (``"A, B, C"`` or a list) element ``level`` is the scenario; items
    without a value get the scenario ``"unknown"``.

    Raises:
        ValueError: ``field`` is neither an interaction column nor an item column.
    """
    inter = dataset.interactions
    extra = inter.meta.get("columns", {})
    if field in extra:
        values = np.asarray(extra[field], dtype=object)
    elif dataset.items is not None and field in dataset.items.frame.columns:
        raw = dataset.items.aligned(inter.item_map)[field].tolist()
        per_item = np.asarray([_pick_level(v, level) for v in raw], dtype=object)
        values = per_item[inter.items]
    else:
        item_cols = list(dataset.items.frame.columns) if dataset.items is not None else []
        raise ValueError(
            f"scenario field {field!r} is neither an interaction column {sorted(extra)} nor an item column {item_cols}"
        )
    return dataset.with_interactions(replace(inter, scenarios=values.astype(str)))


def _pick_level(value: Any, level: int) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [_clean_text(v) for v in value]
    else:
        parts = [p.strip() for p in _clean_text(value).split(",")]
    parts = [p for p in parts if p]
    return parts[level] if level < len(parts) else "unknown"


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load ``cfg.source`` (bundled name, directory or YAML data config) and apply the config."""
    from lmrec import datasets

    kwargs: dict[str, Any] = {}
    if cfg.text_fields:
        kwargs["text_fields"] = list(cfg.text_fields)
    dataset = datasets.load(cfg.source, **kwargs)
    if cfg.kcore > 0:
        dataset = dataset.with_interactions(kcore_filter(dataset.interactions, cfg.kcore, cfg.kcore))
    if cfg.scenario_field:
        dataset = assign_scenarios(dataset, cfg.scenario_field, cfg.scenario_level)
    if cfg.template and dataset.items is not None:
        dataset.items.template = cfg.template  # read by models that build item text
    return dataset


def make_split(dataset: Dataset, cfg: SplitConfig) -> Split:
    """Split ``dataset.interactions`` as ``cfg`` says."""
    inter = dataset.interactions
    if cfg.kind == "loo":
        return leave_one_out(inter)
    if cfg.kind == "ratio":
        return ratio_split(inter, cfg.ratios, order="random", random_state=cfg.seed)
    if cfg.kind == "temporal":
        return temporal_split(inter, cfg.ratios)
    if cfg.kind == "cold-items":
        return cold_item_split(inter, cfg.cold_test_frac, cfg.cold_valid_frac, random_state=cfg.seed)
    if cfg.kind == "predefined":
        split = inter.meta.get("predefined_split")
        if split is None:
            raise ValueError(
                "split kind 'predefined' needs RecBole benchmark files (<name>.train.inter, .valid.inter, .test.inter) in the data directory"
            )
        return split
    raise ValueError(f"unknown split kind {cfg.kind!r}")


def make_model(cfg: ModelConfig, random_state: int | None = None) -> Recommender:
    """Instantiate a registered model; unknown names and unknown parameters are named in the error."""
    import lmrec.models  # noqa: F401  (registers the built-in models)

    cls = MODEL_REGISTRY.get(cfg.name)
    if cls is None:
        raise ValueError(f"unknown model {cfg.name!r}; available: {sorted(MODEL_REGISTRY)}")
    accepted = inspect.signature(cls.__init__).parameters
    unknown = [k for k in cfg.params if k not in accepted]
    if unknown:
        valid = sorted(p for p in accepted if p != "self")
        raise ValueError(f"model {cfg.name!r} has no parameter {unknown[0]!r}; valid: {valid}")
    params = dict(cfg.params)
    if "random_state" in accepted and "random_state" not in params and random_state is not None:
        params["random_state"] = random_state
    return cls(**params)


def run_config(
    cfg: ExperimentConfig, *, query_from: str | None = None, show_progress: bool = True
) -> dict[str, Any]:
    """Load, split, fit every model, evaluate with full ranking; returns the JSON-able result dict.

    With ``query_from``, models with a text space are also evaluated with a query built from each
    held-out item's ``query_from`` field (profile only, query only, query + profile).
    """
    from lmrec.eval import run_experiment

    dataset = load_dataset(cfg.data)
    split = make_split(dataset, cfg.split)
    models = {m.name: make_model(m, cfg.seed) for m in cfg.models}
    return run_experiment(
        models,
        dataset,
        split,
        ks=cfg.eval.ks,
        metrics=cfg.eval.metrics,
        protocol=cfg.eval.protocol,
        n_negatives=cfg.eval.n_negatives,
        batch_size=cfg.eval.batch_size,
        show_progress=show_progress,
    )


def train_bundle(model: Recommender, dataset: Dataset, *, seed: int = 2020) -> "ModelBundle":
    """Fit ``model`` for serving and wrap it with the catalogue and user texts.

    Models whose ``fit`` takes ``valid`` (early stopping) train on a leave-one-out split and then
    ``observe`` the held-out rows, so their history is complete; other models fit on everything.
    """
    from lmrec.models.bundle import ModelBundle

    if "valid" in inspect.signature(model.fit).parameters:
        split = leave_one_out(dataset.interactions)
        model.fit(dataset.with_interactions(split.train), valid=split)
        model.observe(split.valid)
        model.observe(split.test)
    else:
        model.fit(dataset)
    info = {"dataset": dataset.name, "model": model.model_name, "seed": seed, "n_interactions": len(dataset.interactions)}
    return ModelBundle(model, dataset.items, dataset.users, info)


def _titles(bundle: "ModelBundle", item_idx: np.ndarray) -> list[str]:
    catalog = bundle.catalog
    if catalog is None or not catalog.text_fields:
        return ["" for _ in item_idx]
    ids = bundle.model.item_map_.to_ids(item_idx)
    column = catalog.frame[catalog.text_fields[0]]
    return [_clean_text(column.get(i, "")) for i in ids]


def recommend_for(
    bundle: "ModelBundle", *, user_id: str | None = None, query: str | None = None, k: int = 10, query_weight: float = 0.5
) -> list[dict[str, Any]]:
    """Top-``k`` items for a known or unknown user, optionally steered by a query.

    Known user without query: the model's own ranking (seen items excluded). Query: the query vector
    (models with a text space only), blended with the user's vector when both are given. Unknown user
    without query: the most popular items. Never an IndexError for unknown ids.
    """
    from lmrec.models.base import top_k
    from lmrec.models.bundle import VectorRecommender

    model = bundle.model
    if k <= 0:
        raise ValueError(f"k must be positive, got {k}")
    uidx = model.user_map_.get(user_id) if user_id is not None else -1
    if query:
        if not isinstance(model, VectorRecommender):
            raise ValueError(f"model {model.model_name!r} has no text space for queries; train the 'lm' model")
        vec = model.encode_queries([query])[0]
        if uidx >= 0:
            user_vec = model.user_vectors(np.asarray([uidx]))[0]
            vec = query_weight * vec / max(np.linalg.norm(vec), 1e-12) + (1 - query_weight) * user_vec / max(
                np.linalg.norm(user_vec), 1e-12
            )
        scores = (model.item_vectors() @ vec)[None, :].astype(np.float32)
        if uidx >= 0:
            scores[0, model.seen_[uidx].indices] = -np.inf
        items, vals = top_k(scores, k)
    elif uidx >= 0:
        items, vals = model.recommend(np.asarray([uidx]), k)
    else:
        popularity = np.asarray(model.seen_.sum(axis=0)).ravel().astype(np.float32)
        items, vals = top_k(popularity[None, :], k)
    items, vals = items[0], vals[0]
    keep = items >= 0
    items, vals = items[keep], vals[keep]
    ids = model.item_map_.to_ids(items)
    return [
        {"item_id": str(i), "score": float(v), "title": t}
        for i, v, t in zip(ids, vals, _titles(bundle, items))
    ]


DEMO_MODELS: tuple[ModelConfig, ...] = (
    ModelConfig("pop"),
    ModelConfig("itemknn"),
    ModelConfig("ease"),
    ModelConfig("mf"),
    ModelConfig("sasrec"),
)


def run_demo(*, data: str = "ml-100k", out_dir: str | Path = "runs/demo", show_progress: bool = True) -> dict[str, Any]:
    """The main job: bundled data, leave-one-out by time, every baseline, full-ranking report."""
    from lmrec.eval.report import write_report

    cfg = ExperimentConfig(data=DataConfig(source=data), split=SplitConfig(kind="loo"), models=DEMO_MODELS)
    result = run_config(cfg, show_progress=show_progress)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result["report_files"] = [str(p) for p in write_report(result, out_dir / "report")]
    return result
