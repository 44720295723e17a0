"""Resolve an Ultralytics data YAML so every split path is absolute.

Dataset folders ship `data.yaml` with paths relative to the file itself; Ultralytics resolves
relative paths against its own `datasets_dir` instead, so we hand it a resolved copy.
"""

from __future__ import annotations

from pathlib import Path

import yaml

SPLITS = ("train", "val", "test")


class DataYamlError(ValueError):
    """The data YAML is missing, unreadable or points at folders that do not exist."""


def load_data_yaml(path: str | Path) -> dict:
    """Read a data YAML and return it with absolute split paths and a `names` dict."""
    path = Path(path).expanduser().resolve()
    if not path.is_file():
        raise DataYamlError(f"data file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataYamlError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict) or "names" not in data:
        raise DataYamlError(f"{path}: needs a 'names' mapping and split paths")
    root = Path(data.get("path") or path.parent)
    if not root.is_absolute():
        root = (path.parent / root).resolve()
    resolved = {k: v for k, v in data.items() if k not in SPLITS and k != "path"}
    resolved["path"] = str(root)
    for split in SPLITS:
        if split not in data:
            continue
        split_path = Path(data[split])
        if not split_path.is_absolute():
            split_path = (root / split_path).resolve()
        if not split_path.exists():
            raise DataYamlError(f"{path}: split '{split}' points at missing {split_path}")
        resolved[split] = str(split_path)
    names = data["names"]
    resolved["names"] = dict(enumerate(names)) if isinstance(names, list) else dict(names)
    return resolved


def write_resolved(path: str | Path, out_dir: str | Path) -> Path:
    """Write the resolved copy of `path` into `out_dir` and return its path.

    Split folders are handed over as views in `out_dir` (`SPLIT/images` and `SPLIT/labels`
    symlinked to the source folders): Ultralytics writes `labels.cache` beside the labels folder
    it reads, so it writes into `out_dir`, never into the (possibly read-only, shared) dataset.
    """
    out_dir = Path(out_dir)
    out = out_dir / "data.resolved.yaml"
    out.parent.mkdir(parents=True, exist_ok=True)
    data = load_data_yaml(path)
    for split in SPLITS:
        if split in data and Path(data[split]).is_dir():
            data[split] = str(_split_view(Path(data[split]), out_dir / split))
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def _split_view(images: Path, view: Path) -> Path:
    """`view/images` and `view/labels`: real folders of per-file symlinks to the split's images
    and labels (Ultralytics resolves folder symlinks, not file ones, and derives each label path
    from the image path it globbed); returns `view/images`. Rebuilt on every call."""
    import shutil

    from training.labels import label_path_for, list_images

    if view.exists():
        shutil.rmtree(view)  # only links and Ultralytics' cache live here
    for image in list_images(images):
        relative = image.relative_to(images)
        link = view / "images" / relative
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(image.absolute())
        label = label_path_for(image)
        if label.is_file():
            label_link = (view / "labels" / relative).with_suffix(".txt")
            label_link.parent.mkdir(parents=True, exist_ok=True)
            label_link.symlink_to(label.absolute())
    return view / "images"
