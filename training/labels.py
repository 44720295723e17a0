"""YOLO label files: find them for an image, read them, and reject bad rows with file:line.

Layout (Ultralytics' convention): `.../images/x.jpg` has its boxes in `.../labels/x.txt`, one
`class cx cy w h` row per box, normalised to [0, 1]. A missing label file means "no objects".
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})
_TOLERANCE = 1e-6  # exporters write 1.0000001 now and then


class LabelError(ValueError):
    """A label row is malformed, out of range or names an unknown class (message: file:line)."""


class ImagesError(ValueError):
    """A split has no images, or lists images that do not exist."""


def label_path_for(image: Path) -> Path:
    """The label file Ultralytics reads for `image` (last `/images/` -> `/labels/`, `.txt`)."""
    text = str(image)
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    if images in text:
        head, _, tail = text.rpartition(images)
        text = head + labels + tail
    return Path(text).with_suffix(".txt")


def list_images(split: str | Path) -> list[Path]:
    """Images of a split given as a folder (searched recursively) or a .txt list of paths."""
    split = Path(split)
    if split.is_dir():
        images = sorted(
            p for p in split.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
    elif split.is_file() and split.suffix == ".txt":
        images = []
        for line_no, line in enumerate(split.read_text().splitlines(), start=1):
            line = line.strip()
            if not line:
                continue
            path = Path(line) if Path(line).is_absolute() else (split.parent / line)
            if not path.is_file():
                raise ImagesError(f"{split}:{line_no}: image not found: {path}")
            images.append(path)
    else:
        raise ImagesError(f"split not found (need a folder or a .txt list): {split}")
    if not images:
        raise ImagesError(f"no images in {split}")
    return images


def read_labels(path: Path, num_classes: int) -> np.ndarray:
    """Rows (class, cx, cy, w, h) as float64 (N, 5); polygon rows become their bounding box.

    Raises LabelError naming the file and line for a bad row: too few numbers, a class id that
    is not an integer in [0, num_classes), coordinates outside [0, 1], an empty box.
    """
    if not path.is_file():
        return np.zeros((0, 5))
    rows = []
    for line_no, line in enumerate(path.read_text().splitlines(), start=1):
        values = line.split()
        if not values:
            continue
        where = f"{path}:{line_no}"
        if len(values) < 5 or (len(values) > 5 and len(values) % 2 == 0):
            raise LabelError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}")
        try:
            numbers = [float(v) for v in values]
        except ValueError:
            raise LabelError(f"{where}: not a number in {line.strip()!r}") from None
        class_id = numbers[0]
        if class_id != int(class_id) or not 0 <= class_id < num_classes:
            raise LabelError(
                f"{where}: class id {values[0]} out of range (this dataset has {num_classes} "
                f"classes: 0..{num_classes - 1})"
            )
        coords = np.asarray(numbers[1:])
        if (coords < -_TOLERANCE).any() or (coords > 1 + _TOLERANCE).any():
            raise LabelError(f"{where}: coordinates must be normalised to [0, 1], got {values[1:]}")
        if len(values) > 5:  # segment polygon: x1 y1 x2 y2 ... -> its box
            xs, ys = coords[0::2], coords[1::2]
            coords = np.array(
                [(xs.min() + xs.max()) / 2, (ys.min() + ys.max()) / 2, np.ptp(xs), np.ptp(ys)]
            )
        if coords[2] <= 0 or coords[3] <= 0:
            raise LabelError(f"{where}: box has zero width or height: {line.strip()!r}")
        rows.append([class_id, *np.clip(coords, 0.0, 1.0)])
    return np.asarray(rows, dtype=np.float64).reshape(-1, 5)


def to_xyxy(rows: np.ndarray, width: int, height: int) -> np.ndarray:
    """Normalised (cx, cy, w, h) columns 1..4 -> pixel xyxy (N, 4) float32."""
    cx, cy, w, h = (rows[:, i] for i in range(1, 5))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    return (xyxy * np.array([width, height, width, height])).astype(np.float32)
