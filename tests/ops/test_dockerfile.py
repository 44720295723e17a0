"""The Dockerfile cannot drift from scripts/install.sh, the install path CI really runs.

These tests need no Docker engine (tests/ops/test_containers.py builds and runs the images where
one runs): every Python install step goes through scripts/install.sh; the targets, user and health
checks exist; every file the build copies exists; and the edge image's package set really runs
`siteguard detect` without service/, alerts/, training/ or torch.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from ops.dockerfile import Stage, parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())


def _resolve(stages: dict[str, Stage], name: str) -> list[Stage]:
    """A stage and the stages it is built FROM, base first."""
    chain = [stages[name]]
    while chain[0].base in stages:
        chain.insert(0, stages[chain[0].base])
    return chain


def test_edge_and_server_targets_exist(stages: dict[str, Stage]) -> None:
    assert {"edge", "server"} <= stages.keys()


def test_python_installs_only_through_install_script(stages: dict[str, Stage]) -> None:
    """No RUN calls pip directly; the builds run `scripts/install.sh deps|python [EXTRAS]`."""
    install_runs = []
    for stage in stages.values():
        for run in stage.args("RUN"):
            assert not re.search(r"\bpip3?\b|\bpython3? -m pip\b|\buv\b", run), (
                f"stage {stage.name} installs Python packages outside scripts/install.sh: {run}"
            )
            if "scripts/install.sh" in run:
                install_runs.append((stage.name, run))
    assert install_runs, "no RUN calls scripts/install.sh"
    for stage_name, run in install_runs:
        assert re.fullmatch(r"scripts/install\.sh (?:deps|python)(?: [a-z,]+)?", run), (
            stage_name,
            run,
        )


def test_install_script_accepts_the_dockerfile_steps(stages: dict[str, Stage]) -> None:
    """The script exists, is executable and has the `deps` and `python` steps of the Dockerfile."""
    script = REPO / "scripts" / "install.sh"
    assert script.is_file() and script.stat().st_mode & 0o111, "scripts/install.sh not executable"
    out = subprocess.run(
        ["bash", "-n", str(script)], capture_output=True, text=True, timeout=30, check=False
    )
    assert out.returncode == 0, out.stderr
    assert re.search(r"^\s*python\)\s*install_python", script.read_text(), re.MULTILINE)
    assert re.search(r"^\s*deps\)\s*install_deps", script.read_text(), re.MULTILINE)
    assert "SITEGUARD_VENV" in script.read_text(), "the Dockerfile sets the venv via SITEGUARD_VENV"


def test_edge_image_never_installs_torch(stages: dict[str, Stage]) -> None:
    edge_build = stages["build-edge"]
    extras = [
        run.split()[2] if len(run.split()) > 2 else ""
        for run in edge_build.args("RUN")
        if "install.sh" in run
    ]
    assert extras and set(extras) == {""}, (
        f"the edge image installs extras {extras}; it must be the base install"
    )
    server_runs = " ".join(stages["build-server"].args("RUN"))
    assert "train" not in server_runs, "the server image must not install the [train] extra"


@pytest.mark.parametrize("target", ["edge", "server"])
def test_runtime_targets_run_as_non_root_with_healthcheck(
    stages: dict[str, Stage], target: str
) -> None:
    chain = _resolve(stages, target)
    users = [arg for stage in chain for arg in stage.args("USER")]
    assert users, f"{target} sets no USER"
    assert users[-1].split(":")[0] not in {"root", "0"}, f"{target} runs as root"
    checks = stages[target].args("HEALTHCHECK")
    assert checks and "CMD" in checks[-1], f"{target} has no HEALTHCHECK"
    exposed = {p for stage in chain for p in " ".join(stage.args("EXPOSE")).split()}
    # A literal port, or the default of the environment variable that moves it.
    ports = set(re.findall(r"127\.0\.0\.1:(\d+)", checks[-1]))
    ports |= set(re.findall(r"os\.environ\.get\('SITEGUARD_\w+', '(\d+)'\)", checks[-1]))
    assert ports and ports <= exposed, f"{target} health check port {ports} not in EXPOSE {exposed}"


def test_every_copied_path_exists(stages: dict[str, Stage]) -> None:
    """A COPY of a missing file would only fail at `docker build`; catch it here."""
    lines = (REPO / ".dockerignore").read_text().splitlines()
    ignored = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for stage in stages.values():
        for arg in stage.args("COPY"):
            if arg.startswith("--from"):
                continue
            *sources, _dest = arg.split()
            for source in sources:
                assert any(REPO.glob(source.rstrip("/"))), f"COPY {source}: not in the repository"
                top = source.strip("/").split("/")[0]
                assert f"{top}/" not in ignored and top not in ignored, f"{source} is dockerignored"


def _edge_packages(stages: dict[str, Stage]) -> list[str]:
    """Top-level Python packages the edge build stage copies (directories with __init__.py)."""
    names = []
    for arg in stages["build-edge"].args("COPY"):
        *sources, _dest = arg.split()
        for source in sources:
            path = REPO / source.rstrip("/")
            if (path / "__init__.py").is_file():
                names.append(path.name)
    return names


def test_edge_package_set_runs_the_detector_without_service_or_torch(
    stages: dict[str, Stage], tmp_path: Path
) -> None:
    """Rebuild the edge image's source tree and run its CLI in isolation (`python -S`).

    Only the packages the edge stage copies are on sys.path (plus the installed dependencies);
    the editable install of this checkout is bypassed, so a missing package fails here.
    """
    packages = _edge_packages(stages)
    assert {"siteguard", "detector"} <= set(packages)
    assert not {"service", "alerts", "training"} & set(packages)
    for name in packages:
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    site_packages = sysconfig.get_paths()["purelib"]
    code = (
        f"import json, sys; sys.path[:0] = [{str(tmp_path)!r}, {site_packages!r}]\n"
        "from siteguard.cli import build_parser\n"
        "commands = build_parser()._subparsers._group_actions[0].choices\n"
        "heavy = ('torch', 'ultralytics', 'service', 'alerts', 'training')\n"
        "print(json.dumps([sorted(commands), sorted(m for m in heavy if m in sys.modules)]))\n"
    )
    out = subprocess.run(
        [sys.executable, "-S", "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    commands, loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "detect" in commands, f"edge CLI lacks `detect`: {commands}"
    assert loaded == [], f"edge CLI loaded {loaded}"
