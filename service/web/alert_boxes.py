"""Which detection of the snapshot an alert is about.

A violation stores every detection of its frame (`boxes`, docs/contract.md) and the track of the
worker it was raised for (`track_id`); the detector writes that track on each tracked box. So
the alert's own box is the box carrying the alert's track. Events without track ids on their
boxes (older detectors, other clients) fall back to the one box whose confidence is the
alert's: the detector sends both from the same detection, rounded alike. No unique match means
"not recorded", never a guess.

    >>> own_box_index(17, 0.81, [{"class": "head", "confidence": 0.81, "track_id": 17}])
    0
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

CONFIDENCE_TOLERANCE = 5e-5  # the detector rounds both figures to 4 decimals


@dataclass(frozen=True)
class BoxView:
    """A detection as the detail page draws it."""

    class_name: str
    confidence: float
    xyxy: tuple[float, float, float, float]
    own: bool


def own_box_index(
    track_id: int | None, confidence: float, boxes: Sequence[dict[str, Any]]
) -> int | None:
    """The index of the alert's own detection in `boxes`, or None when it cannot be told."""
    if track_id is not None:
        tracked = [i for i, b in enumerate(boxes) if b.get("track_id") == track_id]
        if tracked:
            return tracked[0]
    same = [
        i
        for i, b in enumerate(boxes)
        if isinstance(b.get("confidence"), int | float)
        and abs(float(b["confidence"]) - confidence) <= CONFIDENCE_TOLERANCE
    ]
    return same[0] if len(same) == 1 else None


def box_views(
    track_id: int | None, confidence: float, boxes: Sequence[dict[str, Any]]
) -> list[BoxView]:
    """Drawable boxes (well-formed `xyxy` only), the alert's own last so it is drawn on top."""
    own = own_box_index(track_id, confidence, boxes)
    views = []
    for i, box in enumerate(boxes):
        xyxy = box.get("xyxy")
        if not (isinstance(xyxy, list | tuple) and len(xyxy) == 4):
            continue
        if not all(isinstance(v, int | float) for v in xyxy):
            continue
        conf = box.get("confidence")
        views.append(
            BoxView(
                class_name=str(box.get("class", "")),
                confidence=float(conf) if isinstance(conf, int | float) else 0.0,
                xyxy=(float(xyxy[0]), float(xyxy[1]), float(xyxy[2]), float(xyxy[3])),
                own=i == own,
            )
        )
    return sorted(views, key=lambda v: v.own)
