"""Field figures per model version from labelled audit frames (detector/audit.py).

Managers only ever see alerts, so reviews measure precision and nothing else: a bare head the
model missed raises no alert and no review. An audit frame is drawn at random among the frames a
model processed, whatever they show, and a trainer labels every head on it; comparing the
detections that model made on site (stored with the frame, at its operating thresholds) with the
labels gives worker accuracy, violation precision and violation recall in the field.

The figures are `training/worker_metrics.py`'s, the same `WorkerTally` that `siteguard evaluate`
fills (IoU matching): one definition of the metrics. `training.worker_metrics` needs only numpy and
supervision (both in the base install, and the server image carries `training/`); it is the one
module of `training/` the service imports (docs/contract.md, "Python seams").

Every figure comes with what stands behind it (frames, workers, labelled bare heads, bare-head
detections), and a ratio with nothing behind it is None, not 0: a handful of frames is not a result.

Example:
    >>> figures = audit_figures(db, versions=["siteguard-ppe-v1.1"])
    >>> figures["siteguard-ppe-v1.1"].violation_recall, figures["siteguard-ppe-v1.1"].heads
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import AuditFrame
from service.schemas import AuditFigures
from siteguard.model_versions import INT8_SUFFIX
from training.worker_metrics import WorkerTally


def _arrays(boxes: Iterable[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(xyxy, class names, confidences) of stored boxes; a box without 4 coordinates is skipped."""
    rows = [b for b in boxes if isinstance(b.get("xyxy"), list | tuple) and len(b["xyxy"]) == 4]
    xyxy = np.array([[float(c) for c in b["xyxy"]] for b in rows], dtype=np.float32).reshape(-1, 4)
    names = np.array([str(b.get("class", "")) for b in rows], dtype=str)
    conf = np.array([float(b.get("confidence", 1.0)) for b in rows], dtype=np.float32)
    return xyxy, names, conf


def add_frame(tally: WorkerTally, detections: list[dict[str, Any]], labels: list[dict]) -> None:
    """One labelled audit frame: the model's stored detections against the trainer's labels."""
    gt_xyxy, gt_names, _ = _arrays(labels)
    det_xyxy, det_names, det_conf = _arrays(detections)
    tally.update(gt_xyxy, gt_names, det_xyxy, det_names, det_conf)


def figures(tally: WorkerTally, frames: int, to_label: int = 0) -> AuditFigures:
    """The tally's figures with their counts; None where the denominator is 0."""
    out = tally.figures()
    return AuditFigures(
        frames=frames,
        to_label=to_label,
        workers=tally.workers,
        heads=tally.gt_heads,
        head_detections=tally.head_detections,
        false_alarms=tally.false_alarms,
        worker_accuracy=out["worker_accuracy"] if tally.workers + tally.false_alarms else None,
        violation_precision=out["violation_precision"] if tally.head_detections else None,
        violation_recall=out["violation_recall"] if tally.gt_heads else None,
        matching=tally.matching,
    )


def audit_figures(
    db: Session,
    versions: Sequence[str] | None = None,
    site_ids: Sequence[str] | None = None,
) -> dict[str, AuditFigures]:
    """Per model version (those in `versions`, else every one with audit frames), on the sites in
    `site_ids` (None = all): figures from its labelled audit frames, and how many wait.

    Frames of a version's int8 variant (`V-int8`, what a detector on a VNNI CPU runs by default)
    count as frames of `V`: the same weights, quantised, within about a point offline
    (docs/benchmarks.md), and the registry only ever names `V`."""
    stmt = select(
        AuditFrame.model_version, AuditFrame.detections, AuditFrame.labels, AuditFrame.labelled_at
    )
    if versions is not None:
        wanted = [*versions, *(v + INT8_SUFFIX for v in versions)]
        stmt = stmt.where(AuditFrame.model_version.in_(wanted))
    if site_ids is not None:
        stmt = stmt.where(AuditFrame.site_id.in_(list(site_ids)))
    tallies: dict[str, WorkerTally] = defaultdict(WorkerTally)
    frames: dict[str, int] = defaultdict(int)
    waiting: dict[str, int] = defaultdict(int)
    for version, detections, labels, labelled_at in db.execute(stmt):
        version = version.removesuffix(INT8_SUFFIX)
        if labelled_at is None or labels is None:
            waiting[version] += 1
            continue
        add_frame(tallies[version], detections or [], labels)
        frames[version] += 1
    return {
        version: figures(tallies[version], frames[version], waiting[version])
        for version in sorted(set(frames) | set(waiting))
    }
