from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from training.labels import ImagesError, LabelError, label_path_for, list_images, read_labels


def _label(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "labels" / "a.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def test_reads_rows_and_polygons(tmp_path: Path) -> None:
    path = _label(tmp_path, "1 0.5 0.5 0.2 0.4\n\n0 0.1 0.1 0.3 0.1 0.3 0.5\n")
    rows = read_labels(path, num_classes=3)
    assert rows.shape == (2, 5)
    np.testing.assert_allclose(rows[1], [0, 0.2, 0.3, 0.2, 0.4])


def test_missing_label_file_means_no_objects(tmp_path: Path) -> None:
    assert read_labels(tmp_path / "none.txt", 3).shape == (0, 5)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1 0.5 0.5 0.2 0.4\n3 0.5 0.5 0.2 0.2\n", r"a\.txt:2: class id 3 out of range"),
        ("-1 0.5 0.5 0.2 0.2\n", r"a\.txt:1: class id -1 out of range"),
        ("1.5 0.5 0.5 0.2 0.2\n", r"a\.txt:1: class id 1.5"),
        ("0 0.5 1.7 0.2 0.2\n", r"a\.txt:1: coordinates must be normalised"),
        ("0 0.5 0.5 0.2\n", r"a\.txt:1: expected 'class cx cy w h'"),
        ("0 0.5 x 0.2 0.2\n", r"a\.txt:1: not a number"),
        ("0 0.5 0.5 0 0.2\n", r"a\.txt:1: box has zero width"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LabelError, match=message):
        read_labels(_label(tmp_path, text), num_classes=3)


def test_label_path_follows_ultralytics(tmp_path: Path) -> None:
    image = tmp_path / "images" / "x" / "images" / "a.jpg"
    assert label_path_for(image) == tmp_path / "images" / "x" / "labels" / "a.txt"


def test_missing_images_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ImagesError, match="split not found"):
        list_images(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImagesError, match="no images in"):
        list_images(tmp_path / "empty")
    listing = tmp_path / "list.txt"
    listing.write_text("images/gone.jpg\n")
    with pytest.raises(ImagesError, match=r"list\.txt:1: image not found"):
        list_images(listing)
