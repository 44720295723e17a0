"""Static int8 quantisation of an exported detector with onnxruntime's quantisation tools.

QDQ format, per-channel int8 weights, uint8 activations, MinMax calibration on real images
prepared by the production letterbox (`OnnxDetector.preprocess`).

What stays float: the detection head's decode (every node of the last `/model.N/` module except
its `cv2`/`cv3` conv branches: DFL, the box/score Concat, Sigmoid, anchor maths) and attention
Softmax. The head ends in one tensor that mixes box pixels (0..imgsz) and class scores (0..1); a
single int8 scale across it rounds every score to 0 (onnxruntime issue #14233; Ultralytics PR
#7516 and its OpenVINO export keep the same subgraph float). Ultralytics' own ONNX int8 keeps
every non-weighted op float instead (our fallback, `WEIGHTED_OPS`); measured here on the same
model and 150 test images, quantising the backbone's SiLU/Add/Concat too ran 1.5x faster than
fp32 at batch 1 (against 1.07x) with the same accuracy (docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import random
import tempfile
from pathlib import Path

import cv2
import numpy as np

from training.labels import IMAGE_SUFFIXES, list_images

log = logging.getLogger(__name__)
WEIGHTED_OPS = frozenset({"Conv", "Gemm", "MatMul"})


def calibration_images(source: Path, count: int, seed: int = 0) -> list[Path]:
    """Up to `count` images from a folder, a .txt list, or a data YAML's train split."""
    if source.suffix in {".yaml", ".yml"}:
        from training.data_yaml import load_data_yaml

        source = Path(load_data_yaml(source)["train"])
    images = [p for p in list_images(source) if p.suffix.lower() in IMAGE_SUFFIXES]
    random.Random(seed).shuffle(images)
    return sorted(images[:count])


def nodes_to_keep_float(model_path: Path) -> list[str]:
    """The head's decode subgraph, DFL and Softmax nodes (see the module docstring); for a graph
    without Ultralytics' `/model.N/` node names, every node that is not a weighted op."""
    import onnx

    graph = onnx.load(str(model_path)).graph
    modules = {n.name.split("/")[1] for n in graph.node if n.name.startswith("/model.")}
    indices = [int(m.split(".")[1]) for m in modules if m.split(".")[1].isdigit()]
    if not indices:
        log.warning("no Ultralytics node names: quantising weighted ops only")
        return [n.name for n in graph.node if n.op_type not in WEIGHTED_OPS]
    head = f"/model.{max(indices)}/"
    branches = (f"{head}cv2", f"{head}cv3")
    return [
        n.name
        for n in graph.node
        if (n.name.startswith(head) and not n.name.startswith(branches))
        or "/dfl/" in n.name
        or n.op_type == "Softmax"
    ]


def quantize_int8(fp32: Path, out: Path, calib: Path, count: int = 100) -> Path:
    """Write the int8 model to `out`, calibrated on `count` images from `calib`."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process
    from tqdm import tqdm

    from detector.inference import OnnxDetector

    detector = OnnxDetector(fp32)
    images = calibration_images(calib, count)
    log.info("calibrating int8 on %d images from %s", len(images), calib)

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._iter = iter(tqdm(images, desc="int8 calibration"))

        def get_next(self) -> dict[str, np.ndarray] | None:
            path = next(self._iter, None)
            if path is None:
                return None
            frame = cv2.imread(str(path))
            if frame is None:
                raise ValueError(f"cannot read calibration image {path}")
            blob, _ = detector.preprocess([frame])
            return {detector.input_name: blob}

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        quantize_static(
            str(prepared),
            str(out),
            Reader(),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=nodes_to_keep_float(prepared),
        )
    return out
