"""Multi-scenario benchmark of ``lm-scenario`` (shared backbone + per-scenario adapters).

Parts (leave-one-out by time, full ranking, test after observing valid, @10):

- ``joint``: Amazon Office with scenario = the item's top-level category (``categories`` level 0:
  Office & School Supplies / Office Electronics / Office Furniture & Lighting; the six tiny others,
  122 interactions together, are pooled as "Other"). The joint model (lm-scenario) against one lm
  model per scenario (trained on that scenario's interactions, ranking that scenario's items) and
  one lm model that ignores scenarios (raw, and with its ranking restricted to the scenario's items).
- ``new``: Office Electronics held out; a shared model is trained on the other scenarios, then the
  held-out scenario is learned by adapter-only training and by full fine-tuning.
- ``new_lr``: part ``new``'s adapter-only training again with a higher learning rate.
- ``new_text``: part ``new``'s adapter-only training with the adapter's text-path correction
  (rank ``--text-rank``, default 32; lr ``--text-lr``, default 5e-3; ``--text-epochs``,
  ``--text-patience``), on the shared model saved by part ``new``; compared with part ``new``'s full
  fine-tuning. ``--text-history`` reads the users' histories through the corrected items;
  ``--id-rank R`` adds the adapter's rank-R item-ID residual for the scenario's items.
- ``cross_sub``: part ``cross``'s 10 % point again for another draw of the ML-100K training users
  (``--seeds`` picks the draw; the source is always the seed-0 joint Office model): full fine-tuning
  against scratch, so the 10 % comparison is not one draw of 94 users.
  ``--cross-fraction`` (default 0.1), ``--cross-lr`` (default 1e-3) and ``--cross-anchor`` (L2-SP
  toward the Office weights, default 0) set the share of users and the fine-tuning, ``--cross-reset``
  (comma-separated parts: ``user_tower``, ``adaptor``) the parts of the Office network re-initialised
  before it, ``--cross-source text`` fine-tunes part ``joint_text``'s model instead of part
  ``joint``'s; the scratch model of a draw is fitted once and kept as ``cross_scratch*_s<draw>.json``
  (part ``cross_scratch`` fits it alone, without the Office model). At ``--cross-fraction 1.0`` every
  draw has the same users, so the draw seeds the fine-tune. ``--cross-summary`` tabulates every
  setting run against scratch and plots it.
- ``joint_compare``: part ``joint``'s joint model (loss weights ``--joint-weights``: ``balanced`` or
  ``none``) against the scenario-blind lm, raw and ranking only the scenario's items, without the
  per-scenario models; with ``--epochs`` / ``--patience`` for early-stopped fits. ``--joint-summary``
  tabulates it over seeds.
- ``joint_text``: part ``joint``'s joint model with text-only items (no item-ID part), saved as a
  cross-domain source.
- ``cross``: the joint Office model moved to MovieLens-100K (other users and items; item text is the
  bridge) and adapted on 10% / 100% of the ML-100K training users, against the same architecture
  trained from scratch on the same users.

``--epochs`` / ``--patience`` (default 15 / 3) cap every lm fit of every part. Each part's figures go
to ``benchmarks/out/scenario/<part>_s<seed>.json`` (``--runs DIR`` elsewhere; a part whose file exists
is skipped, so a run on a shared CPU can be resumed); ``--report`` writes
``benchmarks/results/scenario.md`` (its closing notes are ``benchmarks/results/scenario_notes.md``,
written by hand after reading the tables) and ``benchmarks/out/scenario_data_efficiency.png``.

Usage (``nice`` on a shared machine)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/scenario_bench.py joint new new_lr cross --seeds 0
    python benchmarks/scenario_bench.py new_text --text-history --text-epochs 30 --seeds 0 1 2
    python benchmarks/scenario_bench.py --report
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import common
import numpy as np

OUT = common.OUT
CACHE = common.EMBED_CACHE
RESULTS_MD = common.RESULTS_DIR / "scenario.md"
NOTES_MD = common.RESULTS_DIR / "scenario_notes.md"
MAIN = ("Office & School Supplies", "Office Electronics", "Office Furniture & Lighting")
HELD_OUT = "Office Electronics"
METRICS = ("ndcg", "recall", "hit")

log = logging.getLogger("scenario_bench")

#: shared settings (lm_bench's Office settings; epochs and patience come from Knobs, capped for a 2-core box)
BASE: dict[str, Any] = {"max_len": 50, "dropout": 0.3, "num_threads": 1, "cache_dir": str(CACHE)}
ADAPT_LR = {"adapter": 5e-3, "full": 1e-3}


@dataclass(frozen=True)
class Knobs:
    """The command-line settings of the parts (see ``--help``); the defaults are the first runs'."""

    runs: Path = OUT / "scenario"
    office: Path | None = None
    epochs: int = 15
    patience: int = 3
    #: part joint_compare's loss weights per scenario: "balanced" (part joint's) or "none" (every row the same)
    joint_weights: str = "balanced"
    text_rank: int = 32
    text_lr: float = 5e-3
    text_epochs: int = 15
    text_patience: int = 3
    #: correct the items users' histories read too
    text_history: bool = False
    #: rank of the adapter's item-ID residual (0: none)
    id_rank: int = 0
    #: part cross_sub's fine-tuning: share of the ML-100K training users, lr, L2-SP pull toward the Office weights
    cross_fraction: float = 0.1
    cross_lr: float = ADAPT_LR["full"]
    cross_anchor: float = 0.0
    #: the Office model fine-tuned: the joint model of part ``joint`` ("hybrid") or of part ``joint_text`` ("text")
    cross_source: str = "hybrid"
    #: parts of the Office network re-initialised before the fine-tune (user_tower, adaptor)
    cross_reset: tuple[str, ...] = ()

    @property
    def lm_base(self) -> dict[str, Any]:
        """The lm settings every part's fits share."""
        return {
            "max_len": BASE["max_len"],
            "dropout": BASE["dropout"],
            "epochs": self.epochs,
            "patience": self.patience,
            "num_threads": BASE["num_threads"],
            "cache_dir": BASE["cache_dir"],
        }


