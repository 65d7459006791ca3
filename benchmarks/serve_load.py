"""Load test of ``lmrec serve`` on a synthetic 100,000-item catalogue, next to a naive baseline.

What it does (all on loopback; the server is one process, this script the load-generating other):

1. Builds a synthetic product catalogue (``--items``, default 100,000 texts such as "Norrland lightweight
   navy canvas backpack, model 4711. A durable backpack for travel."), synthetic users with histories in
   two categories each, and trains a model bundle on them (``--model pop``: Popularity, served in the
   text encoder's space; ``--model lm``: the language-model interest model, served in its own space).
2. Starts the server twice on the same state directory: with the configured index (``auto``: HNSW
   beyond 20,000 items) and with ``--index numpy`` (exact numpy scoring over every item, no index: the
   naive baseline), and for each drives ``/recommend`` with ``wrk`` (Debian's, one thread, a fixed
   number of keep-alive connections; throughput and latency percentiles come from the same run):
   - ``profile``: users with a profile (k=10, no query), ``--connections`` connections;
   - ``query``: a new natural-language query every request (encoded on the fly), ``--query-connections``;
   - ``saturation``: the ``profile`` requests over ``--concurrency`` connections, for the largest throughput.
   Without ``wrk`` (``--client httpx``) an asyncio httpx client does the same, at a higher client cost.
3. Ingestion: ``/events`` batches in a closed loop for ``--duration`` seconds (events/s), checking
   after every acknowledged batch that a sampled user's profile has absorbed their latest event.
4. With ``--compare feedback`` (only this): the re-ranker off and on (``--feedback`` settings), the
   ``profile`` and ``query`` runs side by side over alternating rounds (what the re-ranker adds to
   ``/recommend``'s p99; ``--keys-only`` is the same for the API-key check).
5. With ``--api-key``: a third server, the configured index again, with API keys (a keys file in
   ``--out`` holding one all-scope key, scrypt-hashed) and every request carrying
   ``Authorization: Bearer <key>``: the ``profile`` and ``query`` runs side by side with the keyless ones
   (what the key check adds to ``/recommend``'s p99).

Figures go to ``--out`` as ``results.json`` and ``results.md``. Example::

    python benchmarks/serve_load.py --items 100000 --model pop --out benchmarks/out/serve_load
    python benchmarks/serve_load.py --items 5000 --encoder hashing --duration 5      # a quick smoke run
    python benchmarks/serve_load.py --items 5000 --encoder hashing --duration 5 --api-key  # key check cost
    python benchmarks/serve_load.py --items 5000 --encoder hashing --duration 10 --keys-only --repeats 3
    python benchmarks/serve_load.py --compare feedback --feedback '{"reranker": "thompson"}' --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import common
import httpx
import numpy as np
import pandas as pd

log = logging.getLogger("serve_load")

BRANDS = [
    f"{a}{b}"
    for a in ("Nor", "Sol", "Vel", "Kin", "Aur", "Bel", "Cor", "Dra", "Eld", "Fen")
    for b in ("land", "ix", "ora", "tek", "wood", "mark", "ex", "ova", "line", "stone")
]
COLORS = [
    "red",
    "navy",
    "black",
    "white",
    "green",
    "grey",
    "beige",
    "yellow",
    "pink",
    "purple",
    "orange",
    "brown",
    "teal",
    "silver",
    "gold",
]
MATERIALS = [
    "cotton",
    "leather",
    "canvas",
    "wool",
    "linen",
    "steel",
    "bamboo",
    "ceramic",
    "glass",
    "plastic",
    "oak",
    "silicone",
]
ADJECTIVES = [
    "lightweight",
    "waterproof",
    "durable",
    "compact",
    "premium",
    "classic",
    "vintage",
    "modern",
    "ergonomic",
    "eco-friendly",
    "portable",
    "handmade",
    "slim",
    "insulated",
    "foldable",
]
USES = [
    "everyday use",
    "travel",
    "the office",
    "outdoor adventures",
    "kids",
    "the kitchen",
    "gifting",
    "the gym",
    "rainy days",
    "students",
]
CATEGORIES = {
    "footwear": ["running shoes", "hiking boots", "sandals", "sneakers", "slippers"],
    "clothing": ["t-shirt", "jeans", "rain jacket", "sweater", "summer dress"],
    "bags": ["backpack", "wallet", "tote bag", "suitcase", "laptop sleeve"],
    "kitchen": ["coffee mug", "frying pan", "chef knife", "teapot", "cutting board"],
    "home": ["desk lamp", "throw pillow", "blanket", "scented candle", "bath towel"],
    "office": ["notebook", "fountain pen", "office chair", "desk organizer", "stapler"],
    "fitness": ["yoga mat", "dumbbells", "water bottle", "jump rope", "resistance band"],
    "outdoors": ["camping tent", "sleeping bag", "headlamp", "hammock", "trekking poles"],
    "electronics": ["wireless headphones", "phone charger", "bluetooth speaker", "keyboard", "smart watch"],
    "toys": ["board game", "jigsaw puzzle", "toy car", "plush bear", "building blocks"],
}
QUERY_TEMPLATES = [
    "{adj} {noun} for {use}",
    "looking for a {color} {noun}",
    "gift idea: {noun} made of {material}",
    "something {adj} for {use}",
    "cheap {color} {material} {noun}",
    "best {noun} under 50 dollars",
]


# ----------------------------------------------------------------------------- data
def synthetic_catalog(n_items: int, seed: int) -> pd.DataFrame:
    """``n_items`` product rows: title, description, category, brand, color, price."""
    rng = random.Random(seed)
    cats = list(CATEGORIES)
    rows = []
    for i in range(n_items):
        cat = cats[i % len(cats)]
        noun = rng.choice(CATEGORIES[cat])
        brand, adj, color, material = (
            rng.choice(BRANDS),
            rng.choice(ADJECTIVES),
            rng.choice(COLORS),
            rng.choice(MATERIALS),
        )
        title = f"{brand} {adj} {color} {material} {noun}, model {i}"
        desc = f"A {rng.choice(ADJECTIVES)} {noun} for {rng.choice(USES)}."
        rows.append((f"p{i}", title, desc, cat, brand, color, round(rng.uniform(5, 300), 2)))
    return pd.DataFrame(
        rows, columns=["item_id", "title", "description", "category", "brand", "color", "price"]
    ).set_index("item_id")


def synthetic_histories(catalog: pd.DataFrame, n_users: int, per_user: int, seed: int) -> pd.DataFrame:
    """Each user buys ``per_user`` items from two favourite categories (popular items more often)."""
    rng = np.random.default_rng(seed)
    by_cat = {c: np.flatnonzero(catalog["category"].to_numpy() == c) for c in CATEGORIES}
    rows = []
    for u in range(n_users):
        favs = rng.choice(list(CATEGORIES), 2, replace=False)
        for t in range(per_user):
            pool = by_cat[favs[t % 2]]
            item = pool[min(int(rng.zipf(1.3)) - 1, len(pool) - 1) if rng.random() < 0.5 else rng.integers(len(pool))]
            rows.append((f"u{u}", catalog.index[item], float(t)))
    return pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"])


def build_bundle(args: argparse.Namespace, model_dir: Path, embeddings: Path) -> None:
    from lmrec.data.catalog import ItemCatalog
    from lmrec.data.dataset import Dataset
    from lmrec.data.idmap import IdMap
    from lmrec.data.interactions import Interactions
    from lmrec.models.bundle import ModelBundle

    catalog_frame = synthetic_catalog(args.items, args.seed)
    catalog = ItemCatalog(
        catalog_frame,
        text_fields=["title", "description"],
        categorical=["category", "brand", "color"],
        numeric=["price"],
    )
    histories = synthetic_histories(catalog_frame, args.users, args.per_user, args.seed)
    inter = Interactions.from_frame(histories, item_map=IdMap(catalog_frame.index))
    dataset = Dataset(inter, items=catalog, name=f"synthetic-{args.items}")
    start = time.perf_counter()
    if args.model == "pop":
        from lmrec.models.popularity import Popularity

        model = Popularity()
        model.fit(dataset)
    else:
        from lmrec.encoders.fake import HashingEncoder

        params = {
            "dim": 64,
            "epochs": args.lm_epochs,
            "loss": "sampled",
            "batch_size": 256,
            "n_layers": 1,
            "max_len": 20,
            "encoder": HashingEncoder(args.hash_dim) if args.encoder == "hashing" else None,
            "cache_dir": str(embeddings),
            "show_progress": True,
            "num_threads": os.cpu_count(),
        }
        model = common.make_lm(params, None)  # no seed given: the model's default random_state
        model.fit(dataset)
    info = (
        {"dataset": dataset.name, "encoder": {"model": f"hashing-{args.hash_dim}", "backend": "fake"}}
        if args.encoder == "hashing"
        else {"dataset": dataset.name}
    )
    ModelBundle(model, catalog, None, info).save(model_dir)
    log.info(
        "trained %s on %d items, %d users in %.1fs", args.model, args.items, args.users, time.perf_counter() - start
    )


# ----------------------------------------------------------------------------- load
def process_memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of a process now (``VmRSS``) and at its peak (``VmHWM``), in MiB (Linux)."""
    fields: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields["rss" if key == "VmRSS" else "peak_rss"] = int(value.split()[0]) / 1024
    return fields


