"""Which file the detector runs: the fp32 export or its int8 variant.

`model.use_int8: auto` (the default) runs the int8 variant when the CPU has VNNI (int8 dot
products in one instruction: Intel Cascade Lake and later, AMD Zen 4 and later), and the int8
file was quantised from the fp32 file the detector is configured with. On such a CPU int8 holds
twice the cameras of fp32 at a measured 0.1-1.3 points of accuracy (docs/benchmarks.md); without
VNNI onnxruntime's int8 kernels can be slower than fp32, so auto stays on fp32 there.

Example (on a VNNI CPU, in the repository):
    >>> choice = choose_model_file(ModelConfig())
    >>> choice.path, choice.int8
    (PosixPath('models/siteguard-ppe-int8.onnx'), True)
    >>> choice.reason
    'auto: the CPU has VNNI and models/siteguard-ppe-int8.onnx is the int8 variant of ...'
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import onnxruntime as ort

from detector.config import ModelConfig
from siteguard.model_versions import INT8_SUFFIX

log = logging.getLogger(__name__)

VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class ModelChoice:
    path: Path
    int8: bool
    reason: str


def cpu_flags(cpuinfo: Path | None = None) -> set[str]:
    """The CPU's feature flags as Linux lists them; empty where /proc/cpuinfo is not there."""
    try:
        text = (cpuinfo or CPUINFO).read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return set()


def cpu_has_vnni(cpuinfo: Path | None = None) -> bool:
    return bool(cpu_flags(cpuinfo) & VNNI_FLAGS)


def model_version(path: Path) -> str | None:
    """`siteguard_version` from an ONNX file's metadata; None when unreadable or unset."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception:  # onnxruntime raises its own exception types
        return None
    return session.get_modelmeta().custom_metadata_map.get("siteguard_version")


def int8_pairs(fp32: Path, int8: Path) -> tuple[bool, str]:
    """Whether `int8` was quantised from `fp32` (their versions are V and V-int8), and why not."""
    if not int8.is_file():
        return False, f"{int8} not found"
    base, variant = model_version(fp32), model_version(int8)
    if base is None or variant is None:
        return False, f"no siteguard_version in {fp32 if base is None else int8}"
    if variant != base + INT8_SUFFIX:
        return False, f"{int8} is {variant}, not the int8 variant of {base}"
    return True, f"{int8} is the int8 variant of {base}"


def choose_model_file(config: ModelConfig, vnni: bool | None = None) -> ModelChoice:
    """The file `config` asks for; `vnni` overrides the CPU check (tests, benchmarks)."""
    if config.use_int8 is False or config.int8_path is None:
        return ModelChoice(config.path, False, "use_int8 is off")
    if config.use_int8 is True:
        return ModelChoice(config.int8_path, True, "use_int8 is on")
    vnni = cpu_has_vnni() if vnni is None else vnni
    if not vnni:
        return ModelChoice(config.path, False, "auto: the CPU has no VNNI, int8 would not pay")
    pairs, why = int8_pairs(config.path, config.int8_path)
    if not pairs:
        return ModelChoice(config.path, False, f"auto: {why}")
    return ModelChoice(config.int8_path, True, f"auto: the CPU has VNNI and {why}")