# ---------------------------------------------------------------------- data
def office(k: Knobs):
    """Office with scenarios: categories level 0, the tiny ones pooled as "Other"."""
    from lmrec.pipeline import assign_scenarios

    data = assign_scenarios(common.load_data("office", k.office), "categories", 0)
    scen = data.interactions.scenarios.astype(str)
    scen = np.where(np.isin(scen, MAIN), scen, "Other").astype(object)
    return data.with_interactions(replace(data.interactions, scenarios=scen))


def item_scenarios(data) -> np.ndarray:
    """(n_items,) scenario of each item (every item's interactions share its category)."""
    inter = data.interactions
    out = np.full(inter.n_items, "Other", dtype=object)
    out[inter.items] = inter.scenarios
    return out


def restrict(split, keep):
    from lmrec.data import Split

    return Split(
        split.train.subset(keep(split.train)),
        split.valid.subset(keep(split.valid)),
        split.test.subset(keep(split.test)),
        split.name,
    )


class ScenarioFilter:
    """Any model, ranking only the items of each user's scenario (scenario-aware for the evaluator)."""

    is_scenario_aware = True

    def __init__(self, model, names: list[str], item_scen: np.ndarray) -> None:
        self.model, self.scenario_names_ = model, list(names)
        self.masks = [item_scen != n for n in names]

    def score_all(self, users, scenario=None):
        aware = getattr(self.model, "is_scenario_aware", False)
        ids = np.asarray(scenario)
        if aware:
            lookup = [
                self.model.scenario_names_.index(n) if n in self.model.scenario_names_ else -1
                for n in self.scenario_names_
            ]
            scores = self.model.score_all(users, scenario=np.array([lookup[i] if i >= 0 else -1 for i in ids]))
        else:
            scores = self.model.score_all(users)
        scores = np.array(scores, dtype=np.float32, copy=True)
        for row, s in enumerate(ids):
            if s >= 0:
                scores[row, self.masks[s]] -= 1e4  # below every in-scenario item, still finite
        return scores


def evaluate_test(model, split, ks=(10,)):
    from lmrec.eval import evaluate

    res = evaluate(model, split, phase="test", ks=ks, metrics=METRICS, user_groups=())
    return {"overall": res.metrics, "by_scenario": res.by_scenario}


def fit_eval(model, data, split, *, observe=None):
    """Fit on split.train with early stopping on split.valid, observe valid, return (record, model)."""
    with common.Timer() as timer:
        model.fit(data.with_interactions(split.train), valid=split)
    fit_s = timer.seconds
    model.observe(observe if observe is not None else split.valid)
    return {"fit_s": fit_s, "epochs_run": len(model.train_history_)}, model


def lm(seed: int, k: Knobs, **kw):
    return common.make_lm({**k.lm_base, **kw}, seed)


def lm_scenario(seed: int, k: Knobs, **kw):
    return common.make_lm({**k.lm_base, **kw}, seed, name="lm-scenario")


def n_params(model) -> int:
    return int(sum(p.numel() for p in model.net_.parameters()))


# ---------------------------------------------------------------------- parts
def part_joint_text(seed: int, k: Knobs) -> dict[str, Any]:
    """Part ``joint``'s model with text-only items (no item-ID part), as a cross-domain source."""
    from lmrec.data import leave_one_out

    data = office(k)
    split = leave_one_out(data.interactions)
    rec, model = fit_eval(lm_scenario(seed, k, scenario_weights="balanced", item_repr="text"), data, split)
    model.save(k.runs / f"office_joint_text_s{seed}")
    out = {**rec, **evaluate_test(model, split), "params": n_params(model)}
    log.info("joint, text-only items: %s", out["overall"])
    return out


def part_joint_compare(seed: int, k: Knobs) -> dict[str, Any]:
    """Part ``joint``'s joint model against the scenario-blind lm, both also ranking only the user's
    scenario's items, without the per-scenario models; epochs and patience from ``--epochs`` / ``--patience``."""
    from lmrec.data import leave_one_out

    data = office(k)
    split = leave_one_out(data.interactions)
    names, iscen = [*MAIN, "Other"], item_scenarios(data)
    weights = None if k.joint_weights == "none" else k.joint_weights
    out: dict[str, Any] = {"scenario_weights": k.joint_weights, "epochs": k.epochs, "patience": k.patience}
    # the scenario-blind model does not depend on the weights: fitted once per seed and budget, then read back
    blind = k.runs / f"joint_compare_ignore_e{k.epochs}_p{k.patience}_s{seed}.json"
    for label in ("joint", "ignore"):
        if label == "ignore" and blind.exists():
            out.update(json.loads(blind.read_text()))
            break
        model = lm_scenario(seed, k, scenario_weights=weights) if label == "joint" else lm(seed, k)
        rec, model = fit_eval(model, data, split)
        out[label] = {**rec, **evaluate_test(model, split), "params": n_params(model)}
        out[f"{label}+filter"] = evaluate_test(ScenarioFilter(model, names, iscen), split)
        log.info(
            "%s: %s; ranking the scenario's items: %s", label, out[label]["overall"], out[f"{label}+filter"]["overall"]
        )
    if not blind.exists():
        blind.write_text(json.dumps({k: out[k] for k in ("ignore", "ignore+filter")}, indent=2, default=float))
    return out


