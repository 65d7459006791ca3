"""New users over HTTP on ML-100K: an anonymous session served as the model serves a known history.

Per seed, 10 % of the users (drawn by the seed) are removed from training entirely; ``lm`` (package
defaults; early stopping on a leave-one-out validation of the remaining users, as
``lmrec.pipeline.train_bundle`` does) is fitted on the rest. Every held-out user with at least six
interactions (time order) gives one case: session = their first five items, target = their sixth.

- offline: ``model.encode_users([session])`` (with the five events' timestamps, and without), scored
  against every item, session items masked;
- served: the real service in-process (``create_app`` + FastAPI's ``TestClient`` on the bundle saved by
  ``ModelBundle``), ``POST /recommend {"session_items": [...], "k": 10}`` (no user id; seen items
  excluded by default); parity = share of users whose served top-10 equals the offline top-10 without
  timestamps (a session carries none), and the largest score difference;
- popularity: the training users' most popular items, session items masked;
- user_text: ``POST /recommend {"user_text": <profile sentence>, "k": 10}`` for the same users (the
  text ``lm`` reads for a user: ``lmrec.models.lm.text.user_texts``).

Each seed's figures go to ``<out>/seed<N>.json`` and are reused by a later run with the same settings
(``--force`` refits), so seeds can run in parallel processes and be gathered by one last call;
the table goes to ``benchmarks/results/cold_users.md``.

    python benchmarks/cold_users.py --seeds 0 1 2 --threads 1
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

import common
import numpy as np

log = logging.getLogger("benchmarks.cold_users")

HOLDOUT_SHARE = 0.1
SESSION_LEN = 5
K = 10
METHODS = ("offline_ts", "offline", "served", "popularity", "user_text")
LABELS = {
    "offline_ts": "offline, encode_users with timestamps",
    "offline": "offline, encode_users without timestamps",
    "served": "served, POST session_items",
    "popularity": "popularity (training users)",
    "user_text": "served, POST user_text only",
}


def split_users(inter: Any, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(held-out user indices, kept user indices), the held-out ones ``HOLDOUT_SHARE`` of all, drawn by ``seed``."""
    n_users = inter.n_users
    rng = np.random.default_rng(seed)
    held = np.sort(rng.choice(n_users, size=int(round(HOLDOUT_SHARE * n_users)), replace=False))
    kept = np.setdiff1d(np.arange(n_users), held)
    return held, kept


def cases(inter: Any, held: np.ndarray) -> list[dict[str, Any]]:
    """One case per held-out user with at least ``SESSION_LEN + 1`` interactions: the first
    ``SESSION_LEN`` items by time (ties in file order) and their timestamps, and the next item."""
    order = np.lexsort((np.arange(len(inter)), inter.timestamps, inter.users))
    users, items, times = inter.users[order], inter.items[order], inter.timestamps[order]
    starts = np.searchsorted(users, held, side="left")
    ends = np.searchsorted(users, held, side="right")
    out = []
    for u, a, b in zip(held, starts, ends):
        if b - a < SESSION_LEN + 1:
            continue
        out.append(
            {
                "user": int(u),
                "session": items[a : a + SESSION_LEN].tolist(),
                "times": times[a : a + SESSION_LEN].tolist(),
                "target": int(items[a + SESSION_LEN]),
            }
        )
    return out


def top_k(scores: np.ndarray, masked: list[int], k: int = K) -> np.ndarray:
    """(k,) item indices of the highest ``scores`` with ``masked`` left out (ties: lower index first)."""
    s = np.asarray(scores, dtype=np.float64).copy()
    s[masked] = -np.inf
    return np.argsort(-s, kind="stable")[:k]


def metrics(ranked: np.ndarray, target: int) -> tuple[float, float]:
    """(NDCG@K, Recall@K) of one target item in a ranked list."""
    from lmrec.eval.metrics import ndcg_at_k, recall_at_k

    return float(ndcg_at_k(ranked, [target], K)), float(recall_at_k(ranked, [target], K))