def summarise(latencies: list[float], errors: int, wall: float, connections: int) -> dict[str, float]:
    lat = np.asarray(latencies) * 1e3
    out = {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": len(latencies) / wall if wall > 0 else 0.0,
        "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
        "p95_ms": float(np.percentile(lat, 95)) if len(lat) else float("nan"),
        "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan"),
        "max_ms": float(lat.max()) if len(lat) else float("nan"),
    }
    out["connections"] = connections
    return out


WRK_SCRIPT = """
local bodies = {}
for line in io.lines("%(bodies)s") do bodies[#bodies + 1] = line end
local i = 0
local headers = {["Content-Type"] = "application/json"%(auth)s}
request = function()
  i = i %% #bodies + 1
  return wrk.format("POST", "/recommend", headers, bodies[i])
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests": %%d, "duration_us": %%d, "errors": %%d, "p50_us": %%d, "p95_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(95), latency:percentile(99), latency.max))
end
"""


def wrk_run(
    base: str,
    bodies: list[dict],
    connections: int,
    duration: float,
    workdir: Path,
    headers: dict[str, str] | None = None,
) -> dict[str, float]:
    """``wrk`` (one thread, ``connections`` keep-alive connections, closed loop) posting ``bodies`` in
    turn to ``/recommend``: throughput and latency percentiles of the same run."""
    body_path = workdir / "wrk_bodies.jsonl"
    body_path.write_text("\n".join(json.dumps(b) for b in bodies) + "\n")
    script = workdir / "wrk_recommend.lua"
    auth = "".join(f', ["{k}"] = "{v}"' for k, v in (headers or {}).items())
    script.write_text(WRK_SCRIPT % {"bodies": body_path.resolve(), "auth": auth})
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, int(duration))}s", "--timeout", "10s", "-s", str(script), base]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK_JSON "))
    r = json.loads(line[len("WRK_JSON ") :])
    return {
        "requests": r["requests"],
        "errors": r["errors"],
        "throughput_rps": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1e3,
        "p95_ms": r["p95_us"] / 1e3,
        "p99_ms": r["p99_us"] / 1e3,
        "max_ms": r["max_us"] / 1e3,
        "connections": connections,
    }


