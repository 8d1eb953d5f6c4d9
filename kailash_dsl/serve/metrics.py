"""Prometheus text exposition (format 0.0.4), without a client library.

What ``/metrics`` shows:

- ``kflow_runs{status}`` — runs in the journal by status (read at scrape time);
- ``kflow_runs_started_total{channel}``, ``kflow_runs_finished_total{status}`` — this process;
- ``kflow_step_duration_seconds`` — histogram of step latency (from the journaled outcomes);
- ``kflow_journal_flush_duration_seconds`` — histogram of journal group commits;
- ``kflow_journal_flush_batch_size`` — histogram of commits per group commit;
- ``kflow_http_requests_total{route,method,status}`` and
  ``kflow_http_request_duration_seconds{route}`` — requests by route template;
- ``kflow_mcp_tool_calls_total{tool,outcome}`` and ``kflow_rate_limited_total{channel}``.
"""

from __future__ import annotations

import bisect
import math

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 5.0, 10.0, 30.0)
SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


def _esc(v: str) -> str:
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: tuple[str, ...], values: tuple, extra: str = "") -> str:
    parts = [f'{n}="{_esc(v)}"' for n, v in zip(names, values)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _num(v: float) -> str:
    if v == math.inf:
        return "+Inf"
    if float(v).is_integer():
        return str(int(v))
    return repr(float(v))


class Counter:
    def __init__(self, name: str, help: str, labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.label_names = name, help, labels
        self.values: dict[tuple, float] = {}

    def inc(self, *labels, by: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + by

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} counter"]
        for k, v in sorted(self.values.items()):
            out.append(f"{self.name}{_labels(self.label_names, k)} {_num(v)}")
        return out


class Gauge(Counter):
    def set(self, *labels, value: float) -> None:
        self.values[labels] = value

    def render(self) -> list[str]:
        out = super().render()
        out[1] = f"# TYPE {self.name} gauge"
        return out


class Histogram:
    def __init__(self, name: str, help: str, buckets=LATENCY_BUCKETS,
                 labels: tuple[str, ...] = ()) -> None:
        self.name, self.help, self.buckets, self.label_names = name, help, tuple(buckets), labels
        self.series: dict[tuple, list] = {}  # labels -> [counts per bucket..., sum, count]
        if not labels:
            self.series[()] = [0] * len(self.buckets) + [0.0, 0]

    def observe(self, value: float, *labels) -> None:
        s = self.series.get(labels)
        if s is None:
            s = self.series[labels] = [0] * len(self.buckets) + [0.0, 0]
        i = bisect.bisect_left(self.buckets, value)
        if i < len(self.buckets):
            s[i] += 1
        s[-2] += value
        s[-1] += 1

    def render(self) -> list[str]:
        out = [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} histogram"]
        for k, s in sorted(self.series.items()):
            acc = 0
            for b, c in zip(self.buckets, s):
                acc += c
                le = 'le="' + _num(b) + '"'
                out.append(f"{self.name}_bucket{_labels(self.label_names, k, le)} {acc}")
            inf = 'le="+Inf"'
            out.append(f"{self.name}_bucket{_labels(self.label_names, k, inf)} {s[-1]}")
            out.append(f"{self.name}_sum{_labels(self.label_names, k)} {_num(s[-2])}")
            out.append(f"{self.name}_count{_labels(self.label_names, k)} {s[-1]}")
        return out


class Metrics:
    def __init__(self) -> None:
        self.runs = Gauge("kflow_runs", "Runs in the journal by status.", ("status",))
        self.started = Counter("kflow_runs_started_total",
                               "Runs started by this process, by channel.", ("channel",))
        self.finished = Counter("kflow_runs_finished_total",
                                "Runs this process drove to an end or a wait, by status.",
                                ("status",))
        self.steps = Histogram("kflow_step_duration_seconds",
                               "Latency of journaled steps (start to outcome).")
        self.flush = Histogram("kflow_journal_flush_duration_seconds",
                               "Duration of journal group commits.")
        self.flush_batch = Histogram("kflow_journal_flush_batch_size",
                                     "Commits written together in one group commit.",
                                     SIZE_BUCKETS)
        self.requests = Counter("kflow_http_requests_total",
                                "HTTP requests by route template, method and status.",
                                ("route", "method", "status"))
        self.request_latency = Histogram("kflow_http_request_duration_seconds",
                                         "HTTP request latency by route template.",
                                         labels=("route",))
        self.tool_calls = Counter("kflow_mcp_tool_calls_total",
                                  "MCP tool calls by tool and outcome.", ("tool", "outcome"))
        self.rate_limited = Counter("kflow_rate_limited_total",
                                    "Requests refused by the rate limit, by channel.",
                                    ("channel",))

    def render(self, run_counts: dict[str, int] | None = None) -> str:
        if run_counts is not None:
            self.runs.values = {}
            for status in ("running", "waiting", "completed", "failed", "cancelled"):
                self.runs.set(status, value=run_counts.get(status, 0))
            for status, n in run_counts.items():
                self.runs.set(status, value=n)
        lines: list[str] = []
        for m in (self.runs, self.started, self.finished, self.steps, self.flush,
                  self.flush_batch, self.requests, self.request_latency, self.tool_calls,
                  self.rate_limited):
            lines.extend(m.render())
        return "\n".join(lines) + "\n"
