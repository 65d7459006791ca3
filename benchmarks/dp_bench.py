"""The privacy-accuracy table of the ``lm`` model: user-level DP-SGD against the non-private model.

ML-100K, leave-one-out by time, full ranking over every item, test after observing valid (as
``lmrec evaluate --split loo``). Variants (``--variants``):

- ``es``: non-private, the package defaults with early stopping on valid NDCG@10 (``optim.epochs``
  200, patience 10): what ``lmrec train`` gives without privacy;
- ``fixed``: non-private, exactly ``--epochs`` epochs, no validation (the same budget as DP);
- ``eps1`` / ``eps3`` / ``eps8`` (any ``epsN``): DP-SGD with ``privacy.epsilon=N``, ``privacy.delta``
  1e-5, exactly ``--epochs`` epochs (private training never early-stops);
- ``pop``: popularity, the floor a private model should beat.

Every lm variant has the package defaults otherwise (``dim`` 64, ``max_len`` 50, hybrid items, full
softmax, batch 128, lr 1e-3); ``--dp-params`` adds settings to the DP variants only (e.g.
``optim.lr=0.003``). Each run writes ``benchmarks/out/dp_runs/<variant>_s<seed>.json`` and is
skipped when that file exists (``--force`` redoes it), so a long run can be stopped and resumed;
``report`` prints the markdown table over the runs found.

Usage (one process per core at most; ``nice`` on a shared machine)::

    OMP_NUM_THREADS=1 nice python benchmarks/dp_bench.py run --variants fixed,eps1,eps3,eps8 --seeds 0 1 2 --epochs 6
    OMP_NUM_THREADS=1 nice python benchmarks/dp_bench.py run --variants es,pop --seeds 0 1 2
    python benchmarks/dp_bench.py report
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import time
from typing import Any

import common
import numpy as np

RUNS = common.OUT / "dp_runs"
log = logging.getLogger("dp_bench")


def lm_params(variant: str, epochs: int, dp_params: dict[str, Any]) -> dict[str, Any]:
    """The lm parameters of a variant (dotted keys, as ``--param lm.KEY=VALUE``)."""
    base: dict[str, Any] = {"encoder.cache_dir": str(common.EMBED_CACHE), "num_threads": 1}
    if variant == "es":
        return base
    if variant == "fixed":
        return {**base, "optim.epochs": epochs}
    match = re.fullmatch(r"eps(\d+(?:\.\d+)?)", variant)
    if match is None:
        raise SystemExit(f"unknown variant {variant!r}: es, fixed, pop or epsN (eps1, eps3, eps8)")
    return {
        **base,
        "optim.epochs": epochs,
        "privacy.epsilon": float(match.group(1)),
        "privacy.delta": 1e-5,
        **dp_params,
    }


def run_one(variant: str, seed: int, epochs: int, dp_params: dict[str, Any], force: bool) -> None:
    from lmrec.data import leave_one_out
    from lmrec.eval import evaluate
    from lmrec.models.popularity import Popularity

    path = RUNS / f"{variant}_s{seed}.json"
    if path.exists() and not force:
        log.info("skip %s (exists)", path)
        return
    data = common.load_data("ml-100k")
    split = leave_one_out(data.interactions)
    train = data.with_interactions(split.train)
    params: dict[str, Any] = {}
    if variant == "pop":
        model: Any = Popularity()
    else:
        params = lm_params(variant, epochs, dp_params)
        model = common.make_lm(params, seed)
    started = time.perf_counter()
    if variant == "es":
        model.fit(train, valid=split)
    else:
        model.fit(train)  # fixed budget; a private model would ignore valid anyway
    fit_s = time.perf_counter() - started
    valid = evaluate(model, split, phase="valid", ks=(10,), metrics=("ndcg", "recall"))
    if getattr(model, "is_sequential", False):
        model.observe(split.valid)
    test = evaluate(model, split, phase="test", ks=(10,), metrics=("ndcg", "recall"))
    history = getattr(model, "train_history_", None) or []
    record = {
        "variant": variant,
        "seed": seed,
        "params": params,
        "fit_seconds": fit_s,
        "epochs_run": len(history),
        "valid": valid.metrics,
        "test": test.metrics,
        "privacy": getattr(model, "privacy_report_", None),
        "date": time.strftime("%Y-%m-%d"),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2, default=float))
    eps = (record["privacy"] or {}).get("epsilon")
    log.info(
        "%s seed %d: test ndcg@10 %.4f recall@10 %.4f, epsilon %s (fit %.0f s, %d epochs)",
        variant,
        seed,
        test.metrics["ndcg@10"],
        test.metrics["recall@10"],
        "-" if eps is None else f"{eps:.3f}",
        fit_s,
        len(history),
    )


def report() -> str:
    """The markdown table over every run in ``RUNS`` (mean ± std over seeds)."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(RUNS.glob("*.json")):
        record = json.loads(path.read_text())
        runs.setdefault(record["variant"], []).append(record)

    def order(v: str) -> tuple[int, float]:
        if v.startswith("eps"):
            return (2, -float(v[3:]))
        return ({"es": 0, "fixed": 1, "pop": 3}.get(v, 4), 0.0)

    def stat(values: list[float], digits: int = 4) -> str:
        arr = np.asarray(values, dtype=float)
        spread = f" ± {arr.std(ddof=1):.{digits}f}" if len(arr) > 1 else ""
        return f"{arr.mean():.{digits}f}{spread}"

    lines = [
        "| model | epsilon (target) | epsilon spent | noise multiplier | epochs | NDCG@10 | Recall@10 | fit (s) | seeds |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    names = {"es": "lm, non-private, early stopping (default)", "fixed": "lm, non-private, fixed epochs"}
    for variant in sorted(runs, key=order):
        rs = runs[variant]
        privacy = [r["privacy"] for r in rs if r.get("privacy")]
        name = names.get(variant, "popularity" if variant == "pop" else f"lm, DP-SGD ({variant})")
        target = f"{privacy[0]['target_epsilon']:g}" if privacy else "∞"
        spent = stat([p["epsilon"] for p in privacy], 3) if privacy else "-"
        sigma = f"{privacy[0]['noise_multiplier']:.3f}" if privacy else "-"
        epochs = ", ".join(sorted({str(r["epochs_run"]) for r in rs}, key=int)) if variant != "pop" else "-"
        lines.append(
            f"| {name} | {target if variant != 'pop' else '-'} | {spent} | {sigma} | {epochs} | "
            f"{stat([r['test']['ndcg@10'] for r in rs])} | {stat([r['test']['recall@10'] for r in rs])} | "
            f"{stat([r['fit_seconds'] for r in rs], 0)} | {len(rs)} |"
        )
    return "\n".join(lines)


def parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="train and evaluate the variants")
    run.add_argument("--variants", default="es,fixed,eps1,eps3,eps8,pop")
    run.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    run.add_argument("--epochs", type=int, default=6, help="the fixed budget of 'fixed' and the DP variants")
    run.add_argument("--dp-params", nargs="*", default=[], metavar="KEY=VALUE", help="extra lm settings for DP runs")
    run.add_argument("--force", action="store_true")
    sub.add_parser("report", help="print the table over the runs found")
    args = parser.parse_args()
    common.setup_logging(quiet=("lmrec.eval", "sentence_transformers", "lmrec.models.lm.model"))
    if args.command == "report":
        print(report())
        return
    dp_params = {k: parse_value(v) for k, _, v in (p.partition("=") for p in args.dp_params)}
    for seed in args.seeds:
        for variant in args.variants.split(","):
            run_one(variant, seed, args.epochs, dp_params, args.force)


if __name__ == "__main__":
    main()
