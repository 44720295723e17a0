"""Detector speed benchmark: one command, the contenders measured side by side, interleaved.

    .venv/bin/python bench/bench_detector.py --model build/dev/yolo11n-coco.onnx \
        --source ../shared/data/hardhat-workers/test/images/005298.jpg [--json]

Same as `siteguard bench detector ...`; results go into docs/benchmarks.md (detector section).
"""

from __future__ import annotations

import sys

from siteguard.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "detector", *sys.argv[1:]]))
