"""`siteguard detect` as a real process: queue while the service is down, restart, deliver."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import yaml
from detector_testlib import API_KEY, ServiceProcess, wait_until, write_video

CODE = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"


def _pending(outbox: Path) -> list[tuple[str, str]]:
    if not outbox.exists():
        return []
    conn = sqlite3.connect(outbox, timeout=30)
    try:
        return conn.execute("SELECT event_id, type FROM outbox WHERE status = 'pending'").fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def _detect(config: Path, log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", CODE, "detect", "--config", str(config)],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(60)


def test_events_queued_while_the_service_is_down_arrive_after_a_restart(
    tmp_path: Path, free_port: int, coco_model: Path, worker_images: list[Path]
) -> None:
    frames = []
    for image in worker_images[:2]:
        frames += [cv2.resize(cv2.imread(str(image)), (1280, 720))] * 20
    video = write_video(tmp_path / "yard.mp4", frames, fps=10)
    outbox = tmp_path / "outbox.sqlite3"
    config = tmp_path / "detector.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "detector_id": "edge-restart",
                "model": {"path": str(coco_model), "watch": False},
                "service": {
                    "url": f"http://127.0.0.1:{free_port}",
                    "api_key": API_KEY,
                    "heartbeat_interval_s": 0.5,
                    "retry_initial_s": 0.2,
                    "retry_max_s": 1.0,
                },
                "outbox": {"path": str(outbox)},
                "rules": {"bare_head_classes": ["person"], "hold_s": 0.5, "close_after_s": 1.0},
                "metrics": {"enabled": False},
                "cameras": [{"id": "yard", "source": str(video), "fps": 5}],
            }
        )
    )
    log = tmp_path / "detect.log"
    first = _detect(config, log)
    try:
        wait_until(lambda: any(t == "open" for _, t in _pending(outbox)), timeout=180)
    finally:
        assert _stop(first) == 0, log.read_text()[-3000:]
    queued = {event_id for event_id, t in _pending(outbox) if t == "open"}
    ended = {event_id for event_id, t in _pending(outbox) if t == "end"}
    assert queued and ended == queued  # every episode was closed, at the latest on shutdown

    service = ServiceProcess(tmp_path, free_port).start()
    second = _detect(config, log)
    try:
        wait_until(lambda: queued <= set(service.event_ids()), timeout=180)
        wait_until(lambda: not {e for e, _ in _pending(outbox)} & queued, timeout=120)
    finally:
        assert _stop(second) == 0, log.read_text()[-3000:]
        service.kill()
    rows = service.query("SELECT event_id, duration_s FROM events")
    stored = [r[0] for r in rows]
    assert len(stored) == len(set(stored))
    closed = {r[0] for r in rows if r[1] is not None}
    assert ended <= closed  # the ends written before the restart arrived too
    assert "Traceback" not in log.read_text()
