"""OnnxDetector on real images with real Ultralytics-exported models."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from detector.inference import (
    CLASS_CONF_KEY,
    Letterbox,
    OnnxDetector,
    class_thresholds,
    format_class_conf,
    letterbox,
    parse_class_conf,
)


def test_letterbox_keeps_aspect_and_pads_like_ultralytics() -> None:
    frame = np.zeros((720, 1280, 3), dtype=np.uint8)
    boxed, box = letterbox(frame, (640, 640))
    assert boxed.shape == (640, 640, 3)
    assert box.scale == 0.5 and box.pad_x == 0 and box.pad_y == 140
    assert boxed[0, 0].tolist() == [114, 114, 114]


def test_names_and_size_come_from_the_metadata(coco_model: Path) -> None:
    det = OnnxDetector(coco_model)
    assert det.names[0] == "person" and len(det.names) == 80
    assert det.imgsz == (640, 640)
    assert det.dynamic_batch
    assert det.version.startswith("yolo11n-coco-")


def test_persons_found_on_a_real_site_photo(coco_model: Path, worker_images: list[Path]) -> None:
    image = cv2.imread(str(worker_images[0]))
    [det] = OnnxDetector(coco_model, conf=0.3).predict([image])
    names = set(det.data["class_name"])
    assert "person" in names
    h, w = image.shape[:2]
    assert (det.xyxy[:, [0, 2]] <= w).all() and (det.xyxy[:, [1, 3]] <= h).all()
    assert det.xyxy.dtype == np.float32 and (det.confidence >= 0.3).all()


def test_batch_equals_one_by_one(coco_model: Path, worker_images: list[Path]) -> None:
    det = OnnxDetector(coco_model)
    frames = [cv2.resize(cv2.imread(str(p)), (500, 332)) for p in worker_images[:3]]
    for frame, result in zip(frames, det.predict(frames), strict=True):
        [single] = det.predict([frame])
        assert len(single) == len(result)
        np.testing.assert_allclose(single.xyxy, result.xyxy, atol=0.5)


def test_mixed_sizes_in_one_batch_agree_with_single_runs(
    coco_model: Path, worker_images: list[Path]
) -> None:
    """Frames of different shapes share one padded input; confident boxes stay the same."""
    det = OnnxDetector(coco_model)
    image = cv2.imread(str(worker_images[0]))
    frames = [cv2.resize(image, (1280, 720)), cv2.resize(image, (360, 640))]
    for frame, result in zip(frames, det.predict(frames), strict=True):
        [single] = det.predict([frame])
        confident = single.xyxy[single.confidence > 0.5]
        assert len(confident) > 0
        for box in confident:
            assert np.abs(result.xyxy - box).max(axis=1).min() < 0.02 * max(frame.shape)


def test_bundled_model_finds_worker_heads_where_the_labels_say(
    bundled_model: Path, worker_images: list[Path], hardhat_dir: Path
) -> None:
    """A sanity floor for the production path on the PPE model: labelled heads (bare or with a
    helmet) get a head/helmet box. Model quality itself is `siteguard evaluate`'s business."""
    det = OnnxDetector(bundled_model, conf=0.25)
    assert set(det.names.values()) >= {"head", "helmet", "person"}
    hits = total = 0
    for path in worker_images[:20]:
        image = cv2.imread(str(path))
        h, w = image.shape[:2]
        [result] = det.predict([image])
        heads = result.xyxy[np.isin(result.data["class_name"], ["head", "helmet"])]
        label = hardhat_dir / "test" / "labels" / f"{path.stem}.txt"
        for row in label.read_text().split("\n"):
            parts = row.split()
            if not parts or parts[0] not in ("0", "1"):
                continue
            cx, cy = float(parts[1]) * w, float(parts[2]) * h
            total += 1
            inside = (heads[:, 0] <= cx) & (cx <= heads[:, 2])
            inside &= (heads[:, 1] <= cy) & (cy <= heads[:, 3])
            hits += bool(inside.any())
    assert total > 0 and hits / total >= 0.3, f"{hits}/{total} labelled heads found"


def test_head_and_helmet_boxes_on_one_head_compete_in_nms(bundled_model: Path) -> None:
    """One head is bare or wears a hard hat: the unsure second reading is suppressed (and only
    between those two classes: a person box over the head stays)."""
    # Raw output (4 + 3 classes, 3 anchors): the same head read as helmet (0.8) and as a bare
    # head (0.4), and a person box around it.
    boxes = [[100, 100, 40, 40], [101, 99, 40, 42], [100, 160, 80, 200]]  # cx, cy, w, h
    scores = [[0.4, 0.0, 0.0], [0.0, 0.8, 0.0], [0.0, 0.0, 0.7]]  # per anchor: head, helmet, person
    output = np.concatenate([np.array(boxes, np.float32).T, np.array(scores, np.float32).T])
    frame = Letterbox(scale=1.0, pad_x=0.0, pad_y=0.0)
    exclusive = OnnxDetector(bundled_model, conf=0.25)
    per_class = OnnxDetector(bundled_model, conf=0.25, exclusive=())
    assert sorted(exclusive.decode(output, frame, 640, 640).data["class_name"]) == [
        "helmet",
        "person",
    ]
    assert sorted(per_class.decode(output, frame, 640, 640).data["class_name"]) == [
        "head",
        "helmet",
        "person",
    ]


