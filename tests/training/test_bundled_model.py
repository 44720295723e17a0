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


# The issues' targets for the shipped model on the whole test split (models/MODEL_CARD.md).
TARGETS = {"worker_accuracy": 0.90}
AP50_TARGETS = {"head": 0.90, "helmet": 0.93}
# The second source's held-back groups (issue 13) are reproduced, not held to its targets
# (worker accuracy and violation recall >= 0.60): the shipped model does not reach them yet
# (models/MODEL_CARD.md, docs/benchmarks.md).
CSS_IMPORT = [
    "--class-map",
    "Hardhat=helmet,NO-Hardhat=head,Person=person,Mask=-,NO-Mask=-,NO-Safety Vest=-,"
    "Safety Vest=-,Safety Cone=-,machinery=-,vehicle=-",
    "--grow-boxes",
    "helmet=1.12x1.68,head=1.17x2.07",
    "--split-by-group",
    "train=0.6,val=0.2,test=0.2",
]


@pytest.mark.parametrize("variant", ["siteguard-ppe", "siteguard-ppe-int8"])
def test_shipped_figures_reproduce_on_the_whole_test_split(
    variant: str, bundled_model: Path, hardhat_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The model card's figures are what `siteguard evaluate` gives today, and meet the targets:
    a model, threshold or evaluation change that moves them fails here, not in a user's hands."""
    model = bundled_model.with_name(f"{variant}.onnx")
    shipped = json.loads(model.with_suffix(".eval.json").read_text())
    data = hardhat_dir / "data.yaml"
    assert main(["evaluate", "--model", str(model), "--data", str(data), "--json"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["images"] == shipped["images"] == 680
    for key in ("worker_accuracy", "violation_precision", "violation_recall", "false_alarms",
                "workers", "map50", "conf", "class_conf"):  # fmt: skip
        assert figures[key] == pytest.approx(shipped[key], abs=2e-4), key
    for name, row in shipped["per_class"].items():
        assert figures["per_class"][name]["ap50"] == pytest.approx(row["ap50"], abs=2e-4), name
    for key, target in TARGETS.items():
        assert figures[key] >= target, (key, figures[key])
    for name, target in AP50_TARGETS.items():
        assert figures["per_class"][name]["ap50"] >= target, (name, figures["per_class"][name])


@pytest.mark.parametrize("variant", ["siteguard-ppe", "siteguard-ppe-int8"])
def test_shipped_cross_source_figures_reproduce_on_the_held_back_groups(
    variant: str,
    bundled_model: Path,
    css_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The card's second-source figures: the dataset version is rebuilt from ../shared with the
    documented command (so the split and the box conversion are what the card says) and the
    model is scored on its held-back groups, which no training or tuning step saw."""
    model = bundled_model.with_name(f"{variant}.onnx")
    shipped = json.loads(model.with_suffix(".eval.json").read_text())["cross_source"]
    site = tmp_path / "css"
    groups = ["--groups", str(css_dir / "groups.csv")]
    assert main(["dataset", "import", str(css_dir), "--out", str(site), *CSS_IMPORT, *groups]) == 0
    capsys.readouterr()
    data = site / "data.yaml"
    args = ["--split", "test", "--matching", "coverage", "--json"]
    assert main(["evaluate", "--model", str(model), "--data", str(data), *args]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["matching"] == shipped["matching"] == "coverage"
    assert figures["images"] == shipped["images"] and figures["workers"] == shipped["workers"]
    for key in ("worker_accuracy", "strict_worker_accuracy", "violation_precision",
                "violation_recall", "false_alarms", "map50"):  # fmt: skip
        assert figures[key] == pytest.approx(shipped[key], abs=2e-4), key