def part_joint(seed: int, k: Knobs) -> dict[str, Any]:
    from lmrec.data import leave_one_out

    data = office(k)
    split = leave_one_out(data.interactions)
    names = [*MAIN, "Other"]
    iscen = item_scenarios(data)
    out: dict[str, Any] = {
        "sizes": {n: int((data.interactions.scenarios == n).sum()) for n in names},
        "items": {n: int((iscen == n).sum()) for n in names},
    }
    rec, joint = fit_eval(lm_scenario(seed, k, scenario_weights="balanced"), data, split)
    out["joint"] = {**rec, **evaluate_test(joint, split), "params": n_params(joint)}
    out["joint+filter"] = evaluate_test(ScenarioFilter(joint, names, iscen), split)
    joint.save(k.runs / f"office_joint_s{seed}")
    log.info("joint: %s", out["joint"]["overall"])
    rec, single = fit_eval(lm(seed, k), data, split)
    out["ignore"] = {**rec, **evaluate_test(single, split), "params": n_params(single)}
    out["ignore+filter"] = evaluate_test(ScenarioFilter(single, names, iscen), split)
    log.info("ignore: %s", out["ignore"]["overall"])
    out["per_scenario"] = {}
    for name in MAIN:
        part = restrict(split, lambda i, n=name: i.scenarios == n)
        model = lm(seed, k)
        rec, model = fit_eval(model, data, part, observe=part.valid)
        res = evaluate_test(ScenarioFilter(model, names, iscen), split)  # masking uses the full history
        raw = evaluate_test(model, split)  # ranking the whole catalogue, as the joint model does
        out["per_scenario"][name] = {
            **rec,
            "by_scenario": {name: res["by_scenario"][name]},
            "raw_by_scenario": {name: raw["by_scenario"][name]},
            "params": n_params(model),
        }
        log.info("per-scenario %s: %s", name, res["by_scenario"][name])
    return out


def part_new(seed: int, k: Knobs) -> dict[str, Any]:
    from lmrec.data import leave_one_out
    from lmrec.models import load_model

    data = office(k)
    split = leave_one_out(data.interactions)
    rest = restrict(split, lambda i: i.scenarios != HELD_OUT)
    shared = lm_scenario(seed, k, scenario_weights="balanced")
    with common.Timer() as timer:
        shared.fit(data.with_interactions(rest.train), valid=rest)
    out: dict[str, Any] = {"shared_fit_s": timer.seconds, "shared_params": n_params(shared)}
    path = shared.save(k.runs / f"office_shared_wo_electronics_s{seed}")
    train_all = data.with_interactions(split.train)
    for mode in ("adapter", "full"):
        model = load_model(path)
        report = model.adapt(train_all, HELD_OUT, valid=split, mode=mode, lr=ADAPT_LR[mode])
        model.observe(split.valid)
        res = evaluate_test(model, split)
        out[mode] = {**report, "test": res["by_scenario"][HELD_OUT]}
        log.info("new scenario, %s: %s", mode, out[mode])
    # zero-shot: the shared path of the model without the scenario, on the same users
    probe = load_model(path)
    probe.backbone.set_histories(split.train)
    probe.seen_ = split.train.to_csr("binary")
    probe.observe(split.valid)
    out["shared_only"] = {"test": evaluate_test(probe, split)["by_scenario"][HELD_OUT]}
    return out


def readapt(part: str, seed: int, k: Knobs, **adapt_args: Any) -> dict[str, Any]:
    """Adapter-only training of part ``new``'s shared model again, with other ``adapt`` arguments."""
    from lmrec.data import leave_one_out
    from lmrec.models import load_model

    path = k.runs / f"office_shared_wo_electronics_s{seed}"
    if not (path / "config.json").exists():
        raise SystemExit(f"part {part!r} needs the shared model of part 'new' at {path}")
    data = office(k)
    split = leave_one_out(data.interactions)
    model = load_model(path)
    report = model.adapt(data.with_interactions(split.train), HELD_OUT, valid=split, mode="adapter", **adapt_args)
    model.observe(split.valid)
    return {**report, "test": evaluate_test(model, split)["by_scenario"][HELD_OUT]}


def part_new_lr(seed: int, k: Knobs) -> dict[str, Any]:
    """Adapter-only training of part ``new`` again with a higher learning rate and more epochs."""
    out = {"adapter": {**readapt("new_lr", seed, k, lr=2e-2, epochs=30, patience=4), "lr": 2e-2}}
    log.info("new scenario, adapter lr 2e-2: %s", out["adapter"])
    return out


def part_new_text(seed: int, k: Knobs) -> dict[str, Any]:
    """Adapter-only training of part ``new`` with the text-path correction (rank ``--text-rank``)."""
    res = readapt(
        "new_text",
        seed,
        k,
        lr=k.text_lr,
        text_rank=k.text_rank,
        epochs=k.text_epochs,
        patience=k.text_patience,
        text_history=k.text_history,
        id_rank=k.id_rank,
    )
    out = {"adapter": {**res, "lr": k.text_lr, "max_epochs": k.text_epochs, "patience": k.text_patience}}
    log.info("new scenario, adapter + text rank %d: %s", k.text_rank, out["adapter"])
    return out


def movielens(fraction: float, seed: int):
    """ML-100K with one scenario "movielens", its loo split, and the training users kept."""
    from lmrec.data import Split, leave_one_out
    from lmrec.datasets import load

    data = load("ml-100k")
    inter = data.interactions
    data = data.with_interactions(replace(inter, scenarios=np.full(len(inter), "movielens", dtype=object)))
    split = leave_one_out(data.interactions)
    rng = np.random.default_rng(seed)
    n_users = data.interactions.n_users
    chosen = np.sort(rng.choice(n_users, size=max(1, int(round(fraction * n_users))), replace=False))
    keep = lambda part: np.isin(part.users, chosen)  # noqa: E731
    sub = Split(
        split.train.subset(keep(split.train)),
        split.valid.subset(keep(split.valid)),
        split.test.subset(np.zeros(0, np.int64)),
        "sub",
    )
    rest = split.train.subset(~keep(split.train))
    return data, split, sub, rest, int(len(chosen))


def _joint_source(runs: Path, seed: int, part: str, item_repr: str = "hybrid") -> Path:
    maker = "joint" if item_repr == "hybrid" else f"joint_{item_repr}"
    source = runs / f"office_{maker}_s{seed}"
    if not (source / "config.json").exists():
        raise SystemExit(f"part {part!r} needs the joint Office model of part {maker!r} (seed {seed}) at {source}")
    return source


