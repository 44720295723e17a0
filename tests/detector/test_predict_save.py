"""`siteguard predict` as a newcomer runs it (issue 19): no --model needed (the bundled one, at
its own operating thresholds), and `--save DIR` writes each picture with its boxes drawn."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
from test_config_cli import siteguard

from detector.inference import OnnxDetector


def test_predict_uses_the_bundled_model_and_saves_annotated_images(
    worker_images: list[Path], tmp_path: Path, bundled_model: Path
) -> None:
    model = OnnxDetector(bundled_model)
    thresholds, classes = model.class_conf, set(model.names.values())  # what the model file says
    photos = tmp_path / "photos"
    photos.mkdir()
    for image in worker_images[:2]:
        shutil.copy(image, photos / image.name)
    out = tmp_path / "annotated"
    result = siteguard("predict", "--source", str(photos), "--save", str(out), "--json")
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [Path(line["saved"]).name for line in lines] == [p.name for p in worker_images[:2]]
    heads = 0
    for line in lines:
        source, saved = cv2.imread(line["source"]), cv2.imread(line["saved"])
        assert saved is not None and saved.shape == source.shape
        for box in line["detections"]:
            assert box["class"] in classes
            # the bundled model's own thresholds (siteguard_class_conf)
            assert box["confidence"] >= thresholds.get(box["class"], 0.0)
            if box["class"] == "head":
                heads += 1
                x1, y1, x2, y2 = (int(v) for v in box["xyxy"])
                edge = saved[y1 : y1 + 3, x1 : x2 + 1].reshape(-1, 3).astype(int)
                b, g, r = edge.mean(axis=0)
                assert r > 150 and r > g + 60 and r > b + 60, "a bare head is drawn in red"
        assert np.abs(saved.astype(int) - source.astype(int)).mean() > 0.1  # boxes were drawn
    assert heads >= 1  # these photos were picked for their bare heads

    plain = siteguard("predict", "--source", str(photos), "--save", str(tmp_path / "p"))
    assert plain.returncode == 0, plain.stderr
    assert "2 annotated image(s) in" in plain.stdout


def test_predict_conf_overrides_the_models_thresholds(worker_images: list[Path]) -> None:
    result = siteguard("predict", "--source", str(worker_images[0]), "--conf", "0.9", "--json")
    assert result.returncode == 0, result.stderr
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert all(box["confidence"] >= 0.9 for box in line["detections"])
    bad = siteguard("predict", "--source", str(worker_images[0]), "--conf", "2")
    assert bad.returncode == 2 and "--conf must be between 0 and 1" in bad.stderr
