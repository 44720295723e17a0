"""Build dataset versions: import YOLO / COCO / Pascal VOC into our classes, merge versions.

A dataset we write is an Ultralytics YOLO folder whose images are symlinks to their source (so
`../shared` is never copied) and whose labels are written in our class ids (`classmap.OUR_CLASSES`),
plus `data.yaml` (relative paths) and `manifest.json` (`training/manifest.py`):

    out/data.yaml  out/manifest.json  out/train/images/a.jpg -> /src/a.jpg  out/train/labels/a.txt

COCO JSON and Pascal VOC are read with supervision's `DetectionDataset.from_coco` /
`from_pascal_voc` (well-kept parsers that map category ids to names); YOLO folders are read here,
because we validate every row (file:line errors) and Ultralytics' own reader skips bad files with
a warning instead of failing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from training.box_convention import grow_boxes, parse_box_growth
from training.classmap import DROP, OUR_CLASSES, parse_class_map, resolve_names
from training.data_yaml import SPLITS, load_data_yaml
from training.group_split import parse_split_fractions, read_groups, split_of_group
from training.labels import ImagesError, label_path_for, list_images, read_labels
from training.manifest import build_manifest, dataset_version, read_manifest, write_manifest

log = logging.getLogger(__name__)
FORMATS = ("yolo", "coco", "voc")
_MIN_CLASSES = 3  # head, helmet, person: every dataset we write carries at least these


class DatasetError(ValueError):
    """The source or output of a dataset operation is unusable (message says which and why)."""


@dataclass
class Sample:
    """One image and its boxes in OUR class ids, normalised cx, cy, w, h."""

    split: str
    image: Path
    rows: np.ndarray  # (N, 5): class, cx, cy, w, h


class DatasetWriter:
    """Writes samples into a new dataset folder: symlinked images, our labels, data.yaml.

    `names`: the class list the rows' ids index (e.g. a model's classes grown by new ones);
    default: ours, up to the highest id written."""

    def __init__(self, out: Path, names: Sequence[str] | None = None) -> None:
        self.out = out.absolute()
        if self.out.exists() and any(self.out.iterdir()):
            raise DatasetError(f"output folder is not empty: {self.out}")
        self.names = tuple(names) if names is not None else None
        self.max_class = _MIN_CLASSES - 1
        self.splits: set[str] = set()
        self._names: set[tuple[str, str]] = set()

    def add(self, sample: Sample, prefix: str = "", label_text: str | None = None) -> None:
        """Link the image and write its labels: `label_text` verbatim when given (it must
        hold `sample.rows`), else the rows formatted."""
        source = sample.image.absolute()
        if not source.is_file():
            raise ImagesError(f"image not found: {source}")
        name = source.name
        if (sample.split, name) in self._names:
            name = f"{prefix or 'dup'}_{name}"
            if (sample.split, name) in self._names:
                raise DatasetError(f"two images named {source.name} in split {sample.split}")
        self._names.add((sample.split, name))
        image_dir = self.out / sample.split / "images"
        label_dir = self.out / sample.split / "labels"
        image_dir.mkdir(parents=True, exist_ok=True)
        label_dir.mkdir(parents=True, exist_ok=True)
        os.symlink(source, image_dir / name)
        if label_text is None:
            label_text = "".join(format_rows(sample.rows))
        (label_dir / Path(name).with_suffix(".txt")).write_text(label_text)
        if len(sample.rows):
            self.max_class = max(self.max_class, int(sample.rows[:, 0].max()))
        self.splits.add(sample.split)

    def finish(self, name: str, parents: Iterable[str] = ()) -> dict[str, Any]:
        """Write data.yaml and manifest.json; return the manifest."""
        if not self.splits:
            raise DatasetError("no images to write")
        names = self.names or OUR_CLASSES[: self.max_class + 1]
        if self.max_class >= len(names):
            raise DatasetError(f"class id {self.max_class} written, but only {len(names)} names")
        data = {  # no `path`: Ultralytics then resolves splits against this file's folder
            **{s: f"{s}/images" for s in SPLITS if s in self.splits},
            "names": dict(enumerate(names)),
        }
        (self.out / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        manifest = build_manifest(self.out / "data.yaml", name=name, parents=list(parents))
        write_manifest(manifest, self.out)
        return manifest


def format_rows(rows: np.ndarray) -> list[str]:
    """YOLO label lines `class cx cy w h` (6 decimals) of (N, 5) rows."""
    return [f"{int(r[0])} {r[1]:.6f} {r[2]:.6f} {r[3]:.6f} {r[4]:.6f}\n" for r in rows]


def _remap(rows: np.ndarray, to_ours: dict[int, int | None]) -> np.ndarray:
    keep = np.array([to_ours[int(c)] is not None for c in rows[:, 0]], dtype=bool)
    rows = rows[keep] if len(rows) else rows
    if len(rows):
        rows = rows.copy()
        rows[:, 0] = [to_ours[int(c)] for c in rows[:, 0]]
    return rows


def _data_yaml_of(source: Path) -> Path:
    if source.is_dir():
        for candidate in ("data.yaml", "data.yml", "dataset.yaml"):
            if (source / candidate).is_file():
                return source / candidate
        raise DatasetError(f"{source} has no data.yaml (a YOLO dataset needs one with 'names')")
    return source


def yolo_samples(
    source: Path, class_map: str | None = None, targets: Sequence[str] = OUR_CLASSES
) -> Iterable[Sample]:
    """Every sample of a YOLO dataset (data.yaml or its folder), labels validated, remapped by
    name to ids in `targets` (default: ours)."""
    data = load_data_yaml(_data_yaml_of(source))
    to_ours = resolve_names(data["names"], parse_class_map(class_map), targets)
    found = False
    seen: dict[str, str] = {}
    for split in SPLITS:
        if split not in data:
            continue
        if data[split] in seen:  # e.g. the service's sample zip lists one folder as train and val
            log.warning("%s: split %s repeats %s; kept once", source, split, seen[data[split]])
            continue
        seen[data[split]] = split
        for image in list_images(data[split]):
            found = True
            rows = read_labels(label_path_for(image), len(data["names"]))
            yield Sample(split, image, _remap(rows, to_ours))
    if not found:
        raise DatasetError(f"{source}: no train/val/test split listed")


def supervision_samples(
    fmt: str, images: Path, annotations: Path, split: str, class_map: str | None = None
) -> Iterable[Sample]:
    """COCO JSON or Pascal VOC XML via supervision's parsers, boxes normalised by image size."""
    import cv2
    import supervision as sv

    if not images.is_dir():
        raise ImagesError(f"images folder not found: {images}")
    if not annotations.exists():
        raise DatasetError(f"annotations not found: {annotations}")
    try:
        if fmt == "coco":
            dataset = sv.DetectionDataset.from_coco(str(images), str(annotations))
        else:
            dataset = sv.DetectionDataset.from_pascal_voc(str(images), str(annotations))
    except (ValueError, KeyError, OSError) as exc:
        raise DatasetError(f"cannot read {fmt} annotations {annotations}: {exc}") from exc
    to_ours = resolve_names(list(dataset.classes), parse_class_map(class_map))
    for image_path in dataset.image_paths:
        detections = dataset.annotations[image_path]
        image = cv2.imread(image_path)
        if image is None:
            raise ImagesError(f"cannot read image {image_path}")
        h, w = image.shape[:2]
        xyxy = detections.xyxy.reshape(-1, 4)
        cx, cy = (xyxy[:, 0] + xyxy[:, 2]) / 2 / w, (xyxy[:, 1] + xyxy[:, 3]) / 2 / h
        bw, bh = (xyxy[:, 2] - xyxy[:, 0]) / w, (xyxy[:, 3] - xyxy[:, 1]) / h
        class_ids = np.asarray(detections.class_id, dtype=float).reshape(-1)
        rows = np.stack([class_ids, cx, cy, bw, bh], axis=1) if len(xyxy) else np.zeros((0, 5))
        rows = rows[(rows[:, 3] > 0) & (rows[:, 4] > 0)]
        rows[:, 1:] = rows[:, 1:].clip(0.0, 1.0)
        yield Sample(split, Path(image_path), _remap(rows, to_ours))