def _cross_adapted(source: Path, data, split, sub, rest, **adapt_args: Any) -> dict[str, Any]:
    """The Office model moved to ML-100K and adapted on ``sub``; its adapt report and test figures."""
    from lmrec.models import load_model

    model = load_model(source)
    lr = ADAPT_LR[adapt_args.get("mode", "adapter")]
    report = model.adapt(data.with_interactions(sub.train), "movielens", valid=sub, lr=lr, **adapt_args)
    model.observe(rest)
    model.observe(split.valid)
    return {**report, "test": evaluate_test(model, split)["overall"]}


def _cross_scratch(seed: int, k: Knobs, data, split, sub, rest) -> dict[str, Any]:
    """The same architecture trained from random weights on ``sub``."""
    scratch = lm_scenario(seed, k, use_user_text=False)
    with common.Timer() as timer:
        scratch.fit(data.with_interactions(sub.train), valid=sub)
    fit_s = timer.seconds
    scratch.observe(rest)
    scratch.observe(split.valid)
    return {
        "fit_s": fit_s,
        "epochs_run": len(scratch.train_history_),
        "trainable_params": n_params(scratch),
        "test": evaluate_test(scratch, split)["overall"],
    }


def part_cross(seed: int, k: Knobs) -> dict[str, Any]:
    source = _joint_source(k.runs, seed, "cross")
    out: dict[str, Any] = {}
    for fraction in (0.1, 1.0):
        data, split, sub, rest, n_chosen = movielens(fraction, seed)
        row: dict[str, Any] = {"n_train_users": n_chosen, "n_train_interactions": int(len(sub.train))}
        variants = (("adapter", {}), ("adapter+ids", {"new_item_ids": True}), ("full fine-tune", {"mode": "full"}))
        for variant, kw in variants:
            row[variant] = _cross_adapted(source, data, split, sub, rest, **kw)
            log.info("cross %.0f%% %s: %s", 100 * fraction, variant, row[variant]["test"])
        row["scratch"] = _cross_scratch(seed, k, data, split, sub, rest)
        log.info("cross %.0f%% scratch: %s", 100 * fraction, row["scratch"]["test"])
        out[str(fraction)] = row
    return out


def _scratch_path(seed: int, k: Knobs) -> Path:
    frac = "" if k.cross_fraction == 0.1 else f"_f{k.cross_fraction:g}"
    return k.runs / f"cross_scratch{frac}_s{seed}.json"


def part_cross_scratch(seed: int, k: Knobs) -> dict[str, Any]:
    """Part cross_sub's scratch model alone (no Office model needed); cross_sub reads it back."""
    data, split, sub, rest, n_chosen = movielens(k.cross_fraction, seed)
    return {"n_train_users": n_chosen, "fraction": k.cross_fraction, **_cross_scratch(seed, k, data, split, sub, rest)}


def part_cross_sub(seed: int, k: Knobs) -> dict[str, Any]:
    from lmrec.models import load_model

    source = _joint_source(k.runs, 0, "cross_sub", k.cross_source)
    data, split, sub, rest, n_chosen = movielens(k.cross_fraction, seed)
    cached = _scratch_path(seed, k)  # the scratch model is seeded: one fit serves every fine-tuning variant
    if cached.exists():
        scratch = json.loads(cached.read_text())
        scratch.pop("wall_s", None)
    else:
        scratch = _cross_scratch(seed, k, data, split, sub, rest)
        cached.write_text(
            json.dumps({"n_train_users": n_chosen, "fraction": k.cross_fraction, **scratch}, indent=2, default=float)
        )
    model = load_model(source)
    if k.cross_fraction == 1.0:  # every draw trains on the same users, so the draw seeds the fine-tune instead
        model.random_state = seed
    report = model.adapt(
        data.with_interactions(sub.train),
        "movielens",
        valid=sub,
        lr=k.cross_lr,
        mode="full",
        anchor=k.cross_anchor,
        reset=k.cross_reset,
    )
    model.observe(rest)
    model.observe(split.valid)
    tuned = {**report, "test": evaluate_test(model, split)["overall"]}
    out: dict[str, Any] = {
        "n_train_users": n_chosen,
        "n_train_interactions": int(len(sub.train)),
        "fraction": k.cross_fraction,
        "lr": k.cross_lr,
        "anchor": k.cross_anchor,
        "reset": list(k.cross_reset),
        "source": k.cross_source,
        "full fine-tune": tuned,
        "scratch": scratch,
    }
    log.info(
        "cross_sub draw %d: full fine-tune %.4f, scratch %.4f",
        seed,
        out["full fine-tune"]["test"]["ndcg@10"],
        out["scratch"]["test"]["ndcg@10"],
    )
    return out


