"""Run several models through the same split and protocol, and keep everything needed to compare them.

``run_experiment`` fits each model on the training part only (the catalogue and user texts stay, so
content models can still read every item), times the fit, evaluates on valid, lets sequential models
``observe`` the valid interactions (RecBole's protocol: the valid item is part of the history a
sequential model reads at test time), then evaluates on test.

It returns an `ExperimentResult`: a ``dict`` (the JSON-able report) that also carries, on ``.runs``,
the fitted models and the full `EvalResult` objects (with per-user values for `paired_test`)::

    exp = run_experiment({"pop": Popularity(), "mf": MF()}, dataset, split)
    exp["results"]["pop"]["ndcg@10"]   # {"results": {"pop": {"ndcg@10": ..., "valid": {...}, ...}}, "split": ...}
    exp.runs["mf"].test.per_user       # per-user arrays
    exp.compare("mf", "pop")           # paired t-test / Wilcoxon on the primary metric
    write_report(exp, "out/ml100k")
"""

from __future__ import annotations

import copy
import inspect
import logging
import time
from dataclasses import dataclass
from typing import Any, Literal

from tqdm.auto import tqdm

from lmrec.data.dataset import Dataset
from lmrec.data.splits import Split
from lmrec.eval.evaluator import DEFAULT_METRICS, EvalResult, evaluate, paired_test
from lmrec.models.base import Recommender

__all__ = ["ExperimentResult", "ModelRun", "run_experiment"]

log = logging.getLogger(__name__)


@dataclass
class ModelRun:
    """One model's outcome in an experiment.

    Attributes:
        name: the key the model had in ``models``.
        model: the fitted model (after ``observe(split.valid)`` if it is sequential).
        fit_s: wall-clock seconds spent in ``fit``.
        test: the test-phase result.
        valid: the valid-phase result, or None when the split has no valid part (or it was skipped).
    """

    name: str
    model: Recommender
    fit_s: float
    test: EvalResult
    valid: EvalResult | None = None

    def to_json_dict(self) -> dict[str, Any]:
        """Test metrics at the top level, then ``valid``, ``fit_s`` and the test breakdowns (and
        ``privacy``, the (epsilon, delta) spent, for a model trained with differential privacy)."""
        spent = getattr(self.model, "privacy_report_", None)
        extra = {"privacy": dict(spent)} if spent else {}
        return {
            **{k: float(v) for k, v in self.test.metrics.items()},
            "valid": {k: float(v) for k, v in self.valid.metrics.items()} if self.valid is not None else {},
            "fit_s": float(self.fit_s),
            "n_eval_users": int(self.test.n_users),
            "primary": self.test.primary,
            "by_scenario": self.test.by_scenario,
            "by_user_group": self.test.by_user_group,
            **extra,
        }


