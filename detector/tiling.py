"""Tiled inference for small and distant workers: an overlapping grid of tiles plus the full frame.

A 1280x720 frame reaches a 640 px model at half size, so a 12 px head far from the camera is
6 px to the model, below what it finds. Cut into a 2x2 grid with 20 % overlap, each tile
(711x400) is fed at the same model input (640x384 with rect), i.e. `grid - (grid-1)*overlap` =
1.8x larger than in the full-frame pass. The full-frame pass is kept beside the tiles (large
close-up heads are cut by tile borders), and everything is merged with the detector's own
class-exclusive NMS (`OnnxDetector.nms`: `head` and `helmet` compete), so per-class thresholds
downstream (tracker, `siteguard evaluate`) see the same classes and confidences as without tiles.
Cost: `grid**2 + full_frame` model runs per frame (5 for 2x2 + full); see docs/benchmarks.md.

Own code rather than supervision's `InferenceSlicer` (supervision 0.31 in the venv), because:
- the slicer takes slice and overlap sizes in pixels; a camera option is better expressed as a
  grid that fits any resolution, and the last slice it cuts may be smaller than the others;
- it runs the callback per slice (or per batch of one image's slices), while the detector puts
  the full frame, all tiles and the other cameras' frames in one onnxruntime call;
- its merge is supervision's per-class NMS/NMM, which would keep a `head` and a `helmet` on the
  same person; with its filter off, what is left (offsets, crop, shift) is the few lines below;
- it keeps boxes cut by a tile border; here they are dropped when the full frame runs too (the
  neighbouring tile holds any object smaller than the overlap whole, the full frame the rest),
  so a half head at a seam never becomes a second, unmatched `head` (a false alarm).

Example:
    >>> tiling = Tiling(grid=2, overlap=0.2)
    >>> tiling.windows(1280, 720).tolist()
    [[0, 0, 712, 400], [568, 0, 1280, 400], [0, 320, 712, 720], [568, 320, 1280, 720]]
    >>> [detections] = detector.predict([frame], tiling=tiling)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import supervision as sv

MAX_GRID = 4  # 17 model runs per frame; more is never worth it on an edge box
# A tile box whose edge lies this close (frame pixels) to an inner tile border was cut by it.
EDGE_MARGIN_PX = 2.0


@dataclass(frozen=True)
class Tiling:
    """`grid` x `grid` tiles, each sharing `overlap` of its width/height with its neighbour,
    plus the whole frame when `full_frame` is set. Raises ValueError for impossible values."""

    grid: int = 2
    overlap: float = 0.2
    full_frame: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.grid, bool) or not isinstance(self.grid, int):
            raise ValueError(f"tiling grid must be an integer, got {self.grid!r}")
        if not 2 <= self.grid <= MAX_GRID:
            raise ValueError(
                f"tiling grid must be 2 to {MAX_GRID} (tiles per side), got {self.grid}"
            )
        if not 0.0 <= self.overlap < 0.5:
            raise ValueError(f"tiling overlap must be in [0, 0.5), got {self.overlap}")

    @property
    def runs(self) -> int:
        """Model runs per frame."""
        return self.grid * self.grid + int(self.full_frame)

    @property
    def zoom(self) -> float:
        """How much larger a head reaches the model in a tile than in the full-frame pass."""
        return self.grid - (self.grid - 1) * self.overlap

    def windows(self, width: int, height: int) -> np.ndarray:
        """The tiles as (n, 4) int xyxy in frame pixels, row by row."""
        xs, ys = _starts(width, self.grid, self.overlap), _starts(height, self.grid, self.overlap)
        rows = [[x0, y0, x1, y1] for y0, y1 in ys for x0, x1 in xs]
        return np.array(rows, dtype=int).reshape(-1, 4)

    def describe(self) -> str:
        full = " + full frame" if self.full_frame else ""
        return f"{self.grid}x{self.grid} tiles, overlap {self.overlap:g}{full}"


def _starts(size: int, grid: int, overlap: float) -> list[tuple[int, int]]:
    """`grid` equal spans of one axis that share `overlap` of their length, first at 0, last at
    `size` (rounding spreads the few pixels over the overlaps)."""
    span = min(size, math.ceil(size / (grid - (grid - 1) * overlap)))
    return [(s, s + span) for s in (round(i * (size - span) / (grid - 1)) for i in range(grid))]


def views(frame: np.ndarray, tiling: Tiling) -> tuple[list[np.ndarray], np.ndarray]:
    """The images to run for one frame (full frame first, then tiles; tiles are numpy views,
    not copies) and their windows (n, 4) xyxy in frame pixels."""
    height, width = frame.shape[:2]
    windows = tiling.windows(width, height)
    images = [frame[y0:y1, x0:x1] for x0, y0, x1, y1 in windows]
    if tiling.full_frame:
        images.insert(0, frame)
        windows = np.concatenate([[[0, 0, width, height]], windows]).astype(int)
    return images, windows


def cut_by_border(xyxy: np.ndarray, window: np.ndarray, width: int, height: int) -> np.ndarray:
    """Which boxes (frame pixels) touch a border of `window` that is inside the frame."""
    x0, y0, x1, y1 = window
    m = EDGE_MARGIN_PX
    cut = np.zeros(len(xyxy), dtype=bool)
    if x0 > 0:
        cut |= xyxy[:, 0] <= x0 + m
    if y0 > 0:
        cut |= xyxy[:, 1] <= y0 + m
    if x1 < width:
        cut |= xyxy[:, 2] >= x1 - m
    if y1 < height:
        cut |= xyxy[:, 3] >= y1 - m
    return cut


def merge(
    parts: Sequence[sv.Detections],
    windows: np.ndarray,
    width: int,
    height: int,
    tiling: Tiling,
    nms: Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray],
) -> sv.Detections:
    """One frame's detections from its views' (each in its own view's pixels, in `views` order):
    shifted to frame pixels, tile boxes cut by an inner border dropped when the full frame ran
    too, then `nms(xyxy, confidence, class_id) -> kept indices` over the union."""
    shifted = []
    for i, (part, window) in enumerate(zip(parts, windows, strict=True)):
        if not len(part):
            continue
        moved = copy.copy(part)  # the caller's stays in view pixels
        moved.xyxy = part.xyxy + window[[0, 1, 0, 1]].astype(part.xyxy.dtype)
        if tiling.full_frame and i > 0:  # a tile (`views` puts the full frame first)
            moved = moved[~cut_by_border(moved.xyxy, window, width, height)]
        shifted.append(moved)
    if not shifted:
        return parts[0][np.zeros(len(parts[0]), dtype=bool)]
    merged = sv.Detections.merge(shifted)
    keep = nms(merged.xyxy, merged.confidence, merged.class_id)
    return merged[np.asarray(keep, dtype=int)]
