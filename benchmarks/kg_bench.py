"""Knowledge-graph relations in lm on Amazon Office: lm with the graph vs without, RecBole's KG models,
cold items, and complements from ``/items/{id}/related`` vs ``/similar``.

Subcommands (one process at a time; ``nice`` on a shared machine):

- ``loo``: leave-one-out by time, full ranking, test after observing valid; for each seed, lm without
  and with the graph (``fusion.graph``; Office's ``Office.kg`` linked through ``asin``) are fitted in
  the same process, so both see the same code. Runs go to ``benchmarks/out/kg_runs/loo/<variant>_s<seed>.json``
  with per-user NDCG@10 / Recall@10 in a matching ``.npz``; a finished run is skipped unless ``--force``.
  The graph model of the first seed is saved to ``benchmarks/out/kg_runs/models/loo-graph_s<seed>``.
- ``cold``: the cold-item split (10 % of items only in test, 10 % only in valid; the split seed is the run
  seed): both variants, NDCG@10 / Recall@10 over all items and over the new items alone.
- ``complements``: on the saved graph model and the leave-one-out test cases whose test item lies in a
  complementary category (by the graph) of the item before it, how often the test item is in the top 10
  of ``related(previous, "complement")`` (the function behind ``GET /items/{id}/related``) and of the
  plain nearest neighbours (``/similar``).
- ``report``: means over seeds, paired differences per user (averaged over seeds on the fixed
  leave-one-out split; (seed, user) cases pooled on the cold split), the RecBole KG models' JSONs
  (``--recbole GLOB``), the complement hit rates; writes ``benchmarks/out/kg_report.json`` and ``.md``.

Usage::

    nice python benchmarks/kg_bench.py loo --seeds 0 1 2 --threads 1
    nice python benchmarks/kg_bench.py cold --seeds 0 1 2 --threads 1
    nice python benchmarks/kg_bench.py complements
    python benchmarks/kg_bench.py report --recbole 'benchmarks/out/recbole/kg[_l]*office-kg_*.json'
"""

from __future__ import annotations

import argparse
import glob
import json
import logging
from pathlib import Path
from typing import Any

import common
import numpy as np

RUNS = common.OUT / "kg_runs"
MODELS = RUNS / "models"
#: lm settings on Office (benchmarks/lm_bench.py's, so the figures line up with RESULTS.md section 6)
LM_PARAMS: dict[str, Any] = {"max_len": 50, "dropout": 0.3, "rating_weight": 0.1, "patience": 5}
VARIANTS: dict[str, dict[str, Any]] = {"lm": {}, "lm-graph": {"fusion.graph": True}}

log = logging.getLogger("kg_bench")


def make_split(data: Any, kind: str, seed: int) -> Any:
    from lmrec.data import cold_item_split, leave_one_out

    if kind == "loo":
        return leave_one_out(data.interactions)
    return cold_item_split(data.interactions, test_frac=0.1, valid_frac=0.1, random_state=seed)


def run_file(experiment: str, variant: str, seed: int) -> Path:
    return RUNS / experiment / f"{variant}_s{seed}.json"


def run_one(experiment: str, variant: str, seed: int, args: argparse.Namespace, save: bool) -> None:
    from lmrec.eval import evaluate

    path = run_file(experiment, variant, seed)
    if path.exists() and not args.force:
        log.info("skip %s (exists)", path)
        return
    data = common.load_data("office", args.office)
    split = make_split(data, experiment, seed)
    params = {**LM_PARAMS, **VARIANTS[variant], **({"epochs": args.epochs} if args.epochs else {})}
    model = common.make_lm({"cache_dir": str(common.EMBED_CACHE), "num_threads": args.threads, **params}, seed)
    with common.Timer() as timer:
        model.fit(data.with_interactions(split.train), valid=split)
    valid = evaluate(model, split, phase="valid", ks=(10,), metrics=("ndcg", "recall"))
    model.observe(split.valid)
    test = evaluate(model, split, phase="test", ks=(10, 20), metrics=("ndcg", "recall", "hit", "mrr"))
    history = getattr(model, "train_history_", None) or []
    record: dict[str, Any] = {
        "experiment": experiment,
        "variant": variant,
        "seed": seed,
        "params": params,
        "fit_seconds": timer.seconds,
        "threads": args.threads,
        "epochs_run": len(history),
        "split_sizes": split.sizes(),
        "valid": valid.metrics,
        "test": test.metrics,
        "kg": data.kg_summary() if data.kg is not None else None,
    }
    arrays: dict[str, np.ndarray] = {"users": test.users}
    for key in ("ndcg@10", "recall@10"):
        arrays[f"test/{key}"] = test.per_user[key]
    if experiment == "cold":
        pool = np.flatnonzero(np.bincount(split.train.items, minlength=split.train.n_items) == 0)
        new = evaluate(model, split, phase="test", ks=(10,), metrics=("ndcg", "recall"), item_pool=pool)
        record["test_new_items"] = new.metrics
        record["new_item_pool"] = int(len(pool))
        arrays["users_new"] = new.users
        for key in ("ndcg@10", "recall@10"):
            arrays[f"test_new/{key}"] = new.per_user[key]
    if save:
        model.save(MODELS / f"{experiment}-{variant}_s{seed}")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path.with_suffix(".npz"), **arrays)
    path.write_text(json.dumps(record, indent=2, default=float))
    log.info(
        "%s %s seed %d: test ndcg@10 %.4f recall@10 %.4f (fit %.0f s, %d epochs)",
        experiment,
        variant,
        seed,
        test.metrics["ndcg@10"],
        test.metrics["recall@10"],
        timer.seconds,
        len(history),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["loo", "cold", "complements", "report"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--variants", default="lm,lm-graph")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=0, help="cap on epochs (0: the lm default with early stopping)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--recbole", default="", help="glob of RecBole result JSONs for the report")
    common.add_office_arg(parser)
    args = parser.parse_args()
    common.setup_logging(quiet=("lmrec.eval.evaluator", "lmrec.encoders.cache", "lmrec.data"))
    if args.command in ("loo", "cold"):
        for seed in args.seeds:
            for variant in args.variants.split(","):
                run_one(args.command, variant, seed, args, save=variant == "lm-graph" and seed == args.seeds[0])
    elif args.command == "complements":
        import kg_complements

        kg_complements.run(args)
    else:
        import kg_complements

        kg_complements.report(args, sorted(glob.glob(args.recbole)) if args.recbole else [])


if __name__ == "__main__":
    main()
