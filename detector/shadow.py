"""Shadow mode: a candidate model sees the same frames as the active one and raises no alerts;
the frames where the two disagree about violations go to the service for review before promotion.

The active path never waits for the candidate: `observe` only queues the frame (dropping it when
the candidate is still busy), and a background thread runs the candidate, compares and posts
batches to `POST /api/v1/shadow`. It does share the CPU: on a saturated edge box a shadow
candidate costs the active model throughput, so run it on spare capacity or for a trial period.
Reports are best-effort (kept in memory, bounded; not the durable outbox): they are evidence for
a decision, not events.

Disagreements, per frame, matching boxes at IoU >= 0.5 (`compare`):
- `missed_violation`: an active `head` (bare head) the candidate does not see at all;
- `extra_violation`: a candidate `head` where the active model saw nothing;
- `class_changed`: one model says `head` where the other says `helmet`.

Example:
    >>> shadow = ShadowMode.from_config(config, active_version=lambda: "v1")
    >>> shadow.start()
    >>> shadow.observe("gate-1", frame, active_detections, time.time())
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import queue
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import supervision as sv

from detector.config import DetectorConfig
from detector.evidence import boxes_payload
from detector.inference import OnnxDetector

log = logging.getLogger(__name__)
KINDS = ("missed_violation", "extra_violation", "class_changed")


def compare(
    active: sv.Detections,
    candidate: sv.Detections,
    heads: Iterable[str] = ("head",),
    helmets: Iterable[str] = ("helmet",),
    iou: float = 0.5,
) -> list[str]:
    """The kinds of disagreement between two models' detections of one frame (sorted, unique)."""
    heads, helmets = set(heads), set(helmets)

    def split(d: sv.Detections) -> tuple[np.ndarray, np.ndarray]:
        names = d.data.get("class_name", np.array([], dtype=str))
        is_head = np.array([n in heads for n in names], dtype=bool)
        is_helmet = np.array([n in helmets for n in names], dtype=bool)
        xyxy = d.xyxy.reshape(-1, 4)
        return xyxy[is_head], xyxy[is_helmet]

    def covered(boxes: np.ndarray, others: np.ndarray) -> np.ndarray:
        if len(boxes) == 0 or len(others) == 0:
            return np.zeros(len(boxes), dtype=bool)
        return sv.box_iou_batch(boxes, others).max(axis=1) >= iou

    a_heads, a_helmets = split(active)
    c_heads, c_helmets = split(candidate)
    kinds = set()
    for own, other_heads, other_helmets, gone in (
        (a_heads, c_heads, c_helmets, "missed_violation"),
        (c_heads, a_heads, a_helmets, "extra_violation"),
    ):
        same = covered(own, other_heads)
        relabelled = covered(own, other_helmets) & ~same
        if relabelled.any():
            kinds.add("class_changed")
        if (~same & ~relabelled).any():
            kinds.add(gone)
    return sorted(kinds)


