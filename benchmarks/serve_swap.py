"""Hot-swap benchmark of ``lmrec serve``: steady load on loopback while the model is swapped N times.

What it does (server and load generator on 127.0.0.1 only, two processes):

1. Builds a synthetic product catalogue and user histories (the generators of ``serve_load.py``),
   and trains two versions of the same model (``--model ease`` or ``pop``): version A on the first
   ``--a-fraction`` of every user's history, version B on all of it (a retrain with newer data).
2. Starts ``lmrec serve`` on A (text space with the deterministic hashing encoder, so nothing is
   downloaded) and logs a few events for ``--live-users`` users, so online profiles are in play.
3. Drives ``/recommend`` (and a share of ``/events``) at a steady ``--rate`` requests/s from
   ``--threads`` client threads, each request scheduled at a fixed time (open loop: a slow answer does
   not slow the schedule). After ``--warm-s`` seconds it swaps B, A, B, ... ``--swaps`` times through
   ``POST /admin/model``, ``--gap-s`` seconds apart, then keeps the load on for ``--tail-s`` seconds.
4. Reports failed requests (any non-200 or transport error: must be 0), answers served by the old
   model after a swap had returned (must be 0), and p50/p99 latency of requests that started before
   the first swap (after ``--discard-s`` seconds of warm-up) versus those that started while a swap
   was loading or switching.

Bounded: at most ``rate * (warm + swaps * gap + tail)`` requests, each with a 30 s timeout. Example::

    python benchmarks/serve_swap.py --items 3000 --swaps 5 --results benchmarks/results/hot_swap.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

import common
import httpx
import numpy as np
from serve_load import synthetic_catalog, synthetic_histories

log = logging.getLogger("serve_swap")


def build_versions(args: argparse.Namespace, out: Path) -> tuple[Path, Path]:
    from lmrec.data.catalog import ItemCatalog
    from lmrec.data.dataset import Dataset
    from lmrec.data.idmap import IdMap
    from lmrec.data.interactions import Interactions
    from lmrec.models.bundle import ModelBundle

    frame = synthetic_catalog(args.items, args.seed)
    catalog = ItemCatalog(
        frame, text_fields=["title", "description"], categorical=["category", "brand", "color"], numeric=["price"]
    )
    histories = synthetic_histories(frame, args.users, args.per_user, args.seed)
    cut = histories["timestamp"] < args.a_fraction * args.per_user
    dirs = []
    for name, part in (("A", histories[cut]), ("B", histories)):
        data = Dataset(
            Interactions.from_frame(part, item_map=IdMap(frame.index)), items=catalog, name=f"synthetic-{name}"
        )
        if args.model == "ease":
            from lmrec.models.ease import EASE

            model = EASE()
        else:
            from lmrec.models.popularity import Popularity

            model = Popularity()
        start = time.perf_counter()
        model.fit(data)
        info = {"dataset": data.name, "encoder": {"model": "hashing-64", "backend": "fake"}}
        path = ModelBundle(model, catalog, None, info).save(out / f"model_{name}")
        log.info("trained %s %s on %d interactions in %.1fs", args.model, name, len(part), time.perf_counter() - start)
        dirs.append(path)
    return dirs[0], dirs[1]


def pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 2) if values else None


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    a, b = build_versions(args, out)
    port = common.free_port()
    state = out / "state"
    if state.exists():
        import shutil

        shutil.rmtree(state)
    settings = {
        "model_dir": str(a),
        "state_dir": str(state),
        "port": port,
        "log_level": "warning",
        "encoder": "hashing-64",
        "encoder_backend": "fake",
        "sqlite_synchronous": "NORMAL",
        "items_sync_interval_s": 0.0,
        "threads": 1,
    }
    log_path = out / "server.log"
    log_path.unlink(missing_ok=True)  # one run's server log
    proc, _ = common.start_server(settings, log_path, timeout_s=300)
    url = f"http://127.0.0.1:{port}"
    rng = random.Random(args.seed)
    items = [f"p{i}" for i in range(args.items)]
    try:
        with httpx.Client(base_url=url, timeout=30) as http:
            for u in range(args.live_users):
                events = [
                    {"event_id": f"seed-{u}-{n}", "user_id": f"live{u}", "item_id": rng.choice(items), "type": "click"}
                    for n in range(5)
                ]
                assert http.post("/events", json={"events": events}).status_code == 200
            version_a = http.get("/health").json()["model_version"]
        total_s = args.warm_s + args.swaps * args.gap_s + args.tail_s
        n_requests = int(args.rate * total_s)
        t0 = time.monotonic() + 0.5
        results: list[tuple[float, float, int, str]] = []  # (start, latency, status, model version)
        lock = threading.Lock()
        counter = iter(range(n_requests))
        stop = threading.Event()

        def worker(w: int) -> None:
            local = random.Random(args.seed + w)
            with httpx.Client(base_url=url, timeout=30) as client:
                while not stop.is_set():
                    with lock:
                        i = next(counter, None)
                    if i is None:
                        return
                    wait = t0 + i / args.rate - time.monotonic()
                    if wait > 0:
                        time.sleep(wait)
                    start = time.monotonic()
                    try:
                        if local.random() < args.event_share:
                            user = f"live{local.randrange(args.live_users)}"
                            ev = {
                                "event_id": f"w{w}-{i}",
                                "user_id": user,
                                "item_id": local.choice(items),
                                "type": "view",
                            }
                            r = client.post("/events", json={"events": [ev]})
                            version = "events"
                        else:
                            user = (
                                f"live{local.randrange(args.live_users)}"
                                if local.random() < 0.3
                                else f"u{local.randrange(args.users)}"
                            )
                            r = client.post("/recommend", json={"user_id": user, "k": 10})
                            version = r.json().get("model_version", "?") if r.status_code == 200 else "?"
                        status = r.status_code
                    except httpx.HTTPError as exc:
                        status, version = -1, type(exc).__name__
                    with lock:
                        results.append((start, time.monotonic() - start, status, version))

        threads = [threading.Thread(target=worker, args=(w,), daemon=True) for w in range(args.threads)]
        for t in threads:
            t.start()
        swaps: list[dict[str, Any]] = []
        with httpx.Client(base_url=url, timeout=600) as admin:
            time.sleep(max(0.0, t0 + args.warm_s - time.monotonic()))
            for j in range(args.swaps):
                target = b if j % 2 == 0 else a
                start = time.monotonic()
                r = admin.post("/admin/model", json={"path": str(target)})
                end = time.monotonic()
                body = r.json()
                swaps.append(
                    {
                        "start": start,
                        "end": end,
                        "status": r.status_code,
                        "version": body.get("model_version"),
                        "load_s": body.get("load_s"),
                        "wall_s": round(end - start, 3),
                    }
                )
                log.info("swap %d -> %s: %s in %.2fs", j + 1, target.name, r.status_code, end - start)
                time.sleep(max(0.0, start + args.gap_s - time.monotonic()))
            time.sleep(args.tail_s)
            stop.set()
            for t in threads:
                t.join(60)
            health = admin.get("/health").json()
    finally:
        common.stop_server(proc, timeout_s=30)

    first = swaps[0]["start"]
    failed = [r for r in results if r[2] != 200]
    before = [lat for s, lat, _, _ in results if t0 + args.discard_s <= s < first]  # after the warm-up
    during = [lat for s, lat, _, _ in results if any(w["start"] <= s <= w["end"] for w in swaps)]
    between = [lat for s, lat, _, _ in results if s >= first and not any(w["start"] <= s <= w["end"] for w in swaps)]
    stale = 0  # answers from an older model by requests that started after a swap had returned
    for j, w in enumerate(swaps):
        upto = swaps[j + 1]["start"] if j + 1 < len(swaps) else float("inf")
        stale += sum(
            1 for s, _, st, v in results if w["end"] < s < upto and st == 200 and v not in ("events", w["version"])
        )
    span = max(s for s, *_ in results) - min(s for s, *_ in results) if results else 0.0
    return {
        "command": "python " + " ".join(sys.argv),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "2-core dev box, shared with other jobs",
        },
        "config": {k: v for k, v in vars(args).items() if k not in ("out", "results")},
        "version_a": version_a,
        "requests": len(results),
        "achieved_rate": round(len(results) / span, 1) if span else None,
        "failed": len(failed),
        "failed_examples": [list(f) for f in failed[:5]],
        "stale_after_swap": stale,
        "swaps": [{k: v for k, v in w.items() if k not in ("start", "end")} for w in swaps],
        "final_swaps": health["swaps"],
        "latency_ms": {
            "before": {"n": len(before), "p50": pct(before, 50), "p99": pct(before, 99)},
            "during_swaps": {"n": len(during), "p50": pct(during, 50), "p99": pct(during, 99)},
            "between_and_after": {"n": len(between), "p50": pct(between, 50), "p99": pct(between, 99)},
        },
    }


def markdown(res: dict[str, Any]) -> str:
    c, lat = res["config"], res["latency_ms"]
    loads = [w["load_s"] for w in res["swaps"] if w["load_s"] is not None]
    lines = [
        "## Model hot-swap under load (`benchmarks/serve_swap.py`)",
        "",
        f"Command: `{res['command']}`  ",
        f"Date: {res['date']}; machine: {res['machine']['note']} ({res['machine']['cpus']} cores, {res['machine']['platform']}, "
        f"Python {res['machine']['python']}); server and client on 127.0.0.1.",
        "",
        f"Setup: {c['model']} on {c['items']} synthetic items / {c['users']} users (version A: first "
        f"{c['a_fraction']:.0%} of each history; B: all of it), hashing encoder (text space), flat index. "
        f"{res['requests']} requests at a target {c['rate']}/s (achieved {res['achieved_rate']}/s) from {c['threads']} threads, "
        f"{c['event_share']:.0%} of them `/events`; {len(res['swaps'])} swaps (B, A, B, ...) {c['gap_s']} s apart via `POST /admin/model`.",
        "",
        f"- Failed requests: **{res['failed']}** (non-200 or transport error)",
        f"- Answers from the old model after a swap had returned: **{res['stale_after_swap']}**",
        "- Swap wall time (load to the side + switch): "
        + ", ".join(f"{w['wall_s']:.2f} s" for w in res["swaps"])
        + (f"; model load {min(loads):.2f}-{max(loads):.2f} s" if loads else ""),
        "",
        "| requests that started | n | p50 ms | p99 ms |",
        "|---|---:|---:|---:|",
        f"| before the first swap (after {c['discard_s']:g} s of warm-up) | {lat['before']['n']} | {lat['before']['p50']} | {lat['before']['p99']} |",
        f"| while a swap was loading or switching | {lat['during_swaps']['n']} | {lat['during_swaps']['p50']} | {lat['during_swaps']['p99']} |",
        f"| between and after swaps | {lat['between_and_after']['n']} | {lat['between_and_after']['p50']} | {lat['between_and_after']['p99']} |",
        "",
        "The swap builds the new model, its vector space, index and catalogue in a thread of the server "
        "process, so requests during a swap share the CPU with that work: the latency difference above is "
        "the cost of loading to the side on this machine, not of the switch itself (one reference).",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", choices=["ease", "pop"], default="ease")
    p.add_argument("--items", type=int, default=3000)
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--per-user", type=int, default=20)
    p.add_argument("--a-fraction", type=float, default=0.6)
    p.add_argument("--live-users", type=int, default=100)
    p.add_argument("--rate", type=float, default=50.0, help="target requests per second")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--event-share", type=float, default=0.1)
    p.add_argument("--swaps", type=int, default=5)
    p.add_argument("--warm-s", type=float, default=10.0)
    p.add_argument("--gap-s", type=float, default=6.0)
    p.add_argument("--tail-s", type=float, default=3.0)
    p.add_argument(
        "--discard-s", type=float, default=2.0, help="first seconds left out of the 'before' latency (cold caches)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/out/serve_swap")
    p.add_argument("--results", default=None, help="also write the markdown section here")
    args = p.parse_args()
    common.setup_logging(fmt="%(asctime)s %(levelname)s %(name)s: %(message)s", quiet=("httpx",))
    res = run(args)
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(res, indent=2))
    text = markdown(res)
    (out / "results.md").write_text(text)
    if args.results:
        Path(args.results).parent.mkdir(parents=True, exist_ok=True)
        Path(args.results).write_text(text)
    print(text)
    if res["failed"] or res["stale_after_swap"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
