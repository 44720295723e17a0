"""The contender of `siteguard bench cameras`: the plain loop a user of Ultralytics would write.

    caps = [cv2.VideoCapture(url) for url in urls]
    while True:
        for cap in caps:
            ok, frame = cap.read()
            model.predict(frame)

One process, every camera read in turn with OpenCV (RTSP over TCP, as the detector reads it),
`YOLO(model).predict` on every frame read. Nothing is dropped: when the loop is slower than the
cameras, their frames wait in the stream (FFmpeg and the socket) and grow old.

A frame's age is measured from the stream's clock: the frame with stream time `pts` was decoded
on arrival no earlier than `t0 + pts`, where `t0` is the smallest `read time - pts` seen on that
camera (a moment the loop was waiting for the camera, not behind it). Age = prediction done -
(t0 + pts). If the loop never caught up, `t0` is late and the ages come out too small: the
error favours this contender.

The model is warmed up before the cameras open, and the measured window starts once every
camera has caught up with its stream after the opening (a read waited for the camera), or
`CATCH_UP_S` after the start at the latest: a one-off queue from the start is not the steady state.

Run by the bench as `python -m detector.bench_plain MODEL FPS SETTLE_S SECONDS URL...`; prints
one JSON line.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CATCH_UP_S = 15.0


def _rss_mib() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _load(model: str) -> Any:
    from ultralytics import YOLO

    if model.endswith(".onnx"):  # Ultralytics may write beside an exported file: use a copy
        workdir = Path(tempfile.mkdtemp(prefix="siteguard-bench-plain-"))
        atexit.register(shutil.rmtree, workdir, ignore_errors=True)
        model = shutil.copy(model, workdir / Path(model).name)
    return YOLO(model, task="detect")


def run(
    model_path: str, fps: float, settle_s: float, seconds: float, urls: list[str]
) -> dict[str, Any]:
    import cv2

    os.environ.setdefault("OPENCV_FFMPEG_CAPTURE_OPTIONS", "rtsp_transport;tcp")
    import numpy as np

    model = _load(model_path)
    for _ in range(3):  # the first calls initialise lazily: not what a running loop pays
        model.predict(np.zeros((720, 1280, 3), np.uint8), verbose=False)
    caps = []
    for url in urls:
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG)
        if not cap.isOpened():
            raise RuntimeError(f"cannot open {url}")
        caps.append(cap)
    # (read time, stream time, prediction done) of every frame, per camera
    frames: list[list[tuple[float, float, float]]] = [[] for _ in urls]
    ended = [False] * len(urls)
    caught_up = [False] * len(urls)  # a read waited for the camera: nothing was queued
    start = time.time()
    window = (float("inf"), float("inf"))
    cpu: list[tuple[float, float]] = []  # (wall, process CPU) at the window's ends
    while time.time() < window[1] and not all(ended):
        now = time.time()
        settled = now >= start + settle_s and (all(caught_up) or now >= start + CATCH_UP_S)
        if not cpu and settled:
            window = (now, now + seconds)
            cpu.append((now, sum(os.times()[:2])))
        for index, cap in enumerate(caps):
            asked_at = time.time()
            ok, frame = cap.read()
            read_at = time.time()
            if not ok:
                ended[index] = True
                continue
            caught_up[index] = caught_up[index] or read_at - asked_at >= 0.5 / fps
            pts = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000
            model.predict(frame, verbose=False)
            frames[index].append((read_at, pts, time.time()))
    cpu.append((time.time(), sum(os.times()[:2])))
    cameras = []
    for index, seen in enumerate(frames):
        t0 = min((read_at - pts for read_at, pts, _ in seen), default=0.0)
        in_window = [(t0 + pts, done) for _, pts, done in seen if window[0] <= done < window[1]]
        cameras.append(
            {
                "camera": f"cam{index}",
                "frames": len(in_window),
                "ages_s": [round(done - born, 4) for born, done in in_window],
                "stream_ended": ended[index],
            }
        )
    for cap in caps:
        cap.release()
    return {
        "window_s": round(seconds, 3),
        "cpu_cores": round((cpu[1][1] - cpu[0][1]) / (cpu[1][0] - cpu[0][0]), 3)
        if len(cpu) == 2 and cpu[1][0] > cpu[0][0]
        else None,
        "rss_mib": round(_rss_mib(), 1),
        "cameras": cameras,
    }


def main(argv: list[str]) -> int:
    model, fps, settle_s, seconds, *urls = argv
    out = os.fdopen(os.dup(1), "w")  # keep library chatter off the result line
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    result = run(model, float(fps), float(settle_s), float(seconds), urls)
    print(json.dumps(result), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
