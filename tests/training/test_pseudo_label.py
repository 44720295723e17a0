"""`siteguard dataset pseudo-label` on real hardhat images with the COCO-pretrained YOLO11n."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import supervision as sv
import yaml

from siteguard.cli import main
from training.labels import read_labels
from training.manifest import MANIFEST, build_manifest, dataset_version
from training.pseudo_label import PseudoLabelOptions, pseudo_label

pytestmark = [pytest.mark.train, pytest.mark.shared]
pytest.importorskip("ultralytics", reason="needs the [train] extra (ultralytics)")

PERSON = 2
CONF = 0.4
SPLITS = {"train": "train", "valid": "val", "test": "test"}  # folder -> data.yaml key


def copy_images(hardhat_dir: Path, out: Path, sizes: dict[str, int]) -> Path:
    """The first N images of each split folder with their labels, and a data.yaml."""
    for folder, count in sizes.items():
        for kind in ("images", "labels"):
            (out / folder / kind).mkdir(parents=True)
        for image in sorted((hardhat_dir / folder / "images").iterdir())[:count]:
            shutil.copy2(image, out / folder / "images" / image.name)
            shutil.copy2(
                hardhat_dir / folder / "labels" / f"{image.stem}.txt", out / folder / "labels"
            )
    data = {"names": {0: "head", 1: "helmet", 2: "person"}}
    data.update({SPLITS[f]: f"{f}/images" for f in sizes})
    (out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return out


@pytest.fixture(scope="module")
def source(hardhat_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 train, 2 val and 2 test real site photos (none of them labels a person)."""
    sizes = {"train": 4, "valid": 2, "test": 2}
    return copy_images(hardhat_dir, tmp_path_factory.mktemp("src"), sizes)


@pytest.fixture(scope="module")
def labelled(source: Path, coco_weights: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pseudo-labelled version, built through the command line."""
    out = tmp_path_factory.mktemp("out") / "hhw-person"
    argv = ["dataset", "pseudo-label", str(source), "--out", str(out), "--conf", str(CONF),
            "--model", str(coco_weights)]  # fmt: skip
    assert main(argv) == 0
    return out


def _manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def _added_rows(source_label: Path, written_label: Path) -> np.ndarray:
    """The rows a pseudo-labelled file holds beyond its source file's lines."""
    return read_labels(written_label, 3)[len(source_label.read_text().splitlines()) :]


def test_train_gets_persons_and_keeps_its_labels_verbatim(source: Path, labelled: Path) -> None:
    added = 0
    for label in sorted((source / "train" / "labels").glob("*.txt")):
        written = labelled / "train" / "labels" / label.name
        assert written.read_text().startswith(label.read_text())
        new = _added_rows(label, written)
        assert (new[:, 0] == PERSON).all()
        added += len(new)
    assert added >= 4  # site photos full of workers: the COCO model finds them
    manifest = _manifest(labelled)
    record = manifest["pseudo_labels"]
    assert record["added"] == {"train": added} and record["conf"] == CONF
    assert record["model_class"] == "person" and record["target"] == "person"
    persons = build_manifest(source / "data.yaml")["splits"]["train"]["boxes"]["person"]
    assert manifest["splits"]["train"]["boxes"]["person"] == persons + added
    assert all(p.is_symlink() for p in (labelled / "train" / "images").iterdir())


def test_val_and_test_keep_their_human_labels(source: Path, labelled: Path) -> None:
    for folder in ("valid", "test"):
        labels = sorted((source / folder / "labels").glob("*.txt"))
        assert len(labels) == 2
        for label in labels:
            written = labelled / SPLITS[folder] / "labels" / label.name
            assert written.read_bytes() == label.read_bytes()
    assert "val" not in _manifest(labelled)["pseudo_labels"]["added"]


def test_manifest_records_recipe_and_parent(source: Path, labelled: Path) -> None:
    manifest = _manifest(labelled)
    assert manifest["parents"] == [dataset_version(source / "data.yaml")]
    (command,) = manifest["recipe"]
    assert command.startswith(f"siteguard dataset pseudo-label {source} --out {labelled}")
    assert f"--conf {CONF}" in command


def test_prediction_over_a_labelled_person_is_dropped(
    hardhat_dir: Path, labelled: Path, coco_weights: Path, tmp_path: Path
) -> None:
    """Label one predicted person by hand: a second run keeps the hand label, adds no copy."""
    src = copy_images(hardhat_dir, tmp_path / "src", {"train": 4})
    labels = src / "train" / "labels"
    first = labelled / "train" / "labels"
    name = max(
        (p.name for p in labels.iterdir()), key=lambda n: len(_added_rows(labels / n, first / n))
    )
    predicted = first.joinpath(name).read_text().splitlines()
    hand = labels.joinpath(name).read_text() + predicted[-1] + "\n"
    labels.joinpath(name).write_text(hand)

    manifest = pseudo_label(PseudoLabelOptions(src, tmp_path / "out", CONF, coco_weights))
    written = tmp_path / "out" / "train" / "labels" / name
    assert written.read_text().startswith(hand)
    assert len(written.read_text().splitlines()) == len(predicted)  # one dropped, one by hand
    hand_box, new = read_labels(labels / name, 3)[-1:], _added_rows(labels / name, written)
    assert (sv.box_iou_batch(_xyxy(hand_box), _xyxy(new)) < 0.5).all()
    record, before = manifest["pseudo_labels"], _manifest(labelled)["pseudo_labels"]
    assert record["dropped_duplicates"] == {"train": 1}
    assert record["added"]["train"] == before["added"]["train"] - 1


def _xyxy(rows: np.ndarray) -> np.ndarray:
    centre, size = rows[:, 1:3], rows[:, 3:5]
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def test_bad_model_class_or_split_is_a_clear_error(
    source: Path, coco_weights: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["dataset", "pseudo-label", str(source), "--conf", "0.4"]
    missing = tmp_path / "nope.pt"
    assert main([*base, "--out", str(tmp_path / "a"), "--model", str(missing)]) == 2
    assert f"model not found: {missing}" in capsys.readouterr().err
    model = ["--model", str(coco_weights)]
    assert (
        main([*base, "--out", str(tmp_path / "b"), *model, "--class", "worker", "--as", "person"])
        == 2
    )
    err = capsys.readouterr().err
    assert "has no class 'worker' (its classes: person, bicycle, car," in err
    assert main([*base, "--out", str(tmp_path / "c"), *model, "--as", "vest"]) == 2
    err = capsys.readouterr().err
    assert "has no class 'vest' (its classes: head, helmet, person)" in err
    assert main([*base, "--out", str(tmp_path / "d"), "--splits", "valid"]) == 2
    assert "--splits must name some of train, val, test, got ['valid']" in capsys.readouterr().err
    assert not any((tmp_path / folder).exists() for folder in "abcd")
