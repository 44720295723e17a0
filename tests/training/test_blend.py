"""`siteguard blend`: weights on the line between a base and its fine-tune (WiSE-FT).

Uses the two real checkpoints in models/: v1 and v1.1, which was fine-tuned from v1.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("ultralytics", reason="needs the [train] extra (ultralytics)")

import torch  # noqa: E402

from siteguard.cli import main  # noqa: E402
from training.blend import BlendError, blend_checkpoints, blend_state  # noqa: E402

MODELS = Path(__file__).resolve().parents[2] / "models"
V1, V11 = MODELS / "siteguard-ppe-v1.pt", MODELS / "siteguard-ppe-v1.1.pt"


def _weights(path: Path) -> dict[str, torch.Tensor]:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return (ckpt.get("ema") or ckpt["model"]).float().state_dict()


def test_blend_lies_on_the_line_between_the_two_models(tmp_path: Path) -> None:
    base, tuned = _weights(V1), _weights(V11)
    out = blend_checkpoints(V1, V11, 0.25, tmp_path / "blend.pt")
    blended = _weights(out)
    changed = 0
    for name, weight in blended.items():
        if not weight.is_floating_point():
            assert torch.equal(weight, tuned[name])
            continue
        expected = base[name] + 0.25 * (tuned[name] - base[name])
        # stored in half precision, as Ultralytics stores its checkpoints
        assert torch.allclose(weight, expected.half().float(), atol=1e-3, rtol=1e-3), name
        changed += not torch.equal(base[name], tuned[name])
    assert changed > 100  # the two models really differ, so the test compares something


def test_alpha_zero_and_one_give_back_the_ends() -> None:
    base, tuned = _weights(V1), _weights(V11)
    assert all(torch.equal(blend_state(base, tuned, 0.0)[k], base[k]) for k in base)
    one = blend_state(base, tuned, 1.0)
    assert all(torch.allclose(one[k].float(), tuned[k].float()) for k in tuned)


def test_blended_checkpoint_loads_and_detects(tmp_path: Path) -> None:
    from ultralytics import YOLO

    out = blend_checkpoints(V1, V11, 0.5, tmp_path / "blend.pt")
    model = YOLO(str(out))
    assert list(model.names.values()) == ["head", "helmet", "person"]
    result = model.predict(torch.zeros(1, 3, 320, 320), imgsz=320, verbose=False)[0]
    assert result.boxes is not None  # a forward pass through the blended weights


def test_mismatched_models_and_alpha_are_refused(tmp_path: Path) -> None:
    base = _weights(V1)
    other = dict(base)
    name = next(k for k, v in base.items() if v.is_floating_point() and v.ndim == 4)
    other[name] = torch.zeros(1, 1, 1, 1)
    with pytest.raises(BlendError, match="shape"):
        blend_state(base, other, 0.5)
    with pytest.raises(BlendError, match="alpha"):
        blend_state(base, base, 1.5)


def test_cli_writes_the_blend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "b.pt"
    argv = ["blend", "--base", str(V1), "--tuned", str(V11), "--alpha", "0.5", "--out", str(out)]
    code = main(argv)
    assert code == 0 and out.exists()
    assert "0.5" in capsys.readouterr().out
    assert torch.load(out, map_location="cpu", weights_only=False)["blend"]["alpha"] == 0.5


def test_an_exported_blend_says_how_it_was_made(tmp_path: Path) -> None:
    """The ONNX of a blend records base, fine-tune and alpha; its model card prints the blend
    command before the export command, so the card still reproduces the shipped file."""
    from training.export import ExportOptions, export
    from training.model_card import CardOptions, render
    from training.onnx_meta import read_metadata

    weights = blend_checkpoints(V1, V11, 0.5, tmp_path / "blend.pt")
    onnx = export(ExportOptions(weights=weights, out=tmp_path / "b.onnx", imgsz=320,
                                dataset_version="test")).onnx  # fmt: skip
    record = json.loads(read_metadata(onnx)["siteguard_blend"])
    assert record == {"base": str(V1), "tuned": str(V11), "alpha": 0.5, "out": str(weights)}
    card = render(CardOptions(model=onnx, timing_frames=0))
    command = f"siteguard blend --base {V1} --tuned {V11} --alpha 0.5 --out {weights}"
    assert command in card
    assert card.index(command) < card.index("siteguard export --weights")
    assert "a blend of the base and its fine-tune" in card
