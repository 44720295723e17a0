"""Hot reload: swap the model while the loop keeps running; a bad model never replaces a good one.

The new model is loaded and test-run in a background thread (`OnnxDetector` raises `ValueError`
on anything unusable); only then is the reference swapped, between two inference calls, so no
frame is dropped. Triggers: the model file changed on disk, or the service's heartbeat reply
announces a promoted version (downloaded, checked against its sha256, then loaded).

Example:
    >>> models = ModelManager(config.model, metrics)
    >>> models.current.predict([frame])
    >>> models.start_watching()
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.config import ModelConfig
from detector.inference import OnnxDetector, file_sha256
from detector.variant import choose_model_file

log = logging.getLogger(__name__)


class ModelManager:
    def __init__(
        self,
        config: ModelConfig,
        on_result: Callable[[str], None] | None = None,
        on_swap: Callable[[OnnxDetector], None] | None = None,
    ) -> None:
        self.config = config
        self._on_result = on_result or (lambda result: None)
        self._on_swap = on_swap or (lambda detector: None)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.choice = choose_model_file(config)
        log.info("model file %s (%s)", self.choice.path, self.choice.reason)
        self._current = self._load(self.choice.path)
        self._stamps = self._watched_stamps()
        self._rejected: set[str] = set()

    @property
    def current(self) -> OnnxDetector:
        with self._lock:
            return self._current

    def _load(self, path: Path) -> OnnxDetector:
        return OnnxDetector(
            path,
            conf=self.config.conf,
            iou=self.config.iou,
            threads=self.config.threads,
            spin_wait=self.config.spin_wait,
        )

    @staticmethod
    def _file_stamp(path: Path) -> tuple[float, int] | None:
        try:
            stat = path.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    def try_swap(self, path: Path, expected_sha256: str | None = None) -> bool:
        """Load `path`; swap it in if usable. Returns True on a swap."""
        try:
            sha = file_sha256(path)
        except OSError as exc:
            log.warning("model %s unreadable: %s", path, exc)
            return False
        if sha == self.current.sha256:
            return False
        if sha in self._rejected:
            return False
        if expected_sha256 and sha != expected_sha256:
            log.error("model %s: sha256 %s does not match announced %s", path, sha, expected_sha256)
            self._rejected.add(sha)
            self._on_result("rejected")
            return False
        try:
            candidate = self._load(path)
        except ValueError as exc:
            log.error("model %s rejected, keeping %s: %s", path, self.current.version, exc)
            self._rejected.add(sha)
            self._on_result("rejected")
            return False
        with self._lock:
            old, self._current = self._current, candidate
        log.info("model swapped: %s -> %s", old.version, candidate.version)
        self._on_result("swapped")
        self._on_swap(candidate)
        return True

    @property
    def path(self) -> Path:
        """The configured file the detector runs (fp32 or its int8 variant)."""
        return self.choice.path

    def _watched_stamps(self) -> dict[Path, tuple[float, int] | None]:
        files = [self.config.path]
        if self.config.int8_path is not None and self.config.use_int8 is not False:
            files.append(self.config.int8_path)
        return {path: self._file_stamp(path) for path in files}

    def check_file(self) -> bool:
        """Reload when a configured file's mtime or size changed. The fp32/int8 choice is made
        again: a new fp32 file that its int8 file no longer pairs with runs as fp32."""
        stamps = self._watched_stamps()
        if stamps == self._stamps or self._file_stamp(self.config.path) is None:
            return False
        self._stamps = stamps
        choice = choose_model_file(self.config)
        if choice != self.choice:
            log.info("model file now %s (%s)", choice.path, choice.reason)
        self.choice = choice
        return self.try_swap(choice.path)

    def apply_announcement(self, active: dict[str, Any] | None, download: Callable) -> bool:
        """Follow the service's promoted model (`active_model` of a heartbeat reply)."""
        if not active or not self.config.follow_promotions:
            return False
        version, sha, url = active.get("version"), active.get("sha256"), active.get("url")
        if not version or not url or sha == self.current.sha256 or sha in self._rejected:
            return False
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(version))
        dest = self.config.download_dir / f"{safe}.onnx"
        if dest.is_file() and sha and file_sha256(dest) == sha:
            return self.try_swap(dest, expected_sha256=sha)  # fetched before a restart
        log.info("service announces model %s; downloading %s", version, url)
        try:
            download(url, dest)
        except Exception as exc:
            log.warning("download of model %s failed: %s", version, exc)
            self._on_result("download_failed")
            return False
        return self.try_swap(dest, expected_sha256=sha)

    def start_watching(self) -> None:
        if not self.config.watch:
            return
        self._thread = threading.Thread(target=self._watch, name="model-watch", daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(self.config.watch_interval_s):
            try:
                self.check_file()
            except Exception:
                log.exception("model watch failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
