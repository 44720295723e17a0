"""`siteguard bench cameras` end to end: a real RTSP server, a real `siteguard detect`, a real
receiver, and (with the [train] extra) the plain Ultralytics loop, one camera for a few seconds.

Checks the report's shape and that frames really went through; the figures themselves are for
docs/benchmarks.md, not for a timed test. Skips without gst-rtsp-server or ../shared.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from detector.bench_cameras import DEFAULT_CLIP, bucket_quantile, judge, missing_server

REPO = Path(__file__).resolve().parents[2]
CLI = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"


def test_quantile_from_histogram_buckets_interpolates_inside_a_bucket() -> None:
    buckets = [(0.1, 0.0), (0.5, 50.0), (1.0, 90.0), (2.0, 100.0), (float("inf"), 100.0)]
    assert bucket_quantile(buckets, 0.5) == pytest.approx(0.5)
    assert bucket_quantile(buckets, 0.95) == pytest.approx(1.5)
    assert bucket_quantile([(1.0, 0.0), (float("inf"), 4.0)], 0.5) == 1.0  # "at least 1 s"
    assert bucket_quantile([(1.0, 0.0), (float("inf"), 0.0)], 0.5) is None


def test_a_point_fails_on_age_backlog_or_drops_and_names_the_camera() -> None:
    good = {"camera": "cam0", "p95_s": 0.4, "read_share": 1.0, "handled_share": 0.98}
    assert judge([good], 2.0) == (True, "ok")
    failures = [
        ({"p95_s": 2.3}, "age"),
        ({"read_share": 0.6}, "backlog"),
        ({"handled_share": 0.5}, "dropped"),
        ({"p95_s": None}, "no frame"),
    ]
    for change, word in failures:
        passed, reason = judge([good, {**good, "camera": "cam1", **change}], 2.0)
        assert not passed and reason.startswith("cam1") and word in reason


def test_quick_run_with_one_camera_processes_real_frames(tmp_path: Path) -> None:
    reason = missing_server()
    if reason:
        pytest.skip(reason)
    if not DEFAULT_CLIP.is_file():
        pytest.skip(f"{DEFAULT_CLIP} missing (../shared/demo)")
    contenders = ["siteguard-int8-gated"]
    if importlib.util.find_spec("ultralytics") is not None:
        contenders.append("ultralytics-onnx")
    cmd = [sys.executable, "-c", CLI, "bench", "cameras", "--quick", "--cameras", "1",
           "--duration", "6", "--contenders", ",".join(contenders), "--json"]  # fmt: skip
    env = {**os.environ, "YOLO_OFFLINE": "1"}
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)

    assert report["machine"]["cpu_count"] >= 1 and "vnni" in report["machine"]
    assert report["stream"]["fps"] == 5 and report["rule"]["p95_age_s_below"] == 2.0
    assert [(p["contender"], p["n"]) for p in report["points"]] == [(c, 1) for c in contenders]
    for point in report["points"]:
        [camera] = point["cameras"]
        assert camera["camera"] == "cam0"
        assert camera["read"] > 0 and camera["handled"] > 0, point  # frames really went through
        assert camera["p50_s"] is not None and 0 < camera["p50_s"] <= camera["p95_s"]
        assert point["cpu_cores"] > 0 and point["rss_mib"] > 50
        assert isinstance(point["passed"], bool) and point["reason"]
    best = report["summary"]["max_cameras"]
    assert set(best) == set(contenders)
    assert all(b["max_cameras"] in (0, 1) for b in best.values())
