"""lmrec SASRec vs RecBole 1.2.1 SASRec on RecBole's own leave-one-out split of MovieLens-100K.

RecBole's split is dumped by benchmarks/recbole/dump_recbole_split.py into benchmark files, so both
libraries see exactly the same train / valid / test rows. RecBole is run separately (it needs its own
venv): benchmarks/recbole/run_recbole.py --protocol loo --models SASRec. This script trains lmrec's
SASRec, evaluates it with and without masking history (RecBole masks nothing for sequential models),
and prints a side-by-side table with RecBole's figures when its JSON or per-epoch curve exists.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/sasrec_vs_recbole.py --threads 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import time
from pathlib import Path

import common

from lmrec.data.loaders import load_recbole_benchmark
from lmrec.eval import evaluate
from lmrec.models.sasrec import SASRec

OUT = common.OUT


def recbole_figures(directory: Path) -> dict:
    final = directory / "loo_ml-100k_SASRec.json"
    curve = directory / "loo_ml-100k_SASRec.curve.jsonl"
    info: dict = {}
    if final.exists():
        data = json.loads(final.read_text())
        info = {
            "test_ndcg@10": data["test_result"]["ndcg@10"],
            "test_recall@10": data["test_result"]["recall@10"],
            "train_wall_s": data.get("train_wall_s"),
            "sec_per_epoch": data.get("sec_per_epoch"),
            "epochs_run": data.get("epochs_run"),
            "stopped_by": data.get("stopped_by"),
        }
    if curve.exists():
        rows = [json.loads(line) for line in curve.read_text().splitlines() if line.strip()]
        if rows:
            info.setdefault("epochs_run", len(rows))
            info["best_valid_ndcg@10"] = max(r["valid_score"] for r in rows)
            info["elapsed_s_so_far"] = rows[-1]["elapsed_s"]
            info["sec_per_epoch"] = info.get("sec_per_epoch") or rows[-1]["elapsed_s"] / len(rows)
    return info


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split-dir", default=str(OUT / "recbole" / "splits" / "ml-100k-recbole-loo"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", default="0")
    args = parser.parse_args()
    split_dir = Path(args.split_dir)
    name = next(split_dir.glob("*.train.inter")).name[: -len(".train.inter")]
    dataset, split = load_recbole_benchmark(split_dir, name)
    runs = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        model = SASRec(num_threads=args.threads, random_state=seed)
        started = time.perf_counter()
        model.fit(dataset.with_interactions(split.train), valid=split)
        fit_s = time.perf_counter() - started
        valid = evaluate(model, split, phase="valid", ks=(10,))
        model.observe(split.valid)
        masked = evaluate(model, split, phase="test", ks=(10,))
        unmasked = evaluate(model, split, phase="test", ks=(10,), exclude_history=False)
        runs.append(
            {
                "seed": seed,
                "fit_s": fit_s,
                "epochs": len(getattr(model, "train_history_", [])),
                "valid_ndcg@10": valid.metrics["ndcg@10"],
                "test_ndcg@10_masked": masked.metrics["ndcg@10"],
                "test_recall@10_masked": masked.metrics["recall@10"],
                "test_ndcg@10_unmasked": unmasked.metrics["ndcg@10"],
                "test_recall@10_unmasked": unmasked.metrics["recall@10"],
            }
        )
        print(json.dumps(runs[-1]))
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.node()} 2 cores",
        "command": f"benchmarks/sasrec_vs_recbole.py --threads {args.threads} --seeds {args.seeds}",
        "split": str(split_dir),
        "lmrec": runs,
        "recbole": recbole_figures(OUT / "recbole"),
    }
    OUT.mkdir(exist_ok=True)
    (OUT / "sasrec_vs_recbole.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result["recbole"], indent=2))


if __name__ == "__main__":
    main()
