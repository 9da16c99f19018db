"""Prometheus metrics, in a registry of the app's own (several apps may share a process)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

if TYPE_CHECKING:
    from .engine import Engine, Execution
    from .hub import Hub


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.executions = Counter("kakoclaw_executions", "Executions finished, by final state", ["state"], registry=r)
        self.cancel_latency = Histogram(
            "kakoclaw_cancel_latency_seconds", "Cancel request to empty process tree",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 3.1, 5, 10), registry=r,
        )
        self.running = Gauge("kakoclaw_executions_running", "Executions started and not finished", registry=r)
        self.queued = Gauge("kakoclaw_executions_queued", "Executions waiting for a slot", registry=r)
        self.subscribers = Gauge("kakoclaw_subscribers", "Live event subscriptions", registry=r)
        self.events = Gauge("kakoclaw_events_published", "Events published since start", registry=r)
        self.cutoffs = Gauge("kakoclaw_subscriber_cutoffs", "Slow subscribers cut off with a resync", registry=r)
        self.pool_idle = Gauge("kakoclaw_runner_pool_idle", "Idle warm runners", registry=r)
        self.pool_idle_bytes = Gauge("kakoclaw_runner_pool_idle_rss_bytes", "RSS of the idle warm runners", registry=r)
        self.loop_lag = Gauge("kakoclaw_event_loop_lag_seconds", "Event-loop lag over the last 10 s",
                              ["quantile"], registry=r)

    def bind(self, engine: "Engine", hub: "Hub", lag=None) -> None:
        """Gauges read live values at scrape time."""
        self.running.set_function(lambda: sum(1 for ex in engine.live.values() if ex.state.value != "queued"))
        self.queued.set_function(lambda: len(engine.admission.queued()))
        self.subscribers.set_function(hub.subscriber_count)
        self.events.set_function(lambda: hub.stats.published)
        self.cutoffs.set_function(lambda: hub.stats.cutoffs)
        self.pool_idle.set_function(lambda: len(engine.pool.idle))
        self.pool_idle_bytes.set_function(engine.pool.idle_memory)
        if lag is not None:
            for q in (0.5, 0.99, 1.0):
                self.loop_lag.labels(str(q)).set_function(lambda q=q: lag.quantile(q))

    def finished(self, ex: "Execution") -> None:
        self.executions.labels(ex.state.value).inc()
        if ex.cancel_latency_ms is not None:
            self.cancel_latency.observe(ex.cancel_latency_ms / 1000)

    def render(self) -> bytes:
        return generate_latest(self.registry)