class ExperimentResult(dict):
    """The report dictionary itself, plus the objects behind it.

    As a ``dict`` it holds ``{"results": {name: {...}}, "split", "n_users", "n_items", "n_interactions",
    "sizes", "settings"}``, JSON-able as is (callers may add keys, e.g. a wall time). The attribute
    ``runs`` keeps each model's `ModelRun` (fitted model, `EvalResult` objects with per-user values),
    which never enters the dictionary.

    Attributes:
        runs: model name -> `ModelRun`, in the order the models were given.
    """

    def __init__(
        self,
        runs: dict[str, ModelRun],
        *,
        split: str,
        n_users: int,
        n_items: int,
        n_interactions: int,
        sizes: dict[str, int] | None = None,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(
            results={name: run.to_json_dict() for name, run in runs.items()},
            split=split,
            n_users=int(n_users),
            n_items=int(n_items),
            n_interactions=int(n_interactions),
            sizes=dict(sizes or {}),
            settings=dict(settings or {}),
        )
        self.runs = runs

    @property
    def results(self) -> dict[str, dict[str, Any]]:
        """model name -> JSON-able results (``self["results"]``)."""
        return self["results"]

    def to_json_dict(self) -> dict[str, Any]:
        """A plain-dict deep copy of the report dictionary."""
        return copy.deepcopy(dict(self))

    def compare(self, model_a: str, model_b: str, metric: str | None = None) -> dict[str, float | str]:
        """`paired_test` of two models' test results (``metric`` defaults to the primary one)."""
        for name in (model_a, model_b):
            if name not in self.runs:
                raise KeyError(f"no model {name!r} in this experiment; it has {list(self.runs)}")
        a, b = self.runs[model_a].test, self.runs[model_b].test
        return paired_test(a, b, metric or a.primary)


def _accepts_valid(model: Recommender) -> bool:
    """Whether ``model.fit`` takes a ``valid`` keyword (models that early-stop on the split)."""
    try:
        params = inspect.signature(model.fit).parameters
    except (TypeError, ValueError):
        return False
    return "valid" in params


def run_experiment(
    models: dict[str, Recommender],
    dataset: Dataset,
    split: Split,
    *,
    ks: tuple[int, ...] = (10,),
    metrics: tuple[str, ...] = DEFAULT_METRICS,
    protocol: Literal["full", "sampled"] = "full",
    n_negatives: int = 100,
    random_state: int | None = 0,
    batch_size: int = 256,
    user_groups: tuple[int, ...] = (5, 20),
    evaluate_valid: bool = True,
    primary: str | None = None,
    show_progress: bool = False,
) -> ExperimentResult:
    """Fit and evaluate each model on one split.

    Models are fitted in place (each must be a fresh, unfitted estimator). A model whose ``fit``
    has a ``valid`` parameter is called as ``fit(train_dataset, valid=split)`` so it can early-stop on
    ``split.valid``; others as ``fit(train_dataset)``.

    Args:
        models: name -> recommender.
        dataset: the full data set; only its interactions are replaced by ``split.train`` for fitting.
        split: train / valid / test over the data set's id maps.
        ks, metrics, protocol, n_negatives, random_state, batch_size, user_groups, primary: passed to
            `evaluate`.
        evaluate_valid: also evaluate on ``split.valid`` (skipped anyway when it is empty).
        show_progress: progress bars over models and users.

    Returns:
        An `ExperimentResult` (the report dict, with ``.runs`` holding models and `EvalResult` objects).
    """
    if not models:
        raise ValueError("run_experiment needs at least one model")
    if split.train.item_map != dataset.interactions.item_map:
        raise ValueError("run_experiment: split.train uses a different item map from dataset.interactions")
    eval_kwargs: dict[str, Any] = dict(
        ks=tuple(ks),
        metrics=tuple(metrics),
        protocol=protocol,
        n_negatives=n_negatives,
        random_state=random_state,
        batch_size=batch_size,
        user_groups=tuple(user_groups),
        primary=primary,
        show_progress=show_progress,
    )
    train_dataset = dataset.with_interactions(split.train)
    runs: dict[str, ModelRun] = {}
    for name, model in tqdm(models.items(), desc="models", disable=not show_progress):
        log.info("fitting %s (%s) on %d training interactions", name, type(model).__name__, len(split.train))
        start = time.perf_counter()
        if _accepts_valid(model):
            model.fit(train_dataset, valid=split)
        else:
            model.fit(train_dataset)
        fit_s = time.perf_counter() - start

        valid_result = None
        if evaluate_valid and len(split.valid):
            valid_result = evaluate(model, split, phase="valid", **eval_kwargs)
        if model.is_sequential and len(split.valid):
            model.observe(split.valid)
        test_result = evaluate(model, split, phase="test", **eval_kwargs)
        runs[name] = ModelRun(name, model, fit_s, test_result, valid_result)
        log.info("%s: fit %.2fs, test %s=%.4f", name, fit_s, test_result.primary, test_result.primary_value)

    inter = dataset.interactions
    settings = {k: (list(v) if isinstance(v, tuple) else v) for k, v in eval_kwargs.items() if k != "show_progress"}
    settings["primary"] = next(iter(runs.values())).test.primary  # as resolved by evaluate
    return ExperimentResult(
        runs,
        split=split.name,
        n_users=inter.n_users,
        n_items=inter.n_items,
        n_interactions=len(inter),
        sizes=split.sizes(),
        settings=settings,
    )
