"""A dataset version: the manifest of its files (sha256), label counts and parent versions.

The version id is a hash of the content only (split, image hash, label hash of every file), so
the same images and labels always give the same version, whatever the folder is called.

Example manifest (`manifest.json` at the dataset root):
    {"format": "siteguard-dataset/1", "name": "site-a", "version": "site-a-3f2a9c0d11e4",
     "parents": ["hardhat-workers-0b6f1c1e6d1e"], "classes": ["head", "helmet", "person"],
     "splits": {"train": {"images": 16, "boxes": {"head": 5, "helmet": 30, "person": 0}}},
     "files": [{"split": "train", "image": "train/images/a.jpg", "image_sha256": "...",
                "label": "train/labels/a.txt", "label_sha256": "...", "boxes": [0, 3, 0]}]}
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from training.data_yaml import SPLITS, load_data_yaml
from training.labels import label_path_for, list_images, read_labels

MANIFEST = "manifest.json"
FORMAT = "siteguard-dataset/1"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _display(path: Path, root: Path) -> str:
    """Path relative to the dataset root when inside it (symlinks kept as links), else absolute."""
    try:
        return str(path.absolute().relative_to(root))
    except ValueError:
        return str(path.absolute())


def content_version(files: list[dict[str, Any]]) -> str:
    """12 hex digits of a sha256 over every file's split, image hash and label hash, sorted."""
    digest = hashlib.sha256()
    for entry in sorted(files, key=lambda e: (e["split"], e["image_sha256"], e["label_sha256"])):
        digest.update(
            f"{entry['split']}:{entry['image_sha256']}:{entry['label_sha256']}\n".encode()
        )
    return digest.hexdigest()[:12]


def build_manifest(
    data_yaml: Path, name: str | None = None, parents: list[str] | tuple[str, ...] = ()
) -> dict[str, Any]:
    """Hash every image and label of every split (validating labels on the way)."""
    from tqdm import tqdm

    data = load_data_yaml(data_yaml)
    root = Path(data["path"])
    classes = [data["names"][i] for i in sorted(data["names"])]
    name = name or root.name
    files: list[dict[str, Any]] = []
    splits: dict[str, Any] = {}
    for split in SPLITS:
        if split not in data:
            continue
        images = list_images(data[split])
        totals = np.zeros(len(classes), dtype=int)
        for image in tqdm(images, desc=f"hash {name}/{split}", leave=False):
            label = label_path_for(image)
            rows = read_labels(label, len(classes))
            counts = np.bincount(rows[:, 0].astype(int), minlength=len(classes))
            totals += counts
            files.append(
                {
                    "split": split,
                    "image": _display(image, root),
                    "image_sha256": sha256_file(image),
                    "label": _display(label, root),
                    "label_sha256": sha256_file(label) if label.is_file() else EMPTY_SHA256,
                    "boxes": counts.tolist(),
                }
            )
        splits[split] = {
            "images": len(images),
            "boxes": dict(zip(classes, totals.tolist(), strict=True)),
        }
    return {
        "format": FORMAT,
        "name": name,
        "version": f"{name}-{content_version(files)}",
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "parents": list(parents),
        "classes": classes,
        "splits": splits,
        "files": files,
    }


def write_manifest(manifest: dict[str, Any], root: Path) -> Path:
    path = root / MANIFEST
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def dataset_version(data_yaml: Path) -> str:
    """The version of a dataset: from its manifest when it has one, else computed now."""
    data = load_data_yaml(data_yaml)
    manifest = read_manifest(Path(data["path"]))
    if manifest is not None:
        return manifest["version"]
    return build_manifest(data_yaml)["version"]


def record_recipe(root: Path, command: str, inputs: list[Path]) -> dict[str, Any]:
    """Add `recipe` to a dataset's manifest: the commands that built it, its inputs' first (from
    their own manifests), so a model card can say how to rebuild the data it was trained on."""
    recipe: list[str] = []
    for source in inputs:
        folder = source if source.is_dir() else source.parent
        for line in (read_manifest(folder) or {}).get("recipe", []):
            if line not in recipe:
                recipe.append(line)
    manifest = read_manifest(root) or {}
    manifest["recipe"] = [*recipe, command]
    write_manifest(manifest, root)
    return manifest
