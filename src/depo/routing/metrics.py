"""Prometheus metrics of the routing service (the names are listed in docs/routing.md)."""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)


class Metrics:
    """Prometheus metrics in a registry of the app's own (several apps can live in one process)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model_names: list[str]):
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "depo_route_requests", "Chat requests answered, by serving model (none: no backend) and HTTP status", ["model", "status"], registry=r
        )
        self.backend_requests = Counter(
            "depo_route_backend_requests", "Forwarded attempts per backend and outcome", ["backend", "outcome"], registry=r
        )
        self.decisions = Counter("depo_route_decisions", "Routing decisions per chosen model", ["model"], registry=r)
        self.share = Gauge("depo_route_routing_share", "Share of routed requests sent to each model", ["model"], registry=r)
        self.failovers = Counter("depo_route_failovers", "Requests served by another model than routed", registry=r)
        self.latency = Histogram(
            "depo_route_request_latency_seconds",
            "End-to-end latency (to the last byte) by serving model",
            ["model"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=r,
        )
        self.predict_latency = Histogram(
            "depo_route_predict_seconds", "Time to score one micro-batch", buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5), registry=r
        )
        self.batch_size = Histogram("depo_route_predict_batch_size", "Queries per micro-batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=r)
        self.in_flight = Gauge("depo_route_in_flight", "Requests being forwarded now", registry=r)
        self.rejected = Counter("depo_route_rejected", "Requests refused: concurrency queue timed out", registry=r)
        self._counts = dict.fromkeys(model_names, 0)

    def record_decision(self, model: str) -> None:
        self.decisions.labels(model).inc()
        self._counts[model] = self._counts.get(model, 0) + 1
        total = sum(self._counts.values())
        for name, count in self._counts.items():
            self.share.labels(name).set(count / total)

    def record_answer(self, model: str, status: str, seconds: float | None) -> None:
        """One answered request: its status under the serving model, and its latency (when one served)."""
        self.requests.labels(model, status).inc()
        if seconds is not None:
            self.latency.labels(model).observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format (what GET /metrics returns)."""
        return generate_latest(self.registry)
