"""The ``complements`` and ``report`` steps of ``benchmarks/kg_bench.py`` (see its docstring).

Complements: Office's graph says which categories complement an item (``complementary_category``); an
item belongs to the categories of its ``categories`` field (``member_column``, relation ``belongs_to``).
A leave-one-out test case counts when its test item belongs to a complementary category of the item
before it (the user's valid item). For each such case the previous item's top 10 from
`lmrec.serve.related.related_items` (the function behind ``GET /items/{id}/related?relation=complement``,
over a flat index of the saved graph model's item vectors) and from the nearest neighbours (``/similar``)
are checked for the test item.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import common
import numpy as np

RUNS = common.OUT / "kg_runs"
MODELS = RUNS / "models"
NAMES = {"lm": "lm (no graph)", "lm-graph": "lm + graph"}
RECBOLE_MODELS = ("CKE", "KGCN", "KGAT", "RippleNet")


def _served_items(model: Any) -> Any:
    from lmrec.serve.attributes import AttributeTable
    from lmrec.serve.index import VectorIndex
    from lmrec.serve.items import ServedItems

    vectors = np.ascontiguousarray(model.item_vectors(), dtype=np.float32)
    index = VectorIndex(vectors.shape[1], "flat")
    index.add(vectors)
    attributes = AttributeTable()
    attributes.add_rows(len(vectors))
    ids = list(model.item_map_.ids)
    return ServedItems(ids, list(ids), index, attributes, len(ids))


def run(args: argparse.Namespace) -> None:
    from lmrec.data import leave_one_out
    from lmrec.data.loaders.kg import attach_kg
    from lmrec.models.base import load_model
    from lmrec.serve.related import ItemRelations, related_items

    office = common.office_dir(args.office)
    data = common.load_data("office", office)
    attach_kg(data, office / "Office.kg", member_column="categories")
    assert data.kg is not None
    split = leave_one_out(data.interactions)
    saved = sorted(MODELS.glob("loo-lm-graph_s*"))
    if not saved:
        raise SystemExit(f"no saved graph model in {MODELS}; run `kg_bench.py loo` first")
    model = load_model(saved[0])
    items = _served_items(model)
    relations = ItemRelations(data.kg)
    ids = data.interactions.item_map.ids
    prev = dict(zip(split.valid.users.tolist(), split.valid.items.tolist()))
    cases = eligible = hit_related = hit_similar = graph_sizes = 0
    for u, nxt in zip(split.test.users.tolist(), split.test.items.tolist()):
        if u not in prev:
            continue
        cases += 1
        p, n = ids[prev[u]], ids[nxt]
        complementary = {t for r, t in data.kg.item_edges(p) if r == "complementary_category"}
        member = {t for r, t in data.kg.item_edges(n) if r == "belongs_to"}
        if not complementary & member:
            continue
        eligible += 1
        related, n_graph = related_items(relations, items, p, "complement", 10)
        graph_sizes += n_graph
        hit_related += n in {s.item_id for s in related}
        row = items.row(p)
        allowed = items.live_mask()
        allowed[row] = False
        rows, _ = items.index.search(items.vector(row), 10, allowed)
        hit_similar += n in {items.ids[r] for r in rows}
    out = {
        "model": str(saved[0]),
        "test_cases": cases,
        "complement_cases": eligible,
        "related_hit@10": hit_related / max(1, eligible),
        "similar_hit@10": hit_similar / max(1, eligible),
        "mean_graph_items_in_top10": graph_sizes / max(1, eligible),
    }
    path = RUNS / "complements.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


# ---------------------------------------------------------------------------------------- report
def _runs(experiment: str) -> dict[str, list[tuple[dict[str, Any], dict[str, np.ndarray]]]]:
    out: dict[str, list] = defaultdict(list)
    for path in sorted((RUNS / experiment).glob("*.json")):
        record = json.loads(path.read_text())
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
            out[record["variant"]].append((record, {k: npz[k] for k in npz.files}))
    return out


def _paired(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    from scipy import stats

    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    n = len(diff)
    half = float(stats.t.ppf(0.975, n - 1) * diff.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
    nonzero = diff[diff != 0]
    return {
        "n": n,
        "mean_diff": float(diff.mean()),
        "ci95_low": float(diff.mean() - half),
        "ci95_high": float(diff.mean() + half),
        "t_pvalue": float(stats.ttest_1samp(diff, 0.0).pvalue) if n > 1 else float("nan"),
        "wilcoxon_pvalue": float(stats.wilcoxon(nonzero).pvalue) if len(nonzero) > 1 else 1.0,
    }


def _per_user(runs: list, key: str, users_key: str = "users") -> tuple[np.ndarray, np.ndarray]:
    """Users evaluated in every run and their value averaged over the runs (seeds)."""
    common_users = None
    for _, arrays in runs:
        common_users = arrays[users_key] if common_users is None else np.intersect1d(common_users, arrays[users_key])
    assert common_users is not None
    values = []
    for _, arrays in runs:
        pos = {int(u): j for j, u in enumerate(arrays[users_key])}
        values.append([arrays[key][pos[int(u)]] for u in common_users])
    return common_users, np.mean(values, axis=0)


def _fmt(values: list[float]) -> str:
    arr = np.asarray(values)
    return f"{arr.mean():.4f} ± {arr.std(ddof=1):.4f}" if len(arr) > 1 else f"{arr.mean():.4f}"


def report(args: argparse.Namespace, recbole_files: list[str]) -> None:
    lines: list[str] = []
    summary: dict[str, Any] = {}
    loo = _runs("loo")
    if loo:
        lines += [
            "| model | NDCG@10 | Recall@10 | valid NDCG@10 | epochs | fit (s) | seeds |",
            "|---|---|---|---|---|---|---|",
        ]
        for variant in ("lm", "lm-graph"):
            runs = loo.get(variant, [])
            if not runs:
                continue
            recs = [r for r, _ in runs]
            lines.append(
                f"| {NAMES[variant]} | {_fmt([r['test']['ndcg@10'] for r in recs])} | "
                f"{_fmt([r['test']['recall@10'] for r in recs])} | {_fmt([r['valid']['ndcg@10'] for r in recs])} | "
                f"{', '.join(str(r['epochs_run']) for r in recs)} | {np.mean([r['fit_seconds'] for r in recs]):.0f} | "
                f"{', '.join(str(r['seed']) for r in recs)} |"
            )
            summary[f"loo/{variant}"] = {
                "ndcg@10": [r["test"]["ndcg@10"] for r in recs],
                "seeds": [r["seed"] for r in recs],
            }
        seeds = sorted({r["seed"] for r, _ in loo.get("lm", [])} & {r["seed"] for r, _ in loo.get("lm-graph", [])})
        if seeds:
            a = [x for x in loo["lm-graph"] if x[0]["seed"] in seeds]
            b = [x for x in loo["lm"] if x[0]["seed"] in seeds]
            for key in ("ndcg@10", "recall@10"):
                ua, va = _per_user(a, f"test/{key}")
                ub, vb = _per_user(b, f"test/{key}")
                assert np.array_equal(ua, ub)
                t = _paired(va, vb)
                summary[f"loo/paired/{key}"] = t
                lines.append(
                    f"\n- paired lm + graph - lm, {key} per user averaged over seeds {seeds} ({t['n']} users): "
                    f"{t['mean_diff']:+.4f} [95% CI {t['ci95_low']:+.4f}, {t['ci95_high']:+.4f}], "
                    f"t-test p={t['t_pvalue']:.2g}, Wilcoxon p={t['wilcoxon_pvalue']:.2g}"
                )
            for s in seeds:
                ra = next(r for r, _ in a if r["seed"] == s)["test"]["ndcg@10"]
                rb = next(r for r, _ in b if r["seed"] == s)["test"]["ndcg@10"]
                lines.append(f"- seed {s}: NDCG@10 {ra:.4f} vs {rb:.4f} ({ra - rb:+.4f})")
    if recbole_files:
        lines += [
            "",
            "| RecBole model (defaults) | NDCG@10 | Recall@10 | epochs run | stopped by | train (s) |",
            "|---|---|---|---|---|---|",
        ]
        best = 0.0
        for f in recbole_files:
            rec = json.loads(Path(f).read_text())
            test = rec.get("test_result") or {}
            ndcg = float(test.get("ndcg@10", float("nan")))
            best = max(best, ndcg) if ndcg == ndcg else best
            lines.append(
                f"| {rec.get('model', Path(f).stem)} | {ndcg:.4f} | {float(test.get('recall@10', float('nan'))):.4f} | "
                f"{rec.get('epochs_run')} | {rec.get('stopped_by')} | {float(rec.get('train_wall_s', 0)):.0f} |"
            )
            summary[f"recbole/{rec.get('model')}"] = test
        graph = summary.get("loo/lm-graph", {}).get("ndcg@10")
        if graph and best > 0:
            ratio = float(np.mean(graph)) / best
            summary["ratio_vs_best_recbole_kg"] = ratio
            lines.append(f"\nlm + graph / best RecBole KG model on NDCG@10: **{ratio:.2f}x** (target 1.3x)")
    cold = _runs("cold")
    if cold:
        lines += [
            "",
            "| model (cold-item split) | NDCG@10 all | Recall@10 all | NDCG@10 new only | Recall@10 new only | seeds |",
            "|---|---|---|---|---|---|",
        ]
        for variant in ("lm", "lm-graph"):
            recs = [r for r, _ in cold.get(variant, [])]
            if recs:
                lines.append(
                    f"| {NAMES[variant]} | {_fmt([r['test']['ndcg@10'] for r in recs])} | "
                    f"{_fmt([r['test']['recall@10'] for r in recs])} | {_fmt([r['test_new_items']['ndcg@10'] for r in recs])} | "
                    f"{_fmt([r['test_new_items']['recall@10'] for r in recs])} | {', '.join(str(r['seed']) for r in recs)} |"
                )
        seeds = sorted({r["seed"] for r, _ in cold.get("lm", [])} & {r["seed"] for r, _ in cold.get("lm-graph", [])})
        for key, users_key in (("test/ndcg@10", "users"), ("test_new/recall@10", "users_new")):
            diffs_a, diffs_b = [], []
            for s in seeds:
                ra = next(x for x in cold["lm-graph"] if x[0]["seed"] == s)[1]
                rb = next(x for x in cold["lm"] if x[0]["seed"] == s)[1]
                ua, ia, ib = np.intersect1d(ra[users_key], rb[users_key], return_indices=True)
                diffs_a.append(ra[key][ia])
                diffs_b.append(rb[key][ib])
            if seeds:
                t = _paired(np.concatenate(diffs_a), np.concatenate(diffs_b))
                summary[f"cold/paired/{key}"] = t
                lines.append(
                    f"\n- cold split, paired lm + graph - lm, {key} ((seed, user) cases pooled, seeds {seeds}, {t['n']}): "
                    f"{t['mean_diff']:+.4f} [95% CI {t['ci95_low']:+.4f}, {t['ci95_high']:+.4f}], "
                    f"Wilcoxon p={t['wilcoxon_pvalue']:.2g}"
                )
    comp = RUNS / "complements.json"
    if comp.exists():
        c = json.loads(comp.read_text())
        summary["complements"] = c
        lines.append(
            f"\nComplements ({c['complement_cases']} of {c['test_cases']} test cases whose test item is in a "
            f"complementary category of the previous item): in the top 10 of /related?relation=complement "
            f"**{c['related_hit@10']:.3f}**, of /similar **{c['similar_hit@10']:.3f}** "
            f"(graph items in the related top 10: {c['mean_graph_items_in_top10']:.1f} on average)"
        )
    (common.OUT / "kg_report.json").write_text(json.dumps(summary, indent=2, default=float))
    (common.OUT / "kg_report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
