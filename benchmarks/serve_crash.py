"""Crash test of ``lmrec serve``: kill -9 during ingestion, restart, count lost acknowledged events.

Each round starts the server (a separate process), posts event batches back to back from this
process, sends SIGKILL once ``--events`` events have been acknowledged (a batch is always in flight at
that moment), restarts the server on the same state directory, then posts ``--events`` more. After
every restart it checks, from the SQLite log itself and through the API, that

- every acknowledged event is in the log (``lost`` must be 0; events of the batch in flight may or may
  not be there: they were never acknowledged),
- every user's online profile has absorbed exactly the events the log holds for them.

Example::

    python benchmarks/serve_crash.py --events 5000 --rounds 3 --out benchmarks/out/serve_crash
    python benchmarks/serve_crash.py --profile-store redis --redis-url redis://127.0.0.1:6379/0
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import common
import httpx
import numpy as np
import pandas as pd

log = logging.getLogger("serve_crash")


def build_bundle(model_dir: Path, n_items: int, n_users: int) -> None:
    """A Popularity model over a synthetic catalogue (the crash path does not depend on the model)."""
    from lmrec.data.catalog import ItemCatalog
    from lmrec.data.dataset import Dataset
    from lmrec.data.idmap import IdMap
    from lmrec.data.interactions import Interactions
    from lmrec.models.bundle import ModelBundle
    from lmrec.models.popularity import Popularity

    rng = np.random.default_rng(0)
    ids = [f"i{n}" for n in range(n_items)]
    frame = pd.DataFrame({"title": [f"product {n} in group {n % 17}" for n in range(n_items)]}, index=ids)
    catalog = ItemCatalog(frame, text_fields=["title"])
    rows = pd.DataFrame(
        {
            "user_id": [f"u{rng.integers(n_users)}" for _ in range(10 * n_users)],
            "item_id": [ids[rng.integers(n_items)] for _ in range(10 * n_users)],
        }
    )
    rows["timestamp"] = np.arange(len(rows), dtype=float)
    data = Dataset(Interactions.from_frame(rows, item_map=IdMap(ids)), items=catalog, name="crash-synthetic")
    ModelBundle(Popularity().fit(data), catalog, None, {"dataset": data.name}).save(model_dir)


class Poster:
    """Posts batches back to back in a thread; remembers which events were acknowledged."""

    def __init__(self, base: str, tag: str, users: int, items: int, batch: int) -> None:
        self.base, self.tag, self.users, self.items, self.batch = base, tag, users, items, batch
        self.acked: list[str] = []
        self.attempted: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = np.random.default_rng(abs(hash(self.tag)) % 2**32)
        n = 0
        with httpx.Client(base_url=self.base, timeout=10) as client:
            while not self.stop.is_set():
                events = [
                    {
                        "event_id": f"{self.tag}-{n + j}",
                        "user_id": f"u{rng.integers(self.users)}",
                        "item_id": f"i{rng.integers(self.items)}",
                        "type": "click",
                    }
                    for j in range(self.batch)
                ]
                n += self.batch
                self.attempted.extend(e["event_id"] for e in events)
                try:
                    r = client.post("/events", json={"events": events})
                except httpx.HTTPError:
                    return  # the server is gone: this batch was never acknowledged
                if r.status_code == 200 and r.json()["accepted"] == len(events):
                    self.acked.extend(e["event_id"] for e in events)


def verify(db_path: Path, base: str, acked: set[str], attempted: set[str]) -> dict[str, int]:
    with sqlite3.connect(db_path) as db:
        logged = {r[0] for r in db.execute("SELECT event_id FROM events")}
        users = [r[0] for r in db.execute("SELECT DISTINCT user_id FROM events")]
    behind = 0
    with httpx.Client(base_url=base, timeout=30) as client:
        for user in users:
            body = client.get(f"/users/{user}", params={"limit": 0}).json()
            if body["online_profile"] is None or body["online_profile"]["n_events"] != body["n_events"]:
                behind += 1
    return {
        "acked": len(acked),
        "lost": len(acked - logged),
        "in_flight_logged": len((attempted - acked) & logged),
        "in_flight_absent": len((attempted - acked) - logged),
        "users_checked": len(users),
        "profiles_not_matching_log": behind,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--events", type=int, default=5000, help="acknowledged events before each kill, and after each restart"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--profile-store", choices=["sqlite", "redis"], default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default="FULL")
    parser.add_argument("--out", default="benchmarks/out/serve_crash")
    args = parser.parse_args()
    common.setup_logging(fmt="%(asctime)s %(levelname)s %(name)s: %(message)s", quiet=("httpx",))
    out = Path(args.out)
    model_dir, state_dir = out / "model", out / f"state-{args.profile_store}-{args.synchronous}-{int(time.time())}"
    if not (model_dir / "config.json").exists():
        build_bundle(model_dir, args.items, args.users)
    settings = {
        "model_dir": str(model_dir),
        "state_dir": str(state_dir),
        "port": common.free_port(),
        "log_level": "warning",
        "encoder": "hashing-64",
        "encoder_backend": "fake",
        "profile_store": args.profile_store,
        "redis_url": args.redis_url,
        "redis_prefix": f"crash-{state_dir.name}:",
        "sqlite_synchronous": args.synchronous,
    }
    base = f"http://127.0.0.1:{settings['port']}"
    db_path = state_dir / "lmrec.sqlite3"
    acked: set[str] = set()
    attempted: set[str] = set()
    rounds = []
    proc, startup = common.start_server(settings, out / "server.log")
    for r in range(args.rounds):
        poster = Poster(base, f"r{r}", args.users, args.items, args.batch)
        t0 = time.perf_counter()
        poster.thread.start()
        while len(poster.acked) < args.events and poster.thread.is_alive():
            time.sleep(0.001)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        poster.stop.set()
        poster.thread.join(30)
        rate = len(poster.acked) / (time.perf_counter() - t0)
        acked |= set(poster.acked)
        attempted |= set(poster.attempted)
        proc, restart_s = common.start_server(settings, out / "server.log")
        after_kill = verify(db_path, base, acked, attempted)
        post = Poster(base, f"r{r}-after", args.users, args.items, args.batch)
        post.thread.start()
        while len(post.acked) < args.events and post.thread.is_alive():
            time.sleep(0.001)
        post.stop.set()
        post.thread.join(30)
        acked |= set(post.acked)
        attempted |= set(post.attempted)
        after_more = verify(db_path, base, acked, attempted)
        rounds.append(
            {
                "round": r,
                "ingest_events_per_s": rate,
                "restart_s": restart_s,
                "after_restart": after_kill,
                "after_more_events": after_more,
            }
        )
        log.info("round %d: %s", r, json.dumps(rounds[-1]))
    common.stop_server(proc)
    lost = sum(x["after_restart"]["lost"] + x["after_more_events"]["lost"] for x in rounds)
    mismatched = sum(
        x["after_restart"]["profiles_not_matching_log"] + x["after_more_events"]["profiles_not_matching_log"]
        for x in rounds
    )
    result = {
        "config": vars(args),
        "first_startup_s": startup,
        "rounds": rounds,
        "total_acknowledged": len(acked),
        "total_lost": lost,
        "total_profile_mismatches": mismatched,
    }
    (out / f"results-{args.profile_store}-{args.synchronous}.json").write_text(json.dumps(result, indent=2))
    print(
        f"{args.rounds} kill -9 rounds ({args.profile_store}, synchronous={args.synchronous}): {len(acked)} events acknowledged, "
        f"{lost} lost, {mismatched} profiles not matching the log; restart {np.mean([x['restart_s'] for x in rounds]):.1f}s on average"
    )


if __name__ == "__main__":
    main()
