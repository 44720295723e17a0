"""Growing a model's classes (training/grow.py) on the bundled model's real .pt: the grown
network keeps every base tensor and the base classes' rows of the class convs, so before any
training it finds exactly what the base finds on a real image."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.grow import GrowError, class_convs, grow_checkpoint, model_names

pytestmark = pytest.mark.train
REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "models" / "siteguard-ppe-v1.2.pt"  # three classes; v1.3 already has vests
GROWN = ("head", "helmet", "person", "vest", "gloves")


@pytest.fixture(scope="module")
def grown(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("ultralytics")
    if not BASE.is_file():
        pytest.skip(f"no bundled .pt at {BASE}")
    return grow_checkpoint(BASE, GROWN, tmp_path_factory.mktemp("grow") / "grown.pt")


def test_old_rows_and_every_other_tensor_are_the_base_ones(grown: Path) -> None:
    import torch
    from ultralytics import YOLO

    assert model_names(BASE) == ("head", "helmet", "person")
    assert model_names(grown) == GROWN
    base, new = YOLO(str(BASE)).model, YOLO(str(grown)).model
    assert new.yaml["nc"] == len(GROWN) and new.names == dict(enumerate(GROWN))
    convs = list(zip(class_convs(new), class_convs(base), strict=True))
    assert len(convs) == 3  # one per scale
    for wide, narrow in convs:
        assert wide.out_channels == 5 and narrow.out_channels == 3
        assert torch.equal(wide.weight[:3], narrow.weight)
        assert torch.equal(wide.bias[:3], narrow.bias)
        assert (wide.bias[3:] < -4).all()  # the new classes start from a low prior
        assert not wide.weight[3:].any()  # the same on every pixel
    widened = {f"{n}.{p}" for n, m in new.named_modules() if m in {w for w, _ in convs}
               for p in ("weight", "bias")}  # fmt: skip
    old_state = base.state_dict()
    kept = [k for k in new.state_dict() if k not in widened]
    assert len(kept) == len(old_state) - len(widened)
    assert all(torch.equal(new.state_dict()[k], old_state[k]) for k in kept)


def test_the_grown_model_finds_what_the_base_finds(grown: Path, hardhat_dir: Path) -> None:
    import numpy as np
    from ultralytics import YOLO

    images = sorted((hardhat_dir / "test" / "images").glob("*.jpg"))[:3]
    found = 0
    for image in images:
        before = YOLO(str(BASE)).predict(str(image), imgsz=320, conf=0.25, verbose=False)[0]
        after = YOLO(str(grown)).predict(str(image), imgsz=320, conf=0.25, verbose=False)[0]
        assert after.boxes.cls.tolist() == before.boxes.cls.tolist()
        np.testing.assert_allclose(after.boxes.xyxy.numpy(), before.boxes.xyxy.numpy(), atol=0.5)
        np.testing.assert_allclose(after.boxes.conf.numpy(), before.boxes.conf.numpy(), atol=2e-3)
        found += len(before.boxes)
    assert found > 0, "the base model found nothing on three hardhat test images"


def test_names_must_extend_the_base_in_order(tmp_path: Path) -> None:
    pytest.importorskip("ultralytics")
    if not BASE.is_file():
        pytest.skip(f"no bundled .pt at {BASE}")
    with pytest.raises(GrowError, match="must extend the model's"):
        grow_checkpoint(BASE, ("helmet", "head", "person", "vest"), tmp_path / "x.pt")
    with pytest.raises(GrowError, match="repeat"):
        grow_checkpoint(BASE, ("head", "helmet", "person", "vest", "vest"), tmp_path / "x.pt")
    assert grow_checkpoint(BASE, ("head", "helmet", "person"), tmp_path / "x.pt") == BASE
    assert not (tmp_path / "x.pt").exists()


def _sample_zip(path: Path, labels: dict[str, str], names: dict[int, str]) -> Path:
    """A zip laid out as GET /api/v1/samples/export?format=yolo writes it: {event id: label}."""
    import json
    import zipfile

    import cv2
    import numpy as np
    import yaml

    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 120, np.uint8))
    manifest = []
    with zipfile.ZipFile(path, "w") as zf:
        for n, (event_id, rows) in enumerate(labels.items(), start=1):
            zf.writestr(f"images/{n:08d}.jpg", jpeg.tobytes())
            zf.writestr(f"labels/{n:08d}.txt", rows)
            manifest.append({"image": f"images/{n:08d}.jpg", "event_id": event_id})
        data = {"path": ".", "train": "images", "val": "images", "names": names}
        zf.writestr("data.yaml", yaml.safe_dump(data))
        zf.writestr("manifest.json", json.dumps(manifest))
    return path


def test_retrain_grows_by_the_labelled_classes_and_needs_them_trained(tmp_path: Path) -> None:
    import uuid

    import yaml

    from training import retrain as rt

    pytest.importorskip("ultralytics")
    if not BASE.is_file():
        pytest.skip(f"no bundled .pt at {BASE}")
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(40)]
    held = next(i for i in ids if rt.is_held_back(i, 0.3))
    kept = next(i for i in ids if not rt.is_held_back(i, 0.3))
    names = {0: "head", 1: "helmet", 2: "person", 3: "vest", 4: "harness"}  # harness: no box
    options = rt.RetrainOptions(url="http://x", token="t", base_model="b", holdout=0.3)

    # vest labelled on a trained sample: the model grows by vest alone, vest is id 3.
    archive = _sample_zip(tmp_path / "a.zip", {kept: "3 0.5 0.5 0.2 0.3\n", held: ""}, names)
    classes, added = rt.model_classes(BASE, archive, None)
    assert (classes, added) == (("head", "helmet", "person", "vest"), ("vest",))
    split = rt.split_samples(archive, tmp_path / "a", 0.3, classes)
    rt.check_trainable(added, split, options)
    data = yaml.safe_load((split.train / "data.yaml").read_text())
    assert data["names"] == dict(enumerate(classes))
    assert next((split.train / "train" / "labels").iterdir()).read_text().startswith("3 ")

    # vest labelled only on a held-back sample: it would ship untrained, so the retrain stops.
    rows = {kept: "0 0.5 0.5 0.2 0.3\n", held: "3 0.5 0.5 0.2 0.3\n"}
    archive = _sample_zip(tmp_path / "b.zip", rows, names)
    classes, added = rt.model_classes(BASE, archive, None)
    split = rt.split_samples(archive, tmp_path / "b", 0.3, classes)
    with pytest.raises(rt.RetrainError, match="vest are labelled only in held-back samples"):
        rt.check_trainable(added, split, options)

    archive = _sample_zip(tmp_path / "c.zip", {kept: "0 0.5 0.5 0.2 0.3\n"}, {0: "Safety Vest"})
    with pytest.raises(rt.RetrainError, match="cannot be added.*lowercase letters"):
        rt.model_classes(BASE, archive, None)
