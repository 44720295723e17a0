"""Split a dataset by group (one clip, one source photo), never by image.

Frames of one clip look alike: with one frame in train and its neighbour in validation, figures
flatter the model. A groups CSV (`image,group`; image by file stem) assigns every image a group,
and each group lands in one split, chosen by a hash of the group name and a seed, so the split is
the same on every machine and adding images never moves an existing group.

Example:
    >>> fractions = parse_split_fractions("train=0.6,val=0.2,test=0.2")
    >>> split_of_group("g017", fractions, seed=0) in fractions
    True
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

from training.data_yaml import SPLITS


class GroupSplitError(ValueError):
    """The groups file or the split fractions are unusable (message says which and why)."""


def parse_split_fractions(text: str) -> dict[str, float]:
    """`train=0.6,val=0.2,test=0.2` -> {split: fraction}; splits known, fractions sum to 1."""
    fractions: dict[str, float] = {}
    for item in text.split(","):
        split, sep, value = item.strip().partition("=")
        try:
            fraction = float(value)
        except ValueError:
            fraction = -1.0
        if not sep or split not in SPLITS or not 0 < fraction <= 1:
            raise GroupSplitError(
                f"split fraction {item.strip()!r} is not SPLIT=FRACTION with SPLIT one of "
                f"{', '.join(SPLITS)} and 0 < FRACTION <= 1"
            )
        fractions[split] = fraction
    if abs(sum(fractions.values()) - 1) > 1e-6:
        raise GroupSplitError(f"split fractions must sum to 1, got {sum(fractions.values()):g}")
    return fractions


def read_groups(path: Path) -> dict[str, str]:
    """{image stem: group} from a CSV with columns `image` and `group`."""
    if not path.is_file():
        raise GroupSplitError(f"groups file not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or not {"image", "group"} <= set(reader.fieldnames):
            raise GroupSplitError(f"{path}: needs the columns image,group")
        groups = {}
        for line, row in enumerate(reader, start=2):
            if not row["image"] or not row["group"]:
                raise GroupSplitError(f"{path}:{line}: empty image or group")
            groups[Path(row["image"]).stem] = row["group"]
    return groups


def split_of_group(group: str, fractions: dict[str, float], seed: int = 0) -> str:
    """The split a group belongs to: a uniform number from its hash, cut by the fractions."""
    digest = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    edge = 0.0
    for split, fraction in fractions.items():
        edge += fraction
        if position < edge:
            return split
    return next(reversed(fractions))
