"""Aggregate the runs of ``benchmarks/lm_bench.py`` into tables with spreads and paired tests.

Reads ``benchmarks/out/lm_runs/**``; writes ``benchmarks/out/lm_loo.json``, ``lm_cold.json``,
``lm_query.json``, ``lm_ablation.json`` and the markdown snippet ``benchmarks/out/lm_results.md``.

Figures are means over seeds with the sample standard deviation. Paired tests
(`lmrec.eval.paired_test`: t-test and Wilcoxon over users) compare per-user values: on the fixed
leave-one-out split each user's value is first averaged over seeds; on the cold-item split the seed
also changes the split, so the (seed, user) cases are pooled.

Usage: ``python benchmarks/lm_report.py``
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

import common
import numpy as np

from lmrec.eval import EvalResult, paired_test

OUT = common.OUT
RUNS = OUT / "lm_runs"
NAMES = {
    "lm": "lm (hybrid)",
    "lm-text": "lm (text only)",
    "lm-content": "lm + content channel",
    "sasrec": "SASRec",
    "ease": "EASE",
    "tfidf": "TF-IDF",
}


def load_runs(experiment: str) -> dict[str, dict[str, list[tuple[dict[str, Any], dict[str, np.ndarray]]]]]:
    """data -> variant -> [(record, arrays)] sorted by seed."""
    out: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for path in sorted((RUNS / experiment).glob("*/*.json")):
        record = json.loads(path.read_text())
        with np.load(path.with_suffix(".npz"), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        out[record["data"]][record["variant"]].append((record, arrays))
    for data in out.values():
        for runs in data.values():
            runs.sort(key=lambda r: r[0]["seed"])
    return out


def stat(values: list[float]) -> dict[str, Any]:
    arr = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(arr.mean()),
        "std": float(arr.std(ddof=1)) if len(arr) > 1 else 0.0,
        "n_seeds": len(arr),
        "values": [float(v) for v in arr],
    }


def fmt(s: dict[str, Any], digits: int = 4) -> str:
    if s["n_seeds"] == 1:
        return f"{s['mean']:.{digits}f}"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def per_user_mean(runs, key: str, users_key: str = "users") -> EvalResult:
    """Per-user values averaged over the runs (all on one split), as an EvalResult for paired_test."""
    users = runs[0][1][users_key]
    stack = []
    for _, arrays in runs:
        if not np.array_equal(arrays[users_key], users):
            raise ValueError("runs of one split evaluated different users")
        stack.append(arrays[key])
    values = np.mean(stack, axis=0)
    metric = key.rsplit("/", 1)[-1]
    return EvalResult({metric: float(values.mean())}, {}, {}, {metric: values}, users, len(users), primary=metric)


def pooled(runs, key: str, users_key: str = "users") -> EvalResult:
    """(seed, user) cases pooled over runs whose splits differ."""
    users = np.concatenate([arrays[users_key] + 10_000_000 * rec["seed"] for rec, arrays in runs])
    values = np.concatenate([arrays[key] for _, arrays in runs])
    order = np.argsort(users)
    metric = key.rsplit("/", 1)[-1]
    return EvalResult(
        {metric: float(values.mean())}, {}, {}, {metric: values[order]}, users[order], len(users), primary=metric
    )


def ptest(a: EvalResult, b: EvalResult, metric: str) -> dict[str, float]:
    res = paired_test(a, b, metric)
    return {
        k: res[k]
        for k in ("n_users", "mean_a", "mean_b", "mean_diff", "ci95_low", "ci95_high", "t_pvalue", "wilcoxon_pvalue")
    }


def loo_tables(lines: list[str]) -> None:
    runs = load_runs("loo")
    summary: dict[str, Any] = {}
    query_summary: dict[str, Any] = {}
    for data, by_model in sorted(runs.items()):
        table = {}
        for model, rs in by_model.items():
            table[model] = {
                "test_ndcg@10": stat([r["test"]["ndcg@10"] for r, _ in rs]),
                "test_recall@10": stat([r["test"]["recall@10"] for r, _ in rs]),
                "valid_ndcg@10": stat([r["valid"]["ndcg@10"] for r, _ in rs]),
                "fit_seconds": stat([r["fit_seconds"] for r, _ in rs]),
                "seeds": [r["seed"] for r, _ in rs],
                "params": rs[0][0]["params"],
            }
        tests = {}
        if "lm" in by_model:
            lm = per_user_mean(by_model["lm"], "test/ndcg@10")
            for base in ("sasrec", "ease"):
                if base in by_model:
                    tests[f"lm vs {base}"] = ptest(lm, per_user_mean(by_model[base], "test/ndcg@10"), "ndcg@10")
        baselines = [m for m in ("sasrec", "ease") if m in table]
        best = max(baselines, key=lambda m: table[m]["test_ndcg@10"]["mean"]) if baselines else None
        ratio = (
            table["lm"]["test_ndcg@10"]["mean"] / table[best]["test_ndcg@10"]["mean"]
            if best and "lm" in table
            else None
        )
        summary[data] = {"models": table, "paired_tests": tests, "best_id_baseline": best, "lm_over_best": ratio}
        lines.append(f"\n### Leave-one-out, {data} (full ranking, test after observing valid)\n")
        lines.append("| model | NDCG@10 | Recall@10 | valid NDCG@10 | fit time (s) | seeds |")
        lines.append("|---|---|---|---|---|---|")
        for model in ("lm", "sasrec", "ease"):
            if model in table:
                t = table[model]
                lines.append(
                    f"| {NAMES[model]} | {fmt(t['test_ndcg@10'])} | {fmt(t['test_recall@10'])} | "
                    f"{fmt(t['valid_ndcg@10'])} | {t['fit_seconds']['mean']:.0f} | {len(t['seeds'])} |"
                )
        if ratio is not None:
            lines.append(f"\nlm / best ID-only baseline ({NAMES[best]}) on NDCG@10: **{ratio:.3f}x**")
        for name, t in tests.items():
            lines.append(
                f"- paired test {name} (NDCG@10 per user, averaged over seeds; {t['n_users']} users): "
                f"diff {t['mean_diff']:+.4f} [95% CI {t['ci95_low']:+.4f}, {t['ci95_high']:+.4f}], "
                f"t-test p={t['t_pvalue']:.2g}, Wilcoxon p={t['wilcoxon_pvalue']:.2g}"
            )
        # the query-aware evaluation rides on the lm runs
        # over the lm runs that carry it (a run made without the query evaluation is left out here only)
        lm_runs = [run for run in by_model.get("lm", []) if "query" in run[0]]
        if lm_runs:
            modes = ("profile", "query", "query+profile")
            q = {m: stat([r["query"]["metrics"][m]["ndcg@10"] for r, _ in lm_runs]) for m in modes}
            per = {m: per_user_mean(lm_runs, f"query/{m}/ndcg@10", f"query/{m}/users") for m in modes}
            qt = {f"query+profile vs {m}": ptest(per["query+profile"], per[m], "ndcg@10") for m in ("query", "profile")}
            first = lm_runs[0][0]["query"]
            query_summary[data] = {
                "query_field": first["query_field"],
                "alphas": [r["query"]["alpha"] for r, _ in lm_runs],
                "n_cases": first["n_cases"],
                "n_skipped": first["n_skipped"],
                "examples": first["examples"],
                "ndcg@10": q,
                "recall@10": {m: stat([r["query"]["metrics"][m]["recall@10"] for r, _ in lm_runs]) for m in modes},
                "paired_tests": qt,
            }
    (OUT / "lm_loo.json").write_text(json.dumps(summary, indent=2))
    if query_summary:
        (OUT / "lm_query.json").write_text(json.dumps(query_summary, indent=2))
        lines.append("\n### Query-aware evaluation (lm; query from the held-out item's category field)\n")
        lines.append("| data | query field | profile | query | query + profile | alpha (tuned on valid) |")
        lines.append("|---|---|---|---|---|---|")
        for data, s in query_summary.items():
            n = s["ndcg@10"]
            lines.append(
                f"| {data} | {s['query_field']} | {fmt(n['profile'])} | {fmt(n['query'])} | "
                f"{fmt(n['query+profile'])} | {', '.join(f'{a:.1f}' for a in s['alphas'])} |"
            )
        lines.append(
            "\nNDCG@10, mean ± std over seeds. Example queries: "
            + "; ".join(f'{d}: "{s["examples"][0][1]}"' for d, s in query_summary.items() if s["examples"])
        )
        for data, s in query_summary.items():
            for name, t in s["paired_tests"].items():
                lines.append(
                    f"- {data}, {name}: diff {t['mean_diff']:+.4f} [95% CI {t['ci95_low']:+.4f}, "
                    f"{t['ci95_high']:+.4f}], t-test p={t['t_pvalue']:.2g}, Wilcoxon p={t['wilcoxon_pvalue']:.2g}"
                )


def cold_tables(lines: list[str]) -> None:
    """Cold-item split: every model over the whole catalogue and over the new-items pool (the items
    without a training interaction), against random, with paired tests of each lm variant vs TF-IDF."""
    runs = load_runs("cold")
    summary: dict[str, Any] = {}
    for data, by_model in sorted(runs.items()):

        def col(rs, part: str, key: str) -> dict[str, Any] | None:
            vals = [r[part][key] for r, _ in rs if part in r]
            return stat(vals) if vals else None

        table = {
            m: {
                "test_recall@10": col(rs, "test", "recall@10"),
                "test_ndcg@10": col(rs, "test", "ndcg@10"),
                "new_recall@10": col(rs, "test_new_items", "recall@10"),
                "new_ndcg@10": col(rs, "test_new_items", "ndcg@10"),
                "seeds": [r["seed"] for r, _ in rs],
            }
            for m, rs in by_model.items()
        }
        any_runs = next(iter(by_model.values()))
        random = stat([r["random_expected_recall@10"] for r, _ in any_runs])
        new_random = [
            r["random_expected_recall@10_new_items"] for r, _ in any_runs if "random_expected_recall@10_new_items" in r
        ]
        entry: dict[str, Any] = {
            "models": table,
            "random_expected_recall@10": random,
            "random_expected_recall@10_new_items": stat(new_random) if new_random else None,
            "ratios": {},
        }
        for m in [m for m in ("lm", "lm-text", "lm-content") if m in by_model and "tfidf" in by_model]:
            seeds = sorted(set(table[m]["seeds"]) & set(table["tfidf"]["seeds"]))
            a = [r for r in by_model[m] if r[0]["seed"] in seeds]
            b = [r for r in by_model["tfidf"] if r[0]["seed"] in seeds]
            ratios: dict[str, Any] = {
                "all_items_vs_tfidf": table[m]["test_recall@10"]["mean"] / table["tfidf"]["test_recall@10"]["mean"],
                "all_items_vs_random": table[m]["test_recall@10"]["mean"] / random["mean"],
                "paired_all_items": ptest(pooled(a, "test/recall@10"), pooled(b, "test/recall@10"), "recall@10"),
            }
            if table[m]["new_recall@10"] and table["tfidf"]["new_recall@10"] and new_random:
                ratios["new_items_vs_tfidf"] = (
                    table[m]["new_recall@10"]["mean"] / table["tfidf"]["new_recall@10"]["mean"]
                )
                ratios["new_items_vs_random"] = table[m]["new_recall@10"]["mean"] / float(np.mean(new_random))
                ratios["paired_new_items"] = ptest(
                    pooled(a, "test_new/recall@10", "users_new"),
                    pooled(b, "test_new/recall@10", "users_new"),
                    "recall@10",
                )
            entry["ratios"][m] = ratios
        summary[data] = entry
        lines.append(f"\n### Cold-item split, {data} (test items never seen in training)\n")
        lines.append(
            "| model | Recall@10, all items | NDCG@10, all items | Recall@10, new items only | "
            "NDCG@10, new items only | seeds |"
        )
        lines.append("|---|---|---|---|---|---|")
        for m in ("lm", "lm-text", "lm-content", "tfidf"):
            if m in table:
                t = table[m]
                lines.append(
                    f"| {NAMES[m]} | {fmt(t['test_recall@10'])} | {fmt(t['test_ndcg@10'])} | "
                    f"{fmt(t['new_recall@10']) if t['new_recall@10'] else '-'} | "
                    f"{fmt(t['new_ndcg@10']) if t['new_ndcg@10'] else '-'} | {len(t['seeds'])} |"
                )
        nr = entry["random_expected_recall@10_new_items"]
        lines.append(
            f"| random (expected) | {fmt(random, 5)} | | {fmt(nr, 5) if nr else '-'} | | {random['n_seeds']} |"
        )
        for m, r in entry["ratios"].items():
            t = r["paired_all_items"]
            text = (
                f"\n{NAMES[m]} / TF-IDF, all items: **{r['all_items_vs_tfidf']:.2f}x** (vs random "
                f"{r['all_items_vs_random']:.1f}x; paired diff {t['mean_diff']:+.4f}, Wilcoxon p={t['wilcoxon_pvalue']:.2g})"
            )
            if "new_items_vs_tfidf" in r:
                t = r["paired_new_items"]
                text += (
                    f"; new items only: **{r['new_items_vs_tfidf']:.2f}x** (vs random {r['new_items_vs_random']:.1f}x; "
                    f"paired diff {t['mean_diff']:+.4f}, Wilcoxon p={t['wilcoxon_pvalue']:.2g}, {t['n_users']} cases)"
                )
            lines.append(text)
    (OUT / "lm_cold.json").write_text(json.dumps(summary, indent=2))


def ablation_tables(lines: list[str]) -> None:
    runs = load_runs("ablation")
    loo = load_runs("loo")
    summary: dict[str, Any] = {}
    labels = {
        "hybrid": "hybrid (text + ID), user text, full softmax, rating head",
        "text": "text only",
        "id": "ID only",
        "no-user-text": "without user text",
        "bpr": "BPR loss instead of softmax",
        "no-rating": "without the rating head",
        "content": "with the content channel",
    }
    for data in sorted(set(runs) | set(loo)):
        variants = dict(runs.get(data, {}))
        if "lm" in loo.get(data, {}):
            variants.setdefault("hybrid", loo[data]["lm"])
        if "hybrid" not in variants or len(variants) < 2:
            continue
        ref = per_user_mean(variants["hybrid"], "test/ndcg@10")
        table = {}
        for v, rs in variants.items():
            row = {
                "test_ndcg@10": stat([r["test"]["ndcg@10"] for r, _ in rs]),
                "test_recall@10": stat([r["test"]["recall@10"] for r, _ in rs]),
                "seeds": [r["seed"] for r, _ in rs],
            }
            if v != "hybrid":
                row["paired_test_vs_hybrid"] = ptest(per_user_mean(rs, "test/ndcg@10"), ref, "ndcg@10")
            table[v] = row
        summary[data] = table
        lines.append(f"\n### Ablation, {data} (leave-one-out, NDCG@10)\n")
        lines.append("| variant | NDCG@10 | Recall@10 | diff vs hybrid (paired, p) | seeds |")
        lines.append("|---|---|---|---|---|")
        for v, label in labels.items():
            if v in table:
                t = table[v]
                test = t.get("paired_test_vs_hybrid")
                cell = f"{test['mean_diff']:+.4f} (t p={test['t_pvalue']:.2g})" if test else ""
                lines.append(
                    f"| {label} | {fmt(t['test_ndcg@10'])} | {fmt(t['test_recall@10'])} | {cell} | {len(t['seeds'])} |"
                )
    if summary:
        (OUT / "lm_ablation.json").write_text(json.dumps(summary, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.parse_args()
    lines = [
        "## Language-model interest model (lm)",
        "",
        "Produced by `benchmarks/lm_bench.py` and `benchmarks/lm_report.py`; mean ± sample std over seeds.",
    ]
    loo_tables(lines)
    cold_tables(lines)
    ablation_tables(lines)
    (OUT / "lm_results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
