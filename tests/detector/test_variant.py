"""`model.use_int8: auto` (detector/variant.py): int8 on a VNNI CPU, only for the int8 file of the
configured model, chosen again when the model file changes. Real bundled models throughout."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from detector.config import ModelConfig
from detector.metrics import DetectorMetrics
from detector.reload import ModelManager
from detector.variant import choose_model_file, cpu_has_vnni, int8_pairs, model_version

MODELS = Path(__file__).resolve().parents[2] / "models"
FP32, INT8, OLDER = (
    MODELS / "siteguard-ppe.onnx",
    MODELS / "siteguard-ppe-int8.onnx",
    MODELS / "siteguard-ppe-v1.2.onnx",
)
SHIPPED, OLDER_VERSION = model_version(FP32), model_version(OLDER)  # v1.3 and v1.2 in session 8


def _cpuinfo(tmp_path: Path, flags: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: test CPU\nflags\t\t: fpu sse2 {flags}\n\n")
    return path


def test_vnni_is_read_from_the_cpu_flags(tmp_path: Path) -> None:
    assert cpu_has_vnni(_cpuinfo(tmp_path, "avx2 avx512f avx512_vnni"))
    assert cpu_has_vnni(_cpuinfo(tmp_path, "avx2 avx_vnni"))  # Alder Lake and later
    assert not cpu_has_vnni(_cpuinfo(tmp_path, "avx2 avx512f"))
    assert not cpu_has_vnni(tmp_path / "no-such-file")


def test_auto_runs_int8_only_on_vnni_and_only_the_int8_of_the_configured_model() -> None:
    auto = ModelConfig(path=FP32, int8_path=INT8)
    assert auto.use_int8 == "auto"
    on_vnni = choose_model_file(auto, vnni=True)
    assert (on_vnni.path, on_vnni.int8) == (INT8, True)
    assert f"is the int8 variant of {SHIPPED}" in on_vnni.reason
    without = choose_model_file(auto, vnni=False)
    assert (without.path, without.int8) == (FP32, False) and "no VNNI" in without.reason
    # The shipped int8 file is not a variant of an older model: that camera keeps fp32.
    older = choose_model_file(ModelConfig(path=OLDER, int8_path=INT8), vnni=True)
    assert (older.path, older.int8) == (OLDER, False)
    assert f"not the int8 variant of {OLDER_VERSION}" in older.reason
    assert int8_pairs(FP32, MODELS / "missing.onnx") == (False, f"{MODELS}/missing.onnx not found")


def test_explicit_settings_win_over_auto() -> None:
    off = choose_model_file(ModelConfig(path=FP32, int8_path=INT8, use_int8=False), vnni=True)
    assert (off.path, off.int8) == (FP32, False)
    on = choose_model_file(ModelConfig(path=OLDER, int8_path=INT8, use_int8=True), vnni=False)
    assert (on.path, on.int8) == (INT8, True)  # the operator's word, paired or not
    none = choose_model_file(ModelConfig(path=FP32, int8_path=None), vnni=True)
    assert none.path == FP32
    assert ModelConfig.model_validate({"use_int8": "true"}).use_int8 is True
    with pytest.raises(ValueError, match="use_int8"):
        ModelConfig.model_validate({"use_int8": "sometimes"})


def test_a_new_model_file_is_chosen_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fp32 file replaced by a model its int8 file is not the variant of: the detector
    swaps to the new fp32 file, it never goes on running the old model's int8."""
    monkeypatch.setattr("detector.variant.CPUINFO", _cpuinfo(tmp_path, "avx512_vnni"))
    fp32, int8 = tmp_path / "model.onnx", tmp_path / "model-int8.onnx"
    shutil.copy(FP32, fp32)
    shutil.copy(INT8, int8)
    metrics = DetectorMetrics()
    manager = ModelManager(ModelConfig(path=fp32, int8_path=int8, watch=False))
    assert manager.current.path == int8 and manager.current.version == f"{SHIPPED}-int8"
    metrics.set_model(manager.current.version, manager.choice.int8)
    shutil.copy(OLDER, fp32)
    os.utime(fp32, (1, 1))  # a different mtime even on a coarse clock
    assert manager.check_file()
    assert manager.current.path == fp32 and manager.current.version == OLDER_VERSION
    assert not manager.choice.int8 and "not the int8 variant" in manager.choice.reason
    metrics.set_model(manager.current.version, manager.choice.int8)
    exposed = metrics.registry.get_sample_value(
        "siteguard_detector_model_info", {"version": OLDER_VERSION, "precision": "fp32"}
    )
    assert exposed == 1.0
    assert (
        metrics.registry.get_sample_value(
            "siteguard_detector_model_info",
            {"version": f"{SHIPPED}-int8", "precision": "int8"},
        )
        is None
    )
