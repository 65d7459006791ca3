"""The feedback loop on real data: adaptive re-ranker vs static ranking, off-policy checks, latency.

For each data set (``ml-100k`` bundled, ``office`` from ``--office``), each user's interactions are split
in time (the last ``--future`` share is their future); an ALS model is trained on the past and served
in-process (`lmrec.serve.loading.open_service`), and `lmrec.serve.feedback.simulate.replay` drives
``RecService.recommend`` / ``ingest`` with the users' clicks (a click: a shown item among the user's
future items). Three parts:

1. ``replay``: ``--rounds`` rounds of every simulated user, re-ranker (``--mode``, Thompson sampling by
   default) against the static ranking (re-ranker off), per seed: cumulative clicks and distinct
   items shown; ratios with a t-interval over seeds.
2. ``ope``: one round logged by the epsilon-greedy logging policy (``--ope-eps`` of the lists are a
   uniform arrangement of the ``--ope-pool`` candidates, propensities logged), clicks sent after the
   round; IPS / SNIPS / DR estimates of a second policy (``--target``) from the log through
   `lmrec.serve.feedback.policy.evaluate`; then that policy serves the same users for real.
3. ``latency``: ``/recommend`` for known users on the ML-100K model, re-ranker off and on, requests
   alternating one by one between the two so both see the same machine load: over HTTP (two
   ``lmrec serve`` processes up at once, a keep-alive connection each) and in-process (two services of
   one process, users with one click each); p50, p99 and the median of the paired differences.

Example::

    python benchmarks/feedback_sim.py --out benchmarks/out/feedback_sim
    python benchmarks/feedback_sim.py --datasets ml-100k --seeds 0 --rounds 3 --max-users 200 --skip-latency  # smoke
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import common
import numpy as np

log = logging.getLogger("feedback_sim")


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval over seeds."""
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values)))
    return mean, mean - half, mean + half


def train_bundle(name: str, office: str | None, future_share: float, out: Path) -> tuple[Path, dict[str, set[str]]]:
    from lmrec.models.bundle import ModelBundle
    from lmrec.models.mf import MatrixFactorization
    from lmrec.serve.feedback.simulate import future_items

    data = common.load_data(name, office)
    train, future = future_items(data.interactions, future_share)
    model = MatrixFactorization("als", factors=64, num_threads=1, random_state=0)
    model.fit(data.with_interactions(train))
    path = out / f"model-{name}"
    if path.exists():
        shutil.rmtree(path)
    ModelBundle(model, data.items, None, {"dataset": name}).save(path)
    return path, future


def open_sim(model_dir: Path, state: Path, feedback: dict[str, Any], *, state_from: Path | None = None) -> Any:
    """A fresh service over ``model_dir`` in ``state`` (``state_from``: a re-ranker state to start from)."""
    from lmrec.serve.loading import open_service
    from lmrec.serve.settings import ServeSettings

    if state.exists():
        shutil.rmtree(state)
    # the catalogue's text embeddings are encoded once per model and copied into every fresh state
    cache = model_dir.parent / f"embeddings-{model_dir.name}"
    if cache.exists():
        shutil.copytree(cache, state / "embeddings")
    if state_from is not None:
        shutil.copytree(state_from, state / "feedback")
    settings = ServeSettings(
        model_dir=model_dir,
        state_dir=state,
        items_sync_interval_s=0.0,
        sqlite_synchronous="NORMAL",
        console=False,
        feedback=feedback,
    )
    service = open_service(settings)
    if not cache.exists() and (state / "embeddings").exists():
        shutil.copytree(state / "embeddings", cache)
    return service


def run_replay(args: argparse.Namespace, name: str, model_dir: Path, future: dict[str, set[str]], out: Path) -> dict:
    from lmrec.serve.feedback.simulate import replay

    users_all = sorted(future)
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(seed)
        users = (
            users_all
            if len(users_all) <= args.max_users
            else sorted(rng.choice(users_all, args.max_users, replace=False))
        )
        row: dict[str, Any] = {"seed": seed, "users": len(users)}
        for label, feedback in (
            ("static", {"reranker": "off"}),
            ("reranker", {"reranker": args.mode, "explore_rate": args.explore, "rerank_pool": args.pool}),
        ):
            service = open_sim(model_dir, out / f"state-{name}-{label}-{seed}", feedback)
            start = time.perf_counter()
            res = replay(service, future, users, rounds=args.rounds, k=args.k, seed=seed)
            service.close()
            row[label] = {
                "clicks": res.clicks,
                "lists": res.lists,
                "distinct_items": res.distinct_items,
                "clicks_per_round": res.clicks_per_round,
                "seconds": round(time.perf_counter() - start, 1),
            }
            log.info("%s seed %d %s: %s", name, seed, label, row[label])
        rows.append(row)
    clicks = [r["reranker"]["clicks"] / max(r["static"]["clicks"], 1) for r in rows]
    distinct = [r["reranker"]["distinct_items"] / max(r["static"]["distinct_items"], 1) for r in rows]
    return {"runs": rows, "clicks_ratio": t_interval(clicks), "distinct_ratio": t_interval(distinct)}


