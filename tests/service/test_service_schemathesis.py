"""Schemathesis fuzzes every operation in /openapi.json against the live server: never a 5xx.

Bounded for a shared 2-core CI box: a few examples per operation (`-n`), authenticated as an
admin (bearer token) with a site-a detector key, so the handlers behind the auth checks run too.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from service_testkit import Live


def test_no_server_errors(live: Live, tmp_path: Path) -> None:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or "schemathesis"
    cmd = [
        exe,
        "run",
        f"{live.url}/openapi.json",
        "--checks",
        "not_a_server_error",
        "--max-examples",
        "5",
        "--phases",
        "examples,coverage,fuzzing",
        "--exclude-path",
        "/api/v1/events",
        "--header",
        f"Authorization: Bearer {live.tokens['admin']}",
        "--header",
        f"X-API-Key: {live.keys['site-a']}",
        "--request-timeout",
        "60",
        # One worker: with two, Hypothesis' ast.parse of its filter lambdas ran in two threads and
        # CPython 3.11.7 raised "SystemError: AST constructor recursion depth mismatch" inside
        # schemathesis (CPython gh-106905, fixed in later releases) - a tool crash, not ours.
        "--workers",
        "1",
        "--seed",
        "1",
        "--no-color",
        "--suppress-health-check",
        "all",
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    tail = (run.stdout + run.stderr)[-6000:]
    assert run.returncode == 0, tail
    counts = re.search(r"(\d+) generated, (\d+) passed", run.stdout)
    assert counts is not None, tail
    assert int(counts[1]) == int(counts[2]) >= 200, tail
