"""The detector against the real SiteGuard service (`siteguard serve`, SQLite), end to end.

The fake service in fake_service.py lets the poster tests kill and restart a server freely; this
test checks the seam itself: the real service accepts what the detector sends (docs/contract.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import httpx
import pytest
from detector_testlib import wait_until, write_video

from detector.config import load_config
from detector.outbox import Outbox
from detector.poster import Poster
from detector.runner import Runner

CODE = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"


def _siteguard(*args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", CODE, *args], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture()
def real_service(tmp_path: Path, free_port: int):
    pytest.importorskip("service.app")
    data = tmp_path / "service-data"
    admin = ["admin", "--data-dir", str(data)]
    _siteguard(*admin, "upgrade-db")
    _siteguard(*admin, "create-site", "site-a")
    _siteguard(*admin, "create-camera", "--site", "site-a", "yard")
    key = json.loads(_siteguard(*admin, "create-api-key", "--site", "site-a", "edge").strip())
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", CODE, "serve", "--data-dir", str(data), "--host", "127.0.0.1"]
        + ["--port", str(free_port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{free_port}"

    def up() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:
            return httpx.get(f"{url}/metrics", timeout=2).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(up, timeout=120, interval=0.3)
    yield url, key["key"]
    proc.terminate()
    proc.wait(30)


def test_detector_events_and_heartbeats_are_accepted_by_the_real_service(
    real_service, tmp_path: Path, coco_model: Path, worker_images: list[Path]
) -> None:
    url, key = real_service
    frames = []
    for image in worker_images[:2]:
        frames += [cv2.resize(cv2.imread(str(image)), (1280, 720))] * 20
    video = write_video(tmp_path / "yard.mp4", frames, fps=10)
    config = load_config(
        None,
        detector_id="edge-real",
        model={"path": str(coco_model), "watch": False},
        service={"url": url, "api_key": key, "heartbeat_interval_s": 0.5, "retry_max_s": 1.0},
        outbox={"path": str(tmp_path / "outbox.sqlite3")},
        rules={"bare_head_classes": ["person"], "hold_s": 0.5, "close_after_s": 1.0},
        metrics={"enabled": False},
        cameras=[{"id": "yard", "source": str(video), "fps": 5}],
    )
    runner = Runner(config)
    runner.start()
    thread = threading.Thread(target=runner.run_forever, daemon=True)
    thread.start()
    try:
        posted = runner.metrics.events_posted
        wait_until(lambda: posted.labels("open")._value.get() >= 1, timeout=180)
        wait_until(lambda: runner.heartbeat_ok, timeout=60)
    finally:
        runner.request_stop()
        thread.join(60)
    # stop() queued the `end` of every open episode; a fresh poster run delivers them.
    outbox = Outbox(config.outbox.path)
    assert Poster(config.service, outbox).drain()
    assert outbox.depth() == 0
    assert outbox.dead_count() == 0, "the real service refused something the detector sent"
