"""The operations centre's alerts as Prometheus sees them. Refusals (bad signatures, unknown
cameras, broken pictures) are counted by their code in `problems_total`."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from app.core import metrics

ACCEPTED, REDELIVERY = "accepted", "redelivery"

ALERTS = Counter(
    "camera_alerts_total",
    "Camera alerts received, by source, type and outcome (accepted, redelivery)",
    ["source", "type", "outcome"],
)
# The promise to the city (every alert processed within a minute of a burst) as a figure
# operators can alert on: receipt to the commit of its processing, the burst wait included.
PROCESSING_DELAY = Histogram(
    "camera_alert_processing_delay_seconds",
    "From an alert's receipt to the commit of its processing",
    ["type"],
    buckets=(0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600),
)


def count_alert(source: str, type_: str, outcome: str) -> None:
    """One alert answered (sources, types and outcomes are our own enums)."""
    metrics.inc(ALERTS, source, type_, outcome)
