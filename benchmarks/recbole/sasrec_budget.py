"""RecBole 1.2.1's SASRec for a fixed wall-clock budget: batch times, an epoch estimate, test NDCG@10.

Runs in the RecBole venv. Reads benchmark files written by ``export_split.py --sequential`` (one
(history -> target) row per training interaction: RecBole's every-prefix training rows), builds
RecBole's SASRec with its defaults (the config of ``run_recbole.py --protocol bench``), and trains
until ``--budget-s`` seconds of training have passed, stopping in the middle of an epoch when the
budget ends there. Each training batch is timed (from one loss call to the next: data loading,
forward, backward and the optimiser step), so when the budget ends before the first epoch does,
the epoch time is *estimated* as ``mean batch time x batches per epoch`` (the first batch left out
of the mean); the JSON says which. The model as it stands at the budget's end is then tested
(full ranking, RecBole's evaluator, no masking of seen items, as RecBole does for sequential models).

    benchmarks/.venv-recbole/bin/python benchmarks/recbole/sasrec_budget.py \\
        --data-dir benchmarks/out/recbole/splits/synth1m-loo-seq --budget-s 600 --threads 1

Writes ``<out>/budget_<name>_SASRec.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import run_recbole

LOG = logging.getLogger("sasrec_budget")


class BudgetExhausted(RuntimeError):
    """Raised from the loss call that would start training past the budget."""


def run(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch
    from recbole.config import Config

    torch.set_num_threads(args.threads)
    name = args.data_dir.name
    ns = argparse.Namespace(
        protocol="bench", data_dir=args.data_dir, out=args.out, valid_metric="NDCG@10", set=list(args.set)
    )
    cfg = run_recbole.build_config_dict(ns, "SASRec")
    config = Config(
        model="SASRec", dataset=name, config_file_list=[str(args.data_dir / f"{name}.yaml")], config_dict=cfg
    )
    dataset, train_data, valid_data, test_data, model, trainer, prep_s = run_recbole.prepare(config)

    batch_s: list[float] = []
    state = {"start": 0.0, "last": 0.0}
    original = model.calculate_loss

    def timed_loss(interaction):  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        if state["last"]:
            batch_s.append(now - state["last"])
        if now - state["start"] > args.budget_s:
            raise BudgetExhausted(f"{now - state['start']:.0f} s spent after {len(batch_s)} batches")
        state["last"] = now
        return original(interaction)

    model.calculate_loss = timed_loss
    per_epoch = len(train_data)
    stopped_by = "epochs"
    state["start"] = time.perf_counter()
    try:
        trainer.fit(train_data, valid_data=None, saved=False, show_progress=False)
    except BudgetExhausted as exc:
        LOG.info("budget reached: %s", exc)
        stopped_by = "budget"
    train_s = time.perf_counter() - state["start"]
    steady = batch_s[1:] or batch_s
    epochs_done = len(batch_s) / per_epoch
    t1 = time.perf_counter()
    model.eval()
    test_result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    result = {
        "tool": "recbole",
        "model": "SASRec",
        "dataset": name,
        "threads": torch.get_num_threads(),
        "budget_s": args.budget_s,
        "stopped_by": stopped_by,
        "train_s": round(train_s, 3),
        "batches_done": len(batch_s),
        "batches_per_epoch": per_epoch,
        "epochs_done": round(epochs_done, 4),
        "train_batch_size": config["train_batch_size"],
        "train_rows": len(getattr(train_data, "dataset", None) or train_data._dataset),
        "mean_batch_s": float(np.mean(steady)) if steady else None,
        "sec_per_epoch": float(np.mean(steady)) * per_epoch if steady else None,
        "sec_per_epoch_extrapolated": epochs_done < 1,
        "test_result": {k: float(v) for k, v in test_result.items()},
        "test_eval_s": round(time.perf_counter() - t1, 3),
        "data_prep_s": round(prep_s, 3),
        "n_users": int(dataset.user_num),
        "n_items": int(dataset.item_num),
        "host": {"machine": platform.machine(), "cpus": os.cpu_count(), "loadavg_at_end": list(os.getloadavg())},
    }
    path = args.out / f"budget_{name}_SASRec.json"
    path.write_text(json.dumps(result, indent=2))
    LOG.info("%s -> %s", json.dumps(result), path)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", type=Path, required=True, help="directory <name>/ of export_split.py --sequential")
    p.add_argument("--budget-s", type=float, default=600.0, help="seconds of training")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=run_recbole.DEFAULT_OUT)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="extra RecBole config (YAML value)")
    args = p.parse_args(argv)
    del sys.argv[1:]  # RecBole's Config parses sys.argv too
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args.out = args.out.resolve()
    args.data_dir = args.data_dir.resolve()
    (args.out / "work").mkdir(parents=True, exist_ok=True)
    os.chdir(args.out / "work")  # RecBole writes ./log and ./log_tensorboard
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