def run_seed(seed: int, args: argparse.Namespace, out_dir: Path) -> dict[str, Any]:
    """Fit, save, serve and score one seed; return its figures."""
    from fastapi.testclient import TestClient

    from lmrec.data.idmap import IdMap
    from lmrec.models.lm.text import user_texts
    from lmrec.pipeline import train_bundle
    from lmrec.serve import ServeSettings, create_app

    dataset = common.load_data("ml-100k")
    inter = dataset.interactions
    held, kept = split_users(inter, seed)
    kept_map = IdMap(inter.user_map.to_ids(kept))
    train_inter = inter.subset(np.isin(inter.users, kept)).with_maps(kept_map, inter.item_map)
    train = dataset.with_interactions(train_inter)
    todo = cases(inter, held)
    log.info("seed %d: %d users held out, %d with >= %d interactions", seed, len(held), len(todo), SESSION_LEN + 1)

    params: dict[str, Any] = {"cache_dir": str(common.EMBED_CACHE), "num_threads": args.threads}
    if args.epochs is not None:
        params["epochs"] = args.epochs
    model = common.make_lm(params, seed)
    with common.Timer() as fit_time:
        bundle = train_bundle(model, train, seed=seed)
    log.info("seed %d: fitted in %.0fs", seed, fit_time.seconds)

    item_vecs = model.item_vectors()
    item_ids = inter.item_map.to_ids(np.arange(inter.n_items))
    pop_counts = np.bincount(train_inter.items, minlength=inter.n_items).astype(np.float64)
    texts = user_texts(dataset.users, IdMap(inter.user_map.to_ids(np.asarray([c["user"] for c in todo]))))

    seed_dir = out_dir / f"seed{seed}"
    if seed_dir.exists():
        shutil.rmtree(seed_dir)
    model_dir = bundle.save(seed_dir / "model")
    settings = ServeSettings(model_dir=model_dir, state_dir=seed_dir / "serve_state")
    per_method: dict[str, list[tuple[float, float]]] = {m: [] for m in METHODS}
    same_top, max_diff, strategies = 0, 0.0, {"session": set(), "user_text": set()}
    with TestClient(create_app(settings)) as client:

        def post(body: dict[str, Any]) -> dict[str, Any]:
            resp = client.post("/recommend", json={**body, "k": K})
            resp.raise_for_status()
            return resp.json()

        for case, text in zip(todo, texts):
            session, target = case["session"], case["target"]
            with_ts = model.encode_users([session], None, [case["times"]])[0]
            without = model.encode_users([session])[0]
            off_ts = top_k(item_vecs @ with_ts, session)
            off_scores = item_vecs @ without
            off = top_k(off_scores, session)
            answer = post({"session_items": [item_ids[i] for i in session]})
            strategies["session"].add(answer["strategy"])
            served = inter.item_map.to_index([it["item_id"] for it in answer["items"]])
            served_scores = np.asarray([it["score"] for it in answer["items"]], dtype=np.float64)
            same_top += int(np.array_equal(served, off))
            max_diff = max(max_diff, float(np.max(np.abs(served_scores - off_scores[served]))))
            text_answer = post({"user_text": text})
            strategies["user_text"].add(text_answer["strategy"])
            by_text = inter.item_map.to_index([it["item_id"] for it in text_answer["items"]])
            for name, ranked in (
                ("offline_ts", off_ts),
                ("offline", off),
                ("served", served),
                ("popularity", top_k(pop_counts, session)),
                ("user_text", by_text),
            ):
                per_method[name].append(metrics(np.asarray(ranked), target))
    result = {
        "seed": seed,
        "epochs": args.epochs,
        "n_held_out": int(len(held)),
        "n_cases": len(todo),
        "fit_seconds": round(fit_time.seconds, 1),
        "parity_same_top10": same_top / len(todo),
        "parity_max_score_diff": max_diff,
        "strategies": {k: sorted(v) for k, v in strategies.items()},
    }
    for name, rows in per_method.items():
        arr = np.asarray(rows)
        result[name] = {"ndcg@10": float(arr[:, 0].mean()), "recall@10": float(arr[:, 1].mean())}
    shutil.rmtree(seed_dir / "serve_state", ignore_errors=True)
    return result


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (population std over seeds; ``± -`` for one seed)."""
    arr = np.asarray(values, dtype=np.float64)
    spread = f"{arr.std():.4f}" if len(arr) > 1 else "-"
    return f"{arr.mean():.4f} ± {spread}"


def report(results: list[dict[str, Any]], command: str) -> str:
    """The markdown report of ``results`` (one dict per seed)."""
    seeds = [r["seed"] for r in results]
    lines = [
        "# New users on ML-100K: anonymous sessions and profile texts",
        "",
        f"Command: `{command}`  ",
        f"Date: {dt.date.today().isoformat()}; machine: 2-core dev box (CPU only, {platform.processor() or 'x86_64'}; "
        "other helpers were loading the CPU at the time).  ",
        f"Seeds: {', '.join(map(str, seeds))}; epochs: "
        f"{'package default (early stopping)' if results[0]['epochs'] is None else results[0]['epochs']}.",
        "",
        f"Per seed, {HOLDOUT_SHARE:.0%} of the users are removed from training entirely; `lm` (package defaults) "
        "is fitted on the rest with `train_bundle` (early stopping on a leave-one-out validation). Each held-out "
        f"user with >= {SESSION_LEN + 1} interactions gives one case: session = first {SESSION_LEN} items by time, "
        f"target = the next one; session items are masked/excluded. Cases per seed: "
        f"{', '.join(str(r['n_cases']) for r in results)} (of {results[0]['n_held_out']} held-out users).",
        "",
        "| method | NDCG@10 | Recall@10 | NDCG@10 / popularity |",
        "|---|---|---|---|",
    ]
    for name in METHODS:
        ratio = [r[name]["ndcg@10"] / r["popularity"]["ndcg@10"] for r in results]
        lines.append(
            f"| {LABELS[name]} | {mean_std([r[name]['ndcg@10'] for r in results])} | "
            f"{mean_std([r[name]['recall@10'] for r in results])} | {mean_std(ratio)} |"
        )
    lines += [
        "",
        "Parity (served session vs offline `encode_users` without timestamps): same top-10 for "
        f"{mean_std([r['parity_same_top10'] for r in results])} of the users; largest |served score - offline "
        f"score| over all users and seeds: {max(r['parity_max_score_diff'] for r in results):.2e}.  ",
        f"Answer strategies seen: session_items -> {sorted({s for r in results for s in r['strategies']['session']})}; "
        f"user_text -> {sorted({s for r in results for s in r['strategies']['user_text']})}.  ",
        f"Fit seconds per seed: {', '.join(str(r['fit_seconds']) for r in results)}.",
        "",
        *reading(results),
        "",
    ]
    return "\n".join(lines)


def reading(results: list[dict[str, Any]]) -> list[str]:
    """Two lines that read the table against the targets (parity; >= 2x popularity; user_text vs popularity)."""
    ratios = [r["served"]["ndcg@10"] / r["popularity"]["ndcg@10"] for r in results]
    of_means = np.mean([r["served"]["ndcg@10"] for r in results]) / np.mean(
        [r["popularity"]["ndcg@10"] for r in results]
    )
    text = np.asarray([r["user_text"]["ndcg@10"] / r["popularity"]["ndcg@10"] for r in results])
    parity = min(r["parity_same_top10"] for r in results)
    diff = max(r["parity_max_score_diff"] for r in results)
    met = sum(x >= 2.0 for x in ratios)
    near = len(text) > 1 and abs(text.mean() - 1.0) <= text.std()
    text_word = "on par with" if near else ("above" if text.mean() > 1.0 else "below")
    return [
        f"Reading: parity {'holds' if parity == 1.0 else 'does not hold'} (served top-10 = offline top-10 for "
        f"{parity:.0%} of users in the worst seed, scores within {diff:.1e}); served sessions reach "
        f"{of_means:.2f}x popularity's NDCG@10 (ratio of means; per seed "
        f"{', '.join(f'{x:.2f}x' for x in ratios)}): the >= 2x target is met in {met} of {len(ratios)} seeds, "
        f"with {results[0]['n_cases']} users per seed the spread is wide.  ",
        f"The profile sentence alone (user_text) gives {text.mean():.2f}x popularity's NDCG@10 "
        f"(per seed {', '.join(f'{x:.2f}x' for x in text)}): {text_word} popularity.",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=None, help="most epochs (default: the package's, early stopping)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of the lm fit")
    parser.add_argument("--out", type=Path, default=common.OUT / "cold_users", help="per-seed JSON and bundles")
    parser.add_argument("--force", action="store_true", help="refit seeds whose JSON already exists")
    parser.add_argument("--report", type=Path, default=common.RESULTS_DIR / "cold_users.md")
    args = parser.parse_args(argv)
    common.setup_logging(quiet=("httpx", "httpx2", "lmrec.serve", "sentence_transformers"))
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    for seed in args.seeds:
        path = args.out / f"seed{seed}.json"
        cached = json.loads(path.read_text()) if path.exists() and not args.force else None
        if cached is not None and cached.get("epochs") == args.epochs:
            log.info("seed %d: reusing %s", seed, path)
            results.append(cached)
            continue
        result = run_seed(seed, args, args.out)
        path.write_text(json.dumps(result, indent=2))
        log.info("seed %d: %s", seed, json.dumps(result))
        results.append(result)
    command = "python benchmarks/" + " ".join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])
    args.report.write_text(report(results, command))
    log.info("wrote %s", args.report)


if __name__ == "__main__":
    main()
