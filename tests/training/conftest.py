"""Fixtures for the training tests: a small real dataset cut from ../shared/hardhat-workers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

SPLIT_SIZES = {"train": 16, "valid": 8, "test": 8}


def copy_subset(source: Path, out: Path, sizes: dict[str, int]) -> Path:
    """Copy the first N images (and their labels) of each split; write data.yaml."""
    for split, count in sizes.items():
        images = sorted((source / split / "images").iterdir())[:count]
        (out / split / "images").mkdir(parents=True)
        (out / split / "labels").mkdir(parents=True)
        for image in images:
            shutil.copy2(image, out / split / "images" / image.name)
            label = source / split / "labels" / f"{image.stem}.txt"
            if label.is_file():
                shutil.copy2(label, out / split / "labels" / label.name)
    data = {"names": {0: "head", 1: "helmet", 2: "person"}}
    data.update({"val" if s == "valid" else s: f"{s}/images" for s in sizes})
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return out / "data.yaml"


@pytest.fixture(scope="session")
def mini_data(hardhat_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """data.yaml of 16 train / 8 val / 8 test real images copied from hardhat-workers."""
    return copy_subset(hardhat_dir, tmp_path_factory.mktemp("mini"), SPLIT_SIZES)


@pytest.fixture()
def mini_copy(hardhat_dir: Path, tmp_path: Path) -> Path:
    """A private, writable 4-image copy (tests that corrupt labels use this one)."""
    return copy_subset(hardhat_dir, tmp_path / "src", {"train": 4})