def test_corrupt_model_is_a_clear_value_error(tmp_path: Path, coco_model: Path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(coco_model.read_bytes()[:5000])
    with pytest.raises(ValueError, match="cannot load ONNX model"):
        OnnxDetector(broken)
    with pytest.raises(ValueError, match="not found"):
        OnnxDetector(tmp_path / "missing.onnx")


def _identity_model(path: Path, channels: int, names: str | None) -> Path:
    """A real ONNX file that is not a detector: output = input."""
    x = helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, channels, 64, 64])
    y = helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, 64, 64])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["images"], ["output0"])], "g", [x], [y]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    if names is not None:
        model.metadata_props.add(key="names", value=names)
    onnx.save(model, path)
    return path


def test_wrong_shaped_model_is_rejected(tmp_path: Path) -> None:
    model = _identity_model(tmp_path / "identity.onnx", 3, "{0: 'head', 1: 'helmet'}")
    with pytest.raises(ValueError, match="expected output"):
        OnnxDetector(model)
    model = _identity_model(tmp_path / "gray.onnx", 1, "{0: 'head'}")
    with pytest.raises(ValueError, match="expected one input"):
        OnnxDetector(model)
    model = _identity_model(tmp_path / "nonames.onnx", 3, None)
    with pytest.raises(ValueError, match="no 'names'"):
        OnnxDetector(model)


@pytest.mark.train
@pytest.mark.parametrize("which", ["coco_model", "bundled_model"])
def test_same_boxes_as_ultralytics(
    which: str, request: pytest.FixtureRequest, worker_images: list[Path], tmp_path: Path
) -> None:
    """Our letterbox/decode/NMS agrees with Ultralytics' own predictor on the same ONNX file."""
    ultralytics = pytest.importorskip("ultralytics")
    model = shutil.copy(request.getfixturevalue(which), tmp_path / "m.onnx")
    theirs = ultralytics.YOLO(model, task="detect")
    # Ultralytics' NMS is per class; ours lets head and helmet compete (see the test above).
    ours = OnnxDetector(model, conf=0.25, iou=0.5, exclusive=())
    for path in worker_images[:3]:
        image = cv2.imread(str(path))
        [mine] = ours.predict([image])
        ref = theirs.predict(image, conf=0.25, iou=0.5, verbose=False)[0].boxes
        ref_xyxy = ref.xyxy.numpy()
        assert abs(len(mine) - len(ref_xyxy)) <= max(1, len(ref_xyxy) // 10)
        for box in ref_xyxy[ref.conf.numpy() > 0.5]:
            assert np.abs(mine.xyxy - box).max(axis=1).min() < 3.0


def test_int8_model_is_used_when_configured(
    coco_model: Path, worker_images: list[Path], tmp_path: Path
) -> None:
    """`model.use_int8` loads the quantised file (here made by onnxruntime's quantiser)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from detector.config import ModelConfig
    from detector.reload import ModelManager

    int8 = tmp_path / "int8.onnx"
    quantize_dynamic(str(coco_model), str(int8), weight_type=QuantType.QUInt8)
    manager = ModelManager(ModelConfig(path=coco_model, int8_path=int8, use_int8=True))
    assert manager.current.path == int8 and manager.current.names[0] == "person"
    [det] = manager.current.predict([cv2.imread(str(worker_images[0]))])
    assert "person" in set(det.data["class_name"])
    with pytest.raises(ValueError, match="int8_path"):
        ModelConfig(path=coco_model, use_int8=True, int8_path=None)


def test_class_thresholds_parse_from_text_json_and_reject_nonsense() -> None:
    assert parse_class_conf("head=0.45, helmet=0.2") == {"head": 0.45, "helmet": 0.2}
    assert parse_class_conf('{"head": 0.45}') == {"head": 0.45}
    assert parse_class_conf(None) == {}
    assert format_class_conf({"head": 0.45, "helmet": 0.2}) == "head=0.45,helmet=0.2"
    assert parse_class_conf(format_class_conf({"head": 0.45})) == {"head": 0.45}
    for bad, message in [
        ("head", "expected NAME=CONF"),
        ("head=high", "not a number"),
        ("head=1.5", "between 0 and 1"),
        ("{head: 0.4}", "not JSON"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_class_conf(bad)
    thresholds = class_thresholds({0: "head", 1: "helmet", 2: "person"}, {"head": 0.45}, 0.3)
    assert thresholds.tolist() == pytest.approx([0.45, 0.3, 0.3])


def test_per_class_thresholds_are_read_from_the_model(tmp_path: Path, coco_model: Path) -> None:
    from training.onnx_meta import write_metadata

    model = Path(shutil.copy(coco_model, tmp_path / "m.onnx"))
    write_metadata(model, {CLASS_CONF_KEY: '{"person": 0.4, "car": 0.6}'})
    assert OnnxDetector(model).class_conf == {"person": 0.4, "car": 0.6}
    write_metadata(model, {CLASS_CONF_KEY: "person=2"})  # a bad value is ignored, not fatal
    assert OnnxDetector(model).class_conf == {}