def run_ope(args: argparse.Namespace, name: str, model_dir: Path, future: dict[str, set[str]], out: Path) -> dict:
    from lmrec.serve.feedback.features import FEATURES
    from lmrec.serve.feedback.linear import LinearThompson
    from lmrec.serve.feedback.policy import evaluate, policy_weights
    from lmrec.serve.feedback.simulate import replay

    target = policy_weights(args.target)
    users_all = sorted(future)
    rows = []
    for seed in args.seeds:
        rng = np.random.default_rng(1000 + seed)
        users = (
            users_all
            if len(users_all) <= args.ope_users
            else sorted(rng.choice(users_all, args.ope_users, replace=False))
        )
        logging_fb = {
            "reranker": "epsilon",
            "explore_rate": args.ope_eps,
            "rerank_pool": args.ope_pool,
            "impression_sample": 1.0,
        }
        state = out / f"ope-{name}-log-{seed}"
        service = open_sim(model_dir, state, logging_fb)
        service.feedback.rng = np.random.default_rng(seed)  # the logging policy's randomness, per seed
        logged = replay(service, future, users, rounds=1, k=args.k, seed=seed, respond="after_round")
        service.close()
        report = evaluate(state, args.target)
        # the target policy for real: the greedy re-ranker with the target's weights as its state
        tstate = out / f"ope-{name}-target-{seed}"
        saved = out / f"ope-{name}-target-state"
        LinearThompson(FEATURES, target, l2=1e6).save(saved / "reranker")
        service = open_sim(model_dir, tstate, {"reranker": "greedy", "rerank_pool": args.ope_pool}, state_from=saved)
        truth = replay(service, future, users, rounds=1, k=args.k, seed=seed, respond="after_round")
        service.close()
        true_value = truth.clicks_per_list
        est = {
            key: {"value": e.value, "lower": e.lower, "upper": e.upper, "covers": e.contains(true_value)}
            for key, e in (("ips", report.ips), ("snips", report.snips), ("dr", report.dr))
        }
        rows.append(
            {
                "seed": seed,
                "users": len(users),
                "logged_clicks_per_list": logged.clicks_per_list,
                "true_clicks_per_list": true_value,
                "match_rate": report.match_rate,
                **est,
            }
        )
        log.info("%s ope seed %d: %s", name, seed, rows[-1])
    return {"runs": rows, "dr_covers": sum(r["dr"]["covers"] for r in rows)}


def run_latency(args: argparse.Namespace, model_dir: Path, users: list[str], out: Path) -> dict:
    """Two ``lmrec serve`` processes up at once, re-ranker off and on, each behind its own keep-alive
    connection; requests alternate between them one by one, so both see the same load of the machine."""
    import httpx

    servers: dict[str, tuple[Any, int]] = {}
    try:
        for label in ("off", "on") if args.latency_first == "off" else ("on", "off"):
            port = common.free_port()
            state = out / f"latency-{label}"
            if state.exists():
                shutil.rmtree(state)
            feedback = {"reranker": args.mode, "rerank_pool": args.pool} if label == "on" else {"reranker": "off"}
            settings = {
                "model_dir": str(model_dir),
                "state_dir": str(state),
                "port": port,
                "log_level": "warning",
                "console": False,
                "feedback": feedback,
            }
            servers[label] = (common.start_server(settings, out / f"latency-{label}.log")[0], port)
        clients = {
            label: httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) for label, (_, port) in servers.items()
        }
        times: dict[str, list[float]] = {"off": [], "on": []}
        for i in range(200 + args.latency_requests):
            body = {"user_id": users[i % len(users)], "k": args.k}
            for label in ("off", "on") if i % 2 else ("on", "off"):
                t0 = time.perf_counter()
                r = clients[label].post("/recommend", json=body)
                if i >= 200:  # the first 200 warm up
                    times[label].append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200, r.text
        for client in clients.values():
            client.close()
    finally:
        for proc, _ in servers.values():
            common.stop_server(proc)
    summary: dict[str, Any] = {
        label: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99)), "n": len(v)}
        for label, v in times.items()
    }
    summary["p99_added_ms"] = summary["on"]["p99_ms"] - summary["off"]["p99_ms"]
    summary["p50_added_ms"] = summary["on"]["p50_ms"] - summary["off"]["p50_ms"]
    summary["median_paired_added_ms"] = float(np.median(np.asarray(times["on"]) - np.asarray(times["off"])))
    return summary


