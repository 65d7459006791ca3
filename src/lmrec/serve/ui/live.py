"""The console's view of the live service: totals and latency percentiles read from the Prometheus
text that ``GET /metrics`` serves.

Rates (requests/s, events/s) are differences of these totals between two polls; the browser takes
them (`lmrec/serve/ui/static/console.js`), so this module stays a pure function of one scrape.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

__all__ = ["Sample", "histogram_quantile", "parse_prometheus", "summarize_metrics"]

#: (metric name, labels, value)
Sample = tuple[str, dict[str, str], float]

_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
#: routes of the console itself (its polling must not count as traffic)
_CONSOLE_PREFIX = "/ui"


def _unescape(value: str) -> str:
    return value.replace("\\n", "\n").replace('\\"', '"').replace("\\\\", "\\")


def _number(text: str) -> float:
    if text in ("+Inf", "Inf"):
        return math.inf
    if text == "-Inf":
        return -math.inf
    return float(text)


def parse_prometheus(text: str) -> list[Sample]:
    """The samples of a Prometheus text exposition (comments skipped; malformed lines skipped).

    Args:
        text: the body of ``GET /metrics`` (format 0.0.4).

    Returns:
        ``(name, labels, value)`` per sample line, in order.
    """
    samples: list[Sample] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            continue
        labels = {k: _unescape(v) for k, v in _LABEL.findall(match.group(3) or "")}
        try:
            samples.append((match.group(1), labels, _number(match.group(4))))
        except ValueError:
            continue
    return samples


def histogram_quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """The ``q`` quantile of a cumulative histogram, as Prometheus computes it: linear inside the bucket
    that holds the rank, the lower bound of the first bucket taken as 0; a rank in the ``+Inf`` bucket
    gives the highest finite bound.

    Args:
        q: in [0, 1].
        buckets: ``(upper bound, cumulative count)`` pairs, any order; the ``+Inf`` one holds the total.

    Returns:
        The quantile, or None for an empty histogram.

    Raises:
        ValueError: ``q`` is outside [0, 1].
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q: a quantile must lie in [0, 1], got {q}")
    ordered = sorted(buckets)
    if not ordered or ordered[-1][1] <= 0:
        return None
    rank = q * ordered[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in ordered:
        if count >= rank and count > below:
            if math.isinf(bound):
                return lower
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = (bound if not math.isinf(bound) else lower), count
    return lower


def summarize_metrics(text: str) -> dict[str, Any]:
    """What the console's "live service" panel shows, from one scrape.

    Requests and latencies leave out the console's own routes (``/ui...``).

    Returns:
        ``requests_total``, ``server_errors_total``, ``events_total``, ``duplicates_total``,
        ``rejected_total``, ``recommendations_total``, ``index_items``, ``live_items``, ``swaps``,
        ``latency_s`` (``{"p50", "p95", "p99"}`` in seconds over every API request since start, None
        when there was none), ``routes`` (per route: ``requests`` and ``p95_s``).
    """
    samples = parse_prometheus(text)
    totals: dict[str, float] = defaultdict(float)
    per_route: dict[str, float] = defaultdict(float)
    merged: dict[float, float] = defaultdict(float)
    route_buckets: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    gauges: dict[str, float] = {}
    for name, labels, value in samples:
        route = labels.get("route", "")
        if route.startswith(_CONSOLE_PREFIX):
            continue
        if name == "lmrec_http_requests_total":
            totals["requests_total"] += value
            per_route[route] += value
        elif name == "lmrec_http_server_errors_total":
            totals["server_errors_total"] += value
        elif name == "lmrec_events_ingested_total":
            totals["events_total"] += value
        elif name == "lmrec_events_duplicate_total":
            totals["duplicates_total"] += value
        elif name == "lmrec_events_rejected_total":
            totals["rejected_total"] += value
        elif name == "lmrec_recommendations_total":
            totals["recommendations_total"] += value
        elif name == "lmrec_http_request_duration_seconds_bucket" and "le" in labels:
            bound = _number(labels["le"])
            merged[bound] += value
            route_buckets[route][bound] += value
        elif name in ("lmrec_index_items", "lmrec_live_items", "lmrec_model_swaps"):
            gauges[name] = value
    pairs = list(merged.items())
    latency = None
    if pairs and max(c for _, c in pairs) > 0:
        latency = {f"p{int(q * 100)}": histogram_quantile(q, pairs) for q in (0.5, 0.95, 0.99)}
    routes = {
        route: {"requests": count, "p95_s": histogram_quantile(0.95, list(route_buckets[route].items()))}
        for route, count in sorted(per_route.items())
        if route_buckets.get(route)
    }
    return {
        "requests_total": totals["requests_total"],
        "server_errors_total": totals["server_errors_total"],
        "events_total": totals["events_total"],
        "duplicates_total": totals["duplicates_total"],
        "rejected_total": totals["rejected_total"],
        "recommendations_total": totals["recommendations_total"],
        "index_items": gauges.get("lmrec_index_items"),
        "live_items": gauges.get("lmrec_live_items"),
        "swaps": gauges.get("lmrec_model_swaps"),
        "latency_s": latency,
        "routes": routes,
    }
