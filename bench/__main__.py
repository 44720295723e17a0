"""`python -m bench` (`make bench`): every benchmark once, each printing its side-by-side ratios.

Each script also runs alone (`python bench/bench_X.py --help`); this runner only sequences them with
their defaults and reports which ones failed. The long ones (10-minute soak, 60 s outage, the
v1 -> v2 training iteration, tiled inference on the validation sets, cameras per box) run only
when named: `python -m bench soak outage iteration tiling cameras`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
QUICK = ("detector", "ingest", "dashboard", "alerts", "int8", "login_flood")
LONG = ("soak", "outage", "iteration", "tiling", "cameras")
REPO = BENCH_DIR.parent
TEST_IMAGE = REPO.parent / "shared" / "data" / "hardhat-workers" / "test" / "images" / "005301.jpg"
DEFAULT_ARGS = {
    "detector": [
        "--model",
        str(REPO / "models" / "siteguard-ppe.onnx"),
        "--source",
        str(TEST_IMAGE),
    ],
}


def script_for(name: str) -> Path:
    path = BENCH_DIR / ("iteration.py" if name == "iteration" else f"bench_{name}.py")
    if not path.is_file():
        raise SystemExit(f"unknown benchmark {name!r}: choose from {', '.join(QUICK + LONG)}")
    return path


def main(names: list[str]) -> int:
    failed = []
    for name in names or QUICK:
        print(f"\n=== bench {name} ===", flush=True)
        started = time.monotonic()
        argv = [sys.executable, str(script_for(name)), *DEFAULT_ARGS.get(name, [])]
        code = subprocess.call(argv, cwd=REPO)
        print(f"=== bench {name}: exit {code} in {time.monotonic() - started:.0f} s", flush=True)
        if code != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
