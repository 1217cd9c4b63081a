"""Prometheus metrics. With several uvicorn workers set PROMETHEUS_MULTIPROC_DIR
(see docs/operations.md)."""

from __future__ import annotations

import os
from typing import Any

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
# How far behind the queue runs: from a job's due time to a worker starting it (each attempt).
JOB_WAIT = Histogram(
    "job_wait_seconds",
    "From a job's due time to a worker starting it",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
# Every problem+json answer by its stable code: a spike of one code (`camera_alert.bad_signature`
# after a secret rotation, `otp.invalid`) tells operators what clients are getting wrong.
PROBLEMS = Counter("problems_total", "problem+json answers by their stable code", ["code"])
OTP_SENT = Counter("otp_sent_total", "OTP codes sent", ["purpose"])
LOGINS = Counter("logins_total", "Login attempts", ["outcome"])

_children: dict[tuple[Counter, tuple[str, ...]], Any] = {}


def inc(counter: Counter, *labels: str) -> None:
    """`counter.labels(*labels).inc()` with the labelled child kept: labels() costs ~20 us a
    call, too much on hot paths. Only for label values from bounded sets of our own (codes,
    enums), never from clients."""
    child = _children.get((counter, labels))
    if child is None:
        child = _children[(counter, labels)] = counter.labels(*labels)
    child.inc()


def count_problem(code: str) -> None:
    """One problem+json answer of `code` (codes come from the catalogue in app code)."""
    inc(PROBLEMS, code)


def render(accept: str | None = None) -> tuple[bytes, str]:
    """The exposition the scraper asked for (`Accept`): OpenMetrics or Prometheus text."""
    encode, content_type = choose_encoder(accept or "")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return encode(registry), content_type
    return encode(REGISTRY), content_type
