"""Camera sources: a reader thread per camera that keeps only the newest frame.

A slow consumer never stalls a camera and a slow camera never stalls the others: the reader
overwrites its one-frame slot and counts the frames nobody took (drops). A source that fails to
open or stops delivering is reopened with exponential backoff; its state (detector/health.py) is
`online`, `offline` (also: no frame for `stall_after_s`) or `frozen` (the same picture for
`frozen_after_s`). Streams are opened through OpenCV's FFmpeg backend with explicit open and read
timeouts, RTSP over TCP (set OPENCV_FFMPEG_CAPTURE_OPTIONS=rtsp_transport;udp for UDP), so a stalled
camera cannot hold its reader in a read for FFmpeg's default 30 s.

Example:
    >>> cam = CameraReader(CameraConfig(id="gate-1", source="rtsp://10.0.0.5/stream"))
    >>> cam.start()
    >>> frame = cam.latest(after_seq=0)   # None until a frame newer than seq 0 arrives
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from detector.config import CameraConfig
from detector.health import CameraHealth, State

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
# A scene cut on a stream: the mean absolute difference of two consecutive 32x18 grey thumbnails
# (0-255). Workers walking, a crane swinging or exposure drifting stay far below it; another
# picture altogether (a camera switched or moved, a video file starting over) is far above.
SCENE_CUT_DIFF = 40.0
# RTSP over TCP: no lost RTP packets (smeared frames) and it passes NAT and firewalls. OpenCV reads
# this variable when a capture opens; one value for the process, so the user's setting wins.
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
DEFAULT_FFMPEG_OPTIONS = "rtsp_transport;tcp"
_CREDENTIALS = re.compile(r"(?<=://)([^/@:]+):[^/@]*@")


def redact(source: str) -> str:
    """The source with any password in its URL replaced by ***, for logs and errors."""
    return _CREDENTIALS.sub(r"\1:***@", source)


@dataclass(frozen=True)
class StreamOptions:
    """Timeouts for URL sources: a dead camera fails to open, a stalled one fails its read."""

    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0

    @classmethod
    def for_camera(cls, config: CameraConfig) -> StreamOptions:
        return cls(open_timeout_s=config.open_timeout_s, read_timeout_s=config.stall_after_s)


class SourceError(RuntimeError):
    """The source cannot be opened or read (message says which and why)."""


@dataclass(frozen=True)
class Frame:
    """One decoded BGR frame with its arrival time (wall clock) and sequence number."""

    image: np.ndarray
    timestamp: float
    seq: int
    name: str = ""  # file name for image folders, else ""
    scene: int = 0  # counts scene cuts: a new image of a folder, another picture on a stream


class _Capture(Protocol):
    def read(self) -> tuple[np.ndarray, str] | None: ...  # None = end of stream
    def close(self) -> None: ...


class _VideoCapture:
    """OpenCV VideoCapture for files, URLs and webcams; files are paced at their own fps."""

    def __init__(
        self, source: str, paced_fps: float | None, stream: StreamOptions | None = None
    ) -> None:
        if source.isdigit():
            self._cap = cv2.VideoCapture(int(source))
        elif source_kind(source) == "url":
            stream = stream or StreamOptions()
            os.environ.setdefault(FFMPEG_OPTIONS_ENV, DEFAULT_FFMPEG_OPTIONS)
            params = [
                *(cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, round(stream.open_timeout_s * 1000)),
                *(cv2.CAP_PROP_READ_TIMEOUT_MSEC, round(stream.read_timeout_s * 1000)),
            ]
            self._cap = cv2.VideoCapture(source, cv2.CAP_FFMPEG, params)
        else:
            self._cap = cv2.VideoCapture(source)
        if not self._cap.isOpened():
            raise SourceError(f"cannot open {redact(source)!r}")
        ok, first = self._cap.read()
        if not ok or first is None:
            self._cap.release()
            raise SourceError(
                f"{redact(source)!r} opened but delivers no frames (corrupt or empty?)"
            )
        self._pending: np.ndarray | None = first
        self._interval = 1.0 / paced_fps if paced_fps else 0.0
        self._next_at = time.monotonic()

    def read(self) -> tuple[np.ndarray, str] | None:
        if self._interval:
            delay = self._next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._next_at = max(self._next_at + self._interval, time.monotonic() - 1.0)
        if self._pending is not None:
            frame, self._pending = self._pending, None
            return frame, ""
        ok, frame = self._cap.read()
        return (frame, "") if ok and frame is not None else None

    def close(self) -> None:
        self._cap.release()


class _ImageFolder:
    """Images of a folder in name order, played at a set rate."""

    def __init__(self, folder: Path, fps: float, hold_s: float | None = None) -> None:
        self._files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not self._files:
            raise SourceError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}")
        self._iter: Iterator[Path] = iter(self._files)
        self._interval = 1.0 / fps
        self._hold_s = hold_s or self._interval
        self._next_at = time.monotonic()
        self._current: tuple[np.ndarray, str] | None = None
        self._current_until = 0.0

    def read(self) -> tuple[np.ndarray, str] | None:
        delay = self._next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        now = time.monotonic()
        self._next_at = max(self._next_at + self._interval, now - 1.0)
        if self._current is not None and now < self._current_until - 1e-3:
            return self._current  # the same image again, as a camera would show it
        for path in self._iter:
            image = cv2.imread(str(path))
            if image is not None:
                self._current, self._current_until = (image, path.name), now + self._hold_s
                return self._current
            log.warning("skipping unreadable image %s", path)
        return None

    def close(self) -> None:
        pass


def source_kind(source: str) -> str:
    """`url`, `webcam`, `folder` or `file` for a configured source string."""
    if "://" in source:
        return "url"
    if source.isdigit():
        return "webcam"
    return "folder" if Path(source).is_dir() else "file"


def open_capture(
    source: str,
    playback_fps: float | None = None,
    image_hold_s: float | None = None,
    stream: StreamOptions | None = None,
) -> _Capture:
    """Open any supported source; raises SourceError with a clear reason."""
    kind = source_kind(source)
    if kind == "folder":
        return _ImageFolder(Path(source), playback_fps or 1.0, image_hold_s)
    if kind == "file":
        path = Path(source)
        if not path.is_file():
            raise SourceError(f"no such file: {source}")
        if path.suffix.lower() in IMAGE_SUFFIXES:
            raise SourceError(f"{source} is a single image; put it in a folder to play it")
        native = cv2.VideoCapture(source).get(cv2.CAP_PROP_FPS) or 25.0
        return _VideoCapture(source, playback_fps or native)
    return _VideoCapture(source, None, stream)


def iter_frames(source: str) -> Iterator[tuple[np.ndarray, str]]:
    """Every frame of a file, folder or single image, unpaced (for `siteguard predict`)."""
    path = Path(source)
    if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        image = cv2.imread(source)
        if image is None:
            raise SourceError(f"cannot decode image {source}")
        yield image, source
        return
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise SourceError(f"no images in {source}")
        for file in files:
            image = cv2.imread(str(file))
            if image is None:
                log.warning("skipping unreadable image %s", file)
                continue
            yield image, str(file)
        return
    if source_kind(source) == "file" and not path.is_file():
        raise SourceError(f"no such file: {source}")
    capture = _VideoCapture(source, None)
    index = 0
    try:
        while (item := capture.read()) is not None:
            yield item[0], f"{source}#{index}"
            index += 1
    finally:
        capture.close()


def _thumb(image: np.ndarray) -> np.ndarray:
    small = cv2.resize(image, (32, 18), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(small, cv2.COLOR_BGR2GRAY).astype(np.int16)


class CameraReader:
    """Reads one camera in a daemon thread; `latest()` hands out the newest unseen frame."""

    def __init__(
        self,
        config: CameraConfig,
        on_frame: Callable[[str], None] | None = None,
        opener: Callable[..., _Capture] = open_capture,
    ) -> None:
        self.config = config
        self.camera_id = config.id
        self._on_frame = on_frame
        self._opener = opener
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._slot: Frame | None = None
        self._taken_seq = 0
        self.seq = 0
        self.frames_read = 0
        self.frames_dropped = 0
        self.last_frame_at: float | None = None
        self.last_error: str | None = None
        self.finished = False
        self.health = CameraHealth(
            config.id, config.stall_after_s, config.frozen_after_s, config.recover_after_s
        )
        self._stream = StreamOptions.for_camera(config)
        self._last_thumb: np.ndarray | None = None
        self._last_name: str | None = None
        self.scene = 0
        self._fps_window: list[float] = []

    # -- consumer side -------------------------------------------------------------------
    def latest(self, after_seq: int) -> Frame | None:
        """The newest frame if it is newer than `after_seq`, else None."""
        with self._lock:
            frame = self._slot
            if frame is None or frame.seq <= after_seq:
                return None
            self._taken_seq = frame.seq
            return frame

    @property
    def state(self) -> State:
        return self.health.state()

    @property
    def fps(self) -> float:
        """Frames per second read over the last few seconds."""
        with self._lock:
            stamps = list(self._fps_window)
        if len(stamps) < 2:
            return 0.0
        return (len(stamps) - 1) / max(stamps[-1] - stamps[0], 1e-6)

    # -- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"cam-{self.camera_id}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- reader thread -------------------------------------------------------------------
    def _run(self) -> None:
        backoff = self.config.reconnect_initial_s
        source = self.config.source
        while not self._stop.is_set():
            try:
                capture = self._opener(
                    source, self.config.playback_fps, self.config.image_hold_s, self._stream
                )
            except SourceError as exc:
                self._set_offline(str(exc))
                log.warning("camera %s: %s; retrying in %.1fs", self.camera_id, exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_s)
                continue
            except Exception as exc:  # a source must never kill its thread
                self._set_offline(f"cannot open {redact(source)!r}: {exc}")
                log.exception("camera %s: unexpected error opening source", self.camera_id)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_s)
                continue
            log.info("camera %s: connected (%s)", self.camera_id, source_kind(source))
            self.last_error = None
            self.health.connected()
            got_any = self._pump(capture)
            capture.close()
            if got_any:
                backoff = self.config.reconnect_initial_s
            kind = source_kind(source)
            if kind in ("file", "folder") and not self.config.loop:
                self._set_offline("end of source")
                self.finished = True
                return
            if kind not in ("file", "folder"):
                self._set_offline("stream ended or read failed")
                log.warning(
                    "camera %s: stream lost; reconnecting in %.1fs", self.camera_id, backoff
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.config.reconnect_max_s)

    def _pump(self, capture: _Capture) -> bool:
        got_any = False
        while not self._stop.is_set():
            try:
                item = capture.read()
            except Exception as exc:
                log.warning("camera %s: read failed: %s", self.camera_id, exc)
                item = None
            if item is None:
                return got_any
            got_any = True
            self._publish(*item)
        return got_any

    def _publish(self, image: np.ndarray, name: str) -> None:
        now = time.time()
        thumb = _thumb(image)
        diff = None if self._last_thumb is None else float(np.abs(thumb - self._last_thumb).mean())
        self.health.frame(now, same_picture=diff is not None and diff < 0.5)
        # Tracks must not carry over to another picture: in an image folder every new file is
        # a cut (unrelated photos), on a stream a large jump of the whole picture is.
        if self._last_name is not None and (
            name != self._last_name if name else (diff is not None and diff > SCENE_CUT_DIFF)
        ):
            self.scene += 1
        self._last_thumb, self._last_name = thumb, name
        with self._lock:
            if self._slot is not None and self._slot.seq > self._taken_seq:
                self.frames_dropped += 1
            self.seq += 1
            self._slot = Frame(image=image, timestamp=now, seq=self.seq, name=name,
                               scene=self.scene)  # fmt: skip
            self.frames_read += 1
            self.last_frame_at = now
            self._fps_window.append(now)
            if len(self._fps_window) > 30:
                del self._fps_window[0]
        if self._on_frame is not None:
            self._on_frame(self.camera_id)

    def _set_offline(self, error: str) -> None:
        self.last_error = error
        self.health.disconnected(error)
