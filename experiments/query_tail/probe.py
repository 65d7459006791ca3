"""Probe: where does the `/recommend`-with-query p99 tail (p50 2 ms, p99 60 ms; RESULTS §17) come from?

Starts `lmrec serve` on the 1M-item bundle of ``benchmarks/serve_load.py --items 1000000 --encoder hashing
--hash-dim 64`` (built by that command), loads it with wrk (new query texts, 2 connections) for
``--duration`` seconds while ``py-spy`` samples the server, and prints the latency summary and the
py-spy profile's top frames. ``--settings`` adds serve settings (JSON) to try a cause.

    python experiments/query_tail/probe.py --duration 15 [--settings '{"threads": 2}']
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import common  # noqa: E402
from serve_load import make_queries, wrk_run  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--duration", type=float, default=15)
    p.add_argument("--settings", default="{}")
    p.add_argument("--kind", choices=["query", "profile"], default="query")
    p.add_argument("--spy", action="store_true")
    args = p.parse_args()
    root = Path("benchmarks/out/serve_load_1m")
    out = Path("benchmarks/out/query_tail")
    out.mkdir(parents=True, exist_ok=True)
    settings = {
        "model_dir": str(root / "model-pop-1000000-hashing"),
        "state_dir": str(root / "state-pop-1000000-hashing"),
        "host": "127.0.0.1",
        "log_level": "warning",
        "threads": 1,
        "items_sync_interval_s": 0.0,
        "encoder": "hashing-64",
        "encoder_backend": "fake",
        "port": common.free_port(),
        **json.loads(args.settings),
    }
    proc, startup = common.start_server(settings, out / "server.log", timeout_s=900)
    try:
        base = f"http://127.0.0.1:{settings['port']}"
        bodies = (
            make_queries(20_000, 0) if args.kind == "query" else [{"user_id": f"live{u}", "k": 10} for u in range(2000)]
        )
        wrk_run(base, bodies[-200:], 2, 3, out)  # warm-up
        spy = None
        if args.spy:
            spy = subprocess.Popen(
                [
                    str(Path(sys.executable).parent / "py-spy"),
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--format",
                    "speedscope",
                    "--rate",
                    "250",
                    "--duration",
                    str(int(args.duration)),
                    "--output",
                    str(out / "spy.json"),
                    "--threads",
                    "--idle",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        result = wrk_run(base, bodies, 2, args.duration, out)
        if spy is not None:
            spy.wait(60)
        print(json.dumps({"startup_s": round(startup, 1), "settings": json.loads(args.settings), **result}))
    finally:
        common.stop_server(proc)


if __name__ == "__main__":
    main()
