"""The fixed field hold-back: a pure function of the event id, applied to the service's zip."""

from __future__ import annotations

import json
import uuid
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from training.retrain import RetrainError, build_dataset, is_held_back, split_samples


def test_held_back_depends_on_the_event_id_only() -> None:
    ids = [str(uuid.UUID(int=i)) for i in range(4000)]
    first = [is_held_back(i, 0.2) for i in ids]
    assert first == [is_held_back(i, 0.2) for i in reversed(ids)][::-1]  # order-free
    assert 0.17 < sum(first) / len(ids) < 0.23
    assert not any(is_held_back(i, 0.0) for i in ids)
    # A larger share only adds samples: nothing held back before is trained on later.
    assert all(is_held_back(i, 0.3) for i, held in zip(ids, first, strict=True) if held)


def _service_zip(path: Path, event_ids: list[str]) -> Path:
    """A zip laid out as GET /api/v1/samples/export?format=yolo writes it."""
    ok, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), 120, np.uint8))
    assert ok
    manifest = []
    with zipfile.ZipFile(path, "w") as zf:
        for n, event_id in enumerate(event_ids, start=1):
            zf.writestr(f"images/{n:08d}.jpg", jpeg.tobytes())
            zf.writestr(f"labels/{n:08d}.txt", "0 0.5 0.5 0.2 0.3\n")
            manifest.append({"image": f"images/{n:08d}.jpg", "event_id": event_id})
        names = {0: "head", 1: "helmet", 2: "person"}
        data = {"path": ".", "train": "images", "val": "images", "names": names}
        zf.writestr("data.yaml", yaml.safe_dump(data))
        zf.writestr("manifest.json", json.dumps(manifest))
    return path


def test_split_puts_each_sample_on_its_fixed_side(tmp_path: Path) -> None:
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(30)]
    held = {f"{n:08d}.jpg" for n, i in enumerate(ids, start=1) if is_held_back(i, 0.3)}
    assert 0 < len(held) < len(ids)
    for run in ("a", "b"):
        out = tmp_path / run
        split = split_samples(_service_zip(tmp_path / f"{run}.zip", ids), out, 0.3)
        assert (split.trained, split.held_back) == (len(ids) - len(held), len(held))
        assert {p.name for p in (out / "samples-field" / "test" / "images").iterdir()} == held
        trained = {p.name for p in (out / "samples-train" / "train" / "images").iterdir()}
        assert trained.isdisjoint(held) and len(trained) == split.trained


def test_no_samples_is_a_clear_error(tmp_path: Path) -> None:
    split = split_samples(_service_zip(tmp_path / "empty.zip", []), tmp_path / "out", 0.2)
    assert (split.trained, split.held_back, split.train, split.field) == (0, 0, None, None)
    with pytest.raises(RetrainError, match="no samples to train on"):
        build_dataset(split, None, tmp_path / "ds")


def test_samples_alone_still_make_a_trainable_dataset(tmp_path: Path) -> None:
    ids = [str(uuid.UUID(int=i * 7919)) for i in range(30)]
    split = split_samples(_service_zip(tmp_path / "s.zip", ids), tmp_path / "out", 0.3)
    data = yaml.safe_load(build_dataset(split, None, tmp_path / "ds").read_text())
    assert data["val"] == data["train"] == "train/images"  # Ultralytics needs a val split
