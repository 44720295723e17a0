"""The person-level figures on a hand-made scene, so each rule of the definition is pinned."""

from __future__ import annotations

import numpy as np
import pytest

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
    # that worker and helmet@600 claims nobody: neither raises anything (both are stray helmets,
    # which only the strict figure counts); person is no worker.
    assert tally.figures() == {
        "worker_accuracy": round(1 / (3 + 1), 4),
        "strict_worker_accuracy": round(1 / (3 + 1 + 2), 4),
        "violation_precision": round(1 / 3, 4),
        "violation_recall": 1.0,
        "workers": 3,
        "false_alarms": 1,
        "stray_helmets": 2,
        "matching": "iou",
    }


def test_higher_confidence_claims_first_and_iou_below_half_is_no_match() -> None:
    tally = WorkerTally()
    gt, gt_names = _boxes(0), np.array(["helmet"])
    det = np.array([[0, 10, 20, 30], [12, 10, 32, 30]], dtype=np.float32)  # second: IoU 0.25
    tally.update(gt, gt_names, det, np.array(["helmet", "head"]), np.array([0.5, 0.9]))
    assert tally.right == 1 and tally.false_alarms == 1
    tally.update(_boxes(), np.array([], dtype=str), _boxes(), np.array([], dtype=str), np.array([]))
    assert tally.figures()["violation_precision"] == 0.0 and tally.figures()["workers"] == 1


def test_coverage_matching_accepts_a_whole_head_box_on_a_hat_only_label() -> None:
    # A hat-only label (the top 12 px of a 20x30 head) and the model's whole-head box: IoU 0.4,
    # so IoU matching calls the worker missed and the detection a false alarm; coverage matches.
    hat = np.array([[0, 0, 20, 12]], dtype=np.float32)
    head = np.array([[0, 0, 20, 30]], dtype=np.float32)
    for matching, right, false_alarms in (("iou", 0, 1), ("coverage", 1, 0)):
        tally = WorkerTally(matching)
        tally.update(hat, np.array(["head"]), head, np.array(["head"]), np.array([0.9]))
        assert (tally.right, tally.false_alarms) == (right, false_alarms), matching


def test_coverage_matching_refuses_a_box_around_a_whole_group() -> None:
    # One box over five heads covers each of them fully, but its IoU with any one is below 0.1.
    heads = _boxes(0, 100, 200, 300, 400)
    group = np.array([[0, 0, 420, 240]], dtype=np.float32)
    tally = WorkerTally("coverage")
    tally.update(heads, np.array(["head"] * 5), group, np.array(["head"]), np.array([0.9]))
    assert tally.right == 0 and tally.false_alarms == 1


def test_unknown_matching_is_refused() -> None:
    tally = WorkerTally("centre")
    with pytest.raises(ValueError, match="unknown matching"):
        tally.update(_boxes(0), np.array(["head"]), _boxes(0), np.array(["head"]), np.ones(1))