class ShadowMode:
    def __init__(
        self,
        detector: OnnxDetector,
        active_version: Callable[[], str],
        service_url: str,
        api_key: str,
        detector_id: str,
        heads: Iterable[str] = ("head",),
        helmets: Iterable[str] = ("helmet",),
        flush_interval_s: float = 2.0,
        max_pending: int = 500,
    ) -> None:
        self.detector = detector
        self.version = detector.version
        self._active_version = active_version
        self._http = httpx.Client(base_url=service_url, headers={"X-API-Key": api_key}, timeout=10)
        self._detector_id = detector_id
        self._heads, self._helmets = tuple(heads), tuple(helmets)
        self._flush_interval_s = flush_interval_s
        self._frames: queue.Queue[tuple[str, np.ndarray, sv.Detections, float]] = queue.Queue(2)
        self._pending: collections.deque[dict[str, Any]] = collections.deque(maxlen=max_pending)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counts = {"frames": 0, "dropped": 0, "disagreements": 0, "posted": 0}

    @classmethod
    def from_config(
        cls, config: DetectorConfig, active_version: Callable[[], str]
    ) -> ShadowMode | None:
        """The configured shadow model (`model.shadow_path`, or `model.shadow_version`
        downloaded from the service), or None; a model that does not load is logged, not fatal."""
        model = config.model
        path: Path | None = model.shadow_path
        try:
            if path is None and model.shadow_version:
                path = _download(config, model.shadow_version)
            if path is None:
                return None
            detector = OnnxDetector(path, conf=model.conf, iou=model.iou, threads=model.threads)
            if model.shadow_version:
                detector.version = model.shadow_version  # report under the registry's name
        except (ValueError, OSError, httpx.HTTPError) as exc:
            log.error("shadow model not loaded, shadow mode off: %s", exc)
            return None
        log.info("shadow mode: candidate %s runs beside the active model", detector.version)
        return cls(
            detector,
            active_version,
            config.service.url,
            config.service.api_key,
            config.detector_id,
            config.rules.bare_head_classes,
            config.rules.helmet_classes,
        )

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="shadow", daemon=True)
        self._thread.start()

    def observe(
        self, camera_id: str, frame: np.ndarray, active: sv.Detections, timestamp: float
    ) -> None:
        """Queue a frame the active model just processed; dropped when the candidate is busy."""
        try:
            self._frames.put_nowait((camera_id, frame, active, timestamp))
        except queue.Full:
            self.counts["dropped"] += 1

    def _run(self) -> None:
        next_flush = 0.0
        while not self._stop.is_set():
            try:
                item = self._frames.get(timeout=0.2)
            except queue.Empty:
                item = None
            try:
                if item is not None:
                    self._check(*item)
                now = dt.datetime.now().timestamp()
                if self._pending and now >= next_flush:
                    self.flush()
                    next_flush = now + self._flush_interval_s
            except Exception:
                log.exception("shadow mode step failed; continuing")
        self.flush()

    def _check(
        self, camera_id: str, frame: np.ndarray, active: sv.Detections, timestamp: float
    ) -> None:
        [candidate] = self.detector.predict([frame])
        self.counts["frames"] += 1
        at = dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()
        for kind in compare(active, candidate, self._heads, self._helmets):
            self.counts["disagreements"] += 1
            log.info("shadow %s disagrees on camera %s: %s", self.version, camera_id, kind)
            self._pending.append(
                {
                    "camera_id": camera_id,
                    "at": at,
                    "kind": kind,
                    "active_boxes": _plain(boxes_payload(active)),
                    "candidate_boxes": _plain(boxes_payload(candidate)),
                }
            )

    def flush(self) -> int:
        """Post the pending disagreements; on failure they stay queued (bounded)."""
        batch = list(self._pending)[:500]
        if not batch:
            return 0
        body = {
            "detector_id": self._detector_id,
            "candidate_version": self.version,
            "active_version": self._active_version(),
            "disagreements": batch,
        }
        try:
            response = self._http.post("/api/v1/shadow", json=body)
        except httpx.HTTPError as exc:
            log.warning("shadow report not delivered (kept): %s", exc)
            return 0
        if response.status_code >= 400:
            log.warning("shadow report refused: HTTP %s %s", response.status_code, response.text)
            if response.status_code < 500:
                self._pending.clear()  # the service will not take these; do not retry forever
            return 0
        for _ in batch:
            self._pending.popleft()
        self.counts["posted"] += len(batch)
        return len(batch)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._http.close()


def _plain(boxes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Boxes without track ids (the candidate's detections are not tracked)."""
    return [{k: v for k, v in b.items() if k != "track_id"} for b in boxes]


def _download(config: DetectorConfig, version: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in version)
    dest = config.model.download_dir / f"shadow-{safe}.onnx"
    if dest.is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    headers = {"X-API-Key": config.service.api_key}
    url = f"{config.service.url}/api/v1/models/{version}/file"
    with httpx.stream("GET", url, headers=headers, timeout=120) as response:
        response.raise_for_status()
        tmp = dest.with_suffix(".part")
        with tmp.open("wb") as handle:
            for chunk in response.iter_bytes():
                handle.write(chunk)
    tmp.replace(dest)
    return dest
