"""Side-by-side table of lmrec and RecBole results, with ratios lmrec / RecBole.

Standard library only, so either venv runs it.

Inputs:
    --lmrec FILE      lmrec's JSON: {"results": {"<model>": {"ndcg@10": ..., "recall@10": ..., ...}}};
                      a per-model wall time is used when present under one of TIME_KEYS
                      (e.g. "fit_s"), or under a top-level {"timings": {"<model>": seconds}}.
                      benchmarks/baselines_ml100k.py's {"rows": [...]} works too (--lmrec-split).
    --recbole FILE... RecBole JSONs from run_recbole.py (one per model; a glob is fine).
    --quoted ro|loo   also show the RecBole figures quoted in the issue and check the targets
                      (ro: Pop and EASE within 3 %, ItemKNN and MF/BPR at least RecBole's;
                       loo: SASRec NDCG@10 at least RecBole's in at most a tenth of its training time).

Models are matched by name with aliases (lmrec "mf"/"bpr-mf" -> RecBole "BPR", "popularity" -> "Pop").

    python benchmarks/recbole/compare.py --lmrec out/lmrec_ro.json \\
        --recbole benchmarks/out/recbole/ro_ml-100k_*.json --quoted ro --out benchmarks/out/recbole/compare_ro.md
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

LOG = logging.getLogger("compare")
METRICS = ("ndcg@10", "recall@10", "hit@10", "mrr@10", "precision@10")
TIME_KEYS = ("train_wall_s", "fit_s", "fit_seconds", "train_s", "train_seconds", "fit_time_s", "time_s")
ALIASES = {
    "pop": "pop", "popularity": "pop", "mostpop": "pop", "mostpopular": "pop",
    "itemknn": "itemknn", "knn": "itemknn", "itemcf": "itemknn",
    "bpr": "bpr", "mf": "bpr", "bprmf": "bpr", "mfbpr": "bpr", "mfals": "mfals",
    "ease": "ease",
    "sasrec": "sasrec",
}
# RecBole 1.2.1 figures quoted in the issue (ML-100K, full ranking, @10).
QUOTED = {
    "ro": {
        "pop": {"ndcg@10": 0.1005, "recall@10": 0.0838},
        "itemknn": {"ndcg@10": 0.2834, "recall@10": 0.2470},
        "bpr": {"ndcg@10": 0.2937, "recall@10": 0.2468},
        "ease": {"ndcg@10": 0.3295, "recall@10": 0.2805, "hit@10": 0.8197},
    },
    "loo": {},
}
# Target rule per model: ("within", tol) -> |ratio - 1| <= tol; ("at_least", 1.0) -> ratio >= 1.
RULES = {
    "ro": {"pop": ("within", 0.03), "ease": ("within", 0.03), "itemknn": ("at_least", 1.0), "bpr": ("at_least", 1.0)},
    "loo": {"sasrec": ("at_least", 1.0)},
}


def canonical(name: str) -> str:
    key = re.sub(r"[^a-z0-9]", "", name.lower())
    return ALIASES.get(key, key)


def _time_of(entry: dict[str, Any]) -> float | None:
    for key in TIME_KEYS:
        if isinstance(entry.get(key), (int, float)):
            return float(entry[key])
    return None


def load_lmrec(path: Path, split: str | None = None) -> dict[str, dict[str, Any]]:
    """Model -> metrics from either lmrec format.

    ``{"results": {"<model>": {metric: value}}}``, or benchmarks/baselines_ml100k.py's
    ``{"rows": [{"model", "split", "test": {...}, "fit_s"}]}`` (``split`` picks the rows of one split,
    e.g. ``recbole-benchmark``, ``ratio-random`` or ``loo``).
    """
    data = json.loads(path.read_text())
    out: dict[str, dict[str, Any]] = {}
    if isinstance(data.get("rows"), list):
        rows = [r for r in data["rows"] if split is None or r.get("split") == split]
        if not rows:
            splits = sorted({str(r.get("split")) for r in data["rows"]})
            raise ValueError(f"{path}: no rows for split {split!r}; splits present: {splits}")
        for r in rows:
            key = canonical(r["model"])
            if key in out:
                raise ValueError(f"{path}: model {r['model']!r} appears in several splits; pass --lmrec-split")
            out[key] = {"name": r["model"], "metrics": {k.lower(): v for k, v in r["test"].items()},
                        "time_s": _time_of(r)}
        return out
    if "results" not in data or not isinstance(data["results"], dict):
        raise ValueError(f"{path}: expected a top-level 'results' mapping of model -> metrics, or 'rows'")
    timings = data.get("timings", {}) if isinstance(data.get("timings"), dict) else {}
    for model, metrics in data["results"].items():
        entry = {k.lower(): v for k, v in metrics.items() if isinstance(v, (int, float))}
        t = _time_of(metrics)
        if t is None and isinstance(timings.get(model), (int, float)):
            t = float(timings[model])
        out[canonical(model)] = {"name": model, "metrics": entry, "time_s": t}
    return out


def load_recbole(paths: list[Path]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for path in paths:
        data = json.loads(path.read_text())
        key = canonical(data["model"])
        if key in out:
            LOG.warning("%s: a second RecBole result for %s (%s) replaces the first", path, data["model"], key)
        out[key] = {"name": data["model"], "metrics": data["test_result"], "time_s": data.get("train_wall_s"),
                    "sec_per_epoch": data.get("sec_per_epoch"), "epochs": data.get("epochs_run"),
                    "stopped_by": data.get("stopped_by"), "protocol": data.get("protocol"), "file": path.name}
    return out


def _fmt(x: float | None, digits: int = 4) -> str:
    return "" if x is None else f"{x:.{digits}f}"


def build_table(lm: dict[str, dict[str, Any]], rb: dict[str, dict[str, Any]], quoted: str | None) -> str:
    quotes = QUOTED.get(quoted or "", {})
    rules = RULES.get(quoted or "", {})
    lines = ["| model (lmrec / RecBole) | metric | lmrec | RecBole | lmrec / RecBole |"
             + (" RecBole quoted | target |" if quoted else ""),
             "|---|---|---:|---:|---:|" + ("---:|---|" if quoted else "")]
    for key in sorted(set(lm) | set(rb), key=lambda k: (k not in rb, k)):
        a, b = lm.get(key), rb.get(key)
        label = f"{a['name'] if a else '-'} / {b['name'] if b else '-'}"
        for metric in METRICS:
            x = a["metrics"].get(metric) if a else None
            y = b["metrics"].get(metric) if b else None
            if x is None and y is None:
                continue
            ratio = x / y if x is not None and y else None
            row = f"| {label} | {metric} | {_fmt(x)} | {_fmt(y)} | {_fmt(ratio, 3)} |"
            if quoted:
                q = quotes.get(key, {}).get(metric)
                verdict = ""
                rule = rules.get(key)
                if rule and ratio is not None and metric in ("ndcg@10", "recall@10", "hit@10"):
                    kind, tol = rule
                    ok = abs(ratio - 1) <= tol if kind == "within" else ratio >= tol
                    verdict = ("ok" if ok else "MISS") + (f" (within {tol:.0%})" if kind == "within" else " (>=)")
                row += f" {_fmt(q)} | {verdict} |"
            lines.append(row)
        if (a and a.get("time_s") is not None) or (b and b.get("time_s") is not None):
            x = a.get("time_s") if a else None
            y = b.get("time_s") if b else None
            ratio = x / y if x is not None and y else None
            row = f"| {label} | train wall s | {_fmt(x, 1)} | {_fmt(y, 1)} | {_fmt(ratio, 3)} |"
            if quoted:
                verdict = ""
                if key == "sasrec" and ratio is not None:
                    verdict = ("ok" if ratio <= 0.1 else "MISS") + " (<= 0.1)"
                row += f" | {verdict} |"
            lines.append(row)
    notes = []
    for key, b in sorted(rb.items()):
        if b.get("stopped_by") == "wall_budget":
            notes.append(f"- RecBole {b['name']} stopped at the wall-clock budget after {b['epochs']} epochs "
                         f"({_fmt(b.get('sec_per_epoch'), 1)} s/epoch): its figure is a lower bound.")
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lmrec", type=Path, required=True)
    p.add_argument("--lmrec-split", help="with a rows-format lmrec JSON: the split whose rows to use")
    p.add_argument("--recbole", type=Path, nargs="+", required=True)
    p.add_argument("--quoted", choices=["ro", "loo"])
    p.add_argument("--out", type=Path, help="also write the markdown table here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
    table = build_table(load_lmrec(args.lmrec, args.lmrec_split), load_recbole(args.recbole), args.quoted)
    sys.stdout.write(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
