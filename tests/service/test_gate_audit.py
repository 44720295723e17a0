"""The promotion gate's audit-frame checks (service/gate.py), as a pure function, and the field
figures' arithmetic on hand-made frames (service/field.py)."""

from __future__ import annotations

from typing import Any

from service.field import add_frame, figures
from service.gate import check_gate
from training.worker_metrics import WorkerTally

BENCH = {"map50": 0.8, "worker_accuracy": 0.8, "data": "b", "split": "test", "images": 10}


def _audit(recall: float, accuracy: float, heads: bool = True) -> dict[str, Any]:
    per_class = {"head": {"instances": 4}} if heads else {"helmet": {"instances": 4}}
    return {"images": 5, "workers": 12, "worker_accuracy": accuracy,
            "violation_recall": recall, "per_class": per_class}  # fmt: skip


def _names(result: Any, ok: bool | None = None) -> list[str]:
    return [c.name for c in result.checks if ok is None or c.ok == ok]


def test_without_audit_figures_the_gate_is_as_before() -> None:
    result = check_gate({"benchmark": BENCH}, "live", {"benchmark": BENCH})
    assert result.ok and _names(result) == [
        "benchmark.map50",
        "benchmark.worker_accuracy",
        "field.worker_accuracy",
        "audit",
    ]
    assert "skipped" in result.checks[-1].note


def test_a_drop_beyond_the_tolerance_refuses_and_each_note_names_its_frames() -> None:
    live = {"frames": 40, "workers": 90, "violation_recall": 0.8, "worker_accuracy": 0.9}
    cand = {"benchmark": BENCH, "audit": _audit(0.75, 0.89)}
    result = check_gate(cand, "live", {"benchmark": BENCH}, active_audit=live, audit_tolerance=0.02)
    assert not result.ok and _names(result, ok=False) == ["audit.violation_recall"]
    for check in result.checks[-2:]:
        assert "candidate on 5 held-back audit frames (12 workers)" in check.note
        assert "live on the 40 labelled audit frames it processed on site" in check.note
    loose = check_gate(cand, "live", {"benchmark": BENCH}, active_audit=live, audit_tolerance=0.05)
    assert loose.ok


def test_the_same_frames_measured_by_the_retrain_come_first() -> None:
    live = {"frames": 40, "workers": 90, "violation_recall": 0.2, "worker_accuracy": 0.2}
    baseline = {"version": "live", "benchmark": BENCH, "audit": _audit(0.9, 0.9)}
    cand = {"benchmark": BENCH, "audit": _audit(0.8, 0.9), "baseline": baseline}
    result = check_gate(cand, "live", {}, active_audit=live)
    [recall] = [c for c in result.checks if c.name == "audit.violation_recall"]
    assert not recall.ok and recall.reference == 0.9
    assert "the same 5 held-back audit frames" in recall.note
    # A baseline that is not the live model is no reference: the live model's own figures are.
    other = {**cand, "baseline": {**baseline, "version": "older"}}
    result = check_gate(other, "live", {"benchmark": BENCH}, active_audit=live)
    assert result.ok and "not the same frames" in result.checks[-1].note


def test_nothing_to_compare_is_skipped_and_said() -> None:
    cand = {"benchmark": BENCH, "audit": _audit(0.1, 0.1)}
    result = check_gate(cand, "live", {"benchmark": BENCH}, active_audit=None)
    assert result.ok and "live has no audit figures; skipped" in result.checks[-1].note
    no_heads = {"benchmark": BENCH, "audit": _audit(0.0, 0.9, heads=False)}
    live = {"frames": 40, "workers": 90, "violation_recall": 0.8, "worker_accuracy": 0.9}
    result = check_gate(no_heads, "live", {"benchmark": BENCH}, active_audit=live)
    [recall] = [c for c in result.checks if c.name == "audit.violation_recall"]
    assert recall.ok and "no labelled bare heads" in recall.note
    live_without_heads = {**live, "violation_recall": None}
    result = check_gate(
        {"benchmark": BENCH, "audit": _audit(0.3, 0.9)}, "live", {"benchmark": BENCH},
        active_audit=live_without_heads,
    )  # fmt: skip
    assert result.ok


def test_field_figures_come_from_worker_metrics_with_their_counts() -> None:
    tally = WorkerTally()
    head = {"class": "head", "confidence": 0.9, "xyxy": [0, 0, 10, 10]}
    helmet = {"class": "helmet", "confidence": 0.8, "xyxy": [20, 0, 30, 10]}
    add_frame(tally, [head, helmet], [head, {**helmet, "class": "head"}])  # a head read as helmet
    add_frame(tally, [], [])  # nothing there, nothing seen
    out = figures(tally, frames=2, to_label=3)
    assert (out.frames, out.to_label, out.workers, out.heads, out.head_detections) == (
        2,
        3,
        2,
        2,
        1,
    )
    assert (out.worker_accuracy, out.violation_precision, out.violation_recall) == (0.5, 1.0, 0.5)
    empty = figures(WorkerTally(), frames=4)  # four empty frames: nothing to measure
    assert empty.worker_accuracy is None and empty.violation_recall is None
    assert empty.violation_precision is None and empty.frames == 4
