"""Prometheus metrics in the text exposition format, without a client library.

``prometheus_client`` is not a dependency of lmrec; the service needs counters, gauges and latency
histograms only, which this module writes in the 0.0.4 text format that Prometheus scrapes.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Callable, Mapping, Sequence

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS", "Metrics"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: seconds
LATENCY_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

Labels = tuple[tuple[str, str], ...]


def _labels(labels: Labels, extra: tuple[str, str] | None = None) -> str:
    pairs = list(labels) + ([extra] if extra else [])
    if not pairs:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if not float(value).is_integer() else str(int(value))


class _Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * (len(self.buckets) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.buckets, value)] += 1
        self.total += value
        self.n += 1


class Metrics:
    """Thread-safe counters, gauges and histograms with labels.

    Names follow Prometheus conventions (``lmrec_requests_total``); ``help`` strings are registered
    once with `describe`. Gauges may be callables, read at `render` time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._help: dict[str, tuple[str, str]] = {}
        self._counters: dict[str, dict[Labels, float]] = {}
        self._gauges: dict[str, tuple[Callable[[], float], Callable[[], Mapping[str, str]] | None]] = {}
        self._hists: dict[str, dict[Labels, _Histogram]] = {}
        self._buckets: dict[str, tuple[float, ...]] = {}

    def describe(self, name: str, kind: str, help_text: str, buckets: Sequence[float] | None = None) -> None:
        """Register a metric's type (``counter``, ``gauge``, ``histogram``) and help text."""
        self._help[name] = (kind, help_text)
        if kind == "histogram":
            self._buckets[name] = tuple(buckets or LATENCY_BUCKETS)

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._counters.setdefault(name, {})
            series[key] = series.get(key, 0.0) + value

    def gauge(
        self, name: str, read: Callable[[], float], labels: Callable[[], Mapping[str, str]] | None = None
    ) -> None:
        """A gauge whose value is ``read()`` at scrape time, with the labels ``labels()`` gives then (if any)."""
        self._gauges[name] = (read, labels)

    def observe(self, name: str, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            series = self._hists.setdefault(name, {})
            hist = series.get(key)
            if hist is None:
                hist = series[key] = _Histogram(self._buckets.get(name, LATENCY_BUCKETS))
            hist.observe(value)

    def value(self, name: str, **labels: str) -> float:
        """A counter's current value (0 when never incremented)."""
        with self._lock:
            return self._counters.get(name, {}).get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> str:
        """All metrics in the Prometheus text format."""
        lines: list[str] = []

        def header(name: str, default_kind: str) -> None:
            kind, text = self._help.get(name, (default_kind, name))
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        with self._lock:
            counters = {n: dict(s) for n, s in self._counters.items()}
            hists = {
                n: {k: (h.buckets, list(h.counts), h.total, h.n) for k, h in s.items()} for n, s in self._hists.items()
            }
        for name in sorted(set(counters) | {n for n, (k, _) in self._help.items() if k == "counter"}):
            header(name, "counter")
            for key, value in sorted(counters.get(name, {}).items()):
                lines.append(f"{name}{_labels(key)} {_num(value)}")
        for name, (read, labels) in sorted(self._gauges.items()):
            header(name, "gauge")
            key = tuple(sorted(labels().items())) if labels is not None else ()
            lines.append(f"{name}{_labels(key)} {_num(float(read()))}")
        for name in sorted(hists):
            header(name, "histogram")
            for key, (buckets, counts, total, n) in sorted(hists[name].items()):
                running = 0
                for bound, count in zip((*buckets, math.inf), counts):
                    running += count
                    lines.append(f"{name}_bucket{_labels(key, ('le', _num(bound)))} {running}")
                lines.append(f"{name}_sum{_labels(key)} {_num(total)}")
                lines.append(f"{name}_count{_labels(key)} {n}")
        return "\n".join(lines) + "\n"
