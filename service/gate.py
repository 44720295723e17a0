"""The promotion gate: a candidate goes live only if it is no worse than the active model.

Rules (tolerances in the service settings, as fractions: 0.01 = one point):

- benchmark: `map50` and `worker_accuracy` on the fixed benchmark split may not drop by more
  than `promotion_tolerance` below the active model's;
- field: `worker_accuracy` on the held-back field samples must improve or hold (at most
  `promotion_field_tolerance` below). Skipped, and said so, when no field samples were held back.

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


def check_gate(
    candidate: dict[str, Any],
    active_version: str | None,
    active: dict[str, Any] | None,
    tolerance: float = 0.01,
    field_tolerance: float = 0.0,
) -> GateResult:
    """Compare a candidate's metrics with the active model's (see the module docstring)."""
    if active_version is None:
        return GateResult(True, None, "no active model", tolerance, field_tolerance)
    bench = candidate.get("benchmark")
    baseline = candidate.get("baseline") if isinstance(candidate.get("baseline"), dict) else {}
    result = GateResult(False, active_version, "", tolerance, field_tolerance)
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
    result.ok = all(c.ok for c in result.checks)
    return result