def extract_zip(archive: Path, folder: Path) -> Path:
    """Unpack a YOLO zip (e.g. `GET /api/v1/samples/export`) next to the new version; the
    version's images then link into it. Refuses members that would land outside `folder`."""
    import zipfile

    if folder.exists():
        raise DatasetError(f"{folder} already exists; remove it or choose another --out")
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                target = (folder / member).resolve()
                if not target.is_relative_to(folder.resolve()):
                    raise DatasetError(f"{archive}: unsafe path in archive: {member}")
            zf.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{archive} is not a zip file: {exc}") from exc
    return folder


def convert_samples(
    samples: Iterable[Sample],
    grow: str | None = None,
    groups: Path | None = None,
    split_by_group: str | None = None,
    seed: int = 0,
) -> Iterable[Sample]:
    """Samples with boxes grown into our convention (`box_convention`) and, when a groups CSV
    is given, each image moved to the split of its group (`group_split`)."""
    growth = parse_box_growth(grow)
    if (groups is None) != (split_by_group is None):
        raise DatasetError("--groups and --split-by-group go together")
    group_of = read_groups(groups) if groups is not None else None
    fractions = parse_split_fractions(split_by_group) if split_by_group else {}
    for sample in samples:
        rows = grow_boxes(sample.rows, growth, OUR_CLASSES)
        split = sample.split
        if group_of is not None:
            group = group_of.get(sample.image.stem)
            if group is None:
                raise DatasetError(f"{groups}: no group for image {sample.image.name}")
            split = split_of_group(group, fractions, seed)
        yield Sample(split, sample.image, rows)


