"""Real network peers on 127.0.0.1 for the operations tests: an MJPEG camera that can be cut
and restored on the same port, and a webhook receiver that records what the alerts send."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import socketserver
import threading
import time
from typing import Any

import cv2
import numpy as np


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class MjpegCamera:
    """An HTTP MJPEG stream (`multipart/x-mixed-replace`, like many IP cameras) at `fps`.

    `cut()` closes the listening socket and every open stream, as a dead switch would;
    `restore()` listens again on the same port.
    """

    def __init__(self, port: int, fps: float = 5.0) -> None:
        self.port, self.fps = port, fps
        self.url = f"http://127.0.0.1:{port}/stream.mjpg"
        self._server: _Server | None = None
        self._streams: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._frame = 0

    def _jpeg(self) -> bytes:
        self._frame += 1
        image = np.full((360, 640, 3), 60, dtype=np.uint8)
        x = 40 + (self._frame * 13) % 500  # a moving block: never a frozen picture
        cv2.rectangle(image, (x, 100), (x + 90, 260), (0, 180, 255), -1)
        ok, buf = cv2.imencode(".jpg", image)
        assert ok
        return buf.tobytes()

    def restore(self) -> MjpegCamera:
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                with camera._lock:
                    camera._streams.add(self.connection)
                try:
                    while True:
                        data = camera._jpeg()
                        self.wfile.write(
                            b"--frame\r\nContent-Type: image/jpeg\r\n"
                            + f"Content-Length: {len(data)}\r\n\r\n".encode()
                            + data
                            + b"\r\n"
                        )
                        time.sleep(1.0 / camera.fps)
                except OSError:
                    pass
                finally:
                    with camera._lock:
                        camera._streams.discard(self.connection)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def cut(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._lock:
            for conn in list(self._streams):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()


class WebhookReceiver:
    """Records the JSON bodies POSTed to it (the alerts library's generic webhook)."""

    def __init__(self) -> None:
        receiver = self
        self.bodies: list[dict[str, Any]] = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                try:
                    receiver.bodies.append(json.loads(self.rfile.read(length)))
                except ValueError:
                    receiver.bodies.append({"unparsed": True})
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def camera_states(self, camera_id: str) -> list[str]:
        """The states announced for `camera_id`, in the order they arrived."""
        return [
            body["camera"]["state"]
            for body in list(self.bodies)
            if isinstance(body.get("camera"), dict) and body["camera"].get("camera_id") == camera_id
        ]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
