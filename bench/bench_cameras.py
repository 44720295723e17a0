"""Cameras per box: N simulated RTSP cameras into `siteguard detect` vs a plain Ultralytics loop.

    .venv/bin/python bench/bench_cameras.py [--quick] [--json]

Same as `siteguard bench cameras ...` (about 15 minutes on 2 cores; `--quick` about one); needs
Debian's gst-rtsp-server (python3-gi) and ../shared/demo. Results go into docs/benchmarks.md.
"""

from __future__ import annotations

import sys

from siteguard.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "cameras", *sys.argv[1:]]))
