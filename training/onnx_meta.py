"""Read and write the ONNX metadata (`metadata_props`) that the detector reads back."""

from __future__ import annotations

from pathlib import Path


def read_metadata(path: Path) -> dict[str, str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in model.metadata_props}


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
