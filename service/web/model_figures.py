"""What the Model accuracy page shows of each version's registered figures (issue 19).

- Per-class AP50 of the classes a rule judges (a bare head, a hard hat; harness and vest when a
  model has them) instead of the all-class mAP50, which a rarely labelled `person` class drags
  far below the figures that decide alerts (0.64 beside head 0.93 and helmet 0.96).
- The figures measured on a second data set (`metrics.cross_source`, footage from another
  source), when a version carries them.
- How much stands behind each field figure: the held-back frames and workers, the number of
  reviews. Field precision from fewer than `MIN_REVIEWS` reviews is shown as a count, not as a
  percentage ("50 % from 2 reviews" is not a result), and stays off the chart.

The figure definitions are training/worker_metrics.py's; nothing here recomputes them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from siteguard.kinds import JUDGED_CLASSES

MIN_REVIEWS = 30
# JUDGED_CLASSES: the classes a rule reads (missing, then worn, kind by kind: head, helmet,
# no_harness, harness, no_vest, vest); `person` only places body-worn PPE, not judged alone.


def _number(node: Any, *path: str) -> float | None:
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return float(node) if isinstance(node, int | float) and not isinstance(node, bool) else None


def _count(node: Any, *path: str) -> int | None:
    value = _number(node, *path)
    return None if value is None else int(value)


@dataclass(frozen=True)
class VersionFigures:
    class_ap50: dict[str, float]
    cross_source: float | None  # worker accuracy on the second data set
    cross_source_recall: float | None  # bare heads found there: a site manager's first number
    cross_source_images: int | None
    cross_source_data: str | None
    field_images: int | None
    field_workers: int | None

    def ap50(self, name: str) -> float | None:
        return self.class_ap50.get(name)


def version_figures(metrics: dict[str, Any] | None) -> VersionFigures:
    metrics = metrics or {}
    bench = metrics.get("benchmark") if isinstance(metrics.get("benchmark"), dict) else metrics
    per_class = bench.get("per_class") if isinstance(bench.get("per_class"), dict) else {}
    class_ap50 = {
        name: value
        for name in JUDGED_CLASSES
        if (value := _number(per_class, name, "ap50")) is not None
    }
    cross = metrics.get("cross_source") if isinstance(metrics.get("cross_source"), dict) else {}
    data = cross.get("data")
    return VersionFigures(
        class_ap50=class_ap50,
        cross_source=_number(cross, "worker_accuracy"),
        cross_source_recall=_number(cross, "violation_recall"),
        cross_source_images=_count(cross, "images"),
        cross_source_data=str(data) if data else None,
        field_images=_count(metrics, "field", "images"),
        field_workers=_count(metrics, "field", "workers"),
    )


def shown_classes(figures: Iterable[VersionFigures]) -> list[str]:
    """The judged classes any version has an AP50 for, in JUDGED_CLASSES order."""
    present = {name for f in figures for name in f.class_ap50}
    return [name for name in JUDGED_CLASSES if name in present]


def enough_reviews(reviewed: int) -> bool:
    return reviewed >= MIN_REVIEWS
