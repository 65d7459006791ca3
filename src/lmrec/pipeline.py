"""Composition of data, split, models and evaluation from typed configs.

The CLI is a thin shell over these functions, and users can call them from Python too.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

import lmrec.models  # noqa: F401  (registers the built-in models in MODEL_REGISTRY)
from lmrec.config import DataConfig, ExperimentConfig, ModelConfig, SplitConfig
from lmrec.data import Dataset, IdMap, Split, cold_item_split, kcore_filter, leave_one_out, ratio_split, temporal_split
from lmrec.data.kg import KnowledgeGraph
from lmrec.data.loaders import load_from_config, load_recbole_benchmark, set_text_fields
from lmrec.data.text import clean_text
from lmrec.eval import ExperimentResult, run_experiment
from lmrec.eval.query_eval import evaluate_with_queries
from lmrec.eval.stream import prequential
from lmrec.models.base import MODEL_REGISTRY, Recommender, top_k
from lmrec.models.bundle import ModelBundle, VectorRecommender

__all__ = [
    "TrainedBundle",
    "assign_scenarios",
    "exclude_users",
    "load_dataset",
    "load_dataset_and_split",
    "make_model",
    "make_split",
    "recommend_for",
    "run_config",
    "run_stream_config",
    "train_bundle",
]

log = logging.getLogger(__name__)


def assign_scenarios(dataset: Dataset, field: str, level: int = 0) -> Dataset:
    """Set each interaction's scenario from an item column (each interaction takes its item's value).

    For list-valued columns (``"A, B, C"`` or a list) element ``level`` is the scenario; items
    without a value get the scenario ``"unknown"``. Interaction columns are read by the loader
    (``load_recbole(..., scenario=field)``), see `load_dataset`.

    Raises:
        ValueError: ``field`` is not an item column.
    """
    inter = dataset.interactions
    if dataset.items is None or field not in dataset.items.frame.columns:
        item_cols = list(dataset.items.frame.columns) if dataset.items is not None else []
        inter_cols = sorted(inter.meta.get("recbole_types", {}))
        raise ValueError(
            f"scenario field {field!r} is neither an interaction column {inter_cols} nor an item column {item_cols}"
        )
    raw = dataset.items.aligned(inter.item_map)[field].tolist()
    per_item = np.asarray([_pick_level(v, level) for v in raw], dtype=object)
    return dataset.with_interactions(replace(inter, scenarios=per_item[inter.items].astype(str)))


def _pick_level(value: Any, level: int) -> str:
    if isinstance(value, (list, tuple, np.ndarray)):
        parts = [clean_text(v) for v in value]
    else:
        parts = [p.strip() for p in clean_text(value).split(",")]
    parts = [p for p in parts if p]
    return parts[level] if level < len(parts) else "unknown"


def load_dataset(cfg: DataConfig) -> Dataset:
    """Load the data ``cfg`` describes (see `lmrec.data.loaders.load_from_config`), then apply its
    scenario field and k-core filter.

    Raises:
        ValueError: a source that holds no supported data, an unknown text or scenario field (the
            message names the columns there are).
    """
    dataset = load_from_config(cfg)
    field = cfg.scenario_field
    if field:
        is_item_col = dataset.items is not None and field in dataset.items.frame.columns
        if not is_item_col and field in dataset.interactions.meta.get("recbole_types", {}):
            dataset = load_from_config(cfg, scenario=field)
        elif is_item_col:
            dataset = assign_scenarios(dataset, field, cfg.scenario_level)
        else:
            assign_scenarios(dataset, field, cfg.scenario_level)  # raises, naming the columns
    if cfg.kcore > 0:
        dataset = dataset.with_interactions(kcore_filter(dataset.interactions, cfg.kcore, cfg.kcore))
    return dataset


def exclude_users(dataset: Dataset, user_ids: Collection[str]) -> Dataset:
    """``dataset`` without the given users: their rows, their place in the user map, their texts and
    attributes (erased users must not reach the next model; see ``lmrec train --exclude-erased``).

    The remaining users keep their relative order (indices are dense again); the item map and the
    catalogue are unchanged, so an item only an excluded user met stays a (cold) item.

    Args:
        dataset: the loaded data.
        user_ids: external ids to drop; ids the data does not hold are ignored.

    Returns:
        A new `Dataset` (``dataset`` itself when no given id occurs in it).
    """
    drop = {str(u) for u in user_ids}
    inter = dataset.interactions
    users = dataset.users
    in_texts = users is not None and bool(users.texts["user_id"].isin(drop).any())
    in_attrs = users is not None and users.attributes is not None and bool(users.attributes.index.isin(drop).any())
    dropped = inter.user_map.to_index(sorted(drop), unknown="missing")
    dropped = dropped[dropped >= 0]
    if not dropped.size and not in_texts and not in_attrs:
        return dataset
    kept = inter.subset(~np.isin(inter.users, dropped))
    remaining = np.setdiff1d(np.arange(inter.n_users), dropped)  # ascending: the old relative order
    kept = kept.with_maps(IdMap(inter.user_map.to_ids(remaining)), inter.item_map)
    if users is not None:
        attrs = users.attributes
        users = replace(
            users,
            texts=users.texts[~users.texts["user_id"].isin(drop)],
            attributes=None if attrs is None else attrs[~attrs.index.isin(drop)],
        )
    return replace(dataset, interactions=kept, users=users)


def load_dataset_and_split(data: DataConfig, split: SplitConfig) -> tuple[Dataset, Split]:
    """`load_dataset` then `make_split`; ``predefined`` reads RecBole benchmark files instead.

    Raises:
        ValueError: ``predefined`` with a source that is not a directory of
            ``<name>.train.inter`` / ``.valid.inter`` / ``.test.inter`` files.
    """
    if split.kind != "predefined":
        dataset = load_dataset(data)
        return dataset, make_split(dataset, split)
    directory = Path(data.source) if isinstance(data.source, str) else Path()
    trains = sorted(directory.glob("*.train.inter")) if isinstance(data.source, str) and directory.is_dir() else []
    if not trains:
        raise ValueError(
            f"split 'predefined' needs RecBole benchmark files <name>.train.inter/.valid.inter/.test.inter in {data.source}"
        )
    name = trains[0].name[: -len(".train.inter")]
    dataset, parts = load_recbole_benchmark(directory, name)
    return set_text_fields(dataset, data.text_fields), parts


def make_split(dataset: Dataset, cfg: SplitConfig) -> Split:
    """Split ``dataset.interactions`` as ``cfg`` says (``predefined``: see `load_dataset_and_split`)."""
    inter = dataset.interactions
    if cfg.kind == "loo":
        return leave_one_out(inter)
    if cfg.kind == "ratio":
        return ratio_split(inter, cfg.ratios, order="random", random_state=cfg.seed)
    if cfg.kind == "temporal":
        return temporal_split(inter, cfg.ratios)
    if cfg.kind == "cold-items":
        return cold_item_split(inter, cfg.cold_test_frac, cfg.cold_valid_frac, random_state=cfg.seed)
    raise ValueError(f"split kind {cfg.kind!r} cannot be made from loaded interactions; use load_dataset_and_split")


def make_model(cfg: ModelConfig, random_state: int | None = None) -> Recommender:
    """Instantiate a registered model.

    A class with a ``from_params`` classmethod builds itself from the parameters (which may hold
    dotted component keys such as ``objective.loss``); any other class gets them as keyword arguments.
    ``random_state`` is added when the constructor takes it and ``cfg.params`` does not set it.

    Raises:
        ValueError: an unknown model name or an unknown parameter (the message names the valid ones).
    """
    cls = MODEL_REGISTRY.get(cfg.name)
    if cls is None:
        raise ValueError(f"unknown model {cfg.name!r}; available: {sorted(MODEL_REGISTRY)}")
    accepted = inspect.signature(cls.__init__).parameters
    params = dict(cfg.params)
    if "random_state" in accepted and "random_state" not in params and random_state is not None:
        params["random_state"] = random_state
    from_params = getattr(cls, "from_params", None)
    if from_params is not None:
        return from_params(params)
    unknown = [k for k in cfg.params if k not in accepted]
    if unknown:
        valid = sorted(p for p in accepted if p != "self")
        raise ValueError(f"model {cfg.name!r} has no parameter {unknown[0]!r}; valid: {valid}")
    return cls(**params)


def run_config(cfg: ExperimentConfig, *, query_from: str | None = None, show_progress: bool = True) -> dict[str, Any]:
    """Load, split, fit every model, evaluate with full ranking; returns the JSON-able result dict.

    With ``query_from``, models with a text space are also evaluated with a query built from each
    held-out item's ``query_from`` field (profile only, query only, query + profile).
    """
    dataset, split = load_dataset_and_split(cfg.data, cfg.split)
    models = {m.name: make_model(m, cfg.seed) for m in cfg.models}
    result = run_experiment(
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
    if query_from:
        _add_query_results(result, dataset, split, query_from)
    return result


def run_stream_config(
    cfg: ExperimentConfig, *, windows: int = 4, train_frac: float = 0.6, split_by: Literal["rows", "time"] = "rows"
) -> dict[str, Any]:
    """Streaming (prequential) evaluation of every configured model; see `lmrec.eval.stream.prequential`.

    Returns:
        ``{"protocol": "stream", "results": {model: {"stream": [one dict per window], "forgetting": ...,
        "initial": ..., "notes": [...]}}, ...}``, JSON-able.
    """
    dataset = load_dataset(cfg.data)
    ks = tuple(sorted(set(cfg.eval.ks) | {10}))
    results = {}
    for m in cfg.models:
        res = prequential(
            dataset,
            partial(make_model, m, cfg.seed),
            train_frac=train_frac,
            n_windows=windows,
            split_by=split_by,
            ks=ks,
            metrics=tuple(cfg.eval.metrics),
        )
        results[m.name] = res.to_dict()
    inter = dataset.interactions
    return {
        "protocol": "stream",
        "data": dataset.name,
        "n_users": inter.n_users,
        "n_items": inter.n_items,
        "n_interactions": len(inter),
        "settings": {
            "windows": windows,
            "train_frac": train_frac,
            "split_by": split_by,
            "ks": list(ks),
            "seed": cfg.seed,
        },
        "results": results,
    }


def _add_query_results(result: ExperimentResult, dataset: Dataset, split: Split, query_from: str) -> None:
    """Query-aware test figures for every model with a text space (profile, query, query+profile).

    The blend stays at its default: by now sequential models have observed the valid items, so tuning
    it on valid would leak (tune it before fitting with `lmrec.eval.query_eval.tune_blend`).
    """
    served = 0
    for name, run in result.runs.items():
        if isinstance(run.model, VectorRecommender):
            query = evaluate_with_queries(run.model, split, dataset, query_from, ks=(10,))
            result["results"][name]["query"] = query.to_dict()
            served += 1
    if not served:
        raise ValueError(f"--query-from {query_from!r} needs a model with a text space (e.g. lm) among --models")


@dataclass(eq=False)
class TrainedBundle(ModelBundle):
    """A `ModelBundle` that also saves the data set's knowledge graph, as ``DIR/kg``, where the service
    reads it (`lmrec.serve.related.ItemRelations.for_model`: ``/items/{id}/related``, complements,
    relation reasons); `ModelBundle.load` reads such a directory as any other."""

    kg: KnowledgeGraph | None = None

    def save(self, directory: str | Path) -> Path:
        out = super().save(directory)
        if self.kg is not None:
            self.kg.save(out / "kg")
        return out


def train_bundle(model: Recommender, dataset: Dataset, *, seed: int = 2020) -> TrainedBundle:
    """Fit ``model`` for serving and wrap it with the catalogue, user texts and knowledge graph.

    Models whose ``fit`` takes ``valid`` (early stopping) train on a leave-one-out split and then
    ``observe`` the held-out rows, so their history is complete; other models fit on everything.
    """
    fit: Callable[..., Recommender] = model.fit  # some models' fit also takes valid= (checked here)
    if "valid" in inspect.signature(fit).parameters:
        split = leave_one_out(dataset.interactions)
        fit(dataset.with_interactions(split.train), valid=split)
        model.observe(split.valid)
        model.observe(split.test)
    else:
        model.fit(dataset)
    info = {
        "dataset": dataset.name,
        "model": model.model_name,
        "seed": seed,
        "n_interactions": len(dataset.interactions),
    }
    return TrainedBundle(model, dataset.items, dataset.users, info, kg=dataset.kg)


def _titles(bundle: ModelBundle, item_idx: np.ndarray) -> list[str]:
    catalog = bundle.catalog
    if catalog is None or not catalog.text_fields:
        return ["" for _ in item_idx]
    ids = bundle.model.item_map_.to_ids(item_idx)
    column = catalog.frame[catalog.text_fields[0]]
    return [clean_text(column.get(i, "")) for i in ids]


def recommend_for(
    bundle: ModelBundle, *, user_id: str | None = None, query: str | None = None, k: int = 10, query_weight: float = 0.5
) -> list[dict[str, Any]]:
    """Top-``k`` items for a known or unknown user, optionally steered by a query.

    Known user without query: the model's own ranking (seen items excluded). Query: the query vector
    (models with a text space only), blended with the user's vector when both are given. Unknown user
    without query: the most popular items. Never an IndexError for unknown ids.
    """
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
    return [{"item_id": str(i), "score": float(v), "title": t} for i, v, t in zip(ids, vals, _titles(bundle, items))]
