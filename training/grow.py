"""Grow a model's classes: the same network with a wider head that keeps what it knew.

A trainer labels a class the model lacks (e.g. `vest`, `harness`) in the box editor; before the
fine-tune, `siteguard retrain` builds the grown checkpoint here:

1. the base architecture rebuilt for the longer class list (base classes first, same ids);
2. every tensor whose shape still matches copied from the base (Ultralytics' `model.load`,
   which skips the class-logit convs: their first dimension is the class count);
3. the base classes' rows of those convs (the last conv of each `cv3` branch of the Detect
   head, one per scale) copied by hand, so the old classes start exactly where the base left
   them instead of from scratch; the new rows get zero weights and Ultralytics' prior bias
   (`bias_init`, about 0.0002 after the sigmoid). Random weights there (a fresh conv's) let an
   untrained class win whole images: measured, 300 boxes of it on a hardhat photo. A zero row
   still learns: its gradient is the features times the error.

The grown model therefore scores the old classes exactly as the base does until it is trained
(`tests/training/test_grow.py` checks both the rows and the predictions).

Example:
    >>> grow_checkpoint(Path("models/siteguard-ppe.pt"),
    ...                 ("head", "helmet", "person", "vest"), Path("runs/grown.pt"))
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Sequence
from pathlib import Path
from typing import Any


class GrowError(ValueError):
    """The checkpoint cannot be grown to the requested classes (message says why)."""


def _load(weights: Path) -> dict[str, Any]:
    import torch

    if not weights.is_file():
        raise FileNotFoundError(f"weights not found: {weights}")
    try:
        ckpt = torch.load(str(weights), map_location="cpu", weights_only=False)
    except Exception as exc:  # torch/pickle raise many types for a bad file
        raise GrowError(f"{weights} is not an Ultralytics YOLO checkpoint: {exc}") from exc
    if not isinstance(ckpt, dict) or (ckpt.get("ema") or ckpt.get("model")) is None:
        raise GrowError(f"{weights} is not an Ultralytics YOLO checkpoint (no model inside)")
    return ckpt


def model_names(weights: Path) -> tuple[str, ...]:
    """The class names of a checkpoint, in id order."""
    ckpt = _load(weights)
    model = ckpt.get("ema") or ckpt["model"]
    return tuple(str(model.names[i]) for i in sorted(model.names))


def class_convs(model: Any) -> list[Any]:
    """The class-logit convs of a detection model: the last layer of each `cv3` branch of its
    Detect head (one per scale), whose output channels are the classes."""
    from ultralytics.nn.modules.head import Detect

    head = model.model[-1]
    if not isinstance(head, Detect):
        raise GrowError(f"the model's last layer is {type(head).__name__}, not a Detect head")
    return [branch[-1] for branch in head.cv3]


def grow_checkpoint(base: Path, names: Sequence[str], out: Path) -> Path:
    """Write `out`: `base` grown to `names` (which must start with the base's classes, in
    order); returns `base` itself when there is nothing to add."""
    import torch
    from ultralytics.nn.tasks import DetectionModel

    ckpt = _load(base)
    source = (ckpt.get("ema") or ckpt["model"]).float()
    old = [str(source.names[i]) for i in sorted(source.names)]
    names = list(names)
    if names[: len(old)] != old:
        raise GrowError(
            f"the new classes must extend the model's ({', '.join(old)}) in order, "
            f"got {', '.join(names)}"
        )
    if len(names) == len(old):
        return base
    if len(set(names)) != len(names):
        raise GrowError(f"class names repeat: {', '.join(names)}")
    grown = DetectionModel(copy.deepcopy(source.yaml), nc=len(names), verbose=False)
    grown.names = dict(enumerate(names))
    grown.load(source, verbose=False)  # every tensor whose shape matches
    with torch.no_grad():
        for new, was in zip(class_convs(grown), class_convs(source), strict=True):
            if new.weight.shape[1:] != was.weight.shape[1:]:
                raise GrowError(
                    f"the class conv's input width changes ({was.weight.shape[1]} -> "
                    f"{new.weight.shape[1]}) with {len(names)} classes; cannot keep the old rows"
                )
            new.weight[: len(old)] = was.weight
            new.bias[: len(old)] = was.bias
            new.weight[len(old) :] = 0.0  # new classes start at their prior, on every pixel
    grown.args = getattr(source, "args", {})
    grown.pt_path = str(base)
    grown_ckpt = {
        **{k: v for k, v in ckpt.items() if k not in ("model", "ema", "optimizer", "updates")},
        "date": dt.datetime.now(dt.UTC).isoformat(),
        "model": grown.half(),
        "ema": None,
        "optimizer": None,
        "updates": None,
        "epoch": -1,
        "siteguard_grown": {"from": str(base), "classes": names, "added": names[len(old) :]},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(grown_ckpt, str(out))
    return out
