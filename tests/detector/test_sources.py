"""Camera readers on real files, folders, a real MJPEG-over-HTTP stream and broken inputs."""

from __future__ import annotations

import http.server
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from detector_testlib import wait_until, write_video

from detector.config import CameraConfig
from detector.sources import CameraReader, SourceError, iter_frames, open_capture


def _camera(source: str | Path, **kw) -> CameraConfig:
    defaults = {"reconnect_initial_s": 0.2, "reconnect_max_s": 1.0}
    return CameraConfig(id="cam", source=str(source), **{**defaults, **kw})


@pytest.fixture()
def reader_factory() -> Iterator:
    readers: list[CameraReader] = []

    def make(config: CameraConfig) -> CameraReader:
        reader = CameraReader(config)
        reader.start()
        readers.append(reader)
        return reader

    yield make
    for reader in readers:
        reader.stop()


def _moving_frames(n: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    frames = []
    for i in range(n):
        frame = np.full((size[1], size[0], 3), 60, dtype=np.uint8)
        cv2.rectangle(frame, (10 + 5 * i, 50), (60 + 5 * i, 120), (0, 200, 255), -1)
        frames.append(frame)
    return frames


def test_video_file_is_read_at_its_own_pace_and_loops(tmp_path: Path, reader_factory) -> None:
    video = write_video(tmp_path / "clip.mp4", _moving_frames(10), fps=20)
    reader = reader_factory(_camera(video))
    first = wait_until(lambda: reader.latest(0), timeout=30)
    assert first.image.shape == (240, 320, 3)
    wait_until(lambda: reader.frames_read > 25, timeout=30)  # 10-frame file, looped
    assert reader.state == "online"
    assert 1 < reader.fps < 40  # paced near the file's 20 fps (a loaded CI box reads slower)


def test_slow_consumer_gets_the_newest_frame_and_drops_are_counted(
    tmp_path: Path, reader_factory
) -> None:
    video = write_video(tmp_path / "clip.mp4", _moving_frames(20), fps=50)
    reader = reader_factory(_camera(video))
    wait_until(lambda: reader.frames_read > 20, timeout=30)
    frame = reader.latest(0)
    assert frame is not None and frame.seq >= reader.seq - 1
    assert reader.frames_dropped > 10
    assert reader.latest(reader.seq) is None  # nothing newer than what we have


def test_image_folder_plays_at_the_set_rate_and_holds_each_image(
    tmp_path: Path, reader_factory
) -> None:
    for i, frame in enumerate(_moving_frames(3)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.jpg"), frame)
    (tmp_path / "notes.txt").write_text("not an image")
    reader = reader_factory(_camera(tmp_path, playback_fps=10, image_hold_s=0.5, loop=False))
    names: list[str] = []
    seq = 0
    deadline = time.monotonic() + 30
    while not reader.finished and time.monotonic() < deadline:
        frame = reader.latest(seq)
        if frame is not None:
            seq = frame.seq
            names.append(frame.name)
        time.sleep(0.02)
    assert reader.finished and reader.state == "offline"
    assert [n for i, n in enumerate(names) if i == 0 or names[i - 1] != n] == [
        "000.jpg",
        "001.jpg",
        "002.jpg",
    ]
    assert len(names) >= 9  # each image repeated ~5 times at 10 fps for 0.5 s


def test_identical_frames_make_the_camera_frozen(tmp_path: Path, reader_factory) -> None:
    still = _moving_frames(1)[0]
    video = write_video(tmp_path / "still.mp4", [still] * 20, fps=20)
    reader = reader_factory(_camera(video, frozen_after_s=1.0))
    wait_until(lambda: reader.state == "frozen", timeout=30)


def test_unreachable_url_is_offline_with_a_clear_error_and_retries(
    free_port: int, reader_factory
) -> None:
    reader = reader_factory(_camera(f"http://127.0.0.1:{free_port}/stream.mjpg"))
    wait_until(lambda: reader.last_error is not None, timeout=60)
    assert reader.state == "offline"
    assert "cannot open" in reader.last_error and str(free_port) in reader.last_error


def test_corrupt_and_missing_video_files(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(SourceError, match="corrupt.mp4"):
        open_capture(str(corrupt))
    with pytest.raises(SourceError, match="no such file"):
        open_capture(str(tmp_path / "missing.mp4"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="no images"):
        open_capture(str(tmp_path / "empty"))


def test_iter_frames_covers_image_folder_and_video(tmp_path: Path) -> None:
    frames = _moving_frames(4)
    video = write_video(tmp_path / "v.mp4", frames, fps=10)
    assert len(list(iter_frames(str(video)))) == 4
    folder = tmp_path / "imgs"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), frames[0])
    [(image, name)] = list(iter_frames(str(folder)))
    assert name.endswith("a.png") and image.shape == (240, 320, 3)


class _MjpegHandler(http.server.BaseHTTPRequestHandler):
    """multipart/x-mixed-replace JPEG stream, as IP cameras serve it."""

    frames: list[bytes] = []
    per_connection = 15  # then the "camera" drops the connection
    connections = 0

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        self.send_response(200)
        self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
        self.end_headers()
        type(self).connections += 1
        try:
            for i in range(self.per_connection):
                jpeg = self.frames[i % len(self.frames)]
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                self.wfile.write(jpeg + b"\r\n")
                time.sleep(0.05)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def log_message(self, *args) -> None:
        pass


def test_http_mjpeg_stream_and_reconnect_after_it_ends(free_port: int, reader_factory) -> None:
    _MjpegHandler.frames = [cv2.imencode(".jpg", f)[1].tobytes() for f in _moving_frames(5)]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port), _MjpegHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        reader = reader_factory(_camera(f"http://127.0.0.1:{free_port}/video.mjpg"))
        frame = wait_until(lambda: reader.latest(0), timeout=60)
        assert frame.image.shape == (240, 320, 3)
        wait_until(lambda: reader.frames_read >= 25, timeout=60)  # needs a reconnect
        assert _MjpegHandler.connections >= 2
    finally:
        server.shutdown()
        server.server_close()


class _ListCapture:
    """A stream that delivers the given frames and then ends."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        self._frames = list(frames)

    def read(self) -> tuple[np.ndarray, str] | None:
        time.sleep(0.01)
        return (self._frames.pop(0), "") if self._frames else None

    def close(self) -> None:
        pass


def test_scene_cuts_new_photo_in_a_folder_and_another_picture_on_a_stream(
    tmp_path: Path, reader_factory
) -> None:
    """Issue 19: frames carry a scene number, so tracks never leak across unrelated pictures."""
    for i, frame in enumerate(_moving_frames(3)):
        cv2.imwrite(str(tmp_path / f"{i:03d}.jpg"), frame)
    reader = reader_factory(_camera(tmp_path, playback_fps=10, image_hold_s=0.5, loop=False))
    scenes: dict[str, set[int]] = {}
    seq, deadline = 0, time.monotonic() + 30
    while not reader.finished and time.monotonic() < deadline:
        frame = reader.latest(seq)
        if frame is not None:
            seq = frame.seq
            scenes.setdefault(frame.name, set()).add(frame.scene)
        time.sleep(0.02)
    # each photo is one scene however often it is shown; the next photo is the next scene
    # (the three pictures differ only by a moving box: a stream would not cut there)
    assert scenes == {"000.jpg": {0}, "001.jpg": {1}, "002.jpg": {2}}

    yard = _moving_frames(6)  # a worker walking: no cut
    other = [np.full((240, 320, 3), 230, np.uint8)] * 3  # another picture altogether
    seen: list[int] = []
    scripted = CameraReader(
        CameraConfig(id="cam2", source="rtsp://cam/stream"),
        on_frame=lambda _cam: seen.append(scripted.scene),
        opener=lambda *_: _ListCapture(yard + other + yard[:2]),
    )
    scripted.start()
    try:
        wait_until(lambda: len(seen) >= len(yard) + len(other) + 2, timeout=30)
    finally:
        scripted.stop()
    assert seen[: len(yard)] == [0] * len(yard)
    assert seen[len(yard) : len(yard) + 3] == [1, 1, 1]
    assert seen[len(yard) + 3 : len(yard) + 5] == [2, 2]
