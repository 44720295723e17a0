"""Blend two checkpoints of one architecture: base + alpha x (fine-tuned - base).

A fine-tune on a new source gains there and forgets a little of what the base knew. Averaging the
weights of the base and the fine-tuned model (WiSE-FT, Wortsman et al., "Robust fine-tuning of
zero-shot models", CVPR 2022) often keeps most of both: the two models sit in one basin of the
loss, so points on the line between them are good models too, and `alpha` trades the new source
against the old one without another hour of training. Choose `alpha` on validation splits of both
sources (`bench/choose_blend.py`), never on a test split.

Example:
    >>> blend_checkpoints(Path("models/siteguard-ppe.pt"), Path("runs/train/mix/weights/best.pt"),
    ...                   alpha=0.5, out=Path("var/blend-0.5.pt"))
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


class BlendError(ValueError):
    """The two checkpoints cannot be blended (other architecture or classes, bad alpha)."""


def _module(checkpoint: dict[str, Any], path: Path) -> Any:
    module = checkpoint.get("ema") or checkpoint.get("model")
    if module is None:
        raise BlendError(f"{path}: no model in the checkpoint")
    return module


def blend_state(base: dict[str, Any], tuned: dict[str, Any], alpha: float) -> dict[str, Any]:
    """Interpolate every floating tensor; integer buffers (BatchNorm counters) come from `tuned`."""
    if not 0.0 <= alpha <= 1.0:
        raise BlendError(f"alpha must be in [0, 1], got {alpha}")
    if base.keys() != tuned.keys():
        missing = sorted(base.keys() ^ tuned.keys())[:5]
        raise BlendError(f"the checkpoints differ in their layers, e.g. {missing}")
    blended: dict[str, Any] = {}
    for name, weight in tuned.items():
        old = base[name]
        if old.shape != weight.shape:
            raise BlendError(
                f"layer {name}: shape {tuple(old.shape)} vs {tuple(weight.shape)} "
                "(another architecture or class list)"
            )
        if weight.is_floating_point():
            blended[name] = old.float() + alpha * (weight.float() - old.float())
        else:
            blended[name] = weight.clone()
    return blended


def blend_checkpoints(base: Path, tuned: Path, alpha: float, out: Path) -> Path:
    """Write an Ultralytics checkpoint at `out` whose weights are base + alpha x (tuned - base).

    The result keeps `tuned`'s metadata (class names, training arguments), so `siteguard export`
    and `siteguard evaluate` take it like any trained `.pt`.
    """
    import torch

    base_ckpt = torch.load(base, map_location="cpu", weights_only=False)
    tuned_ckpt = torch.load(tuned, map_location="cpu", weights_only=False)
    base_model, tuned_model = _module(base_ckpt, base), _module(tuned_ckpt, tuned)
    if list(base_model.names.values()) != list(tuned_model.names.values()):
        raise BlendError(
            f"class lists differ: {list(base_model.names.values())} vs "
            f"{list(tuned_model.names.values())}"
        )
    state = blend_state(base_model.state_dict(), tuned_model.state_dict(), alpha)
    model = tuned_model.float()
    model.load_state_dict(state)
    checkpoint = {
        **{k: v for k, v in tuned_ckpt.items() if k not in ("optimizer", "ema", "updates")},
        "model": model.half(),
        "ema": None,
        "optimizer": None,
        "blend": {"base": str(base), "tuned": str(tuned), "alpha": alpha},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, out)
    return out


def blend_record(weights: Path) -> dict[str, Any] | None:
    """How a checkpoint was blended ({base, tuned, alpha}), or None for a trained one."""
    import torch

    record = torch.load(weights, map_location="cpu", weights_only=False).get("blend")
    return dict(record) if record else None


def blend_command(record: dict[str, Any], out: str) -> str:
    """The `siteguard blend` command line that wrote `out`."""
    return (
        f"siteguard blend --base {record['base']} --tuned {record['tuned']} "
        f"--alpha {record['alpha']} --out {out}"
    )
