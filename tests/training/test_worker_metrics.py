"""The person-level figures on a hand-made scene, so each rule of the definition is pinned."""

from __future__ import annotations

import numpy as np

from training.worker_metrics import WorkerTally


def _boxes(*xs: float) -> np.ndarray:
    return np.array([[x, 10, x + 20, 30] for x in xs], dtype=np.float32).reshape(-1, 4)


def test_each_rule_of_the_definition() -> None:
    tally = WorkerTally()
    # Ground truth: a bare head at 0, helmet wearers at 100 and 200, a person at 300.
    gt = _boxes(0, 100, 200, 300)
    gt_names = np.array(["head", "helmet", "helmet", "person"])
    det = _boxes(1, 101, 500, 2, 600, 301)
    det_names = np.array(["head", "head", "head", "helmet", "helmet", "person"])
    conf = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.9], dtype=np.float32)
    tally.update(gt, gt_names, det, det_names, conf)
    # head@0 right; helmet@100 claimed by a head (wrong status, a false violation); helmet@200
    # missed (wrong); head@500 claims nobody (false alarm); helmet@2 comes after head@0 claimed
    # that worker and helmet@600 claims nobody: neither raises anything; person is no worker.
    assert tally.figures() == {
        "worker_accuracy": round(1 / (3 + 1), 4),
        "violation_precision": round(1 / 3, 4),
        "violation_recall": 1.0,
        "workers": 3,
        "false_alarms": 1,
    }


def test_higher_confidence_claims_first_and_iou_below_half_is_no_match() -> None:
    tally = WorkerTally()
    gt, gt_names = _boxes(0), np.array(["helmet"])
    det = np.array([[0, 10, 20, 30], [12, 10, 32, 30]], dtype=np.float32)  # second: IoU 0.25
    tally.update(gt, gt_names, det, np.array(["helmet", "head"]), np.array([0.5, 0.9]))
    assert tally.right == 1 and tally.false_alarms == 1
    tally.update(_boxes(), np.array([], dtype=str), _boxes(), np.array([], dtype=str), np.array([]))
    assert tally.figures()["violation_precision"] == 0.0 and tally.figures()["workers"] == 1
