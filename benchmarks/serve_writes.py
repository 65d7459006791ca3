"""A poisoned write and a dozen other malformed writes against a real ``lmrec serve``: each must be
answered 4xx, leave the state exactly as it was, and the service must restart on that state.

What it does (loopback; the server is a child process started by `common.start_server`):

1. Trains a model on ML-100K with ``lmrec train`` (``--model ease`` by default, or ``pop``).
2. Serves it with a state directory and seeds the state with one good item write and one event batch.
3. For each malformed write (the issue's ``PUT /items/poison`` with ``{"year": "nineteen"}``, a list for
   the one-value ``year``, and writes of our own: non-finite numbers, wrong types, empty and oversized
   text, broken JSON, bad event batches, an over-long user id to erase, a model swap outside the models
   root) it takes a snapshot before and after the request and compares them:
   - ``sqlite``: a read-only SQL dump of the whole store (every row of every table);
   - ``files``: SHA-256 of every file in the state directory (the database, its write-ahead log, the
     vector cache), except SQLite's ``-shm`` shared-memory index, which readers update;
   - ``health``: ``/health`` (status, problems, item and event counts, quarantine counts);
   - ``answers``: the exact answers (ids and scores) of ``/recommend`` for a known user, of a query,
     and of ``/items/{id}/similar``, which read the served catalogue and its index.
   It then stops the server (SIGTERM), starts it again on the same state, and checks that ``/health``
   and the answers are those of before the write.
4. Prints a table (also written to ``--out``/results.md and results.json).

Example::

    python benchmarks/serve_writes.py --model ease --out benchmarks/out/serve_writes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import common
import httpx

log = logging.getLogger("serve_writes")

DB_NAME = "lmrec.sqlite3"  # lmrec.serve.loading.DB_NAME


def _event(**fields: Any) -> dict[str, Any]:
    return {"event_id": "bad-1", "user_id": "1", "item_id": "50", "type": "click", **fields}


# name -> (method, path, JSON value or raw text body, what it tests); ML-100K items have a text
# ("title"), a multi-valued categorical "genres" and a numeric "year"
CASES: dict[str, tuple[str, str, Any, str]] = {
    "poisoned-year-word": (
        "PUT",
        "/items/poison",
        {"text": "x film", "attributes": {"year": "nineteen"}},
        "the issue's write: a word for the numeric year",
    ),
    "year-list": (
        "PUT",
        "/items/poison",
        {"text": "x film", "attributes": {"year": [1994, 1995]}},
        "the issue's other case: a list for a one-value attribute",
    ),
    "replace-with-bad-year": (
        "PUT",
        "/items/1",
        {"text": "Toy Story 2", "attributes": {"year": "soon"}},
        "overwrite a trained item with a bad value",
    ),
    "year-nan": ("PUT", "/items/poison", '{"text": "x film", "attributes": {"year": NaN}}', "NaN number"),
    "year-infinity": (
        "PUT",
        "/items/poison",
        '{"text": "x film", "attributes": {"year": Infinity}}',
        "infinite number",
    ),
    "genres-object": (
        "PUT",
        "/items/poison",
        {"text": "x film", "attributes": {"genres": {"a": 1}}},
        "an object as an attribute value",
    ),
    "empty-text": ("PUT", "/items/poison", {"text": ""}, "empty item text"),
    "oversized-text": ("PUT", "/items/poison", {"text": "x" * 20_001}, "text over the length limit"),
    "broken-json": ("PUT", "/items/poison", '{"text": "x film"', "a body that is not JSON"),
    "event-unknown-type": ("POST", "/events", {"events": [_event(type="teleport")]}, "an unknown event type"),
    "event-good-then-bad": (
        "POST",
        "/events",
        {"events": [_event(), _event(event_id="bad-2", item_id="no-such-item")]},
        "a valid event, then one for an unknown item: the batch is all or nothing",
    ),
    "event-nan-value": (
        "POST",
        "/events",
        '{"events": [{"event_id": "bad-1", "user_id": "1", "item_id": "50", "type": "rating", "value": NaN}]}',
        "a NaN rating",
    ),
    "erase-overlong-user-id": ("DELETE", "/users/" + "u" * 257, None, "erasure of a 257-character user id"),
    "swap-outside-models-root": ("POST", "/admin/model", {"path": "/etc"}, "a model swap outside the models root"),
}

SEED_ITEM = {"text": "Heat (1995)", "attributes": {"year": 1995, "genres": ["Crime", "Thriller"]}}
SEED_EVENTS = [
    {"event_id": f"seed-{i}", "user_id": "1", "item_id": item, "type": "click", "timestamp": 1_700_000_000 + i}
    for i, item in enumerate(["50", "181", "new-heat"])
]


def train(model: str, out: Path) -> Path:
    model_dir = out / "models" / model
    if not (model_dir / "config.json").exists():
        cmd = [
            sys.executable,
            "-m",
            "lmrec.cli",
            "train",
            "--data",
            "ml-100k",
            "--model",
            model,
            "--out",
            str(model_dir),
        ]
        subprocess.run(cmd, check=True)
    return model_dir


def sqlite_dump(state: Path) -> str:
    conn = sqlite3.connect(f"{(state / DB_NAME).resolve().as_uri()}?mode=ro", uri=True)
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def file_digests(state: Path) -> dict[str, str]:
    return {
        str(p.relative_to(state)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


def answers(client: httpx.Client) -> dict[str, Any]:
    """Exact answers that read the served catalogue, its index and the user's profile."""

    def ranked(response: httpx.Response) -> list[tuple[str, float]]:
        response.raise_for_status()
        return [(i["item_id"], i["score"]) for i in response.json()["items"]]

    return {
        "user": ranked(client.post("/recommend", json={"user_id": "1", "k": 20})),
        "query": ranked(client.post("/recommend", json={"query": "crime thriller heat", "k": 20})),
        "similar": ranked(client.get("/items/1/similar", params={"k": 20})),
        "similar-new": ranked(client.get("/items/new-heat/similar", params={"k": 20})),
    }