def import_dataset(
    source: Path,
    out: Path,
    fmt: str = "yolo",
    class_map: str | None = None,
    name: str | None = None,
    annotations: Path | None = None,
    split: str = "train",
    grow: str | None = None,
    groups: Path | None = None,
    split_by_group: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Import a dataset into a new version folder `out`; returns its manifest.

    `grow` converts another box convention into ours, `groups` + `split_by_group` re-split the
    images by group (see `convert_samples`)."""
    from tqdm import tqdm

    if fmt not in FORMATS:
        raise DatasetError(f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
    if not source.exists():
        raise DatasetError(f"source not found: {source}")
    if fmt == "yolo" and source.suffix == ".zip":
        source = extract_zip(source, out.with_name(f"{out.name}-source"))
    if fmt == "yolo":
        samples = yolo_samples(source, class_map)
    else:
        if annotations is None:
            raise DatasetError(f"--annotations is required for {fmt} (a JSON file or XML folder)")
        samples = supervision_samples(fmt, source, annotations, split, class_map)
    samples = convert_samples(samples, grow, groups, split_by_group, seed)
    writer = DatasetWriter(out)
    try:
        for sample in tqdm(samples, desc=f"import {source.name}"):
            writer.add(sample)
        return writer.finish(name or out.name)
    except BaseException:
        if writer.out.exists() and not read_manifest(writer.out):
            shutil.rmtree(writer.out, ignore_errors=True)  # leave nothing half-written
        raise


def in_stable_share(image: Path, share: float) -> bool:
    """A stable pseudo-random choice of `share` of the images, by a hash of the file name."""
    digest = hashlib.sha256(image.name.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < share


def merge_datasets(
    base: Path,
    additions: list[Path],
    out: Path,
    name: str | None = None,
    repeat: int = 1,
    base_train_share: float = 1.0,
    names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """A new version with every sample of `base` and `additions`; parents = their versions.

    Inputs must already use our class names (import them first), or `names` when given (the
    new version's class list, e.g. a model's grown by new classes); images stay symlinks.
    `repeat` lists each addition's train image that many times (a small new site otherwise
    drowns in a large base); `base_train_share` keeps a stable share of the base's train images
    (the rest of base is kept whole), so a fine-tune replays the old data without paying for all
    of it.
    """
    from tqdm import tqdm

    if not additions:
        raise DatasetError("merge needs at least one --add dataset")
    if repeat < 1 or not 0 < base_train_share <= 1:
        raise DatasetError("--repeat must be >= 1 and --base-train-share in (0, 1]")
    writer = DatasetWriter(out, names)
    parents = []
    try:
        for index, source in enumerate([base, *additions]):
            data_yaml = _data_yaml_of(source)
            if not data_yaml.is_file():
                raise DatasetError(f"dataset not found: {source}")
            parents.append(dataset_version(data_yaml))
            prefix = f"v{index}"
            samples = yolo_samples(
                data_yaml, _drop_empty_classes(data_yaml, names), targets=names or OUR_CLASSES
            )
            for sample in tqdm(samples, desc=f"merge {source.name}"):
                if index == 0:
                    if sample.split != "train" or in_stable_share(sample.image, base_train_share):
                        writer.add(sample, prefix=prefix)
                    continue
                copies = repeat if sample.split == "train" else 1
                for copy in range(copies):
                    writer.add(sample, prefix=f"{prefix}r{copy}" if copy else prefix)
        return writer.finish(name or out.name, parents)
    except BaseException:
        if writer.out.exists() and not read_manifest(writer.out):
            shutil.rmtree(writer.out, ignore_errors=True)
        raise


def _drop_empty_classes(data_yaml: Path, names: Sequence[str] | None) -> str | None:
    """With an explicit class list, the class map that drops a source's classes outside it
    that carry no box (e.g. `harness` in a version written in our full vocabulary): nothing
    is lost. A class outside the list that has boxes stays an error."""
    if names is None:
        return None
    source_names = load_data_yaml(data_yaml)["names"].values()
    empty = set(source_names) - set(names) - labelled_classes(data_yaml)
    return ",".join(f"{name}={DROP}" for name in sorted(empty)) or None


def labelled_classes(source: Path) -> set[str]:
    """The classes of a YOLO dataset with at least one box (its manifest's counts when it has
    one, else its label files): the classes a model trained on it can learn."""
    data = load_data_yaml(_data_yaml_of(source))
    manifest = read_manifest(Path(data["path"]))
    if isinstance(manifest, dict) and isinstance(manifest.get("splits"), dict):
        counts = [split.get("boxes", {}) for split in manifest["splits"].values()]
        return {name for boxes in counts for name, n in boxes.items() if n}
    found: set[int] = set()
    seen: set[str] = set()
    for split in SPLITS:
        if split in data and data[split] not in seen:
            seen.add(data[split])
            for image in list_images(data[split]):
                rows = read_labels(label_path_for(image), len(data["names"]))
                found.update(int(c) for c in rows[:, 0])
    return {str(data["names"][i]) for i in found}


def dataset_info(source: Path) -> dict[str, Any]:
    """The manifest of a dataset (read when present, else computed, never written)."""
    data_yaml = _data_yaml_of(source)
    data = load_data_yaml(data_yaml)
    manifest = read_manifest(Path(data["path"]))
    return manifest or build_manifest(data_yaml)
