"""Config validation (paths of bad keys, env overrides) and the detector's CLI commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from detector.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "configs" / "detector.example.yaml"


def siteguard(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    code = "import sys; from siteguard.cli import main; sys.exit(main(sys.argv[1:]))"
    cmd = [sys.executable, "-c", code, *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE)
    gate = config.cameras[0]
    assert gate.zones[0].required == {"helmet", "harness"}
    assert config.rules.hold_s == 2.0 and config.privacy.blur is True


def test_every_bad_key_is_reported_with_its_path(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "modle: {path: x}\n"
        "service: {url: 'ftp://nowhere'}\n"
        "rules: {hold_s: -1, timezone: Mars/Olympus}\n"
        "cameras:\n"
        "  - {id: a, source: a.mp4, zones: [{name: z, polygon: [[0, 0], [1, 1]]}]}\n"
        "  - {id: a, source: b.mp4, fps: fast}\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(bad)
    message = str(info.value)
    for path in (
        "modle:",
        "service.url:",
        "rules.hold_s:",
        "rules.timezone:",
        "cameras.0.zones.0.polygon:",
        "cameras.1.fps:",
    ):
        assert path in message, f"{path} missing from:\n{message}"


def test_duplicate_camera_ids_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="repeated"):
        load_config(None, cameras=[{"id": "a", "source": "x"}, {"id": "a", "source": "y"}])
    with pytest.raises(ConfigError, match="cannot read config"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(tmp_path / "list.yaml")


def test_environment_overrides_the_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SITEGUARD_DETECTOR__SERVICE__API_KEY", "from-env")
    monkeypatch.setenv("SITEGUARD_DETECTOR__RULES__HOLD_S", "3.5")
    config = load_config(EXAMPLE)
    assert config.service.api_key == "from-env"
    assert config.rules.hold_s == 3.5
    assert config.service.url == "http://127.0.0.1:8000"  # the rest still from the file
    monkeypatch.setenv("SITEGUARD_DETECTOR__RULES__HOLD_S", "soon")
    with pytest.raises(ConfigError, match=r"rules.hold_s[\s\S]*SITEGUARD_DETECTOR__RULES__HOLD_S"):
        load_config(EXAMPLE)


def test_detect_with_invalid_config_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [{id: x, source: y, fps: -1}]\n")
    result = siteguard("detect", "--config", str(bad))
    assert result.returncode == 2
    assert "cameras.0.fps" in result.stderr and "Traceback" not in result.stderr


def test_detect_with_a_bad_model_fails_clearly(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    bogus = tmp_path / "bogus.onnx"
    bogus.write_text("not a model")
    config.write_text(
        f"model: {{path: {bogus}}}\noutbox: {{path: {tmp_path / 'o.db'}}}\n"
        "metrics: {enabled: false}\ncameras: [{id: x, source: y.mp4}]\n"
    )
    result = siteguard("detect", "--config", str(config))
    assert result.returncode == 2
    assert "model:" in result.stderr and "bogus.onnx" in result.stderr


def test_predict_json_lines(coco_model: Path, worker_images: list[Path], tmp_path: Path) -> None:
    for image in worker_images[:2]:
        cv2.imwrite(str(tmp_path / image.name), cv2.imread(str(image)))
    result = siteguard("predict", "--model", str(coco_model), "--source", str(tmp_path), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["source"]).name for line in lines] == [p.name for p in worker_images[:2]]
    detection = lines[0]["detections"][0]
    assert set(detection) == {"class", "confidence", "xyxy"} and len(detection["xyxy"]) == 4
    assert any(d["class"] == "person" for line in lines for d in line["detections"])


def test_predict_on_a_missing_source_is_a_clear_error(coco_model: Path, tmp_path: Path) -> None:
    result = siteguard("predict", "--model", str(coco_model), "--source", str(tmp_path / "x.mp4"))
    assert result.returncode == 2 and "no such file" in result.stderr


def test_bench_detector_reports_every_contender(coco_model: Path, worker_images: list[Path]):
    """The benchmark command works end to end (figures go to docs/benchmarks.md, not asserted)."""
    result = siteguard(
        "bench", "detector", "--model", str(coco_model), "--source", str(worker_images[0]),
        "--frames", "5", "--warmup", "1", "--no-ultralytics", "--json",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout)
    assert set(report["contenders"]) == {"bare", "bare_ort_default", "bare_square", "pipeline"}
    assert all(c["frames"] == 5 and c["rss_mib"] > 0 for c in report["contenders"].values())
    assert report["ratios"]["pipeline_vs_bare_p50"] > 0
    bad = siteguard("bench", "detector", "--model", str(coco_model), "--source", "nope.jpg")
    assert bad.returncode == 2 and "cannot read nope.jpg" in bad.stderr