def health(client: httpx.Client) -> dict[str, Any]:
    h = client.get("/health").json()
    return {k: h[k] for k in ("status", "problems", "quarantined", "items", "live_items", "events", "index")}


def snapshot(client: httpx.Client, state: Path) -> dict[str, Any]:
    return {
        "sqlite": sqlite_dump(state),
        "files": file_digests(state),
        "health": health(client),
        "answers": answers(client),
    }


def send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    if isinstance(body, str):
        return client.request(method, path, content=body, headers={"content-type": "application/json"})
    if body is None:
        return client.request(method, path)
    return client.request(method, path, json=body)


def run(args: argparse.Namespace) -> dict[str, Any]:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_dir = train(args.model, out)
    state = out / f"state-{args.model}"
    if state.exists():
        import shutil

        shutil.rmtree(state)
    port = common.free_port()
    settings: dict[str, Any] = {
        "model_dir": str(model_dir),
        "state_dir": str(state),
        "host": "127.0.0.1",
        "port": port,
        "log_level": "warning",
        "threads": 1,
        "items_sync_interval_s": 0.0,
    }
    if args.encoder == "hashing":
        settings.update(encoder="hashing-384", encoder_backend="fake")
    server_log = out / "server.log"
    base = f"http://127.0.0.1:{port}"
    proc, startup = common.start_server(settings, server_log)
    rows: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=base, timeout=60) as client:
            client.put("/items/new-heat", json=SEED_ITEM).raise_for_status()
            client.post("/events", json={"events": SEED_EVENTS}).raise_for_status()
            for name, (method, path, body, what) in CASES.items():
                before = snapshot(client, state)
                response = send(client, method, path, body)
                after = snapshot(client, state)
                detail = (
                    response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
                )
                row = {
                    "case": name,
                    "what": what,
                    "request": f"{method} {path if len(path) < 40 else path[:30] + '...'}",
                    "status": response.status_code,
                    "field": detail.get("field"),
                    "is_4xx": 400 <= response.status_code < 500,
                    **{
                        f"same_{part}": before[part] == after[part] for part in ("sqlite", "files", "health", "answers")
                    },
                }
                common.stop_server(proc)
                proc, row["restart_s"] = common.start_server(settings, server_log)
                with httpx.Client(base_url=base, timeout=60) as fresh:
                    restarted = {"health": health(fresh), "answers": answers(fresh), "sqlite": sqlite_dump(state)}
                row["restart_ok"] = restarted["health"]["status"] == "ok" and not restarted["health"]["problems"]
                row["restart_same"] = all(restarted[k] == before[k] for k in ("health", "answers", "sqlite"))
                client.close()
                client = httpx.Client(base_url=base, timeout=60)  # noqa: PLW2901 (a new connection to the new process)
                rows.append(row)
                log.info("%s", json.dumps(row))
            # control: a valid write must change the snapshot (the comparison can see a change)
            before = snapshot(client, state)
            control = client.put(
                "/items/control", json={"text": "Casino (1995) crime thriller", "attributes": {"year": 1995}}
            )
            after = snapshot(client, state)
            control_row = {
                "status": control.status_code,
                **{f"changed_{part}": before[part] != after[part] for part in ("sqlite", "files", "health", "answers")},
            }
    finally:
        common.stop_server(proc)
    return {
        "control": control_row,
        "model": args.model,
        "encoder": args.encoder,
        "first_startup_s": startup,
        "cases": rows,
        "load_avg": os.getloadavg(),
        "at": time.strftime("%Y-%m-%d %H:%M:%S"),
    }


