"""A real Docker engine for the container tests: find or start `dockerd`, build, run, exec.

Everything goes through the `docker` CLI (no SDK), at `nice -n 19`, with `--network host`: the
containers talk to each other and to the tests over 127.0.0.1 only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

NICE = ["nice", "-n", "19"]


def docker(
    *args: str, timeout: float = 120, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `docker ARGS` (niced); raise with its output when `check` and it fails."""
    out = subprocess.run(
        [*NICE, "docker", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, **(env or {})},
    )
    if check and out.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} -> {out.returncode}\n{out.stdout}{out.stderr}"
        )
    return out


def _engine_answers() -> bool:
    try:
        return (
            docker("info", "--format", "{{.ServerVersion}}", timeout=30, check=False).returncode
            == 0
        )
    except subprocess.TimeoutExpired:
        return False


def ensure_engine(start_timeout: float = 60.0) -> str | None:
    """None when a Docker engine answers, else why not (the caller skips with it).

    An installed but stopped `dockerd` is started here (root only), niced, in the background,
    logging to a temporary file; it outlives the tests like a system service would.
    """
    if shutil.which("docker") is None:
        return "no docker client (apt-get install docker.io)"
    if _engine_answers():
        return None
    dockerd = shutil.which("dockerd") or (
        "/usr/sbin/dockerd" if Path("/usr/sbin/dockerd").exists() else None
    )
    if dockerd is None:
        return "docker client present but no dockerd (apt-get install docker.io)"
    if os.geteuid() != 0:
        return "dockerd is not running and only root may start it here"
    log = Path(tempfile.gettempdir()) / "siteguard-dockerd.log"
    with log.open("ab") as sink:
        subprocess.Popen(
            [*NICE, dockerd],
            stdout=sink,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    deadline = time.monotonic() + start_timeout
    while time.monotonic() < deadline:
        if _engine_answers():
            return None
        time.sleep(1)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    return f"dockerd did not come up within {start_timeout:.0f}s (log {log}):\n{tail}"


def image_size_mb(tag: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout) / 1e6


@dataclass
class Container:
    """One `docker run -d` container, removed (with its anonymous volumes) by `remove()`."""

    name: str

    @classmethod
    def run(
        cls,
        name: str,
        image: str,
        options: list[str] | None = None,
        command: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Container:
        """`docker run -d --network host OPTIONS -e K=V IMAGE COMMAND`, replacing an old one."""
        docker("rm", "-f", "-v", name, check=False)
        env_args = [arg for key, value in (env or {}).items() for arg in ("-e", f"{key}={value}")]
        docker(
            "run", "-d", "--name", name, "--network", "host",
            *(options or []), *env_args, image, *(command or []),
        )  # fmt: skip
        return cls(name)

    def exec(self, *command: str, timeout: float = 120) -> str:
        return docker("exec", self.name, *command, timeout=timeout).stdout

    def state(self) -> dict[str, object]:
        return json.loads(docker("inspect", "-f", "{{json .State}}", self.name).stdout)

    def health(self) -> str:
        health = self.state().get("Health") or {}
        assert isinstance(health, dict)
        return str(health.get("Status", "none"))

    def process_uids(self) -> set[int]:
        """The uid of every process in the container (read by the engine, not by the container)."""
        rows = docker("top", self.name, "-eo", "pid,uid,comm").stdout.splitlines()[1:]
        return {int(row.split()[1]) for row in rows if row.strip()}

    def logs(self, lines: int = 60) -> str:
        out = docker("logs", "--tail", str(lines), self.name, check=False)
        return f"--- {self.name} logs\n{out.stdout}{out.stderr}"

    def remove(self) -> None:
        docker("rm", "-f", "-v", self.name, check=False, timeout=60)
