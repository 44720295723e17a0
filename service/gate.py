"""The promotion gate: a candidate goes live only if it is no worse than the active model.

Rules (tolerances in the service settings, as fractions: 0.01 = one point):

- benchmark: `map50` and `worker_accuracy` on the fixed benchmark split may not drop by more
  than `promotion_tolerance` below the active model's;
- field: `worker_accuracy` on the held-back field samples must improve or hold (at most
  `promotion_field_tolerance` below). Skipped, and said so, when no field samples were held back.
- audit: `violation_recall` and `worker_accuracy` on labelled audit frames (random frames a
  detector sent, labelled by trainers: the figures that see missed bare heads) may not drop by
  more than `promotion_audit_tolerance`. The candidate's come from the retrain, on the held-back
  labelled audit frames (`metrics.audit`). The reference is the active model measured by the
  same retrain on the same frames (`metrics.baseline.audit`) when that base is the active model;
  otherwise the active model's own field figures from the audit frames it processed on site
  (`active_audit`, service/field.py: not the same frames, and the check says so). Skipped, and
  said so, when either side has none. Every audit check's note names the frames it used.

Figures are only compared when measured on the same data. `siteguard retrain` measures the base
model beside the candidate (`metrics.baseline`); when that base is the active model those figures
are the reference. Otherwise the active model's own benchmark figures are used if they describe
the same split of the same data, and field figures cannot be compared (the gate refuses: re-run
the retrain against the active model).

Example:
    >>> result = check_gate(candidate.metrics, active.version, active.metrics, tolerance=0.01)
    >>> result.ok, [c.name for c in result.checks if not c.ok]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

BENCHMARK_KEYS = ("map50", "worker_accuracy")
FIELD_KEY = "worker_accuracy"
AUDIT_KEYS = ("violation_recall", "worker_accuracy")


@dataclass(frozen=True)
class GateCheck:
    name: str
    ok: bool
    candidate: float | None = None
    reference: float | None = None
    note: str = ""


@dataclass
class GateResult:
    ok: bool
    active_version: str | None
    reference: str
    tolerance: float
    field_tolerance: float
    checks: list[GateCheck] = field(default_factory=list)
    audit_tolerance: float = 0.02

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def failures(self) -> str:
        return "; ".join(f"{c.name}: {c.note}" for c in self.checks if not c.ok)


def _figure(block: Any, key: str) -> float | None:
    if not isinstance(block, dict):
        return None
    value = block.get(key)
    return float(value) if isinstance(value, int | float) else None


def _same_data(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a.get(k) == b.get(k) for k in ("data", "split", "images"))


def _compare(name: str, cand: float | None, ref: float | None, tol: float) -> GateCheck:
    if ref is None:
        return GateCheck(name, True, cand, ref, "not measured for the active model; skipped")
    if cand is None:
        return GateCheck(name, False, cand, ref, "the candidate has no such figure")
    ok = cand >= ref - tol - 1e-9
    note = f"{cand:.4f} vs {ref:.4f} (tolerance {tol:.4f})"
    return GateCheck(name, ok, cand, ref, note if ok else f"regressed: {note}")


def _audit_checks(
    candidate: dict[str, Any],
    baseline: dict[str, Any],
    active_version: str,
    active_audit: dict[str, Any] | None,
    tolerance: float,
) -> list[GateCheck]:
    """The audit-frame checks (module docstring); each note says which frames it used."""
    cand = candidate.get("audit")
    if not isinstance(cand, dict) or not cand.get("images"):
        return [GateCheck("audit", True, note="no labelled audit frames held back; skipped")]
    held = f"{cand['images']} held-back audit frames ({cand.get('workers', '?')} workers)"
    same = baseline.get("audit") if baseline.get("version") == active_version else None
    if isinstance(same, dict) and same.get("images"):
        ref, used = same, f"audit frames: the same {held} for both"
    elif isinstance(active_audit, dict) and active_audit.get("frames"):
        ref = active_audit
        used = (
            f"audit frames: candidate on {held}; {active_version} on the "
            f"{active_audit['frames']} labelled audit frames it processed on site "
            f"({active_audit.get('workers', '?')} workers), not the same frames"
        )
    else:
        note = f"{active_version} has no audit figures; skipped (candidate: {held})"
        return [GateCheck("audit", True, note=note)]
    checks = []
    per_class = cand.get("per_class")
    for key in AUDIT_KEYS:
        name = f"audit.{key}"
        if key == "violation_recall" and isinstance(per_class, dict) and "head" not in per_class:
            checks.append(GateCheck(name, True, note=f"no labelled bare heads; skipped ({used})"))
            continue
        check = _compare(name, _figure(cand, key), _figure(ref, key), tolerance)
        checks.append(GateCheck(name, check.ok, check.candidate, check.reference,
                                f"{check.note}; {used}"))  # fmt: skip
    return checks


def check_gate(
    candidate: dict[str, Any],
    active_version: str | None,
    active: dict[str, Any] | None,
    tolerance: float = 0.01,
    field_tolerance: float = 0.0,
    *,
    active_audit: dict[str, Any] | None = None,
    audit_tolerance: float = 0.02,
) -> GateResult:
    """Compare a candidate's metrics with the active model's (see the module docstring).
    `active_audit`: the active model's field figures from audit frames (service/field.py)."""
    if active_version is None:
        return GateResult(
            True,
            None,
            "no active model",
            tolerance,
            field_tolerance,
            audit_tolerance=audit_tolerance,
        )
    bench = candidate.get("benchmark")
    baseline = candidate.get("baseline") if isinstance(candidate.get("baseline"), dict) else {}
    result = GateResult(
        False, active_version, "", tolerance, field_tolerance, audit_tolerance=audit_tolerance
    )
    if not isinstance(bench, dict) or not bench:
        result.reference = "none"
        result.checks.append(GateCheck("benchmark", False, note="the candidate has no figures"))
        return result
    if baseline.get("version") == active_version:
        result.reference = f"{active_version} measured beside the candidate"
        ref_bench, ref_field = baseline.get("benchmark") or {}, baseline.get("field")
    else:
        result.reference = f"{active_version}'s registered figures"
        ref_bench, ref_field = (active or {}).get("benchmark") or {}, None
        if not _same_data(bench, ref_bench):
            result.checks.append(
                GateCheck(
                    "benchmark",
                    False,
                    note="the candidate and the active model were evaluated on different data; "
                    "re-run `siteguard retrain --base-model` with the active model",
                )
            )
            return result
    for key in BENCHMARK_KEYS:
        check = _compare(
            f"benchmark.{key}", _figure(bench, key), _figure(ref_bench, key), tolerance
        )
        result.checks.append(check)
    cand_field = candidate.get("field")
    if not isinstance(cand_field, dict) or not cand_field.get("images"):
        result.checks.append(GateCheck(f"field.{FIELD_KEY}", True, note="no held-back samples"))
    elif not isinstance(ref_field, dict):
        note = "no field figures of the active model on the same samples; re-run the retrain"
        result.checks.append(GateCheck(f"field.{FIELD_KEY}", False, note=note))
    else:
        cand, ref = _figure(cand_field, FIELD_KEY), _figure(ref_field, FIELD_KEY)
        result.checks.append(_compare(f"field.{FIELD_KEY}", cand, ref, field_tolerance))
    result.checks += _audit_checks(
        candidate, baseline, active_version, active_audit, audit_tolerance
    )
    result.ok = all(c.ok for c in result.checks)
    return result
