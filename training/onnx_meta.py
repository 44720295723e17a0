"""Read and write the ONNX metadata (`metadata_props`) that the detector reads back.

Reading needs only onnxruntime (the base install: `siteguard registry register` and
`siteguard demo` run without the `[train]` extra); writing needs `onnx` (`[train]`).
"""

from __future__ import annotations

from pathlib import Path


def read_metadata(path: Path) -> dict[str, str]:
    """Every metadata key of an ONNX model, as onnxruntime (and so the detector) sees them;
    ValueError when the file is not a loadable model."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3  # no initializer warnings on the console
    try:
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise ValueError(f"cannot read ONNX model {path}: {exc}") from exc
    return dict(session.get_modelmeta().custom_metadata_map)


def write_metadata(path: Path, updates: dict[str, str], out: Path | None = None) -> Path:
    """Set (or replace) metadata keys and save to `out` (default: in place)."""
    import onnx

    model = onnx.load(str(path))
    existing = {p.key: p for p in model.metadata_props}
    for key, value in updates.items():
        prop = existing.get(key) or model.metadata_props.add()
        prop.key, prop.value = key, str(value)
    target = out or path
    onnx.save(model, str(target))
    return target
