"""Prometheus metrics of one detector process (own registry, so tests can run several).

Names follow the project rules: `siteguard_` prefix, `_total` counters, `_seconds` durations,
low-cardinality labels (camera, kind, result; never event ids).
"""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)


class DetectorMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.frames_read = Counter(
            "siteguard_detector_frames_read_total",
            "Frames decoded from a camera",
            ["camera"],
            registry=r,
        )
        self.frames_dropped = Counter(
            "siteguard_detector_frames_dropped_total",
            "Frames replaced by a newer one before the loop took them",
            ["camera"],
            registry=r,
        )
        self.frames_processed = Counter(
            "siteguard_detector_frames_processed_total",
            "Frames that ran inference",
            ["camera"],
            registry=r,
        )
        self.frames_skipped = Counter(
            "siteguard_detector_frames_skipped_total",
            "Frames not inferred because the scene did not move",
            ["camera"],
            registry=r,
        )
        self.inference_seconds = Histogram(
            "siteguard_detector_inference_seconds",
            "Wall time of one batched onnxruntime call incl. pre/post-processing",
            buckets=(0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0),
            registry=r,
        )
        self.frame_age = Histogram(
            "siteguard_detector_frame_age_seconds",
            "Age of a frame when the loop is done with it (tracking and rules ran, its events "
            "queued): from its arrival at the camera reader, inferred or motion-skipped",
            ["camera"],
            buckets=(0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0),
            registry=r,
        )
        self.batch_size = Histogram(
            "siteguard_detector_batch_frames",
            "Frames per inference call",
            buckets=(1, 2, 3, 4, 6, 8),
            registry=r,
        )
        self.outbox_depth = Gauge(
            "siteguard_detector_outbox_depth", "Messages waiting to be posted", registry=r
        )
        self.outbox_dead_letters = Gauge(
            "siteguard_detector_outbox_dead_letters",
            "Messages kept as dead letters, refused for good (siteguard detect --dead-letters)",
            registry=r,
        )
        self.outbox_full = Counter(
            "siteguard_detector_outbox_full_total",
            "Writes that found the outbox's disk full (images shed or a message lost)",
            registry=r,
        )
        self.outbox_images_shed = Counter(
            "siteguard_detector_outbox_images_shed_total",
            "Evidence images dropped from the outbox, oldest first, to keep events on a full disk",
            registry=r,
        )
        self.events_lost = Counter(
            "siteguard_detector_events_lost_total",
            "Messages not stored: the outbox's disk was full even without any image",
            registry=r,
        )
        self.events_invalid = Counter(
            "siteguard_detector_events_invalid_total",
            "Messages kept as dead letters without sending (a NaN or infinity in them)",
            registry=r,
        )
        self.events_posted = Counter(
            "siteguard_detector_events_posted_total",
            "Messages the service acknowledged",
            ["type"],
            registry=r,
        )
        self.events_failed = Counter(
            "siteguard_detector_events_failed_total",
            "Delivery attempts that failed (failed = will retry, rejected = dead-lettered)",
            ["type", "result"],
            registry=r,
        )
        self.violations = Counter(
            "siteguard_detector_violations_total",
            "Violation episodes opened",
            ["camera", "kind"],
            registry=r,
        )
        self.camera_state = Gauge(
            "siteguard_detector_camera_state",
            "1 for the camera's current state",
            ["camera", "state"],
            registry=r,
        )
        self.model_reloads = Counter(
            "siteguard_detector_model_reloads_total",
            "Model swap attempts",
            ["result"],
            registry=r,
        )
        self.model_info = Gauge(
            "siteguard_detector_model_info",
            "1 for the model the detector runs; precision int8 or fp32 (model.use_int8)",
            ["version", "precision"],
            registry=r,
        )
        self.camera_errors = Counter(
            "siteguard_detector_camera_errors_total",
            "Processing errors per camera",
            ["camera"],
            registry=r,
        )

    def set_model(self, version: str, int8: bool) -> None:
        self.model_info.clear()
        self.model_info.labels(version, "int8" if int8 else "fp32").set(1)

    def on_post_result(self, message_type: str, result: str) -> None:
        if result == "posted":
            self.events_posted.labels(message_type).inc()
        else:
            self.events_failed.labels(message_type, result).inc()

    def on_outbox_event(self, kind: str, count: int) -> None:
        """`detector.outbox.Outbox`'s report: full, images_shed, lost, invalid."""
        counter = {
            "full": self.outbox_full,
            "images_shed": self.outbox_images_shed,
            "lost": self.events_lost,
            "invalid": self.events_invalid,
        }.get(kind)
        if counter is not None and count:
            counter.inc(count)

    def set_camera_state(self, camera: str, state: str) -> None:
        for name in ("online", "offline", "frozen"):
            self.camera_state.labels(camera, name).set(1 if name == state else 0)

    def serve(self, host: str, port: int):
        """Start the /metrics HTTP server in a daemon thread; returns the server."""
        server, _thread = start_http_server(port, addr=host, registry=self.registry)
        log.info("metrics on http://%s:%d/metrics", host, server.server_port)
        return server
