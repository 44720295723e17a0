"""Person-level figures that a site manager reads: worker accuracy, violation precision/recall.

Definitions (the ones `siteguard evaluate` reports; docs/contract.md "Evaluation figures"):

- A *worker* is a ground-truth `head` (no helmet) or `helmet` box.
- A *worker detection* is a `head` or `helmet` detection at or above the operating threshold.
- Matching, per image: worker detections in descending confidence each claim the unclaimed
  worker with the highest IoU among those it *matches* (the class is ignored while matching, so
  a helmet-wearer detected as `head` is a match with the wrong status, not a miss). Two rules
  say what matches (`matching`, reported with every figure):
  - `iou` (default): IoU >= 0.5. Right when labels and model share one box convention.
  - `coverage`: the detection covers >= 50 % of the labelled box and IoU >= 0.1. Survives a
    source that boxes less of the head (hat only, hair only; see `training/box_convention.py`)
    while a box around a whole group still matches no one. The independent evaluator of the
    kept-aside cross-source set matches this way.
- A worker's helmet status is *right* when a detection of the same class claimed it; a worker
  no detection claimed is not right (missed).
- A *false alarm* is a `head` detection that claimed no worker (a violation raised on nobody).
  Unclaimed `helmet` detections raise nothing and are not counted.
- A *stray helmet* is a `helmet` detection that claimed no worker. It raises no alert, but an
  evaluator that counts every unmatched box as a false alarm (the kept-aside set's) counts it.
- worker_accuracy = right / (workers + false_alarms);
  strict_worker_accuracy = right / (workers + false_alarms + stray_helmets)
- violation_precision = `head` detections that claimed a ground-truth `head` / all `head`
  detections; violation_recall = ground-truth `head`s claimed by a `head` detection / all
  ground-truth `head`s. Both are 0.0 when their denominator is 0 (sklearn's zero_division=0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import supervision as sv

VIOLATION, COMPLIANT = "head", "helmet"
WORKER_CLASSES = (VIOLATION, COMPLIANT)
MATCH_IOU = 0.5
MATCHINGS = ("iou", "coverage")
COVERAGE_MIN, COVERAGE_MIN_IOU = 0.5, 0.1


def match_scores(det_xyxy: np.ndarray, gt_xyxy: np.ndarray, matching: str) -> np.ndarray:
    """(detections, workers) IoU where the pair matches under `matching`, else -1."""
    iou = sv.box_iou_batch(det_xyxy, gt_xyxy)
    if matching == "iou":
        return np.where(iou >= MATCH_IOU, iou, -1.0)
    if matching != "coverage":
        raise ValueError(f"unknown matching {matching!r}; use one of {', '.join(MATCHINGS)}")
    top_left = np.maximum(det_xyxy[:, None, :2], gt_xyxy[None, :, :2])
    bottom_right = np.minimum(det_xyxy[:, None, 2:], gt_xyxy[None, :, 2:])
    inter = np.prod((bottom_right - top_left).clip(min=0), axis=2)
    gt_area = np.prod((gt_xyxy[:, 2:] - gt_xyxy[:, :2]).clip(min=1e-9), axis=1)
    coverage = inter / gt_area[None, :]
    return np.where((coverage >= COVERAGE_MIN) & (iou >= COVERAGE_MIN_IOU), iou, -1.0)


def _ratio(num: int, den: int) -> float:
    return round(num / den, 4) if den else 0.0


@dataclass
class WorkerTally:
    """Counts accumulated image by image; `figures()` turns them into the reported ratios."""

    matching: str = "iou"
    workers: int = 0
    right: int = 0
    false_alarms: int = 0
    head_detections: int = 0
    head_true: int = 0
    gt_heads: int = 0
    gt_heads_found: int = 0
    stray_helmets: int = 0

    def update(
        self,
        gt_xyxy: np.ndarray,
        gt_names: np.ndarray,
        det_xyxy: np.ndarray,
        det_names: np.ndarray,
        det_conf: np.ndarray,
    ) -> None:
        """Add one image: ground truth and (already thresholded) detections, names as str."""
        gt_keep = np.isin(gt_names, WORKER_CLASSES)
        gt_xyxy, gt_names = gt_xyxy[gt_keep], gt_names[gt_keep]
        det_keep = np.isin(det_names, WORKER_CLASSES)
        det_xyxy, det_names, det_conf = det_xyxy[det_keep], det_names[det_keep], det_conf[det_keep]
        order = np.argsort(-det_conf, kind="stable")
        det_xyxy, det_names = det_xyxy[order], det_names[order]

        self.workers += len(gt_names)
        self.gt_heads += int((gt_names == VIOLATION).sum())
        self.head_detections += int((det_names == VIOLATION).sum())
        claimed_by = np.full(len(gt_names), -1)
        if len(gt_names) and len(det_names):
            scores = match_scores(det_xyxy, gt_xyxy, self.matching)  # (detections, workers)
            for d in range(len(det_names)):
                candidates = np.where(claimed_by < 0, scores[d], -1.0)
                g = int(candidates.argmax())
                if candidates[g] >= 0:
                    claimed_by[g] = d
        claimed_dets = set(claimed_by[claimed_by >= 0].tolist())
        for g, d in enumerate(claimed_by):
            if d < 0:
                continue
            same = det_names[d] == gt_names[g]
            self.right += int(same)
            if det_names[d] == VIOLATION and same:
                self.head_true += 1
                self.gt_heads_found += 1
        unclaimed = [det_names[d] for d in range(len(det_names)) if d not in claimed_dets]
        self.false_alarms += unclaimed.count(VIOLATION)
        self.stray_helmets += unclaimed.count(COMPLIANT)

    def figures(self) -> dict[str, float | int]:
        return {
            "worker_accuracy": _ratio(self.right, self.workers + self.false_alarms),
            "strict_worker_accuracy": _ratio(
                self.right, self.workers + self.false_alarms + self.stray_helmets
            ),
            "violation_precision": _ratio(self.head_true, self.head_detections),
            "violation_recall": _ratio(self.gt_heads_found, self.gt_heads),
            "workers": self.workers,
            "false_alarms": self.false_alarms,
            "stray_helmets": self.stray_helmets,
            "matching": self.matching,
        }
