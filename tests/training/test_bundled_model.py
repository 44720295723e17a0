"""`siteguard evaluate` on the shipped model over real test images, through the production path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from siteguard.cli import main

pytestmark = pytest.mark.shared


def test_bundled_model_figures_on_real_test_images(
    bundled_model: Path, hardhat_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "eval.json"
    data = hardhat_dir / "data.yaml"
    args = ["--split", "test", "--limit", "40", "--json", "--out", str(out)]
    assert main(["evaluate", "--model", str(bundled_model), "--data", str(data), *args]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures == json.loads(out.read_text())
    assert figures["images"] == 40 and figures["split"] == "test"
    assert {"head", "helmet"} <= set(figures["per_class"])
    for key in ("map50", "map50_95", "worker_accuracy", "violation_precision", "violation_recall"):
        assert 0.0 <= figures[key] <= 1.0
    # A trained model on in-distribution images finds most workers; a broken letterbox, decode
    # or class mapping in the production path drives these towards 0.
    assert figures["map50"] > 0.3 and figures["worker_accuracy"] > 0.3
    assert figures["workers"] == sum(
        figures["per_class"][c]["instances"] for c in ("head", "helmet")
    )
