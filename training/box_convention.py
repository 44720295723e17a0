"""Convert boxes drawn in another labelling convention into ours (whole-head boxes).

Hard Hat Workers, and so our models, box the whole head: a `helmet` box covers the hard hat and
the face, a `head` box the whole bare head. Other sources box less: Construction Site Safety boxes
the hat only (`Hardhat`) and the top of the head (`NO-Hardhat`). Training on both conventions at
once teaches the model two answers for one object, so a source's boxes are grown into ours:
width and height are scaled per class, the box stays centred horizontally and keeps its top edge
(the top of the hat or hair is where both conventions agree).

The factors are measured, not guessed: `fit_growth` compares a source's boxes with the boxes a
whole-head model finds on the same heads (Construction Site Safety, with siteguard-ppe-v1.1:
hat-only x1.12 wide, x1.68 high; hair-only x1.17, x2.07 — docs/benchmarks.md).

Example:
    >>> growth = parse_box_growth("helmet=1.12x1.68,head=1.17x2.07")
    >>> grow_boxes(np.array([[1, 0.5, 0.1, 0.1, 0.1]]), growth, ("head", "helmet"))
    array([[1.    , 0.5   , 0.134 , 0.112 , 0.168 ]])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


class BoxConventionError(ValueError):
    """A `--grow-boxes` text is malformed or names a class the dataset does not have."""


def parse_box_growth(text: str | None) -> dict[str, tuple[float, float]]:
    """Parse `helmet=1.12x1.68,head=1.17x2.07` into {class: (width factor, height factor)}."""
    growth: dict[str, tuple[float, float]] = {}
    if not text:
        return growth
    for item in text.split(","):
        item = item.strip()
        if not item:
            continue
        name, sep, factors = item.partition("=")
        width, x, height = factors.strip().lower().partition("x")
        try:
            pair = (float(width), float(height))
        except ValueError:
            pair = (0.0, 0.0)
        if not sep or not name.strip() or not x or not all(0.2 <= f <= 10 for f in pair):
            raise BoxConventionError(
                f"box growth {item!r} is not CLASS=WIDTHxHEIGHT with factors in 0.2..10, "
                "e.g. helmet=1.12x1.68"
            )
        growth[name.strip()] = pair
    return growth


def grow_boxes(
    rows: np.ndarray, growth: Mapping[str, tuple[float, float]], names: Sequence[str]
) -> np.ndarray:
    """Rows (class, cx, cy, w, h; normalised, class ids index `names`) with boxes of the classes
    in `growth` scaled about their top-centre and clipped to the image."""
    unknown = set(growth) - set(names)
    if unknown:
        raise BoxConventionError(
            f"--grow-boxes names classes not in the output: {', '.join(sorted(unknown))} "
            f"(classes: {', '.join(names)})"
        )
    if not len(rows) or not growth:
        return rows
    out = rows.astype(float).copy()
    for name, (fw, fh) in growth.items():
        sel = out[:, 0] == names.index(name)
        if not sel.any():
            continue
        cx, cy, w, h = out[sel, 1], out[sel, 2], out[sel, 3], out[sel, 4]
        x1, x2 = cx - w * fw / 2, cx + w * fw / 2
        y1, y2 = cy - h / 2, cy - h / 2 + h * fh
        x1, x2 = x1.clip(0, 1), x2.clip(0, 1)
        y1, y2 = y1.clip(0, 1), y2.clip(0, 1)
        out[sel, 1], out[sel, 2] = (x1 + x2) / 2, (y1 + y2) / 2
        out[sel, 3], out[sel, 4] = x2 - x1, y2 - y1
    return out
