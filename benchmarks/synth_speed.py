"""Speed and memory of the synthetic data generator (`lmrec.data.synth.synthesize`).

Each size runs in a fresh child process, so the peak resident memory reported is that size's alone
(``ru_maxrss`` of the child, which includes the interpreter and the imports; the ``import RSS`` column
is the peak after the imports alone, so the generator's own share is the difference). Target: at least 1M
events written per second; memory flat in the number of events (generation streams in blocks).

    .venv/bin/python benchmarks/synth_speed.py                          # 1M and 4M events
    .venv/bin/python benchmarks/synth_speed.py --events 16000000 --items 100000

Writes the files under ``benchmarks/out/synth/<events>/`` (deleted afterwards unless ``--keep``) and
the figures to ``benchmarks/out/synth_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import resource
import shutil
import subprocess
import sys

import common

log = logging.getLogger("synth_speed")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024) / 2**20


def _run(events: int, users: int, items: int, repeats: bool, out: str, seed: int) -> dict:
    """One timed synthesize in this (child) process; returns the report's figures and the peak RSS."""
    from lmrec.data.synth import SynthConfig, synthesize

    imported = _peak_mb()
    config = SynthConfig(
        n_users=users, n_items=items, n_events=events, allow_repeats=repeats, name=f"synth{events}", seed=seed
    )
    report = synthesize(config, out)
    return {
        "events": events,
        "users": users,
        "items": items,
        "allow_repeats": repeats,
        "seconds": report.seconds,
        "events_per_second": report.events_per_second,
        "mb_written": report.bytes_written / 2**20,
        "peak_rss_mb": _peak_mb(),
        "import_rss_mb": imported,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[1_000_000, 4_000_000])
    parser.add_argument("--users", type=int, default=None, help="default: events / 50")
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--allow-repeats", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--child", help=argparse.SUPPRESS)  # JSON arguments of one run in a fresh process
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_run(**json.loads(args.child))))
        return 0
    common.setup_logging()
    rows = []
    for events in args.events:
        users = args.users or max(1, events // 50)
        out = common.OUT / "synth" / str(events)
        child = json.dumps(
            {
                "events": events,
                "users": users,
                "items": args.items,
                "repeats": args.allow_repeats,
                "out": str(out),
                "seed": args.seed,
            }
        )
        done = subprocess.run([sys.executable, __file__, "--child", child], check=True, capture_output=True, text=True)
        row = json.loads(done.stdout.strip().splitlines()[-1])
        rows.append(row)
        log.info(
            "%d events (%d users, %d items, repeats=%s): %.2f s, %.0f events/s, %.0f MB written, "
            "peak RSS %.0f MB (%.0f MB after imports)",
            events,
            users,
            args.items,
            args.allow_repeats,
            row["seconds"],
            row["events_per_second"],
            row["mb_written"],
            row["peak_rss_mb"],
            row["import_rss_mb"],
        )
        if not args.keep:
            shutil.rmtree(out, ignore_errors=True)
    print(
        f"{'events':>12} {'users':>9} {'items':>8} {'seconds':>8} {'events/s':>12} {'MB':>7} "
        f"{'peak RSS MB':>12} {'import RSS MB':>14}"
    )
    for r in rows:
        print(
            f"{r['events']:>12,} {r['users']:>9,} {r['items']:>8,} {r['seconds']:>8.2f} "
            f"{r['events_per_second']:>12,.0f} {r['mb_written']:>7.0f} {r['peak_rss_mb']:>12.0f} "
            f"{r['import_rss_mb']:>14.0f}"
        )
    common.OUT.mkdir(parents=True, exist_ok=True)
    (common.OUT / "synth_speed.json").write_text(
        json.dumps({"machine": platform.platform(), "python": platform.python_version(), "rows": rows}, indent=2) + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
