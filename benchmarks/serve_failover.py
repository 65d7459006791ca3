"""Fail-over of replicas on one Redis behind HAProxy (issue 21): a replica killed, then Redis restarted.

Two ``lmrec serve --store redis`` processes (separate state directories, one redis-server with AOF on)
behind HAProxy (round robin, health checks every 200 ms, retry on connection failure), all on loopback.

1. Mixed load through the balancer (``--workers`` clients, each posting a batch of events then asking
   for a recommendation, back to back) for ``--duration`` seconds. At ``--kill-at`` replica 0 gets
   SIGKILL; at ``--rejoin-at`` it starts again on its own state directory and catches up from the
   stream. Errors are counted with their time relative to the kill.
2. Ingestion only, through the balancer, while redis-server is killed (SIGKILL) and restarted on its
   append-only file at ``--redis-kill-at``; 503s (``Retry-After``) are counted.

After each phase every acknowledged event id must be in the stream and in both replicas' SQLite copies,
and (phase 1) both replicas must answer the same profiles and recommendations for the same users.
Example::

    python benchmarks/serve_failover.py --model-dir benchmarks/out/serve_lm_load/model
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import common
import httpx
import replicas

log = logging.getLogger("serve_failover")


async def mixed_load(
    base: str, item_ids: list[str], duration: float, workers: int, events: bool, recommend: bool, tag: str
) -> dict[str, Any]:
    """Clients posting event batches and/or recommendations; returns acknowledged ids and error times."""
    acked: list[str] = []
    errors: list[tuple[float, str, str]] = []  # (time, route, what)
    ok = {"events": 0, "recommend": 0}
    start = time.perf_counter()
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:

        async def worker(w: int) -> None:
            n = 0
            while time.perf_counter() - start < duration:
                user = f"{tag}u{(w * 7919 + n) % 300}"
                n += 1
                if events:
                    batch = [
                        {
                            "event_id": f"{tag}-{w}-{n}-{j}",
                            "user_id": user,
                            "item_id": item_ids[(n * 31 + j) % len(item_ids)],
                            "type": "click",
                        }
                        for j in range(10)
                    ]
                    try:
                        r = await client.post("/events", json={"events": batch})
                        if r.status_code == 200:
                            acked.extend(e["event_id"] for e in batch)
                            ok["events"] += 1
                        else:
                            errors.append((time.perf_counter() - start, "events", str(r.status_code)))
                    except httpx.HTTPError as exc:
                        errors.append((time.perf_counter() - start, "events", type(exc).__name__))
                if recommend:
                    try:
                        r = await client.post("/recommend", json={"user_id": user, "k": 10})
                        if r.status_code == 200:
                            ok["recommend"] += 1
                        else:
                            errors.append((time.perf_counter() - start, "recommend", str(r.status_code)))
                    except httpx.HTTPError as exc:
                        errors.append((time.perf_counter() - start, "recommend", type(exc).__name__))
                if not events and not recommend:
                    await asyncio.sleep(0.01)

        await asyncio.gather(*(worker(w) for w in range(workers)))
    return {"acked": acked, "errors": errors, "ok": ok}


def _histogram(offsets: list[float]) -> dict[str, int]:
    """Errors per 100 ms bucket (``"0.2"``: 200-300 ms after the event)."""
    out: dict[str, int] = {}
    for t in offsets:
        key = f"{int(t * 10) / 10:.1f}"
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: float(kv[0])))


def logged_ids(state_dir: Path) -> set[str]:
    """Event ids in a replica's SQLite copy (read-only)."""
    conn = sqlite3.connect(f"file:{state_dir / 'lmrec.sqlite3'}?mode=ro", uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT event_id FROM events")}
    finally:
        conn.close()


def stream_ids(url: str) -> set[str]:
    import redis

    client = redis.Redis.from_url(url)
    return {f[b"event_id"].decode() for _, f in client.xrange("lmrec:log") if f.get(b"op") == b"event"}


def wait_caught_up(ports: list[int], timeout: float = 60.0) -> float:
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < timeout:
        positions = {httpx.get(f"http://127.0.0.1:{p}/health").json()["stream"]["position"] for p in ports}
        if len(positions) == 1:
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise RuntimeError("replicas did not reach the same stream position")


def compare_replicas(ports: list[int], users: list[str]) -> dict[str, int]:
    same_profile = same_recs = 0
    for user in users:
        summaries = [httpx.get(f"http://127.0.0.1:{p}/users/{user}").json() for p in ports]
        recs = [httpx.post(f"http://127.0.0.1:{p}/recommend", json={"user_id": user, "k": 10}).json() for p in ports]
        same_profile += summaries[0].get("online_profile") == summaries[1].get("online_profile")
        same_recs += recs[0]["items"] == recs[1]["items"]
    return {"users": len(users), "same_profile": same_profile, "same_recommendations": same_recs}


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    redis = replicas.Redis(out / "redis")
    from lmrec.models.bundle import ModelBundle

    item_ids = [str(i) for i in ModelBundle.load(args.model_dir).model.item_map_.ids]
    ports = [common.free_port(), common.free_port()]
    settings = [
        {
            "model_dir": str(args.model_dir),
            "state_dir": str(out / f"replica{i}"),
            "port": port,
            "log_level": "warning",
            "threads": 1,
            "profile_store": "redis",
            "redis_url": redis.url,
            "redis_aof": "require",
        }
        for i, port in enumerate(ports)
    ]
    procs = [common.start_server(s, out / f"replica{i}.log", timeout_s=600)[0] for i, s in enumerate(settings)]
    lb, base = replicas.start_haproxy(ports, out)
    results: dict[str, Any] = {
        "config": {k: str(v) for k, v in vars(args).items()},
        "load_avg_at_start": os.getloadavg(),
    }
    try:
        # ---------------------------------------------------------------- phase 1: kill -9 a replica
        async def phase1() -> dict[str, Any]:
            task = asyncio.create_task(mixed_load(base, item_ids, args.duration, args.workers, True, True, "p1"))
            await asyncio.sleep(args.kill_at)
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait()
            log.info("killed replica 0")
            await asyncio.sleep(args.rejoin_at - args.kill_at)
            t0 = time.perf_counter()
            procs[0] = await asyncio.to_thread(
                lambda: common.start_server(settings[0], out / "replica0.log", timeout_s=600)[0]
            )
            rejoin_s = time.perf_counter() - t0
            res = await task
            res["rejoin_startup_s"] = rejoin_s
            return res

        p1 = asyncio.run(phase1())
        lb_stats = replicas.haproxy_stats(out)
        catch_up_s = wait_caught_up(ports)
        acked = set(p1["acked"])
        in_stream = stream_ids(redis.url)
        copies = [logged_ids(out / f"replica{i}") for i in range(2)]
        errs = p1["errors"]
        results["replica_kill"] = {
            "acked_events": len(acked),
            "ok_requests": p1["ok"],
            "errors": len(errs),
            "errors_by_route": {r: sum(e[1] == r for e in errs) for r in ("events", "recommend")},
            "error_window_s": [
                round(min(e[0] for e in errs) - args.kill_at, 3),
                round(max(e[0] for e in errs) - args.kill_at, 3),
            ]
            if errs
            else None,
            "error_kinds": sorted({e[2] for e in errs}),
            "errors_per_100ms_after_kill": _histogram([e[0] - args.kill_at for e in errs]),
            "lost_in_stream": len(acked - in_stream),
            "lost_in_replica0": len(acked - copies[0]),
            "lost_in_replica1": len(acked - copies[1]),
            "haproxy": lb_stats,
            "rejoin_startup_s": p1["rejoin_startup_s"],
            "catch_up_after_load_s": catch_up_s,
            "compare": compare_replicas(ports, [f"p1u{i}" for i in range(0, 300, 10)]),
        }
        log.info("replica kill: %s", json.dumps(results["replica_kill"]))

        # ---------------------------------------------------------------- phase 2: restart Redis
        async def phase2() -> dict[str, Any]:
            task = asyncio.create_task(mixed_load(base, item_ids, args.redis_duration, args.workers, True, False, "p2"))
            await asyncio.sleep(args.redis_kill_at)
            t0 = time.perf_counter()
            redis.kill()
            await asyncio.to_thread(redis.start)
            res = await task
            res["redis_restart_s"] = time.perf_counter() - t0
            return res

        p2 = asyncio.run(phase2())
        wait_caught_up(ports)
        acked2 = set(p2["acked"])
        in_stream = stream_ids(redis.url)
        copies = [logged_ids(out / f"replica{i}") for i in range(2)]
        errs = p2["errors"]
        results["redis_restart"] = {
            "acked_events": len(acked2),
            "errors": len(errs),
            "error_kinds": sorted({e[2] for e in errs}),
            "redis_down_and_back_s": p2["redis_restart_s"],
            "lost_in_stream": len(acked2 - in_stream),
            "lost_in_replica0": len(acked2 - copies[0]),
            "lost_in_replica1": len(acked2 - copies[1]),
        }
        log.info("redis restart: %s", json.dumps(results["redis_restart"]))
    finally:
        lb.terminate()
        for proc in procs:
            if proc.poll() is None:
                common.stop_server(proc)
        redis.stop()
    results["load_avg_at_end"] = os.getloadavg()
    (out / "results.json").write_text(json.dumps(results, indent=2, default=str))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=Path("benchmarks/out/serve_lm_load/model"))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--kill-at", type=float, default=5.0)
    parser.add_argument("--rejoin-at", type=float, default=8.0)
    parser.add_argument("--redis-duration", type=float, default=10.0)
    parser.add_argument("--redis-kill-at", type=float, default=3.0)
    parser.add_argument("--out", default="benchmarks/out/serve_failover")
    args = parser.parse_args()
    common.setup_logging(quiet=["httpx"])
    if not (args.model_dir / "config.json").exists():
        raise SystemExit(f"{args.model_dir} holds no model: run benchmarks/serve_lm_load.py first, or pass --model-dir")
    run(args)


if __name__ == "__main__":
    main()
