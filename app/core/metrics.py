"""Prometheus metrics. With several uvicorn workers set PROMETHEUS_MULTIPROC_DIR (see README)."""

from __future__ import annotations

import os

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, multiprocess
from prometheus_client.exposition import choose_encoder

HTTP_REQUESTS = Counter(
    "http_requests_total", "HTTP requests answered", ["method", "route", "status"]
)
HTTP_LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
JOBS_FINISHED = Counter("jobs_finished_total", "Background jobs finished", ["kind", "outcome"])
OTP_SENT = Counter("otp_sent_total", "OTP codes sent", ["purpose"])
LOGINS = Counter("logins_total", "Login attempts", ["outcome"])


def render(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition the scraper asked for (`Accept`): OpenMetrics or Prometheus text."""
    encode, content_type = choose_encoder(accept or "")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return encode(registry), content_type
    return encode(REGISTRY), content_type
