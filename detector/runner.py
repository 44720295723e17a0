"""The detector loop: cameras -> motion gate -> batched inference -> tracking -> rules -> outbox.

One inference thread serves every camera (two CPU cores do not gain from more); each camera has
its own reader thread, so a slow or broken camera only ever affects itself. Per-camera work is
isolated: an exception is logged and counted for that camera and the others carry on.

Example:
    >>> runner = Runner(load_config("configs/detector.yaml"))
    >>> runner.start()
    >>> runner.run_forever()      # until Ctrl-C / runner.request_stop()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import supervision as sv

from detector.audit import AuditSampler, audit_message
from detector.config import CameraConfig, DetectorConfig
from detector.evidence import boxes_payload, render_evidence
from detector.inference import OnnxDetector
from detector.metrics import DetectorMetrics
from detector.motion import MotionGate
from detector.outbox import MessageType, Outbox, OutboxFull
from detector.poster import Poster
from detector.reload import ModelManager
from detector.rules import RuleEngine, RuleEvent
from detector.shadow import ShadowMode
from detector.site_settings import ServiceSettings
from detector.sources import CameraReader, Frame
from detector.tiling import Tiling
from detector.tracking import WorkerTracker

log = logging.getLogger(__name__)


def iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()


@dataclass
class CameraPipeline:
    """Everything the loop keeps per camera."""

    config: CameraConfig
    reader: CameraReader
    gate: MotionGate
    tracker: WorkerTracker
    rules: RuleEngine
    tiling: Tiling | None = None  # tiled inference for small, distant workers (opt-in)
    last_seq: int = 0
    next_due: float = 0.0
    last_detections: sv.Detections | None = None  # of the last inferred frame
    dropped_reported: int = 0
    counts: dict[str, int] = field(default_factory=lambda: {"processed": 0, "skipped": 0})


def _tiling(cam: CameraConfig) -> Tiling | None:
    if cam.tiling is None:
        return None
    tiling = Tiling(cam.tiling.grid, cam.tiling.overlap, cam.tiling.full_frame)
    log.info("camera %s: tiled inference, %s (%d model runs per frame)",
             cam.id, tiling.describe(), tiling.runs)  # fmt: skip
    return tiling


class Runner:
    def __init__(self, config: DetectorConfig, metrics: DetectorMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or DetectorMetrics()
        # First: a wrong or unwritable outbox path stops start-up before the model is loaded.
        self.outbox = Outbox(config.outbox.path, on_event=self.metrics.on_outbox_event)
        self.models = ModelManager(
            config.model,
            on_result=lambda r: self.metrics.model_reloads.labels(r).inc(),
            on_swap=self._on_swap,
        )
        self.metrics.set_model(self.models.current.version, self.models.choice.int8)
        self.poster = Poster(config.service, self.outbox, on_result=self.metrics.on_post_result)
        self.shadow = ShadowMode.from_config(config, lambda: self.models.current.version)
        self.audit = AuditSampler.from_config(config)  # audit frames for trainers to label
        self._frame_ready = threading.Event()
        self._stop = threading.Event()
        self._stopped = False
        self._heartbeat_thread: threading.Thread | None = None
        self._announcement_thread: threading.Thread | None = None
        self.site_settings = ServiceSettings()  # zones drawn in the service, unless set locally
        self._metrics_server = None
        self.heartbeat_ok: bool | None = None
        rules = config.rules
        head_classes = set(rules.bare_head_classes) | set(rules.helmet_classes)
        self.cameras: dict[str, CameraPipeline] = {}
        for cam in config.cameras:
            if not cam.enabled:
                continue
            engine = RuleEngine(cam, rules)
            engine.set_model_classes(set(self.models.current.names.values()))
            self._set_violation_conf(engine, self.models.current)
            self.cameras[cam.id] = CameraPipeline(
                config=cam,
                reader=CameraReader(cam, on_frame=self._on_frame),
                gate=MotionGate(config.motion),
                tracker=WorkerTracker(
                    config.tracking,
                    head_classes,
                    set(rules.person_classes),
                    operating_conf=self.models.current.operating_conf,
                    class_conf=self.models.current.class_conf,
                ),
                rules=engine,
                tiling=_tiling(cam),
            )

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        if self.config.metrics.enabled:
            self._metrics_server = self.metrics.serve(
                self.config.metrics.host, self.config.metrics.port
            )
        for pipe in self.cameras.values():
            pipe.reader.start()
        self.poster.start()
        if self.shadow is not None:
            self.shadow.start()
        self.models.start_watching()
        self._heartbeat_thread = threading.Thread(
            target=self._heartbeat_loop, name="heartbeat", daemon=True
        )
        self._heartbeat_thread.start()
        log.info(
            "detector %s: %d camera(s), model %s",
            self.config.detector_id,
            len(self.cameras),
            self.models.current.version,
        )

    @property
    def metrics_port(self) -> int | None:
        """The bound metrics port (useful with `metrics.port: 0`)."""
        return self._metrics_server.server_port if self._metrics_server is not None else None

    def request_stop(self) -> None:
        self._stop.set()
        self._frame_ready.set()

    def stop(self) -> None:
        """Close open episodes (queued as `end`), stop threads; the outbox keeps the rest."""
        if self._stopped:
            return
        self._stopped = True
        self.request_stop()
        for pipe in self.cameras.values():
            pipe.reader.stop(timeout=2.0)
            for event in pipe.rules.close_all():
                self._queue_end(event)
        self.models.stop()
        if self.shadow is not None:
            self.shadow.stop()
        self.poster.wake()
        self.poster.stop(timeout=5.0)
        if self._heartbeat_thread is not None:
            self._heartbeat_thread.join(2.0)
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        self.outbox.close()

    def run_forever(self) -> None:
        try:
            while not self._stop.is_set():
                if self.step() == 0:
                    self._frame_ready.wait(0.05)
                    self._frame_ready.clear()
        finally:
            self.stop()

    # -- one pass over the cameras ---------------------------------------------------------
    def _on_frame(self, camera_id: str) -> None:
        self.metrics.frames_read.labels(camera_id).inc()
        self._frame_ready.set()

    def _on_swap(self, detector: OnnxDetector) -> None:
        choice = self.models.choice  # a promoted download is never the configured int8 file
        self.metrics.set_model(detector.version, choice.int8 and detector.path == choice.path)
        for pipe in getattr(self, "cameras", {}).values():
            pipe.rules.set_model_classes(set(detector.names.values()))
            self._set_violation_conf(pipe.rules, detector)
            pipe.tracker.use_operating_conf(detector.operating_conf, detector.class_conf)

    def _set_violation_conf(self, engine: RuleEngine, detector: OnnxDetector) -> None:
        """A bare-head violation starts at the model's threshold for bare heads: its per-class
        one (`siteguard_class_conf`) if it has one, else none beyond the tracker's."""
        bare = [detector.class_conf[c] for c in self.config.rules.bare_head_classes
                if c in detector.class_conf]  # fmt: skip
        engine.set_violation_conf("no_helmet", min(bare) if bare else None)

    def step(self) -> int:
        """Take the newest frame of each due camera, infer the moving ones in one batch."""
        now = time.monotonic()
        to_infer: list[tuple[CameraPipeline, Frame]] = []
        handled = 0
        for pipe in self.cameras.values():
            self._report_drops(pipe)
            if now < pipe.next_due:
                continue
            frame = pipe.reader.latest(pipe.last_seq)
            if frame is None:
                continue
            pipe.last_seq = frame.seq
            # Anchored to the schedule, not to `now`: a step that runs a little late must not
            # push every later frame back (at fps = the stream's rate that dropped ~10 %).
            pipe.next_due = max(pipe.next_due + 1.0 / pipe.config.fps, now)
            handled += 1
            try:
                if pipe.gate.should_infer(frame.image, frame.timestamp):
                    to_infer.append((pipe, frame))
                else:
                    pipe.counts["skipped"] += 1
                    self.metrics.frames_skipped.labels(pipe.config.id).inc()
                    if pipe.last_detections is not None:
                        # The scene did not change, so neither did what is in it: the tracker
                        # sees the last detections again (tracks mature, episodes go on).
                        tracked = pipe.tracker.update(
                            pipe.last_detections, frame.timestamp, scene=frame.scene
                        )
                        self._apply_rules(pipe, frame, tracked)
                    self._done(pipe, frame)
            except Exception:
                self._camera_failed(pipe)
        max_batch = self.config.max_batch
        for start in range(0, len(to_infer), max_batch):
            self._infer(to_infer[start : start + max_batch])
        return handled

    def _infer(self, batch: list[tuple[CameraPipeline, Frame]]) -> None:
        detector = self.models.current  # swapped between calls, never during one
        started = time.perf_counter()
        try:
            results = detector.predict(
                [frame.image for _, frame in batch], tiling=[pipe.tiling for pipe, _ in batch]
            )
        except Exception:
            if len(batch) == 1:
                self._camera_failed(batch[0][0])
                return
            for item in batch:  # isolate the camera whose frame broke the batch
                self._infer([item])
            return
        self.metrics.inference_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(len(batch))
        for (pipe, frame), detections in zip(batch, results, strict=True):
            try:
                pipe.counts["processed"] += 1
                self.metrics.frames_processed.labels(pipe.config.id).inc()
                if self.shadow is not None:
                    self.shadow.observe(pipe.config.id, frame.image, detections, frame.timestamp)
                pipe.last_detections = detections
                tracked = pipe.tracker.update(
                    detections, timestamp=frame.timestamp, scene=frame.scene
                )
                self._apply_rules(pipe, frame, tracked)
                self._done(pipe, frame)
                if self.audit.pick(pipe.config.id):  # a draw among processed frames
                    self._queue_audit(pipe, frame, detections, detector)
            except Exception:
                self._camera_failed(pipe)

    def _done(self, pipe: CameraPipeline, frame: Frame) -> None:
        """The frame's decisions are made: how stale was it (`siteguard bench cameras`)?"""
        self.metrics.frame_age.labels(pipe.config.id).observe(time.time() - frame.timestamp)

    def _camera_failed(self, pipe: CameraPipeline) -> None:
        self.metrics.camera_errors.labels(pipe.config.id).inc()
        log.exception("camera %s: processing failed; other cameras continue", pipe.config.id)

    def _report_drops(self, pipe: CameraPipeline) -> None:
        dropped = pipe.reader.frames_dropped
        if dropped > pipe.dropped_reported:
            self.metrics.frames_dropped.labels(pipe.config.id).inc(dropped - pipe.dropped_reported)
            pipe.dropped_reported = dropped

    # -- events --------------------------------------------------------------------------
    def _apply_rules(self, pipe: CameraPipeline, frame: Frame, tracked: sv.Detections) -> None:
        for event in pipe.rules.update(tracked, frame.timestamp):
            if event.type == "open":
                self._queue_open(event, frame, tracked)
            else:
                self._queue_end(event)

    def _queue_open(self, event: RuleEvent, frame: Frame, tracked: sv.Detections) -> None:
        ep = event.episode
        height, width = frame.image.shape[:2]
        payload: dict[str, Any] = {
            "event_id": ep.event_id,
            "camera_id": ep.camera_id,
            "kind": ep.kind,
            "zone": ep.zone,
            "started_at": iso(ep.started_at),
            "ended_at": None,
            "duration_s": ep.duration_s,
            "confidence": round(ep.confidence, 4),
            "track_id": ep.track_id,
            "model_version": self.models.current.version,
            "frame_width": width,
            "frame_height": height,
            "boxes": boxes_payload(tracked),
        }
        snapshot, raw = render_evidence(frame.image, tracked, self.config.privacy, event.box_index)
        self.metrics.violations.labels(ep.camera_id, ep.kind).inc()
        self._queue("open", ep.event_id, payload, snapshot, raw)

    def _queue_audit(
        self, pipe: CameraPipeline, frame: Frame, detections: sv.Detections, model: OnnxDetector
    ) -> None:
        """An audit frame (detector/audit.py) with the detections of the model that saw it."""
        payload, snapshot, raw = audit_message(
            pipe.config.id, frame.image, frame.timestamp, detections, model, self.config.privacy
        )
        self._queue("audit", payload["audit_id"], payload, snapshot, raw)

    def _queue_end(self, event: RuleEvent) -> None:
        ep = event.episode
        payload = {"ended_at": iso(ep.ended_at), "duration_s": ep.duration_s}
        self._queue("end", ep.event_id, payload)

    def _queue(
        self,
        type: MessageType,
        event_id: str,
        payload: dict[str, Any],
        snapshot: bytes | None = None,
        frame: bytes | None = None,
    ) -> None:
        """Into the outbox; a full disk is logged and counted there, and the cameras go on."""
        with contextlib.suppress(OutboxFull):  # logged with the event id, and counted, there
            self.outbox.put(type, event_id, payload, snapshot=snapshot, frame=frame)
        self.update_outbox_metrics()
        self.poster.wake()

    def update_outbox_metrics(self) -> None:
        self.metrics.outbox_depth.set(self.outbox.depth())
        self.metrics.outbox_dead_letters.set(self.outbox.dead_count())

    # -- heartbeats ----------------------------------------------------------------------
    def heartbeat_payload(self) -> dict[str, Any]:
        cameras = []
        for camera_id, pipe in self.cameras.items():
            state = pipe.reader.state
            self.metrics.set_camera_state(camera_id, state)
            cameras.append(
                {
                    "camera_id": camera_id,
                    "state": state,
                    "fps": round(pipe.reader.fps, 2),
                    "last_frame_at": iso(pipe.reader.last_frame_at),
                    "frames_dropped": pipe.reader.frames_dropped,
                }
            )
        return {
            "detector_id": self.config.detector_id,
            "model_version": self.models.current.version,
            "cameras": cameras,
        }

    def send_heartbeat(self) -> None:
        self.update_outbox_metrics()
        try:
            active = self.poster.heartbeat(self.heartbeat_payload())
        except Exception as exc:
            if self.heartbeat_ok is not False:
                log.warning("heartbeat failed: %s", exc)
            self.heartbeat_ok = False
            return
        if self.heartbeat_ok is False:
            log.info("heartbeat delivered again")
        self.heartbeat_ok = True
        self._follow_announcement(active)
        cameras = {cam_id: (pipe.config, pipe.rules) for cam_id, pipe in self.cameras.items()}
        self.site_settings.apply(cameras, self.poster.last_reply.get("cameras"))

    def _follow_announcement(self, active: dict[str, Any] | None) -> None:
        """Download and swap a promoted model beside the heartbeats, never in their way: the
        service counts a few seconds without one as the cameras going offline."""
        busy = self._announcement_thread is not None and self._announcement_thread.is_alive()
        if not active or busy or active.get("sha256") == self.models.current.sha256:
            return
        self._announcement_thread = threading.Thread(
            target=self.models.apply_announcement,
            args=(active, self.poster.download),
            name="model-follow",
            daemon=True,
        )
        self._announcement_thread.start()

    def _heartbeat_loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.send_heartbeat()
            except Exception:
                log.exception("heartbeat loop error")
            self._stop.wait(self.config.service.heartbeat_interval_s)
