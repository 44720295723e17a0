"""Dataset versions from real hardhat images: import (YOLO, COCO, VOC), merge, info, errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from siteguard.cli import main
from training.classmap import ClassMapError
from training.datasets import DatasetError, import_dataset, merge_datasets
from training.labels import LabelError, read_labels
from training.manifest import MANIFEST


def _rename_classes(data_yaml: Path, names: list[str]) -> None:
    data = yaml.safe_load(data_yaml.read_text())
    data["names"] = names
    data_yaml.write_text(yaml.safe_dump(data))


def _source_rows(data_yaml: Path) -> list[np.ndarray]:
    labels = sorted((data_yaml.parent / "train" / "labels").glob("*.txt"))
    return [read_labels(p, 3) for p in labels]


def test_import_yolo_symlinks_images_and_maps_classes(mini_copy: Path, tmp_path: Path) -> None:
    _rename_classes(mini_copy, ["no_hat", "hat", "person"])
    out = tmp_path / "site-a"
    manifest = import_dataset(mini_copy, out, class_map="no_hat=head,hat=helmet,person=-")

    images = sorted((out / "train" / "images").iterdir())
    assert len(images) == 4 and all(p.is_symlink() for p in images)
    assert all(p.resolve().parent == mini_copy.parent / "train" / "images" for p in images)
    rows = np.concatenate(_source_rows(mini_copy))
    expected = {"head": int((rows[:, 0] == 0).sum()), "helmet": int((rows[:, 0] == 1).sum())}
    assert manifest["splits"]["train"]["boxes"] == {**expected, "person": 0}
    assert manifest["version"].startswith("site-a-") and manifest["parents"] == []
    on_disk = json.loads((out / MANIFEST).read_text())
    assert on_disk["version"] == manifest["version"]
    assert len(on_disk["files"]) == 4 and all(
        len(f["image_sha256"]) == 64 for f in on_disk["files"]
    )
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data["names"] == {0: "head", 1: "helmet", 2: "person"} and "path" not in data


def test_version_depends_on_content_only(mini_copy: Path, tmp_path: Path) -> None:
    one = import_dataset(mini_copy, tmp_path / "one", name="x")
    two = import_dataset(mini_copy, tmp_path / "two", name="x")
    assert one["version"] == two["version"]
    label = next((mini_copy.parent / "train" / "labels").glob("*.txt"))
    label.write_text(label.read_text() + "1 0.5 0.5 0.1 0.1\n")
    three = import_dataset(mini_copy, tmp_path / "three", name="x")
    assert three["version"] != one["version"]


def test_merge_keeps_parents_and_every_sample(mini_copy: Path, mini_data: Path, tmp_path: Path):
    new = import_dataset(mini_copy, tmp_path / "reviews")
    merged = merge_datasets(mini_data, [tmp_path / "reviews"], tmp_path / "v2", name="v2")
    assert merged["parents"][1] == new["version"] and len(merged["parents"]) == 2
    assert merged["splits"]["train"]["images"] == 16 + 4  # same file names get a prefix
    assert merged["splits"]["val"]["images"] == 8 and merged["splits"]["test"]["images"] == 8
    assert all(p.is_symlink() for p in (tmp_path / "v2" / "train" / "images").iterdir())


def test_merge_names_the_class_list_and_drops_only_empty_classes(
    mini_copy: Path, mini_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 4-class version (vest beside head/helmet/person) from a base without vests and a site
    import written in our full vocabulary: its empty harness classes go, its vests stay."""
    _rename_classes(mini_copy, ["head", "vest", "person"])  # its hard hats stand in for vests
    site = import_dataset(mini_copy, tmp_path / "site")
    vests = site["splits"]["train"]["boxes"]["vest"]
    assert vests > 0 and site["splits"]["train"]["boxes"]["harness"] == 0

    names = "head,helmet,person,vest"
    out = tmp_path / "grown"
    code = main(["dataset", "merge", "--base", str(mini_data), "--add", str(tmp_path / "site"),
                 "--out", str(out), "--names", names])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    merged = json.loads((out / MANIFEST).read_text())
    assert merged["classes"] == names.split(",")
    assert merged["splits"]["train"]["boxes"]["vest"] == vests
    assert yaml.safe_load((out / "data.yaml").read_text())["names"] == dict(
        enumerate(names.split(","))
    )

    # Leaving out a class that has boxes would lose them: refused, and nothing written.
    with pytest.raises(ClassMapError, match="'vest' are not ours"):
        merge_datasets(
            mini_data, [tmp_path / "site"], tmp_path / "lossy", names=["head", "helmet", "person"]
        )
    assert not (tmp_path / "lossy").exists()
    for bad in ("head,head", "Head,helmet", ","):
        code = main(["dataset", "merge", "--base", str(mini_data), "--add", str(tmp_path / "site"),
                     "--out", str(tmp_path / "bad"), "--names", bad])  # fmt: skip
        assert code == 2 and "--names" in capsys.readouterr().err


