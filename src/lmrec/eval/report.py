"""Experiment reports: a Markdown table, and JSON + Markdown + PNG files side by side.

The chart is drawn on a figure bound to the Agg canvas directly, so writing a report never changes
the global matplotlib backend of the calling program.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

# matplotlib (slow to import) is imported inside _write_chart, its only user.

__all__ = ["ReportPaths", "markdown_table", "write_report"]

log = logging.getLogger(__name__)

DEFAULT_REPORT_METRICS: tuple[str, ...] = ("ndcg@10", "recall@10", "mrr@10", "hit@10")


class ReportPaths(NamedTuple):
    """The three files ``write_report`` wrote (iterable, or by name)."""

    json: Path
    md: Path
    png: Path


def _as_report_dict(result: Any) -> dict[str, Any]:
    """An `ExperimentResult`, or its ``to_json_dict()``, as the dictionary form."""
    if hasattr(result, "to_json_dict"):
        return result.to_json_dict()
    if not isinstance(result, Mapping):
        raise TypeError(f"expected an ExperimentResult or a dict, got {type(result).__name__}")
    return dict(result)


def _model_rows(results: Mapping[str, Any]) -> Mapping[str, Mapping[str, Any]]:
    """Accept either ``{model: {metric: value}}`` or a whole report dict holding ``"results"``."""
    if "results" in results and "split" in results and isinstance(results["results"], Mapping):
        return results["results"]
    return results


def _fmt(value: Any) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else f"{float(value):.4f}"
    return "–" if value is None else str(value)


def markdown_table(
    results: Mapping[str, Any], metrics: Sequence[str] = DEFAULT_REPORT_METRICS, *, bold_best: bool = True
) -> str:
    """A Markdown table, one row per model and one column per metric.

    Args:
        results: ``{model: {metric: value}}`` (or a whole report dict with a ``"results"`` entry).
        metrics: column keys; a model without a key shows "–".
        bold_best: bold the highest value in each column (ties all bold).

    Returns:
        The table as text, ending in a newline.
    """
    rows = _model_rows(results)
    metrics = list(metrics)
    best: dict[str, float] = {}
    for m in metrics:
        values = [float(r[m]) for r in rows.values() if isinstance(r.get(m), (int, float, np.number))]
        values = [v for v in values if not math.isnan(v)]
        if values and len(rows) > 1:
            best[m] = max(values)
    lines = ["| model | " + " | ".join(metrics) + " |", "|---|" + "---:|" * len(metrics)]
    for name, row in rows.items():
        cells = []
        for m in metrics:
            value = row.get(m)
            text = _fmt(value)
            if bold_best and m in best and isinstance(value, (int, float, np.number)) and float(value) == best[m]:
                text = f"**{text}**"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _breakdown_table(rows: Mapping[str, Mapping[str, Mapping[str, Any]]], key: str, metric: str) -> str:
    """Models x groups table of one metric from each model's ``by_scenario`` / ``by_user_group``."""
    groups: list[str] = []
    for row in rows.values():
        for g in row.get(key) or {}:
            if g not in groups:
                groups.append(g)
    if not groups:
        return ""
    table = {name: {g: (row.get(key) or {}).get(g, {}).get(metric) for g in groups} for name, row in rows.items()}
    counts = {
        g: next(
            ((row.get(key) or {}).get(g, {}).get("n_users") for row in rows.values() if g in (row.get(key) or {})), None
        )
        for g in groups
    }
    header = [f"{g} (n={counts[g]})" if counts[g] is not None else g for g in groups]
    text = markdown_table(table, groups)
    _, rest = text.split("\n", 1)
    return "| model | " + " | ".join(header) + " |\n" + rest


def _json_default(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, (set, tuple)):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def _write_chart(rows: Mapping[str, Mapping[str, Any]], metrics: Sequence[str], path: Path) -> None:
    """Grouped bars: one group per metric, one bar per model."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    names = list(rows)
    fig = Figure(figsize=(max(6.0, 1.6 * len(metrics) + 0.4 * len(names)), 4.0 + 0.25 * (len(names) // 4)), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(metrics))
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        values = [
            float(rows[name].get(m, np.nan)) if isinstance(rows[name].get(m), (int, float, np.number)) else np.nan
            for m in metrics
        ]
        ax.bar(x - 0.4 + width * (i + 0.5), values, width, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(list(metrics))
    ax.set_ylabel("value")
    ax.grid(axis="y", alpha=0.3)
    # legend under the axes, so it never hides a bar
    ax.legend(
        fontsize="small",
        ncols=min(4, max(1, len(names))),
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        frameon=False,
    )
    fig.tight_layout()
    fig.savefig(path)


def write_report(
    result: Any,
    out: str | Path,
    *,
    metrics: Sequence[str] = DEFAULT_REPORT_METRICS,
    title: str | None = None,
) -> ReportPaths:
    """Write ``<prefix>.json``, ``<prefix>.md`` and ``<prefix>.png``.

    Args:
        result: an `ExperimentResult` or its ``to_json_dict()``.
        out: a path prefix (``"reports/ml100k"`` -> ``reports/ml100k.json`` ...), or an existing
            directory / a path ending in "/" (files are then named ``report.*`` inside it).
        metrics: metric keys for the table and the chart.
        title: Markdown heading (defaults to the split name).

    Returns:
        `ReportPaths` ``(json, md, png)``.
    """
    data = _as_report_dict(result)
    out_str = str(out)
    prefix = Path(out)
    if out_str.endswith(("/", "\\")) or prefix.is_dir():
        prefix = prefix / "report"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    paths = {ext: prefix.with_name(prefix.name + "." + ext) for ext in ("json", "md", "png")}

    paths["json"].write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=True))

    rows = _model_rows(data)
    split = data.get("split", "?")
    lines = [f"# {title or f'Results on split {split!r}'}", ""]
    facts = [f"{key}: {data[key]}" for key in ("n_users", "n_items", "n_interactions") if key in data]
    if data.get("settings"):
        facts.append("settings: " + ", ".join(f"{k}={v}" for k, v in data["settings"].items()))
    lines += [f"- {fact}" for fact in facts] + ["", "## Test", "", markdown_table(rows, metrics)]
    fit_rows = {name: {"fit_s": row.get("fit_s")} for name, row in rows.items() if "fit_s" in row}
    valid_rows = {name: row["valid"] for name, row in rows.items() if row.get("valid")}
    if valid_rows:
        lines += ["## Valid", "", markdown_table(valid_rows, metrics)]
    if fit_rows:
        lines += ["## Fit time (s)", "", markdown_table(fit_rows, ["fit_s"], bold_best=False)]
    primary = next((row["primary"] for row in rows.values() if row.get("primary")), metrics[0])
    for key, heading in (("by_user_group", "By user group"), ("by_scenario", "By scenario")):
        table = _breakdown_table(rows, key, primary)
        if table:
            lines += [f"## {heading} ({primary})", "", table]
    paths["md"].write_text("\n".join(lines))

    _write_chart(rows, metrics, paths["png"])
    log.info("report written to %s.{json,md,png}", prefix)
    return ReportPaths(paths["json"], paths["md"], paths["png"])
