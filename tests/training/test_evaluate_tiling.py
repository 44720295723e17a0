"""`siteguard evaluate --tiles GRID`: accuracy with tiled inference, through the production path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from siteguard.cli import main

pytestmark = pytest.mark.shared


def _evaluate(model: Path, data: Path, *args: str) -> int:
    return main(["evaluate", "--model", str(model), "--data", str(data), "--split", "val", *args])


def test_evaluate_with_tiles_reports_its_tiling(
    bundled_model: Path, mini_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _evaluate(bundled_model, mini_data, "--json") == 0
    plain = json.loads(capsys.readouterr().out)
    assert _evaluate(bundled_model, mini_data, "--tiles", "2", "--tile-overlap", "0.25") == 0
    assert "tiled: 2x2 tiles, overlap 0.25 + full frame" in capsys.readouterr().out
    assert _evaluate(bundled_model, mini_data, "--tiles", "2", "--json") == 0
    tiled = json.loads(capsys.readouterr().out)
    assert plain["tiling"] is None
    assert tiled["tiling"] == {"grid": 2, "overlap": 0.2, "full_frame": True}
    assert tiled["images"] == plain["images"] == 8
    # same model, same thresholds; the tiles add views of the same workers, never lose the
    # full frame's: a broken merge (boxes left in tile pixels) would collapse these figures
    assert tiled["class_conf"] == plain["class_conf"]
    assert tiled["worker_accuracy"] >= plain["worker_accuracy"] - 0.1
    assert tiled["map50"] > 0.3


@pytest.mark.parametrize(
    "args,message",
    [
        (["--tiles", "1"], "tiling grid must be 2 to 4"),
        (["--tiles", "2", "--tile-overlap", "0.7"], "tiling overlap must be in [0, 0.5)"),
    ],
)
def test_evaluate_rejects_impossible_tiles(
    bundled_model: Path, mini_data: Path, capsys: pytest.CaptureFixture[str], args, message
) -> None:
    assert _evaluate(bundled_model, mini_data, *args) == 2
    assert message in capsys.readouterr().err
