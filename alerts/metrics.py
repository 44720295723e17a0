"""Prometheus metrics of alerts/ (default registry, so the service's /metrics shows them)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DELIVERIES = Counter(
    "siteguard_alert_deliveries_total",
    "Delivery attempts by channel type and outcome (delivered, retry, failed).",
    ["channel_type", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "siteguard_alert_delivery_seconds",
    "Time one delivery attempt took.",
    ["channel_type"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
NOTICES = Counter(
    "siteguard_alert_notices_total",
    "Notices received per routing decision (routed, grouped, deferred, unrouted, too_short, "
    "quiet, off_shift, duplicate, reviewed).",
    ["decision"],
)
QUEUED = Gauge(
    "siteguard_alert_queued_messages",
    "Messages waiting for delivery (including ones waiting to be retried).",
    ["channel_type"],
)
