"""The edge install never needs torch: importing the base packages must not pull it in."""

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    "module", ["detector", "service", "alerts", "siteguard.cli", "detector.cli", "training.cli"]
)
def test_import_does_not_load_torch(module: str) -> None:
    code = (
        f"import sys, importlib; importlib.import_module({module!r}); "
        "from siteguard.cli import build_parser; build_parser(); "
        "heavy = sorted(m for m in ('torch', 'ultralytics') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} loaded {out.stdout.strip()}"