def test_bad_label_fails_with_file_and_line_and_leaves_nothing(mini_copy: Path, tmp_path: Path):
    label = sorted((mini_copy.parent / "train" / "labels").glob("*.txt"))[1]
    label.write_text("1 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    out = tmp_path / "bad"
    with pytest.raises(LabelError, match=rf"{label.name}:2: class id 7 out of range"):
        import_dataset(mini_copy, out)
    assert not out.exists()


def test_import_refuses_non_empty_output_and_unknown_names(mini_copy: Path, tmp_path: Path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "x").write_text("")
    with pytest.raises(DatasetError, match="not empty"):
        import_dataset(mini_copy, out)
    _rename_classes(mini_copy, ["bare", "hat", "person"])
    with pytest.raises(ClassMapError, match="'bare', 'hat' are not ours"):
        import_dataset(mini_copy, tmp_path / "new")


def _boxes_px(data_yaml: Path) -> list[tuple[Path, np.ndarray, int, int]]:
    """(image, rows, width, height) for the 4-image copy, ignoring `person` boxes."""
    out = []
    for image in sorted((data_yaml.parent / "train" / "images").iterdir()):
        h, w = cv2.imread(str(image)).shape[:2]
        rows = read_labels(data_yaml.parent / "train" / "labels" / f"{image.stem}.txt", 3)
        out.append((image, rows[rows[:, 0] < 2], w, h))
    return out


def _write_coco(data_yaml: Path, path: Path) -> None:
    coco = {"images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": 1, "name": "no_hat"}, {"id": 2, "name": "hat"}]
    for image_id, (image, rows, w, h) in enumerate(_boxes_px(data_yaml), start=1):
        coco["images"].append({"id": image_id, "file_name": image.name, "width": w, "height": h})
        for row in rows:
            bw, bh = row[3] * w, row[4] * h
            coco["annotations"].append(
                {
                    "id": len(coco["annotations"]) + 1,
                    "image_id": image_id,
                    "category_id": int(row[0]) + 1,
                    "bbox": [row[1] * w - bw / 2, row[2] * h - bh / 2, bw, bh],
                    "area": bw * bh,
                    "iscrowd": 0,
                }
            )
    path.write_text(json.dumps(coco))


def _write_voc(data_yaml: Path, folder: Path) -> None:
    folder.mkdir()
    for image, rows, w, h in _boxes_px(data_yaml):
        objects = "".join(
            f"<object><name>{'no_hat' if r[0] == 0 else 'hat'}</name><bndbox>"
            f"<xmin>{(r[1] - r[3] / 2) * w:.1f}</xmin><ymin>{(r[2] - r[4] / 2) * h:.1f}</ymin>"
            f"<xmax>{(r[1] + r[3] / 2) * w:.1f}</xmax><ymax>{(r[2] + r[4] / 2) * h:.1f}</ymax>"
            "</bndbox></object>"
            for r in rows
        )
        (folder / f"{image.stem}.xml").write_text(
            f"<annotation><filename>{image.name}</filename><size><width>{w}</width>"
            f"<height>{h}</height><depth>3</depth></size>{objects}</annotation>"
        )


@pytest.mark.parametrize("fmt", ["coco", "voc"])
def test_import_coco_and_voc_match_the_yolo_labels(mini_copy: Path, tmp_path: Path, fmt: str):
    annotations = tmp_path / ("ann.json" if fmt == "coco" else "xml")
    (_write_coco if fmt == "coco" else _write_voc)(mini_copy, annotations)
    out = tmp_path / fmt
    manifest = import_dataset(
        mini_copy.parent / "train" / "images",
        out,
        fmt=fmt,
        annotations=annotations,
        class_map="no_hat=head,hat=helmet",
    )
    expected = np.concatenate([rows for _, rows, _, _ in _boxes_px(mini_copy)])
    assert manifest["splits"]["train"]["boxes"]["head"] == int((expected[:, 0] == 0).sum())
    assert manifest["splits"]["train"]["boxes"]["helmet"] == int((expected[:, 0] == 1).sum())
    for image, rows, _, _ in _boxes_px(mini_copy):
        got = read_labels(out / "train" / "labels" / f"{image.stem}.txt", 3)
        order = np.lexsort(rows.T[::-1])
        # VOC boxes are 1-based and inclusive, so a box may come back one pixel wider.
        np.testing.assert_allclose(got[np.lexsort(got.T[::-1])], rows[order], atol=5e-3)


def test_cli_dataset_commands_and_errors(
    mini_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["dataset", "import", str(mini_copy), "--out", str(tmp_path / "a")]) == 0
    assert main(["dataset", "info", str(tmp_path / "a"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out.split("data: ")[-1].split("\n", 1)[1])
    assert info["splits"]["train"]["images"] == 4 and "files" not in info
    code = main(["dataset", "import", str(mini_copy), "--out", str(tmp_path / "b"), "--class-map",
                 "head=hardhat"])  # fmt: skip
    assert code == 2
    assert "unknown target class 'hardhat'" in capsys.readouterr().err
    code = main(["dataset", "import", str(tmp_path / "missing"), "--out", str(tmp_path / "c")])
    assert code == 2 and "source not found" in capsys.readouterr().err
    code = main(["dataset", "import", str(mini_copy.parent / "train" / "images"), "--format",
                 "coco", "--out", str(tmp_path / "d")])  # fmt: skip
    assert code == 2 and "--annotations is required" in capsys.readouterr().err


def test_import_a_service_sample_zip(mini_copy: Path, tmp_path: Path) -> None:
    """The layout of GET /api/v1/samples/export: one folder listed as both train and val."""
    import zipfile

    archive = tmp_path / "samples.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for image in sorted((mini_copy.parent / "train" / "images").iterdir()):
            zf.write(image, f"images/{image.name}")
            zf.write(mini_copy.parent / "train" / "labels" / f"{image.stem}.txt",
                     f"labels/{image.stem}.txt")  # fmt: skip
        names = {0: "head", 1: "helmet", 2: "person"}
        zf.writestr("data.yaml", yaml.safe_dump({"path": ".", "train": "images", "val": "images",
                                                 "names": names}))  # fmt: skip
    manifest = import_dataset(archive, tmp_path / "reviews")
    assert set(manifest["splits"]) == {"train"} and manifest["splits"]["train"]["images"] == 4
    assert all(p.is_symlink() for p in (tmp_path / "reviews" / "train" / "images").iterdir())
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="is not a zip file"):
        import_dataset(tmp_path / "junk.zip", tmp_path / "junk")
