"""The ``lm`` model under load, served with the Redis store (issue 21).

1. Trains ``lm`` on MovieLens-100K (its item texts encoded by the packaged MiniLM; ``--epochs``, short:
   the figures are about serving, not accuracy) and saves the bundle, unless ``--out`` holds one.
2. Starts redis-server with AOF on (``appendfsync everysec``) and one ``lmrec serve --store redis``
   process (``threads=1``) on loopback; this script is the load generator, in another process.
3. Gives ``--profile-users`` users known to the model 5 live events each (so profiles blend the user
   vector with live events), then drives ``/recommend``:
   - ``profile``: known users, k=10, no query (``wrk``, ``--connections`` keep-alive connections);
   - ``query``: a new natural-language query every request, encoded by MiniLM on the fly;
4. Ingestion through the Redis stream: ``/events`` batches for ``--duration`` seconds; after each
   acknowledged batch a sampled user's ``/users/{id}`` must list its latest event and its profile must
   have absorbed every logged event (``profiles_behind_log`` counts those that had not).

``--store sqlite`` runs the same with the embedded store (one process, no Redis) as the baseline.
Writes ``results-<store>.json`` and ``results-<store>.md`` under ``--out``. Example::

    python benchmarks/serve_lm_load.py --duration 15 --out benchmarks/out/serve_lm_load
    python benchmarks/serve_lm_load.py --duration 15 --store sqlite --out benchmarks/out/serve_lm_load
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import shutil
import time
from pathlib import Path
from typing import Any

import common
import httpx
import replicas
import serve_load

log = logging.getLogger("serve_lm_load")

GENRES = ["comedy", "romance", "thriller", "horror", "science fiction", "animation", "war", "western", "crime"]
QUERY_TEMPLATES = [
    "a {adj} {genre} movie",
    "{genre} film with a {adj} ending",
    "something {adj} to watch tonight, maybe {genre}",
    "classic {genre} from the nineties",
]
ADJECTIVES = ["funny", "dark", "sad", "exciting", "slow", "romantic", "violent", "clever", "family friendly"]


def train(model_dir: Path, epochs: int, threads: int) -> None:
    from lmrec.models.bundle import ModelBundle

    data = common.load_data("ml-100k")
    params = {"max_len": 50, "lr": 3e-3, "dropout": 0.2, "epochs": epochs, "dim": 64}
    model = common.make_lm({"cache_dir": str(common.EMBED_CACHE), "num_threads": threads, **params}, 0)
    with common.Timer() as t:
        model.fit(data)
    log.info("trained lm on %s in %.1fs", data.name, t.seconds)
    ModelBundle(model, data.items, data.users, {"dataset": data.name, "model": "lm"}).save(model_dir)


def queries(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        text = rng.choice(QUERY_TEMPLATES).format(adj=rng.choice(ADJECTIVES), genre=rng.choice(GENRES))
        out.append({"query": f"{text} {i}", "k": 10})  # unique texts: no encoder cache can help
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / "model"
    if not (model_dir / "config.json").exists():
        train(model_dir, args.epochs, args.train_threads)
    state = out / "state"
    shutil.rmtree(state, ignore_errors=True)
    shutil.rmtree(out / "redis", ignore_errors=True)
    redis = replicas.Redis(out / "redis")
    from lmrec.models.bundle import ModelBundle

    bundle = ModelBundle.load(model_dir)
    item_ids = [str(i) for i in bundle.model.item_map_.ids]
    users = [str(u) for u in bundle.model.user_map_.ids]
    rng = random.Random(args.seed)
    profile_users = rng.sample(users, min(args.profile_users, len(users)))
    port = common.free_port()
    settings = {
        "model_dir": str(model_dir),
        "state_dir": str(state),
        "port": port,
        "log_level": "warning",
        "threads": 1,
        "profile_store": args.store,
        "redis_url": redis.url,
        "redis_aof": "require",
    }
    results: dict[str, Any] = {"config": vars(args), "load_avg_at_start": os.getloadavg()}
    proc, startup = common.start_server(settings, out / "server.log", timeout_s=900)
    base = f"http://127.0.0.1:{port}"
    try:
        results["startup_s"] = startup
        results["health"] = httpx.get(base + "/health").json()
        asyncio.run(serve_load.warm_profiles(base, profile_users, item_ids, args.seed))
        bodies = [{"user_id": u, "k": 10} for u in profile_users]
        qbodies = queries(20_000, args.seed)
        asyncio.run(serve_load.closed_loop(base, bodies, 4, 3.0))  # warm-up: user vectors cached
        httpx.post(base + "/recommend", json=qbodies[-1], timeout=600).raise_for_status()  # loads the query encoder
        asyncio.run(serve_load.closed_loop(base, qbodies[-50:], 2, 2.0))

        def load(b: list[dict], connections: int) -> dict[str, float]:
            if shutil.which("wrk"):
                return serve_load.wrk_run(base, b, connections, args.duration, out)
            return asyncio.run(serve_load.closed_loop(base, b, connections, args.duration))

        results["profile"] = load(bodies, args.connections)
        results["query"] = load(qbodies, args.query_connections)
        results["ingestion"] = asyncio.run(
            serve_load.ingestion(base, item_ids, args.duration, args.batch, 4, args.seed)
        )
        results["health_after"] = httpx.get(base + "/health").json()
        results["rss_mb"] = _rss_mb(proc.pid)
    finally:
        common.stop_server(proc)
        redis.stop()
    results["load_avg_at_end"] = os.getloadavg()
    results["client"] = "wrk" if shutil.which("wrk") else "httpx"
    (out / f"results-{args.store}.json").write_text(json.dumps(results, indent=2, default=str))
    (out / f"results-{args.store}.md").write_text(markdown(results))
    return results


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def markdown(r: dict[str, Any]) -> str:
    p, q, i = r["profile"], r["query"], r["ingestion"]
    return "\n".join(
        [
            "| run | conns | throughput | p50 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|",
            f"| /recommend profile (known user, k=10) | {p['connections']} | {p['throughput_rps']:.0f} rps "
            f"| {p['p50_ms']:.1f} | {p['p99_ms']:.1f} | {p['errors']} |",
            f"| /recommend new NL query (MiniLM) | {q['connections']} | {q['throughput_rps']:.0f} rps "
            f"| {q['p50_ms']:.1f} | {q['p99_ms']:.1f} | {q['errors']} |",
            f"| /events, {r['config']['store']} store (batch {i['batch']}, 4 conns) | 4 | {i['events_per_s']:.0f} events/s "
            f"| {i['batch_p50_ms']:.1f} (batch) | {i['batch_p99_ms']:.1f} (batch) | "
            f"{i['profiles_behind_log']} of {i['visibility_checks']} checks behind |",
            "",
            f"Replica RSS after the runs: {r['rss_mb']:.0f} MB; start-up {r['startup_s']:.1f} s; "
            f"load average at start {r['load_avg_at_start']}, at end {r['load_avg_at_end']}; client {r['client']}.",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train-threads", type=int, default=2)
    parser.add_argument("--profile-users", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--query-connections", type=int, default=2)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--store", choices=["redis", "sqlite"], default="redis", help="sqlite: the one-process baseline"
    )
    parser.add_argument("--out", default="benchmarks/out/serve_lm_load")
    args = parser.parse_args()
    common.setup_logging(quiet=["httpx"])
    t0 = time.perf_counter()
    r = run(args)
    print(markdown(r))
    log.info("done in %.0fs", time.perf_counter() - t0)


if __name__ == "__main__":
    main()
