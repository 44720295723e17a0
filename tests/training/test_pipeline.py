"""End to end for real: train 1 epoch on 16 hardhat images, export (fp32 + int8), evaluate
through the production ONNX path, write a model card. Minutes on 2 cores, not hours."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from siteguard.cli import main
from training.manifest import dataset_version
from training.onnx_meta import read_metadata, write_metadata

pytestmark = [pytest.mark.train, pytest.mark.shared]
pytest.importorskip("ultralytics", reason="needs the [train] extra (ultralytics)")

FIGURES = ("map50", "map50_95", "worker_accuracy", "violation_precision", "violation_recall")


@pytest.fixture(scope="module")
def run_dir(mini_data: Path, coco_weights: Path, tmp_path_factory: pytest.TempPathFactory):
    from training.train import TrainOptions, train

    project = tmp_path_factory.mktemp("runs")
    options = TrainOptions(
        data=mini_data,
        base_weights=coco_weights,
        epochs=1,
        imgsz=160,
        batch=8,
        workers=0,
        cache=False,
        project=project,
        name="ci",
    )
    return train(options)


@pytest.fixture(scope="module")
def exported(run_dir: Path, mini_data: Path, tmp_path_factory: pytest.TempPathFactory):
    from training.export import ExportOptions, export

    out = tmp_path_factory.mktemp("models") / "ci-ppe.onnx"
    return export(
        ExportOptions(
            weights=run_dir / "weights" / "best.pt",
            out=out,
            conf=0.3,
            int8=True,
            calib=mini_data,
            calib_images=8,
            eval_data=mini_data,
        )
    )


def _in_unit_range(figures: dict) -> None:
    for key in FIGURES:
        assert 0.0 <= figures[key] <= 1.0, (key, figures[key])
    for name, row in figures["per_class"].items():
        for key in ("ap50", "precision", "recall"):
            assert 0.0 <= row[key] <= 1.0, (name, key, row[key])


def test_train_records_args_and_dataset_version(run_dir: Path, mini_data: Path) -> None:
    record = json.loads((run_dir / "siteguard_train.json").read_text())
    assert record["dataset_version"] == dataset_version(mini_data)
    assert record["imgsz"] == "160" and (run_dir / "weights" / "best.pt").is_file()
    assert (run_dir / "results.csv").is_file()
    # Ultralytics caches labels beside the folder it reads: that must be the run's view.
    assert not list(mini_data.parent.rglob("*.cache"))
    assert list((run_dir.parent / "ci-data").rglob("labels.cache"))


def test_export_writes_a_detector_ready_onnx(exported, run_dir: Path, mini_data: Path) -> None:
    from detector.inference import OnnxDetector

    meta = read_metadata(exported.onnx)
    assert ast.literal_eval(meta["names"]) == {0: "head", 1: "helmet", 2: "person"}
    assert ast.literal_eval(meta["imgsz"]) == [160, 160]
    assert meta["dataset_version"] == dataset_version(mini_data)
    assert meta["siteguard_version"].startswith("ci-ppe-")
    assert json.loads(meta["metrics"])["images"] == 8
    assert "siteguard export --weights" in json.loads(meta["siteguard_export"])["command"]
    assert meta["siteguard_conf"] == "0.3"  # the operating threshold travels with the model

    det = OnnxDetector(exported.onnx, conf=0.01)
    assert (
        det.dynamic_batch and det.imgsz == (160, 160) and det.version == meta["siteguard_version"]
    )
    assert det.operating_conf == 0.3
    frames = [cv2.imread(str(p)) for p in sorted((mini_data.parent / "test/images").iterdir())[:3]]
    blob, _ = det.preprocess(frames)
    raw = det.run(blob)
    height, width = blob.shape[2:]
    assert blob.shape[:2] == (3, 3) and max(height, width) == 160
    anchors = sum((height // s) * (width // s) for s in (8, 16, 32))
    assert raw.shape == (3, 4 + 3, anchors)
    results = det.predict(frames)
    assert len(results) == 3
    for frame, detections in zip(frames, results, strict=True):
        h, w = frame.shape[:2]
        assert (detections.xyxy[:, [0, 2]] <= w).all() and (detections.xyxy[:, [1, 3]] <= h).all()


def test_evaluation_figures_are_complete_and_in_range(exported) -> None:
    figures = exported.evaluation
    assert figures["images"] == 8 and figures["split"] == "test"
    assert figures["conf"] == 0.3  # evaluated at the threshold stored in the model
    assert figures["workers"] > 0 and figures["false_alarms"] >= 0
    assert set(figures["per_class"]) <= {"head", "helmet", "person"} and figures["per_class"]
    _in_unit_range(figures)
    saved = json.loads(exported.onnx.with_suffix(".eval.json").read_text())
    assert saved["map50"] == figures["map50"]


def test_int8_variant_is_evaluated_with_its_delta(exported) -> None:
    assert exported.int8.stat().st_size < exported.onnx.stat().st_size / 2
    meta = read_metadata(exported.int8)
    assert meta["siteguard_version"].endswith("-int8") and "int8" in meta["quantization"]
    assert meta["siteguard_conf"] == "0.3" and exported.int8_evaluation["conf"] == 0.3
    _in_unit_range(exported.int8_evaluation)
    assert set(exported.delta) == set(FIGURES)
    for key, value in exported.delta.items():
        expected = 100 * (exported.int8_evaluation[key] - exported.evaluation[key])
        assert value == pytest.approx(expected, abs=0.01)


def test_evaluate_cli_json_and_pt_through_ultralytics(
    exported, run_dir: Path, mini_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "pt.json"
    model = str(run_dir / "weights" / "best.pt")
    args = ["--ultralytics-val", "--limit", "6", "--conf", "0.01", "--conf-sweep", "0.01,0.5",
            "--json", "--out", str(out)]  # fmt: skip
    assert main(["evaluate", "--model", model, "--data", str(mini_data), *args]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures == json.loads(out.read_text())
    _in_unit_range(figures)
    assert 0.0 <= figures["ultralytics_val"]["map50"] <= 1.0
    assert figures["images"] == 6 and figures["ultralytics_val"]["images"] == 6
    low, high = figures["conf_sweep"]
    assert (low["conf"], high["conf"]) == (0.01, 0.5)
    assert low["false_alarms"] >= high["false_alarms"]  # a lower threshold never alarms less
    # The sweep leaves the operating figures alone: same threshold, same numbers.
    assert figures["conf"] == 0.01 and figures["false_alarms"] == low["false_alarms"]
    assert figures["worker_accuracy"] == low["worker_accuracy"]
    assert all(0.0 <= row[k] <= 1.0 for row in (low, high) for k in FIGURES if k in row)
    # Ultralytics caches labels beside what it reads: it must read a temporary copy, never
    # the dataset (which may be read-only shared data).
    assert not (mini_data.parent / "test" / "labels.cache").exists()


def test_model_card_is_built_from_the_records(exported, run_dir: Path, tmp_path: Path) -> None:
    from training.model_card import CardOptions, write_card

    card = write_card(
        CardOptions(
            model=exported.onnx,
            int8=exported.int8,
            run=run_dir,
            out=tmp_path / "CARD.md",
            timing_frames=3,
        )
    ).read_text()
    meta = read_metadata(exported.onnx)
    assert meta["siteguard_version"] in card and meta["dataset_version"] in card
    assert f"| mAP50 | {exported.evaluation['map50']:.3f} |" in card
    assert "siteguard train --data" in card and "siteguard export --weights" in card
    assert "int8:" in card and "epochs completed: 1" in card


def test_bad_inputs_are_clear_errors(
    mini_data: Path, exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["train", "--data", str(mini_data), "--base-weights", "yolo11x-missing.pt",
                 "--project", str(tmp_path / "runs")])  # fmt: skip
    assert code == 2 and "base weights not found" in capsys.readouterr().err
    code = main(["export", "--weights", str(tmp_path / "none.pt")])
    assert code == 2 and "weights not found" in capsys.readouterr().err
    code = main(["evaluate", "--model", str(exported.onnx), "--data", str(mini_data),
                 "--split", "nosuch"])  # fmt: skip
    assert code == 2 and "no 'nosuch' split" in capsys.readouterr().err
    code = main(["evaluate", "--model", str(exported.onnx), "--data", str(mini_data),
                 "--class-map", "helmet=hat"])  # fmt: skip
    assert code == 2 and "unknown target class 'hat'" in capsys.readouterr().err
    junk_pt = tmp_path / "junk.pt"
    junk_pt.write_bytes(b"this is not a checkpoint")
    project = ["--project", str(tmp_path / "runs")]
    code = main(["train", "--data", str(mini_data), "--base-weights", str(junk_pt), *project])
    assert code == 2 and "is not an Ultralytics YOLO checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # nothing written for a run that cannot start
    code = main(["export", "--weights", str(junk_pt), "--out", str(tmp_path / "x.onnx")])
    assert code == 2 and "is not an Ultralytics YOLO checkpoint" in capsys.readouterr().err
    code = main(["evaluate", "--model", str(junk_pt), "--data", str(mini_data)])
    assert code == 2 and "is not an Ultralytics YOLO checkpoint" in capsys.readouterr().err
    not_a_model = tmp_path / "junk.onnx"
    not_a_model.write_bytes(np.arange(64, dtype=np.uint8).tobytes())
    code = main(["evaluate", "--model", str(not_a_model), "--data", str(mini_data)])
    assert code == 2 and "cannot load ONNX model" in capsys.readouterr().err


def test_model_card_refuses_figures_of_another_model(
    exported, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = json.loads(exported.onnx.with_suffix(".eval.json").read_text())
    stale["model_version"] = "an-older-model"
    path = tmp_path / "stale.eval.json"
    path.write_text(json.dumps(stale))
    args = ["--eval", str(path), "--out", str(tmp_path / "CARD.md"), "--timing-frames", "0"]
    assert main(["model-card", "--model", str(exported.onnx), *args]) == 2
    assert "evaluates model version 'an-older-model'" in capsys.readouterr().err
    assert not (tmp_path / "CARD.md").exists()


def test_per_class_thresholds_and_their_grid_search(
    exported,
    run_dir: Path,
    mini_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    data = ["--model", str(exported.onnx), "--data", str(mini_data), "--json"]
    grid = ["--class-conf-grid", "0.01,0.2,0.5"]
    assert main(["evaluate", *data, "--class-conf", "head=0.5,helmet=0.01", *grid]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["class_conf"] == {"head": 0.5, "helmet": 0.01}
    rows = figures["class_conf_grid"]
    assert len(rows) == 9 and {(r["head"], r["helmet"]) for r in rows} == {
        (h, c) for h in (0.01, 0.2, 0.5) for c in (0.01, 0.2, 0.5)
    }
    # The grid's cell at the operating thresholds is the operating figures, computed apart.
    [same] = [r for r in rows if (r["head"], r["helmet"]) == (0.5, 0.01)]
    for key in ("worker_accuracy", "false_alarms", "violation_precision", "violation_recall"):
        assert same[key] == figures[key], key
    best = figures["class_conf_best"]
    assert best["worker_accuracy"] == max(r["worker_accuracy"] for r in rows)
    # A higher head threshold never raises more alarms.
    by_cell = {(r["head"], r["helmet"]): r for r in rows}
    assert by_cell[(0.5, 0.2)]["false_alarms"] <= by_cell[(0.01, 0.2)]["false_alarms"]

    # Thresholds stored in the model are evaluate's default.
    model = Path(shutil.copy(exported.onnx, tmp_path / "m.onnx"))
    write_metadata(model, {"siteguard_class_conf": json.dumps({"head": 0.5, "helmet": 0.01})})
    assert main(["evaluate", "--model", str(model), "--data", str(mini_data), "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert stored["class_conf"] == {"head": 0.5, "helmet": 0.01}
    assert stored["worker_accuracy"] == figures["worker_accuracy"]

    code = main(["evaluate", *data, "--class-conf", "hat=0.4"])
    assert code == 2 and "class thresholds for ['hat']" in capsys.readouterr().err
    code = main(["evaluate", *data, "--class-conf", "head=2"])
    assert code == 2 and "between 0 and 1" in capsys.readouterr().err
    code = main(["export", "--weights", str(run_dir / "weights" / "best.pt"),
                 "--out", str(tmp_path / "x.onnx"), "--class-conf", "head"])  # fmt: skip
    assert code == 2 and "expected NAME=CONF" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()  # checked before the slow export