async def closed_loop(
    base: str, bodies: list[dict], concurrency: int, duration: float, headers: dict[str, str] | None = None
) -> dict[str, float]:
    """``concurrency`` clients sending back to back for ``duration`` seconds."""
    latencies: list[float] = []
    errors = 0
    counter = iter(range(10**9))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits, headers=headers) as client:
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                body = bodies[next(counter) % len(bodies)]
                t0 = time.perf_counter()
                r = await client.post("/recommend", json=body)
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                else:
                    errors += 1

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    return summarise(latencies, errors, wall, concurrency)


async def ingestion(
    base: str,
    item_ids: list[str],
    duration: float,
    batch: int,
    concurrency: int,
    seed: int,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """Closed-loop ``/events`` batches; after each acknowledged batch, one of its users must show its
    latest event in their profile (so the next recommendation reflects it)."""
    rng = random.Random(seed)
    run = f"{seed}-{time.time_ns()}"  # fresh event ids on every run, so none is a duplicate of an earlier run's
    accepted = 0
    checked = 0
    stale = 0
    latencies: list[float] = []
    counter = iter(range(10**9))
    async with httpx.AsyncClient(base_url=base, timeout=30, headers=headers) as client:
        stop_at = time.perf_counter() + duration

        async def worker() -> None:
            nonlocal accepted, checked, stale
            while time.perf_counter() < stop_at:
                b = next(counter)
                events = [
                    {
                        "event_id": f"ing-{run}-{b}-{j}",
                        "user_id": f"ing{rng.randrange(5000)}",
                        "item_id": rng.choice(item_ids),
                        "type": rng.choice(["view", "click", "cart", "purchase"]),
                    }
                    for j in range(batch)
                ]
                t0 = time.perf_counter()
                r = await client.post("/events", json={"events": events})
                latencies.append(time.perf_counter() - t0)
                body = r.json()
                accepted += body["accepted"]
                last = events[-1]
                user = (await client.get(f"/users/{last['user_id']}", params={"limit": 50})).json()
                checked += 1
                logged = last["event_id"] in {e["event_id"] for e in user["recent_events"]}
                if not logged or user["online_profile"]["n_events"] != user["n_events"]:
                    stale += 1  # the acknowledged event is missing, or the profile has not absorbed the log

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    lat = np.asarray(latencies) * 1e3
    return {
        "events_accepted": accepted,
        "seconds": wall,
        "events_per_s": accepted / wall,
        "batch": batch,
        "concurrency": concurrency,
        "batch_p50_ms": float(np.percentile(lat, 50)),
        "batch_p99_ms": float(np.percentile(lat, 99)),
        "visibility_checks": checked,
        "profiles_behind_log": stale,
    }


def make_queries(n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cat = rng.choice(list(CATEGORIES))
        text = rng.choice(QUERY_TEMPLATES).format(
            adj=rng.choice(ADJECTIVES),
            noun=rng.choice(CATEGORIES[cat]),
            use=rng.choice(USES),
            color=rng.choice(COLORS),
            material=rng.choice(MATERIALS),
        )
        out.append({"query": f"{text} #{i}" if i >= 200 else text, "k": 10})  # unique texts: no cache can help
    return out


async def warm_profiles(
    base: str, users: list[str], item_ids: list[str], seed: int, headers: dict[str, str] | None = None
) -> None:
    """Give the benchmark users online events (5 each), so every one has a live profile."""
    rng = random.Random(seed)
    # each user once: a user drawn twice would repeat an event_id in its batch, which the server
    # rejects whole (422), as it should
    users = list(dict.fromkeys(users))
    async with httpx.AsyncClient(base_url=base, timeout=60, headers=headers) as client:
        for start in range(0, len(users), 100):
            events = [
                {"event_id": f"warm-{u}-{j}", "user_id": u, "item_id": rng.choice(item_ids), "type": "click"}
                for u in users[start : start + 100]
                for j in range(5)
            ]
            r = await client.post("/events", json={"events": events})
            r.raise_for_status()


# ----------------------------------------------------------------------------- main
def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / f"model-{args.model}-{args.items}-{args.encoder}"
    state_dir = out / f"state-{args.model}-{args.items}-{args.encoder}"
    if not (model_dir / "config.json").exists():
        build_bundle(args, model_dir, state_dir / "embeddings")
    catalog = pd.read_parquet(model_dir / "catalog" / "catalog.parquet", columns=["item_id"])
    item_ids = catalog["item_id"].astype(str).tolist()
    rng = random.Random(args.seed)
    # profile requests: users known to the model (lm) or with online events only (pop: text space)
    known = [f"u{rng.randrange(args.users)}" for _ in range(args.profile_users)]
    profile_users = known if args.model == "lm" else [f"live{u}" for u in range(args.profile_users)]
    profile_bodies = [{"user_id": u, "k": 10} for u in profile_users]
    query_bodies = make_queries(20_000, args.seed)
    results: dict[str, Any] = {
        "config": {k: v for k, v in vars(args).items()},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_at_start": os.getloadavg(),
        },
    }
    base_settings: dict[str, Any] = {
        "model_dir": str(model_dir),
        "state_dir": str(state_dir),
        "host": "127.0.0.1",
        "log_level": "warning",
        "threads": 1,
        "items_sync_interval_s": 0.0,
    }
    if args.encoder == "hashing":
        base_settings.update(encoder=f"hashing-{args.hash_dim}", encoder_backend="fake")
    variants = [(args.index, args.index, None), ("numpy", "numpy", None)]
    if args.api_key:
        from lmrec.serve.auth import SCOPES, add_key

        keys_file = out / "bench_keys.json"
        keys_file.unlink(missing_ok=True)
        key = add_key(keys_file, "bench", SCOPES)
        variants.insert(1, ("keyed", args.index, {"Authorization": f"Bearer {key}"}))  # right after the keyless run
    for name, index, headers in variants:
        port = common.free_port()
        settings = {**base_settings, "port": port, "index": index}
        if headers is not None:
            settings["api_keys_file"] = str(keys_file)
        # a 100,000-item catalogue with MiniLM builds its index at start-up: allow two hours
        proc, startup = common.start_server(settings, out / "server.log", timeout_s=7200)
        base = f"http://127.0.0.1:{port}"
        try:
            health = httpx.get(base + "/health", headers=headers).json()
            if name == args.index:
                asyncio.run(warm_profiles(base, profile_users if args.model == "pop" else known, item_ids, args.seed))
            # warm-up: every profile user once (the model's user vectors are cached after the first
            # request, as they are for active users in steady state), then a few queries
            asyncio.run(closed_loop(base, profile_bodies, 4, max(3.0, len(profile_bodies) / 150), headers))
            asyncio.run(closed_loop(base, query_bodies[-50:], 2, 2.0, headers))

            def load(bodies: list[dict], connections: int, base: str = base, headers=headers) -> dict[str, float]:
                if args.client == "wrk":
                    return wrk_run(base, bodies, connections, args.duration, out, headers)
                return asyncio.run(closed_loop(base, bodies, connections, args.duration, headers))

            runs = {
                "health": health,
                "startup_s": startup,
                "profile": load(profile_bodies, args.connections),
                "query": load(query_bodies, args.query_connections),
            }
            if name != "keyed":
                runs["saturation"] = load(profile_bodies, args.concurrency)
            if name == args.index:
                runs["ingestion"] = asyncio.run(ingestion(base, item_ids, args.duration, args.batch, 4, args.seed))
            runs["memory_mb"] = process_memory_mb(proc.pid)
            results[name] = runs
            log.info("%s: %s", index, json.dumps({k: v for k, v in runs.items() if k != "health"}, indent=1))
        finally:
            common.stop_server(proc)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    (out / "results.md").write_text(markdown(results, args))
    return results


def key_check_cost(keys_file: Path, key: str, calls: int = 20_000) -> dict[str, float]:
    """In-process cost of the check every keyed request passes (`AccessControl.authorize`): the first
    call verifies the key (scrypt), later ones hit the cache (an HMAC-SHA256 of the key and a lookup)."""
    from lmrec.serve.auth import AccessControl, load_keys

    access = AccessControl(load_keys(keys_file))
    header = f"Bearer {key}"
    t0 = time.perf_counter()
    access.authorize(header, "recommend")
    first = time.perf_counter() - t0
    times = np.empty(calls)
    for i in range(calls):
        t0 = time.perf_counter()
        access.authorize(header, "recommend")
        times[i] = time.perf_counter() - t0
    return {
        "first_call_ms": first * 1e3,
        "cached_p50_us": float(np.percentile(times, 50) * 1e6),
        "cached_p99_us": float(np.percentile(times, 99) * 1e6),
        "calls": calls,
    }


#: ``--compare``: the two sides of each comparison, in the order of the even rounds
COMPARISONS: dict[str, tuple[str, str]] = {"keys": ("none", "bearer"), "feedback": ("off", "on")}


def run_sides(args: argparse.Namespace, comparison: str) -> dict[str, Any]:
    """``/recommend`` (profile and query runs) on two servers that differ in one setting, alternating
    over ``--repeats`` rounds (the first side first in even rounds, the second first in odd ones) on the
    same model and state, so slow drifts of a shared machine fall on both sides.

    ``comparison`` is ``"keys"`` (without and with an API key: ``--keys-only``) or ``"feedback"``
    (re-ranker off and with ``--feedback`` settings, e.g. ``{"reranker": "thompson"}``: ``--compare
    feedback``)."""
    from lmrec.serve.auth import SCOPES, add_key

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = out / f"model-{args.model}-{args.items}-{args.encoder}"
    state_dir = out / f"state-{args.model}-{args.items}-{args.encoder}"
    if not (model_dir / "config.json").exists():
        build_bundle(args, model_dir, state_dir / "embeddings")
    item_ids = pd.read_parquet(model_dir / "catalog" / "catalog.parquet", columns=["item_id"])["item_id"]
    item_ids = item_ids.astype(str).tolist()
    rng = random.Random(args.seed)
    known = [f"u{rng.randrange(args.users)}" for _ in range(args.profile_users)]
    profile_users = known if args.model == "lm" else [f"live{u}" for u in range(args.profile_users)]
    profile_bodies = [{"user_id": u, "k": 10} for u in profile_users]
    query_bodies = make_queries(20_000, args.seed)
    # side -> (request headers, extra serve settings)
    sides: dict[str, tuple[dict[str, str] | None, dict[str, Any]]]
    extra: dict[str, Any] = {}
    if comparison == "keys":
        keys_file = out / "bench_keys.json"
        keys_file.unlink(missing_ok=True)
        key = add_key(keys_file, "bench", SCOPES)
        sides = {"none": (None, {}), "bearer": ({"Authorization": f"Bearer {key}"}, {"api_keys_file": str(keys_file)})}
        extra["in_process"] = key_check_cost(keys_file, key)
    else:
        sides = {"off": (None, {}), "on": (None, {"feedback": json.loads(args.feedback)})}
    first, second = COMPARISONS[comparison]
    base_settings: dict[str, Any] = {
        "model_dir": str(model_dir),
        "state_dir": str(state_dir),
        "host": "127.0.0.1",
        "log_level": "warning",
        "threads": 1,
        "items_sync_interval_s": 0.0,
        "index": args.index,
    }
    if args.encoder == "hashing":
        base_settings.update(encoder=f"hashing-{args.hash_dim}", encoder_backend="fake")
    results: dict[str, Any] = {
        "config": dict(vars(args)),
        "comparison": comparison,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg_at_start": os.getloadavg()},
        "rounds": [],
        **extra,
    }
    warmed = False
    for round_ in range(args.repeats):
        order = [first, second] if round_ % 2 == 0 else [second, first]
        runs: dict[str, Any] = {"order": order}
        for side in order:
            headers, side_settings = sides[side]
            port = common.free_port()
            settings = {**base_settings, "port": port, **side_settings}
            proc, _ = common.start_server(settings, out / "server.log", timeout_s=7200)
            base = f"http://127.0.0.1:{port}"
            try:
                if not warmed:
                    asyncio.run(warm_profiles(base, profile_users, item_ids, args.seed, headers))
                    warmed = True
                asyncio.run(closed_loop(base, profile_bodies, 4, max(3.0, len(profile_bodies) / 150), headers))
                asyncio.run(closed_loop(base, query_bodies[-50:], 2, 2.0, headers))

                def load(bodies: list[dict], connections: int, base: str = base, headers=headers) -> dict[str, float]:
                    if args.client == "wrk":
                        return wrk_run(base, bodies, connections, args.duration, out, headers)
                    return asyncio.run(closed_loop(base, bodies, connections, args.duration, headers))

                runs[side] = {
                    "profile": load(profile_bodies, args.connections),
                    "query": load(query_bodies, args.query_connections),
                }
                log.info("round %d, %s %s: %s", round_, comparison, side, json.dumps(runs[side]))
            finally:
                common.stop_server(proc)
        results["rounds"].append(runs)
    results["machine"]["load_avg_at_end"] = os.getloadavg()
    (out / f"results_{comparison}.json").write_text(json.dumps(results, indent=2, default=str))
    (out / f"results_{comparison}.md").write_text(sides_markdown(results, args))
    return results


def sides_markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    comparison = results["comparison"]
    first, second = COMPARISONS[comparison]
    what = (
        "`/recommend` without and with an API key (`Authorization: Bearer`, an all-scope key; scrypt-hashed "
        "in the keys file, verdicts cached)"
        if comparison == "keys"
        else f"`/recommend` with the re-ranker off and with feedback settings `{args.feedback}`"
    )
    lines = [
        (
            f"{what}: {args.items:,} synthetic items, model `{args.model}`, encoder "
            f"`{args.encoder}`, client `{args.client}`, {args.duration:g} s per run, {len(results['rounds'])} rounds "
            f"alternating which server runs first; {results['machine']['cpus']} cores, load average "
            f"{results['machine']['load_avg_at_start'][0]:.1f} at start, {results['machine']['load_avg_at_end'][0]:.1f} at end."
        ),
        "",
        f"| round | scenario | {comparison} | connections | requests/s | p50 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, runs in enumerate(results["rounds"], 1):
        for scenario in ("profile", "query"):
            for side in (first, second):
                r = runs[side][scenario]
                lines.append(
                    f"| {i} | {scenario} | {side} | {r['connections']} | {r['throughput_rps']:.0f} | {r['p50_ms']:.2f} "
                    f"| {r['p99_ms']:.2f} | {r['errors']} |"
                )
    lines += [
        "",
        f"| scenario | median p50 {first} | median p50 {second} | median p99 {first} | median p99 {second} "
        "| difference of the medians, p99 ms | median of the per-round p99 differences, ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for scenario in ("profile", "query"):
        med = {
            (side, q): float(np.median([runs[side][scenario][q] for runs in results["rounds"]]))
            for side in (first, second)
            for q in ("p50_ms", "p99_ms")
        }
        paired = float(
            np.median(
                [runs[second][scenario]["p99_ms"] - runs[first][scenario]["p99_ms"] for runs in results["rounds"]]
            )
        )
        lines.append(
            f"| {scenario} | {med[first, 'p50_ms']:.2f} | {med[second, 'p50_ms']:.2f} | {med[first, 'p99_ms']:.2f} "
            f"| {med[second, 'p99_ms']:.2f} | {med[second, 'p99_ms'] - med[first, 'p99_ms']:+.2f} | {paired:+.2f} |"
        )
    c = results.get("in_process")
    if c:
        lines += [
            "",
            (
                f"In process, `AccessControl.authorize` takes {c['first_call_ms']:.0f} ms for a key's first request "
                f"(scrypt), then {c['cached_p50_us']:.1f} us at p50 and {c['cached_p99_us']:.1f} us at p99 "
                f"({c['calls']:,} cached calls)."
            ),
        ]
    return "\n".join(lines) + "\n"


def markdown(results: dict[str, Any], args: argparse.Namespace) -> str:
    idx = args.index
    space = results[idx]["health"]["space"]
    lines = [
        (
            f"Catalogue: {args.items:,} synthetic product texts; model `{args.model}`; space `{space}`; "
            f"index `{results[idx]['health']['index']}` vs naive exact numpy scoring; {results['machine']['cpus']} cores; "
            f"load average {results['machine']['load_avg_at_start'][0]:.1f} at start."
        ),
        "",
        "| scenario | server | connections | requests/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scenario in ("profile", "query", "saturation"):
        for server in (idx, "numpy"):
            r = results[server][scenario]
            name = "numpy baseline" if server == "numpy" else results[idx]["health"]["index"]
            lines.append(
                f"| {scenario} | {name} | {r.get('connections', '')} | {r['throughput_rps']:.0f} | {r['p50_ms']:.1f} "
                f"| {r['p95_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
            )
    if "keyed" in results:
        lines += [
            "",
            "With API keys (every request sends an all-scope key; same index), next to the keyless run above:",
            "",
            "| scenario | keys | requests/s | p50 ms | p99 ms | errors |",
            "|---|---|---|---|---|---|",
        ]
        for scenario in ("profile", "query"):
            for server, label in ((idx, "none"), ("keyed", "Bearer key")):
                r = results[server][scenario]
                lines.append(
                    f"| {scenario} | {label} | {r['throughput_rps']:.0f} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['errors']} |"
                )
    ing = results[idx]["ingestion"]
    lines += [
        "",
        (
            f"Ingestion: {ing['events_per_s']:.0f} events/s sustained over {ing['seconds']:.0f} s "
            f"(batches of {ing['batch']}, {ing['concurrency']} clients, batch p99 {ing['batch_p99_ms']:.1f} ms); "
            f"{ing['visibility_checks']} read-after-write checks, {ing['profiles_behind_log']} profiles behind the log."
        ),
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--per-user", type=int, default=10)
    parser.add_argument("--model", choices=["pop", "lm"], default="pop")
    parser.add_argument("--lm-epochs", type=int, default=1)
    parser.add_argument("--encoder", choices=["minilm", "hashing"], default="minilm")
    parser.add_argument("--hash-dim", type=int, default=384, help="vector width of --encoder hashing")
    parser.add_argument("--index", default="auto", choices=["auto", "flat", "hnsw", "ivf"])
    parser.add_argument(
        "--client",
        choices=["wrk", "httpx"],
        default="wrk" if shutil.which("wrk") else "httpx",
        help="load generator: wrk (Debian's wrk, one thread) or an httpx asyncio client",
    )
    parser.add_argument("--connections", type=int, default=4, help="keep-alive connections of the profile run")
    parser.add_argument("--query-connections", type=int, default=2, help="connections of the query run")
    parser.add_argument("--concurrency", type=int, default=16, help="connections of the saturation run")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per scenario")
    parser.add_argument("--batch", type=int, default=100, help="events per /events request")
    parser.add_argument("--profile-users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--api-key",
        action="store_true",
        help="also serve with API keys (an all-scope key in a keys file under --out) and compare /recommend with and without",
    )
    parser.add_argument(
        "--keys-only",
        action="store_true",
        help="only the API-key comparison: profile and query runs without and with a key, alternating (--repeats)",
    )
    parser.add_argument(
        "--compare",
        choices=sorted(COMPARISONS),
        default=None,
        help="only a side-by-side comparison over --repeats alternating rounds: keys (same as --keys-only) or "
        "feedback (re-ranker off vs the --feedback settings)",
    )
    parser.add_argument(
        "--feedback",
        default='{"reranker": "thompson"}',
        help="JSON feedback settings of the 'on' side of --compare feedback",
    )
    parser.add_argument("--repeats", type=int, default=3, help="rounds of a --compare / --keys-only comparison")
    parser.add_argument("--out", default="benchmarks/out/serve_load")
    args = parser.parse_args()
    common.setup_logging(fmt="%(asctime)s %(levelname)s %(name)s: %(message)s", quiet=("httpx",))
    comparison = "keys" if args.keys_only else args.compare
    if comparison is not None:
        print(sides_markdown(run_sides(args, comparison), args))
        return
    results = run(args)
    print(markdown(results, args))


if __name__ == "__main__":
    main()
