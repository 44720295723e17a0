"""The issue's full-length outage: the backend is SIGKILLed for 60 s while a detector streams.

    .venv/bin/python bench/bench_outage.py [--outage-s 60]

Runs tests/ops/test_reliability.py::test_backend_killed_while_detector_streams (real
`siteguard serve` and `siteguard detect` processes, the bundled model on the hardhat test
images) with SITEGUARD_OPS_OUTAGE_S set; CI runs the same test with a 12 s outage. Prints the
tally (violations the detector counted, rows stored, most events queued during the outage).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/ops/test_reliability.py::test_backend_killed_while_detector_streams"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--outage-s", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        env = {**os.environ, "SITEGUARD_OPS_OUTAGE_S": str(args.outage_s)}
        cmd = [sys.executable, "-m", "pytest", TEST, "-q", f"--junitxml={junit}"]
        result = subprocess.run(cmd, cwd=REPO, env=env, check=False)
        if junit.exists():
            for prop in ET.parse(junit).iter("property"):
                print(f"{prop.get('name')}: {prop.get('value')}")
    print(f"outage {args.outage_s:g} s: {'PASS' if result.returncode == 0 else 'FAIL'}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