def run_latency_inprocess(args: argparse.Namespace, model_dir: Path, users: list[str], out: Path) -> dict:
    """``RecService.recommend`` of two services in one process, re-ranker off and on, requests interleaved
    one by one, so both see the same load of the (shared) machine; users have clicked one item each."""
    from lmrec.serve.schemas import EventIn

    services = {
        "off": open_sim(model_dir, out / "latency-inproc-off", {"reranker": "off"}),
        "on": open_sim(model_dir, out / "latency-inproc-on", {"reranker": args.mode, "rerank_pool": args.pool}),
    }
    times: dict[str, list[float]] = {"off": [], "on": []}
    try:
        for svc in services.values():
            item = svc.items.ids[0]
            clicks = [EventIn(event_id=f"warm:{u}", user_id=u, item_id=item, type="click") for u in users]
            for start in range(0, len(clicks), 500):
                svc.ingest(clicks[start : start + 500])
            for u in users[:200]:
                svc.recommend(user_id=u, k=args.k)
        for i in range(args.latency_requests):
            user = users[i % len(users)]
            for label in ("off", "on") if i % 2 else ("on", "off"):
                t0 = time.perf_counter()
                services[label].recommend(user_id=user, k=args.k)
                times[label].append((time.perf_counter() - t0) * 1000)
    finally:
        for svc in services.values():
            svc.close()
    summary: dict[str, Any] = {
        label: {"p50_ms": float(np.percentile(v, 50)), "p99_ms": float(np.percentile(v, 99)), "n": len(v)}
        for label, v in times.items()
    }
    added = np.asarray(times["on"]) - np.asarray(times["off"])
    summary["p99_added_ms"] = summary["on"]["p99_ms"] - summary["off"]["p99_ms"]
    summary["p50_added_ms"] = summary["on"]["p50_ms"] - summary["off"]["p50_ms"]
    summary["median_paired_added_ms"] = float(np.median(added))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", nargs="+", default=["ml-100k", "office"])
    common.add_office_arg(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--future", type=float, default=0.3, help="share of each user's interactions held out")
    parser.add_argument("--max-users", type=int, default=1000, help="simulated users per seed (a sample)")
    parser.add_argument("--mode", default="thompson", choices=["greedy", "thompson", "epsilon"])
    parser.add_argument("--explore", type=float, default=0.1)
    parser.add_argument("--pool", type=int, default=50)
    parser.add_argument("--ope-users", type=int, default=2000)
    parser.add_argument("--ope-eps", type=float, default=0.5)
    parser.add_argument("--ope-pool", type=int, default=20)
    parser.add_argument("--target", default="weights:score=1,popularity=1")
    parser.add_argument("--latency-requests", type=int, default=3000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--latency-first", choices=["off", "on"], default="off", help="which server starts first")
    parser.add_argument("--skip-ope", action="store_true")
    parser.add_argument("--skip-replay", action="store_true", help="only the OPE and latency parts")
    parser.add_argument("--out", default="benchmarks/out/feedback_sim")
    args = parser.parse_args()
    common.setup_logging(quiet=("httpx", "sentence_transformers", "faiss"))
    logging.getLogger("lmrec").setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"args": vars(args)}
    for name in args.datasets:
        model_dir, future = train_bundle(name, args.office, args.future, out)
        results[name] = {"users_with_future": len(future)}
        if not args.skip_replay:
            results[name]["replay"] = run_replay(args, name, model_dir, future, out)
        if not args.skip_ope:
            results[name]["ope"] = run_ope(args, name, model_dir, future, out)
        if name == "ml-100k" and not args.skip_latency:
            results["latency_inprocess"] = run_latency_inprocess(args, model_dir, sorted(future), out)
            results["latency"] = run_latency(args, model_dir, sorted(future), out)
        (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    log.info("results: %s", json.dumps(results, default=str)[:4000])
    for name in args.datasets:
        if "replay" not in results[name]:
            continue
        rep = results[name]["replay"]
        print(f"{name}: clicks x{rep['clicks_ratio']}, distinct x{rep['distinct_ratio']}")  # noqa: T201
    if "latency" in results:
        print("latency (HTTP):", results["latency"])  # noqa: T201
        print("latency (in-process):", results["latency_inprocess"])  # noqa: T201


if __name__ == "__main__":
    main()