def _f(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _main_overall(by: dict[str, dict[str, float]], key: str = "ndcg@10") -> float:
    """n_users-weighted mean over the three main scenarios (each LOO user is in exactly one)."""
    rows = [by[n] for n in MAIN if n in by]
    return sum(r[key] * r["n_users"] for r in rows) / max(1, sum(r["n_users"] for r in rows))


def _mean(values: list[float]) -> float | None:
    return float(np.mean(values)) if values else None


def write_report(runs: Path, md_path: Path, png_path: Path) -> None:
    """Markdown tables (mean over the seeds found) and the data-efficiency plot from the part files."""
    lines = [
        "# Multi-scenario learning (lm-scenario)",
        "",
        "Machine: 2-core dev box, shared with other jobs (timings are indicative). Leave-one-out by time, "
        "full ranking, @10, test after observing valid. Command: "
        "`OMP_WAIT_POLICY=PASSIVE OMP_NUM_THREADS=1 nice -n 10 python benchmarks/scenario_bench.py joint new cross "
        "--seeds 0`, then the same with `new_lr`, then `python benchmarks/scenario_bench.py --report` "
        "(2026-12-01; joint 24 min, new 12 min, new_lr 1.5 min, cross 8 min wall).",
        "",
    ]
    joint = [json.loads(p.read_text()) for p in sorted(runs.glob("joint_s*.json"))]
    new = [json.loads(p.read_text()) for p in sorted(runs.glob("new_s*.json"))]
    # "cross_s*" would also match part cross_sub's files
    cross = [json.loads(p.read_text()) for p in sorted(runs.glob("cross_s[0-9]*.json"))]
    lines.append(f"Seeds: joint {len(joint)}, new {len(new)}, cross {len(cross)} (figures are means over them).")
    lines.append("")
    if joint:
        j0 = joint[0]
        lines += [
            "## (a) Amazon Office by scenario (scenario = top-level category)",
            "",
            "Scenario sizes (interactions / items): "
            + ", ".join(f"{n} {j0['sizes'][n]:,} / {j0['items'][n]:,}" for n in j0["sizes"])
            + ".",
            "",
            "| model | NDCG@10 all users | NDCG@10 3 main scenarios | " + " | ".join(MAIN) + " | Other | fit s |",
            "|---|---|---|" + "---|" * (len(MAIN) + 2),
        ]

        def row(label: str, get) -> str:
            vals = [get(r) for r in joint]
            overall = _mean([v["overall"]["ndcg@10"] for v in vals if v.get("overall")])
            main = _mean([_main_overall(v["by_scenario"]) for v in vals])
            cells = [_mean([v["by_scenario"][n]["ndcg@10"] for v in vals if n in v["by_scenario"]]) for n in MAIN]
            other = _mean([v["by_scenario"]["Other"]["ndcg@10"] for v in vals if "Other" in v["by_scenario"]])
            fit = _mean([v["fit_s"] for v in vals if "fit_s" in v])
            return (
                f"| {label} | {_f(overall)} | {_f(main)} | "
                + " | ".join(_f(c) for c in cells)
                + f" | {_f(other)} | {_f(fit, 0)} |"
            )

        def per(kind: str):
            def get(r):
                by = {n: r["per_scenario"][n][kind][n] for n in MAIN}
                return {"by_scenario": by, "fit_s": sum(r["per_scenario"][n]["fit_s"] for n in MAIN)}

            return get

        lines += [
            row("joint: lm-scenario (shared + adapters, balanced weights)", lambda r: r["joint"]),
            row("joint, ranking only the scenario's items", lambda r: r["joint+filter"]),
            row("one lm ignoring scenarios", lambda r: r["ignore"]),
            row("one lm ignoring scenarios, ranking only the scenario's items", lambda r: r["ignore+filter"]),
            row("one lm per scenario (ranks its scenario's items)", per("by_scenario")),
            row("one lm per scenario, ranking the whole catalogue", per("raw_by_scenario")),
            "",
        ]
        small = MAIN[2]
        jr = _mean([r["joint"]["by_scenario"][small]["ndcg@10"] for r in joint])
        jf = _mean([r["joint+filter"]["by_scenario"][small]["ndcg@10"] for r in joint])
        ps = _mean([r["per_scenario"][small]["by_scenario"][small]["ndcg@10"] for r in joint])
        pr = _mean([r["per_scenario"][small]["raw_by_scenario"][small]["ndcg@10"] for r in joint])
        lines += [
            f"Smallest scenario ({small}): joint / per-scenario NDCG@10 = {jr / ps:.2f}x (joint raw vs "
            f"per-scenario on its own items), {jf / ps:.2f}x (both ranking the scenario's items), "
            f"{jr / pr:.2f}x (both ranking the whole catalogue); target >= 1.20x.",
            "",
        ]
    if new:
        lines += [
            f"## (b) A new scenario with few parameters ({HELD_OUT} held out)",
            "",
            "The shared model is trained on the other scenarios; then the held-out scenario is learned on the "
            "same training users (its positions are the targets, all other interactions are history).",
            "",
            "Rows without a seed are means over the seeds of part `new`; 'vs full FT' compares with the full "
            "fine-tuning of the same seeds; epochs: the first seed's.",
            "",
            "| variant | trainable params | share of full FT | NDCG@10 | Recall@10 | vs full FT | train s | epochs |",
            "|---|---|---|---|---|---|---|---|",
        ]
        full_ndcg = _mean([r["full"]["test"]["ndcg@10"] for r in new])
        shared = _mean([r["shared_only"]["test"]["ndcg@10"] for r in new])
        lines.append(
            f"| shared model only (no adapter, shared path) | 0 | 0 | {_f(shared)} | "
            f"{_f(_mean([r['shared_only']['test']['recall@10'] for r in new]))} | {shared / full_ndcg:.2f} | - | - |"
        )
        for mode, label in (
            ("adapter", "adapter only (embedding + low-rank maps), lr 5e-3, up to 15 epochs"),
            ("full", "full fine-tuning, lr 1e-3, up to 15 epochs"),
        ):
            nd = _mean([r[mode]["test"]["ndcg@10"] for r in new])
            lines.append(
                f"| {label} | {new[0][mode]['trainable_params']:,} | {new[0][mode]['trainable_share']:.4f} | {_f(nd)} | "
                f"{_f(_mean([r[mode]['test']['recall@10'] for r in new]))} | {nd / full_ndcg:.2f} | "
                f"{_f(_mean([r[mode]['fit_s'] for r in new]), 0)} | {new[0][mode]['epochs_run']} |"
            )
        new_lr = [json.loads(p.read_text()) for p in sorted(runs.glob("new_lr_s*.json"))]
        if new_lr:
            a = new_lr[0]["adapter"]
            nd = _mean([r["adapter"]["test"]["ndcg@10"] for r in new_lr])
            lr_seeds = [p.stem.rsplit("_s", 1)[1] for p in sorted(runs.glob("new_lr_s*.json"))]
            lr_full = _mean(
                [
                    json.loads((runs / f"new_s{k}.json").read_text())["full"]["test"]["ndcg@10"]
                    for k in lr_seeds
                    if (runs / f"new_s{k}.json").exists()
                ]
            )
            lines.append(
                f"| adapter only, lr {a['lr']:g}, up to 30 epochs (seed {', '.join(lr_seeds)}) | {a['trainable_params']:,} | "
                f"{a['trainable_share']:.4f} | {_f(nd)} | {_f(_mean([r['adapter']['test']['recall@10'] for r in new_lr]))} | "
                f"{nd / (lr_full or full_ndcg):.2f} | {_f(_mean([r['adapter']['fit_s'] for r in new_lr]), 0)} | "
                f"{a['epochs_run']} |"
            )
        variants: dict[str, list[dict[str, Any]]] = {}
        full_by_seed = {
            p.stem.rsplit("_s", 1)[1]: json.loads(p.read_text())["full"]["test"]["ndcg@10"]
            for p in runs.glob("new_s*.json")
        }
        for p in sorted(runs.glob("new_text_r*_s*.json")):
            seed_key = p.stem.rsplit("_s", 1)[1]
            if seed_key in full_by_seed:  # compared with the full fine-tuning of the same seed
                rec = {**json.loads(p.read_text())["adapter"], "full_ndcg": full_by_seed[seed_key], "seed": seed_key}
                variants.setdefault(p.stem.rsplit("_s", 1)[0], []).append(rec)
        for _, reps in sorted(variants.items(), key=lambda kv: (kv[1][0]["text_rank"], kv[1][0]["lr"], kv[0])):
            a = reps[0]
            nd = _mean([r["test"]["ndcg@10"] for r in reps])
            nd_full = _mean([r["full_ndcg"] for r in reps])
            n_full_ft = new[0]["full"]["trainable_params"]
            lines.append(
                f"| adapter + text-path correction rank {a['text_rank']}"
                f"{' on the targets and the history' if a.get('text_history') else ''}, lr {a['lr']:g}, "
                f"up to {a.get('max_epochs', 15)} epochs, patience {a.get('patience', 3)} "
                f"(seed {', '.join(r['seed'] for r in reps)}) | {a['trainable_params']:,} | "
                f"{a['trainable_params'] / n_full_ft:.4f} | {_f(nd)} | {_f(_mean([r['test']['recall@10'] for r in reps]))} | "
                f"{nd / nd_full:.2f} | {_f(_mean([r['fit_s'] for r in reps]), 0)} | {a['epochs_run']} |"
            )
        if joint:
            ref = _mean([r["joint"]["by_scenario"][HELD_OUT]["ndcg@10"] for r in joint])
            j_seeds = [p.stem.rsplit("_s", 1)[1] for p in sorted(runs.glob("joint_s*.json"))]
            j_full = (
                _mean(
                    [
                        json.loads((runs / f"new_s{k}.json").read_text())["full"]["test"]["ndcg@10"]
                        for k in j_seeds
                        if (runs / f"new_s{k}.json").exists()
                    ]
                )
                or full_ndcg
            )
            lines.append(
                f"| (reference) joint model trained with {HELD_OUT} from the start (seed {', '.join(j_seeds)}) "
                f"| - | - | {_f(ref)} | - | {ref / j_full:.2f} | - | - |"
            )
        lines += ["", "Targets: adapter-only trainable share < 5%, NDCG@10 >= 90% of full fine-tuning.", ""]
    if cross:
        lines += [
            "## (c) Cross-domain: Office -> MovieLens-100K",
            "",
            "The joint Office model is moved to ML-100K (new users and items; items enter through the frozen "
            "text path: MiniLM -> Office whitening -> Office adaptor) and a new scenario adapter is trained on "
            "the chosen share of ML-100K training users; every user's history is read at test time. "
            "Scratch: the same architecture (lm-scenario, one scenario, no user text, as the Office model) "
            "trained from random weights on the same users.",
            "",
            "| training users | variant | trainable params | NDCG@10 | Recall@10 | train s |",
            "|---|---|---|---|---|---|",
        ]
        fracs = sorted((k for k in cross[0] if k != "wall_s"), key=float)
        curves: dict[str, list[float]] = {}
        for frac in fracs:
            for variant in ("adapter", "adapter+ids", "full fine-tune", "scratch"):
                if variant not in cross[0][frac]:
                    continue
                nd = _mean([r[frac][variant]["test"]["ndcg@10"] for r in cross])
                rc = _mean([r[frac][variant]["test"]["recall@10"] for r in cross])
                curves.setdefault(variant, []).append(nd)
                lines.append(
                    f"| {100 * float(frac):.0f}% ({cross[0][frac]['n_train_users']}) | {variant} | "
                    f"{cross[0][frac][variant]['trainable_params']:,} | {_f(nd)} | {_f(rc)} | "
                    f"{_f(_mean([r[frac][variant]['fit_s'] for r in cross]), 0)} |"
                )
        lines += ["", f"Plot: `{png_path.relative_to(png_path.parents[1])}`.", ""]
        subs = sorted(runs.glob("cross_sub_s*.json"), key=lambda p: int(p.stem.rsplit("_s", 1)[1]))
        if subs:
            rows = [json.loads(p.read_text()) for p in subs]
            draws = [p.stem.rsplit("_s", 1)[1] for p in subs]
            ft = [r["full fine-tune"]["test"]["ndcg@10"] for r in rows]
            sc = [r["scratch"]["test"]["ndcg@10"] for r in rows]
            lines += [
                "### 10 % of the training users, several draws (part `cross_sub`)",
                "",
                "Source: the seed-0 joint Office model; full fine-tuning re-fits the text whitening on the "
                "ML-100K catalogue. Test NDCG@10 on all ML-100K users.",
                "",
                "| draw | training users | full fine-tune | scratch | ratio |",
                "|---|---|---|---|---|",
            ]
            lines += [
                f"| {d} | {r['n_train_users']} | {_f(a)} | {_f(b)} | {a / b:.2f} |"
                for d, r, a, b in zip(draws, rows, ft, sc)
            ]
            lines += [
                f"| mean of {len(rows)} | | {_f(_mean(ft))} | {_f(_mean(sc))} | {_mean(ft) / _mean(sc):.2f} |",
                "",
            ]
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(5, 3.5))
        xs = [100 * float(f) for f in fracs]
        for variant, ys in curves.items():
            ax.plot(xs, ys, marker="o", label=variant)
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{x:.0f}%" for x in xs])
        ax.set_xlabel("share of ML-100K training users")
        ax.set_ylabel("test NDCG@10 (full ranking)")
        ax.set_title("Office -> MovieLens-100K")
        ax.legend()
        fig.tight_layout()
        png_path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(png_path, dpi=120)
        plt.close(fig)
    if NOTES_MD.exists():  # what the tables mean, written by hand after reading them
        lines += NOTES_MD.read_text().splitlines()
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text("\n".join(lines) + "\n")
    log.info("wrote %s and %s", md_path, png_path)


