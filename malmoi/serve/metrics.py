"""Prometheus metrics of one server (``GET /metrics``), in a registry of its own so that several
apps in one process (tests) never share counters."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("malmoi_requests", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.errors = Counter("malmoi_errors", "Requests answered with an error, by malmoi error code",
                              ["route", "code"], registry=r)
        self.latency = Histogram("malmoi_request_seconds", "Time from request to the end of the response",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_seconds = Histogram("malmoi_queue_seconds", "Time a request waited for its model",
                                       ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.queue_depth = Gauge("malmoi_queue_depth", "Requests waiting per model", ["model"], registry=r)
        self.batch_size = Histogram("malmoi_batch_size", "Texts per classify batch", ["model"],
                                    buckets=BATCH_BUCKETS, registry=r)
        self.first_token = Histogram("malmoi_time_to_first_token_seconds", "Time from request to the first "
                                     "streamed piece", ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.generated = Counter("malmoi_generated_pieces", "Streamed text pieces", ["model"], registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