def markdown(result: dict[str, Any]) -> str:
    def mark(ok: bool) -> str:
        return "yes" if ok else "**NO**"

    lines = [
        "| case | request | status | field named | SQLite rows same | state files same | /health same "
        "| answers same | restarts healthy, same state |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["cases"]:
        lines.append(
            f"| {r['case']} | `{r['request']}` | {r['status']} | {r['field'] or '-'} | {mark(r['same_sqlite'])} "
            f"| {mark(r['same_files'])} | {mark(r['same_health'])} | {mark(r['same_answers'])} "
            f"| {mark(r['restart_ok'] and r['restart_same'])} |"
        )
    n = len(result["cases"])
    good = sum(
        r["is_4xx"]
        and r["same_sqlite"]
        and r["same_files"]
        and r["same_health"]
        and r["same_answers"]
        and r["restart_ok"]
        and r["restart_same"]
        for r in result["cases"]
    )
    lines += ["", f"{good} of {n} malformed writes: 4xx, state unchanged, restart healthy on the same state."]
    c = result["control"]
    lines += [
        "",
        f"Control (the comparison sees a change): a valid `PUT /items/control` answered {c['status']} changed "
        + ", ".join(
            f"{part}: {'yes' if c['changed_' + part] else 'no'}" for part in ("sqlite", "files", "health", "answers")
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["ease", "pop"], default="ease")
    parser.add_argument(
        "--encoder",
        choices=["hashing", "minilm"],
        default="hashing",
        help="text encoder of the served item space (hashing: fast restarts; minilm: the packaged model)",
    )
    parser.add_argument("--out", default="benchmarks/out/serve_writes")
    args = parser.parse_args()
    common.setup_logging(fmt="%(asctime)s %(levelname)s %(name)s: %(message)s", quiet=("httpx",))
    result = run(args)
    out = Path(args.out)
    (out / "results.json").write_text(json.dumps(result, indent=2, default=str))
    table = markdown(result)
    (out / "results.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