def joint_summary(runs: Path) -> list[str]:
    """Part ``joint_compare`` over its seeds: NDCG@10 overall and per main scenario (markdown rows)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(runs.glob("joint_compare_w*_s[0-9]*.json")):
        run = json.loads(path.read_text())
        found.setdefault(
            f"{run['scenario_weights']} weights, up to {run['epochs']} epochs, patience {run['patience']}", []
        ).append(run)
    lines = [
        "| setting | model | seeds | NDCG@10 overall (per seed) | " + " | ".join(MAIN) + " |",
        "|---|---|---:|---|" + "---:|" * len(MAIN),
    ]
    for setting, rows in found.items():
        for label, model in (
            ("joint lm-scenario", "joint"),
            ("lm ignoring scenarios", "ignore"),
            ("lm ignoring scenarios, ranking the scenario's items", "ignore+filter"),
        ):
            overall = [r[model]["overall"]["ndcg@10"] for r in rows]
            cells = [_f(_mean([r[model]["by_scenario"][n]["ndcg@10"] for r in rows])) for n in MAIN]
            lines.append(
                f"| {setting} | {label} | {len(rows)} | {np.mean(overall):.4f} "
                f"({' / '.join(f'{v:.4f}' for v in overall)}) | " + " | ".join(cells) + " |"
            )
    return lines


def _cross_setting(run: dict[str, Any]) -> str:
    parts = [f"lr {run['lr']:g}"] if run.get("lr", ADAPT_LR["full"]) != ADAPT_LR["full"] else []
    if run.get("source", "hybrid") != "hybrid":
        parts.insert(0, f"{run['source']}-only Office source")
    if run.get("anchor"):
        parts.append(f"L2-SP {run['anchor']:g}")
    if run.get("reset"):
        parts.append("fresh " + " + ".join(run["reset"]))
    return "full fine-tune" + (f" ({', '.join(parts)})" if parts else "")


def cross_summary(runs: Path, png_path: Path) -> list[str]:
    """Every part ``cross_sub`` setting over its draws, against scratch on the same draws (markdown rows),
    and the data-efficiency plot (mean test NDCG@10 with the spread over draws) at ``png_path``."""
    from scipy import stats

    groups: dict[tuple[float, str], list[dict[str, Any]]] = {}
    for path in runs.glob("cross_sub*_s[0-9]*.json"):
        run = json.loads(path.read_text())
        run["draw"] = int(path.stem.rsplit("_s", 1)[1])
        groups.setdefault((float(run.get("fraction", 0.1)), _cross_setting(run)), []).append(run)
    lines = [
        "| training users | setting | draws | fine-tuned NDCG@10 | scratch NDCG@10 | ratio of means | "
        "paired diff (t-test p) | draws where fine-tuned >= scratch |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    curves: dict[str, dict[float, tuple[float, float]]] = {}

    def spread(x: np.ndarray) -> tuple[float, float]:
        return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0

    for (frac, setting), rows in sorted(groups.items()):
        rows.sort(key=lambda r: r["draw"])
        ft = np.array([r["full fine-tune"]["test"]["ndcg@10"] for r in rows])
        sc = np.array([r["scratch"]["test"]["ndcg@10"] for r in rows])
        p = stats.ttest_rel(ft, sc).pvalue if len(rows) > 1 and np.any(ft != sc) else float("nan")
        (ft_m, ft_s), (sc_m, sc_s) = spread(ft), spread(sc)
        lines.append(
            f"| {100 * frac:.0f}% | {setting} | {len(rows)} | {ft_m:.4f} ± {ft_s:.4f} "
            f"| {sc_m:.4f} ± {sc_s:.4f} | {ft_m / sc_m:.3f} | {ft_m - sc_m:+.4f} (p={p:.2f}) "
            f"| {int((ft >= sc).sum())} of {len(rows)} |"
        )
        curves.setdefault(setting, {})[frac] = (ft_m, ft_s)
        if setting == "full fine-tune":
            curves.setdefault("scratch", {})[frac] = (sc_m, sc_s)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    shown = [k for k in curves if k in ("scratch", "full fine-tune", "full fine-tune (fresh user_tower)")]
    for offset, setting in enumerate(shown):
        pts = sorted(curves[setting].items())
        xs = [100 * f * (1 + 0.04 * (offset - 1)) for f, _ in pts]  # small shifts keep error bars apart
        ax.errorbar(xs, [m for _, (m, _) in pts], yerr=[s for _, (_, s) in pts], marker="o", capsize=3, label=setting)
    ax.set_xscale("log")
    ax.set_xticks([10, 100], ["10%", "100%"])
    ax.set_xlabel("share of ML-100K training users")
    ax.set_ylabel("test NDCG@10 (full ranking)")
    ax.set_title("Office -> MovieLens-100K: mean and spread over draws")
    ax.legend(fontsize=8)
    fig.tight_layout()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png_path, dpi=120)
    plt.close(fig)
    return lines


PARTS = {
    "joint": part_joint,
    "joint_text": part_joint_text,
    "joint_compare": part_joint_compare,
    "new": part_new,
    "new_lr": part_new_lr,
    "new_text": part_new_text,
    "cross": part_cross,
    "cross_sub": part_cross_sub,
    "cross_scratch": part_cross_scratch,
}


def _run_name(part: str, seed: int, k: Knobs) -> str:
    if part == "new_text":
        lr = "" if k.text_lr == 5e-3 else f"_lr{k.text_lr:g}"
        ep = "" if k.text_epochs == 15 else f"_e{k.text_epochs}"
        pat = "" if k.text_patience == 3 else f"_p{k.text_patience}"
        hist = "_hist" if k.text_history else ""
        ids = f"_id{k.id_rank}" if k.id_rank else ""
        return f"new_text_r{k.text_rank}{lr}{ep}{pat}{hist}{ids}_s{seed}"
    if part == "cross_sub":  # the defaults keep the first runs' names
        frac = "" if k.cross_fraction == 0.1 else f"_f{k.cross_fraction:g}"
        lr = "" if k.cross_lr == ADAPT_LR["full"] else f"_lr{k.cross_lr:g}"
        anchor = f"_a{k.cross_anchor:g}" if k.cross_anchor else ""
        reset = "".join(f"_r{p}" for p in k.cross_reset)
        source = "" if k.cross_source == "hybrid" else f"_{k.cross_source}"
        return f"cross_sub{source}{frac}{lr}{anchor}{reset}_s{seed}"
    if part == "cross_scratch":
        return _scratch_path(seed, k).stem
    if part == "joint_compare":
        return f"joint_compare_w{k.joint_weights}_e{k.epochs}_p{k.patience}_s{seed}"
    return f"{part}_s{seed}"


def _reset_parts(value: str) -> tuple[str, ...]:
    parts = tuple(p for p in value.split(",") if p)
    unknown = [p for p in parts if p not in RESET_PARTS]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown part(s) {unknown}; known: {list(RESET_PARTS)}")
    return parts


RESET_PARTS = ("user_tower", "adaptor")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("parts", nargs="*", help=f"any of {list(PARTS)}")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--joint-summary", action="store_true", help="print part joint_compare over its seeds")
    parser.add_argument(
        "--cross-summary",
        action="store_true",
        help="print every cross_sub setting against scratch; plot results/scenario_cross_domain.png",
    )
    d = Knobs()
    parser.add_argument(
        "--runs", type=Path, default=d.runs, metavar="DIR", help="folder of the part files and saved models"
    )
    common.add_office_arg(parser)
    fits = parser.add_argument_group("every lm fit")
    fits.add_argument("--epochs", type=int, default=d.epochs, help="maximum epochs of every fit")
    fits.add_argument("--patience", type=int, default=d.patience, help="early-stopping patience of every fit")
    joint = parser.add_argument_group("part joint_compare")
    joint.add_argument(
        "--joint-weights",
        choices=["balanced", "none"],
        default=d.joint_weights,
        help="the joint model's loss weights per scenario",
    )
    text = parser.add_argument_group("part new_text")
    text.add_argument("--text-rank", type=int, default=d.text_rank, help="rank of the text-path correction")
    text.add_argument("--text-lr", type=float, default=d.text_lr)
    text.add_argument("--text-epochs", type=int, default=d.text_epochs)
    text.add_argument("--text-patience", type=int, default=d.text_patience)
    text.add_argument(
        "--text-history",
        action="store_true",
        help="also correct the item vectors the user tower reads (users' histories)",
    )
    text.add_argument("--id-rank", type=int, default=d.id_rank, help="rank of the item-ID residual (0: none)")
    cross = parser.add_argument_group("parts cross_sub and cross_scratch")
    cross.add_argument(
        "--cross-fraction", type=float, default=d.cross_fraction, help="share of the ML-100K training users"
    )
    cross.add_argument("--cross-lr", type=float, default=d.cross_lr, help="learning rate of the full fine-tune")
    cross.add_argument(
        "--cross-anchor", type=float, default=d.cross_anchor, help="L2-SP pull toward the Office weights (0: off)"
    )
    cross.add_argument(
        "--cross-source",
        choices=["hybrid", "text"],
        default=d.cross_source,
        help="fine-tune part joint's model (hybrid) or part joint_text's (text)",
    )
    cross.add_argument(
        "--cross-reset",
        type=_reset_parts,
        default=d.cross_reset,
        metavar="PARTS",
        help=f"comma-separated parts of the Office network re-initialised first: {', '.join(RESET_PARTS)}",
    )
    args = parser.parse_args()
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown part(s) {unknown}; known: {list(PARTS)}")
    knobs = Knobs(
        runs=args.runs,
        office=args.office,
        epochs=args.epochs,
        patience=args.patience,
        joint_weights=args.joint_weights,
        text_rank=args.text_rank,
        text_lr=args.text_lr,
        text_epochs=args.text_epochs,
        text_patience=args.text_patience,
        text_history=args.text_history,
        id_rank=args.id_rank,
        cross_fraction=args.cross_fraction,
        cross_lr=args.cross_lr,
        cross_anchor=args.cross_anchor,
        cross_source=args.cross_source,
        cross_reset=args.cross_reset,
    )
    common.setup_logging(quiet=("lmrec.eval.evaluator", "lmrec.encoders.cache", "lmrec.models.lm.model"))
    runs = knobs.runs
    runs.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        for part in args.parts:
            path = runs / f"{_run_name(part, seed, knobs)}.json"
            if path.exists() and not args.force:
                log.info("skip %s (exists)", path)
                continue
            with common.Timer() as timer:
                result = PARTS[part](seed, knobs)
            result["wall_s"] = timer.seconds
            path.write_text(json.dumps(result, indent=2, default=float))
            log.info("wrote %s (%.0f s)", path, result["wall_s"])
    if args.report:
        write_report(runs, RESULTS_MD, OUT / "scenario_data_efficiency.png")
    if args.joint_summary:
        print("\n".join(joint_summary(runs)))
    if args.cross_summary:
        print("\n".join(cross_summary(runs, RESULTS_MD.parent / "scenario_cross_domain.png")))


if __name__ == "__main__":
    main()
