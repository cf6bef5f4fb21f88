"""``GET /metrics``: Prometheus metrics of the cell, from its events and a look at its parts.

Counters and histograms follow the event stream (``Metrics`` is an observer);
gauges (queue depths, runs in flight, robots armed, stream clients) are read
when Prometheus scrapes, so they cost the runtime nothing in between. Each
``Metrics`` has its own registry: several cells in one process (tests) do not
mix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_SIGNALS = {"signal.in": "in", "signal.routed": "routed", "signal.dropped": "dropped", "signal.emit": "emitted"}

disable_created_metrics()  # the *_created series only double the exposition

#: What the gauges read: name -> (help, labels, () -> [(label values, value)])
Gauges = dict[str, tuple[str, tuple[str, ...], Callable[[], list[tuple[tuple[str, ...], float]]]]]


class Metrics:
    """Prometheus metrics fed by runtime events; ``gauges`` are read at scrape time."""

    def __init__(self, gauges: Gauges | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.signals = Counter("bbflow_signals", "Signals by what happened to them: in (accepted at the door), "
                               "routed (to an agent's route), dropped, emitted (by an agent)",
                               ["kind"], registry=self.registry)
        self.runs = Counter("bbflow_runs", "Top-level runs by outcome", ["outcome"], registry=self.registry)
        self.steps = Histogram("bbflow_step_duration_seconds", "One attempt of a step, start to ok or error",
                               ["outcome"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.undos = Histogram("bbflow_undo_duration_seconds", "One undo, start to ok or error",
                               ["outcome"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.agent_errors = Counter("bbflow_agent_errors", "Failed handler turns (agent.error)",
                                    registry=self.registry)
        self.restarts = Counter("bbflow_supervisor_restarts", "Children restarted by a supervisor",
                                ["supervisor"], registry=self.registry)
        for kind in _SIGNALS.values():
            self.signals.labels(kind)
        for outcome in ("ok", "failed", "halted"):
            self.runs.labels(outcome)
        if gauges:
            self.registry.register(_GaugeCollector(gauges))
        self._started: dict[tuple[Any, ...], float] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        name = event.get("event", "")
        kind = _SIGNALS.get(name)
        if kind is not None:
            self.signals.labels(kind).inc()
            return
        if name in ("step.start", "undo.start"):
            self._started[_key(event)] = event.get("time", 0.0)
        elif name in ("step.ok", "step.error", "undo.ok", "undo.error"):
            started = self._started.pop(_key(event), None)
            if started is not None:
                histogram = self.steps if name.startswith("step") else self.undos
                histogram.labels(name.split(".", 1)[1]).observe(max(0.0, event.get("time", started) - started))
        elif name in ("run.ok", "run.failed", "run.halted"):
            if event.get("parent") is None:
                self.runs.labels(name.split(".", 1)[1]).inc()
        elif name == "agent.error":
            self.agent_errors.inc()
        elif name == "supervisor.restart":
            self.restarts.labels(str(event.get("supervisor"))).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def _key(event: dict[str, Any]) -> tuple[Any, ...]:
    kind = event["event"].split(".", 1)[0]
    return kind, event.get("run"), event.get("step"), tuple(event.get("index") or ())


class _GaugeCollector(Collector):
    def __init__(self, gauges: Gauges) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        for name, (help_text, labels, read) in self.gauges.items():
            family = GaugeMetricFamily(name, help_text, labels=list(labels))
            for values, value in read():
                family.add_metric(list(values), value)
            yield family

    def describe(self) -> Iterator[Metric]:
        return iter(())
