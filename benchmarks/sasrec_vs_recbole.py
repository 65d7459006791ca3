"""lmrec SASRec vs RecBole 1.2.1 SASRec on RecBole's own leave-one-out split of MovieLens-100K.

RecBole's split is dumped by benchmarks/recbole/dump_recbole_split.py into benchmark files, so both
libraries see exactly the same train / valid / test rows. RecBole is run separately (it needs its own
venv): benchmarks/recbole/run_recbole.py --protocol loo --models SASRec. This script trains lmrec's
SASRec, evaluates it with and without masking history (RecBole masks nothing for sequential models),
and prints a side-by-side table with RecBole's figures when its JSON or per-epoch curve exists.

    OMP_WAIT_POLICY=PASSIVE .venv/bin/python benchmarks/sasrec_vs_recbole.py --threads 1

``--synthetic EVENTS`` compares on a synthetic set instead (`lmrec.data.synth`, 100,000 items, the
set benchmarks/scale_cost.py generates and caches): lmrec's leave-one-out split is written as
RecBole sequential benchmark files (``export_split.py --sequential``: RecBole's every-prefix rows),
then lmrec's SASRec (``--loss``: its default ``auto`` picks the sampled softmax at this catalogue
size; ``full`` is RecBole's objective) trains for ``--budget-s`` seconds (stopped in the middle of an epoch when the
budget ends there; each batch timed, so a partial epoch gives an epoch *estimate*) and is tested
with and without masking history. RecBole's side runs in its venv on the same files:
benchmarks/recbole/sasrec_budget.py --data-dir <the split directory> --budget-s <the same budget>.

    .venv/bin/python benchmarks/sasrec_vs_recbole.py --synthetic 1000000 --budget-s 600 --threads 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import platform
import time
from pathlib import Path
from typing import Any

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


class _BudgetSpent(RuntimeError):
    """Raised between two training batches once the wall-clock budget is spent."""


def _budgeted_batches(budget_s: float, batch_s: list[float]):
    """A stand-in for `shard_batches` in `lmrec.models.sasrec` that times every batch (from one batch
    request to the next: slicing, forward, backward, optimiser step) and raises `_BudgetSpent` at the
    first batch boundary after ``budget_s`` seconds of training (benchmark-only hook)."""
    import lmrec.models.sasrec as sasrec_mod

    original = sasrec_mod.shard_batches
    started = time.perf_counter()
    sizes: dict[str, int] = {}

    def shards(order, batch_size, rank=0, world=1):  # type: ignore[no-untyped-def]
        sizes["windows"], sizes["batch_size"] = len(order), int(batch_size)
        last = None
        for sel in original(order, batch_size, rank, world):
            now = time.perf_counter()
            if last is not None:
                batch_s.append(now - last)
            if now - started > budget_s:
                raise _BudgetSpent(f"{now - started:.0f} s after {len(batch_s)} batches")
            last = time.perf_counter()
            yield sel
        if last is not None:
            batch_s.append(time.perf_counter() - last)

    sasrec_mod.shard_batches = shards
    return sizes


def _export_module():
    spec = importlib.util.spec_from_file_location("export_split", common.BENCH_DIR / "recbole" / "export_split.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_synthetic(args: argparse.Namespace) -> None:
    """lmrec's SASRec on the synthetic set for a wall-clock budget (see the module docstring)."""
    import numpy as np
    import scale_cost

    from lmrec.data import leave_one_out, load_recbole

    events = int(args.synthetic)
    dataset = load_recbole(scale_cost.ensure_data(events))
    split = leave_one_out(dataset.interactions)
    name = f"synth{events}-loo-seq"
    split_dir = OUT / "recbole" / "splits" / name
    if not (split_dir / f"{name}.test.inter").is_file():
        started = time.perf_counter()
        _export_module().export_split(split, split_dir.parent, name, sequential=True, max_seq_len=50)
        print(f"exported {split_dir} in {time.perf_counter() - started:.0f} s")
    batch_s: list[float] = []
    sizes = _budgeted_batches(args.budget_s, batch_s)
    run_began = time.time()  # a RecBole JSON older than this is another run's (its side may still be training)
    model = SASRec(epochs=10_000, loss=args.loss, device="cpu", num_threads=args.threads, random_state=0)
    started = time.perf_counter()
    stopped_by = "epochs"
    try:
        model.fit(dataset.with_interactions(split.train))
    except _BudgetSpent as spent:
        stopped_by = f"budget ({spent})"
        model.net_.eval()
    train_s = time.perf_counter() - started
    per_epoch = -(-sizes["windows"] // sizes["batch_size"])
    steady = batch_s[1:] or batch_s
    model.observe(split.valid)
    masked = evaluate(model, split, phase="test", ks=(10,))
    unmasked = evaluate(model, split, phase="test", ks=(10,), exclude_history=False)
    row: dict[str, Any] = {
        "tool": "lmrec",
        "events": len(dataset.interactions),
        "users": dataset.n_users,
        "items": dataset.n_items,
        "train_events": len(split.train),
        "threads": args.threads,
        "loss": model.loss_,
        "budget_s": args.budget_s,
        "stopped_by": stopped_by,
        "train_s": train_s,
        "batches_done": len(batch_s),
        "batches_per_epoch": per_epoch,
        "epochs_done": len(batch_s) / per_epoch,
        "batch_size": sizes["batch_size"],
        "mean_batch_s": float(np.mean(steady)),
        "sec_per_epoch": float(np.mean(steady)) * per_epoch,
        "sec_per_epoch_extrapolated": len(batch_s) < per_epoch,
        "test_ndcg@10_unmasked": unmasked.metrics["ndcg@10"],
        "test_ndcg@10_masked": masked.metrics["ndcg@10"],
    }
    recbole_json = OUT / "recbole" / f"budget_{name}_SASRec.json"
    fresh = recbole_json.exists() and recbole_json.stat().st_mtime >= run_began
    if recbole_json.exists() and not fresh:
        print(f"{recbole_json} predates this run: not compared (rerun this script once RecBole's side has finished)")
    result = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.node()} 2 cores",
        "command": f"benchmarks/sasrec_vs_recbole.py --synthetic {events} --budget-s {args.budget_s:g} "
        f"--threads {args.threads} --loss {args.loss}",
        "split": str(split_dir),
        "lmrec": row,
        "recbole": json.loads(recbole_json.read_text()) if fresh else None,
    }
    OUT.mkdir(exist_ok=True)
    (OUT / f"sasrec_vs_recbole_synth{events}_{model.loss_}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(row, indent=2))
    if result["recbole"] is not None:
        rb = result["recbole"]
        print(
            f"RecBole: {rb['sec_per_epoch']:.0f} s/epoch (extrapolated: {rb['sec_per_epoch_extrapolated']}), "
            f"test NDCG@10 {rb['test_result']['ndcg@10']:.4f} after {rb['train_s']:.0f} s; "
            f"lmrec: {row['sec_per_epoch']:.0f} s/epoch, NDCG@10 {row['test_ndcg@10_unmasked']:.4f} (unmasked); "
            f"speed-up per epoch {rb['sec_per_epoch'] / row['sec_per_epoch']:.2f}x"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split-dir", default=str(OUT / "recbole" / "splits" / "ml-100k-recbole-loo"))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--synthetic", type=int, default=0, help="events of a synthetic set (0: the ML-100K split)")
    parser.add_argument("--budget-s", type=float, default=600.0, help="--synthetic: seconds of training")
    parser.add_argument(
        "--loss", choices=["auto", "full", "sampled"], default="auto", help="--synthetic: lmrec SASRec's softmax"
    )
    args = parser.parse_args()
    if args.synthetic:
        run_synthetic(args)
        return
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
