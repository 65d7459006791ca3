"""Replay settings and update seeds on one initial model (RESULTS.md §11, "What drives Office window 2").

A cheap stand-in for ``lmrec evaluate --protocol stream`` (package defaults): the same initial model
(``fit_fresh`` on the first 60 % of the time-ordered rows, early-stopped), the same windows and held-back
window-0 rows (``forget_seed`` 0, as the CLI), and then, per variant, a clone of the initial model
updated by ``update_fresh`` on windows 0 .. N-1 and ranked on windows 1 .. N. No full retrain: its
figures come from the acceptance run of the same seed. The item texts go through the shared embedding
cache (``benchmarks/out/lm_cache``), so the fit's time (``fit_s_``) leaves out the encoding; the
variants therefore run without the time budget (``update_budget`` None) unless a variant sets it, and
the update's seconds are reported so that its share of a refit can be read against the acceptance run.

The initial model is saved under ``--model-dir`` and reloaded on the next call with the same data and
seed. Usage (repository root)::

    PYTHONPATH=benchmarks OMP_NUM_THREADS=1 nice -n 10 .venv/bin/python experiments/continual_replay/probe.py \\
        --data office --seed 0 --updates 2 \\
        --variant default='{}' none='{"replay": "none"}' share10='{"replay_share": 0.1}'
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

log = logging.getLogger("continual_replay_probe")
OUT = common.OUT / "continual_probe"


def initial_model(data_name: str, dataset, rows, seed: int, model_dir: Path):
    """The stream's initial model, fitted once and kept under ``model_dir``."""
    from lmrec.eval.stream import fit_fresh
    from lmrec.models.base import load_model

    if (model_dir / "config.json").exists():
        log.info("loading the initial model from %s", model_dir)
        return load_model(model_dir)

    def make():
        return common.make_lm({"encoder.cache_dir": str(common.EMBED_CACHE), "num_threads": 1}, seed)

    t0 = time.perf_counter()
    model = fit_fresh(make, dataset, rows)
    log.info("initial fit (%s, seed %d) in %.0f s", data_name, seed, time.perf_counter() - t0)
    model.save(model_dir)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", choices=common.DATA_SETS, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--updates", type=int, default=2, help="updates (windows 0 .. N-1), each then ranked")
    parser.add_argument("--variant", nargs="+", required=True, help="NAME=JSON continual overrides")
    parser.add_argument("--tag", default="")
    parser.add_argument(
        "--update-seed", type=int, default=None, help="the clones' random_state (update seeds, replay draw)"
    )
    common.add_office_arg(parser)
    args = parser.parse_args()
    common.setup_logging(quiet=("sentence_transformers",))

    from lmrec.data.splits import holdout_rows, stream_windows
    from lmrec.eval.gate import clone_model
    from lmrec.eval.stream import evaluate_window, update_fresh

    dataset = common.load_data(args.data, args.office)
    inter = dataset.interactions
    initial_idx, window_idx = stream_windows(inter, train_frac=0.6, n_windows=4)
    kept0, _ = holdout_rows(window_idx[0], 0.2, 0)  # as the CLI's stream (forget_seed 0)
    learn_idx = [kept0, *window_idx[1:]]
    model_dir = OUT / f"initial_{args.data}_s{args.seed}"
    initial = initial_model(args.data, dataset, inter.subset(initial_idx), args.seed, model_dir)
    variants: dict[str, dict[str, Any]] = {}
    for spec in args.variant:
        name, _, text = spec.partition("=")
        variants[name] = {"update_budget": None, **json.loads(text or "{}")}
    out_path = OUT / f"{args.data}_s{args.seed}{args.tag}.json"
    record: dict[str, Any] = json.loads(out_path.read_text()) if out_path.exists() else {}
    record.setdefault("fit_s", getattr(initial, "fit_s_", None))
    if "window0" not in record:  # the acceptance run's window-0 figure checks that the initial model is its own
        w0 = evaluate_window(
            initial, inter.subset(initial_idx), inter.subset(window_idx[0]), ks=(10,), metrics=("ndcg",)
        )
        record["window0"] = w0["ndcg@10"]
    log.info("initial model: window 0 ndcg@10 %.6f, fit %.0f s", record["window0"], record["fit_s"] or 0.0)
    for name, overrides in variants.items():
        model = clone_model(initial)
        model.continual = model.continual.replace(**overrides)
        if args.update_seed is not None:  # the same initial model, other update seeds: the updates' own noise
            model.random_state = args.update_seed
        rows: list[dict[str, Any]] = []
        seen = initial_idx
        for w in range(args.updates):
            t0 = time.perf_counter()
            update_fresh(model, inter.subset(learn_idx[w]))
            train_s = time.perf_counter() - t0
            seen = np.concatenate([seen, learn_idx[w]])
            res = evaluate_window(
                model, inter.subset(seen), inter.subset(window_idx[w + 1]), ks=(10,), metrics=("ndcg",)
            )
            report = {k: v for k, v in model.last_update_.items() if isinstance(v, (int, float, str, bool))}
            rows.append({"window": w + 1, "ndcg@10": res["ndcg@10"], "update_s": train_s, **report})
            log.info("%s window %d: ndcg@10 %.4f, update %s", name, w + 1, res["ndcg@10"], report)
        record[name] = {"overrides": overrides, "windows": rows}
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(record, indent=2, default=float))
    for name, rec in record.items():
        if isinstance(rec, dict) and "windows" in rec:
            cells = " / ".join(f"{r['ndcg@10']:.4f}" for r in rec["windows"])
            log.info("%-12s %s", name, cells)


if __name__ == "__main__":
    main()
