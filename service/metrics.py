"""Prometheus metrics of one service instance (own registry, so tests can build many apps).

Counters and histograms are counted by this process; gauges that describe the database (camera
state, field precision per model version) are computed from it at scrape time, so every replica
reports the same truth.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import case, func, select

from service.models import Camera, Violation

log = logging.getLogger(__name__)


class _DatabaseCollector(Collector):
    def __init__(self, sessions: Callable[[], Any], on_error: Callable[[str], None]) -> None:
        self._sessions = sessions
        self._on_error = on_error

    def collect(self) -> Iterator[GaugeMetricFamily]:
        online = GaugeMetricFamily(
            "siteguard_camera_online",
            "1 when the camera's last heartbeat said online, else 0",
            labels=["site", "camera"],
        )
        precision = GaugeMetricFamily(
            "siteguard_field_precision_ratio",
            "Confirmed / (confirmed + false alarm) reviews per model version",
            labels=["model_version"],
        )
        reviewed = GaugeMetricFamily(
            "siteguard_field_reviewed_violations",
            "Violations reviewed as confirmed or false alarm, per model version",
            labels=["model_version"],
        )
        try:
            with self._sessions() as db:
                for site_id, cam_id, state in db.execute(
                    select(Camera.site_id, Camera.id, Camera.state)
                ):
                    online.add_metric([site_id, cam_id], 1.0 if state == "online" else 0.0)
                confirmed = func.sum(case((Violation.status == "confirmed", 1), else_=0))
                judged = func.sum(
                    case((Violation.status.in_(("confirmed", "false_alarm")), 1), else_=0)
                )
                rows = db.execute(
                    select(Violation.model_version, confirmed, judged)
                    .where(Violation.status.in_(("confirmed", "false_alarm")))
                    .group_by(Violation.model_version)
                )
                for version, n_conf, n_judged in rows:
                    label = version or "unknown"
                    reviewed.add_metric([label], float(n_judged or 0))
                    if n_judged:
                        precision.add_metric([label], float(n_conf or 0) / float(n_judged))
        except Exception:  # noqa: BLE001 - a scrape must still answer when the DB is down
            log.warning("metrics: database query failed", exc_info=True)
            self._on_error("metrics")
        yield online
        yield precision
        yield reviewed


class ServiceMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.violations = Counter(
            "siteguard_violations_received_total",
            "New violations stored, by site and kind (repeats of an event id not counted)",
            ["site", "kind"],
            registry=r,
        )
        self.reviews = Counter(
            "siteguard_reviews_total", "Reviews recorded, by outcome", ["outcome"], registry=r
        )
        self.review_latency = Histogram(
            "siteguard_review_latency_seconds",
            "Time from a violation being received to its first review",
            buckets=(10, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 7 * 86400),
            registry=r,
        )
        self.ingest_latency = Histogram(
            "siteguard_ingest_duration_seconds",
            "Server-side time to validate and store one violation post",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.ingest_rejected = Counter(
            "siteguard_ingest_rejected_total",
            "Violation posts rejected, by reason",
            ["reason"],
            registry=r,
        )
        self.heartbeats = Counter(
            "siteguard_heartbeats_total", "Detector heartbeats received", registry=r
        )
        self.db_errors = Counter(
            "siteguard_db_errors_total", "Database errors, by operation", ["operation"], registry=r
        )
        self.sse_clients = Gauge(
            "siteguard_sse_clients", "Open server-sent-event streams", registry=r
        )
        self.logins = Counter(
            "siteguard_logins_total", "Login attempts, by result", ["result"], registry=r
        )

    def watch_database(self, sessions: Callable[[], Any]) -> None:
        self.registry.register(
            _DatabaseCollector(sessions, lambda op: self.db_errors.labels(op).inc())
        )

    def render(self) -> bytes:
        """This instance's metrics, then the process-wide default registry: the alerts
        library's delivery metrics and the standard process/GC metrics live there."""
        return generate_latest(self.registry) + generate_latest(REGISTRY)
