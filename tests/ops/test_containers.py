"""The Dockerfile's two images, built and run for real (issue 16).

The base image comes from scripts/base-image.sh (debootstrap, no registry needed); both targets
are built from the repository's Dockerfile; the server container and the edge container then run
side by side with `--network host` on 127.0.0.1, set up through `docker exec siteguard admin`, and
the edge container's violations must land in the server and survive its restart. Skips with the
reason where no Docker engine can run (not installed, not root).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ops.containers import NICE, Container, docker, ensure_engine, image_size_mb
from ops.opslib import free_port, wait_until

REPO = Path(__file__).resolve().parents[2]
ARTIFACT = REPO / "test-artifacts" / "containers.json"
SERVER_UID = 10001  # the Dockerfile's `siteguard` user

# Cold: base image + both targets from nothing; cached runs take a fraction of it.
pytestmark = pytest.mark.timeout(1500)


@dataclass
class Images:
    base: str
    edge: str
    server: str
    figures: dict[str, float]


def _record(**figures: float) -> None:
    """Keep the measured figures (build times, sizes) for docs/benchmarks.md."""
    ARTIFACT.parent.mkdir(exist_ok=True)
    old = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else {}
    ARTIFACT.write_text(json.dumps({**old, **figures}, indent=2) + "\n")


@pytest.fixture(scope="module")
def engine() -> None:
    reason = ensure_engine()
    if reason is not None:
        pytest.skip(f"Docker cannot run here: {reason}")


@pytest.fixture(scope="module")
def images(engine: None) -> Images:
    """The local base image, then `--target server` and `--target edge`."""
    figures: dict[str, float] = {}
    ARTIFACT.parent.mkdir(exist_ok=True)
    start = time.monotonic()
    out = subprocess.run(
        [*NICE, str(REPO / "scripts" / "base-image.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert out.returncode == 0, f"scripts/base-image.sh failed:\n{out.stderr[-3000:]}"
    base = out.stdout.strip().splitlines()[-1]
    figures["base_image_s"] = round(time.monotonic() - start, 1)
    figures["base_image_mb"] = round(image_size_mb(base), 1)
    tags = {"server": "siteguard-server:test", "edge": "siteguard-edge:test"}
    # The classic builder: no BuildKit front end to pull, the same with any docker client.
    env = {"DOCKER_BUILDKIT": "0"}
    for target, tag in tags.items():
        old = docker("image", "inspect", "-f", "{{.Id}}", tag, check=False).stdout.strip()
        start = time.monotonic()
        build = docker(
            "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}",
            "--target", target, "-t", tag, str(REPO),
            timeout=1200, env=env,
        )  # fmt: skip
        # Which steps came from the cache: the first thing to read when a build gets slow.
        (ARTIFACT.parent / f"docker-build-{target}.log").write_text(build.stdout + build.stderr)
        figures[f"build_{target}_s"] = round(time.monotonic() - start, 1)
        figures[f"{target}_image_mb"] = round(image_size_mb(tag), 1)
        new = docker("image", "inspect", "-f", "{{.Id}}", tag).stdout.strip()
        if old and old != new:  # the previous build's image, not its still-shared layers
            docker("rmi", old, check=False)
    # The classic builder leaves the build stages untagged, and `docker image prune` would take
    # the dependency layers with them; a tag keeps them (all cached: about a second).
    docker(
        "build", "--network", "host", "--build-arg", f"PYTHON_IMAGE={base}",
        "--target", "build-server", "-t", "siteguard-build-cache:test", str(REPO),
        timeout=300, env=env,
    )  # fmt: skip
    _record(**figures)
    return Images(base=base, edge=tags["edge"], server=tags["server"], figures=figures)


@dataclass
class Server:
    container: Container
    url: str
    token: str  # an admin user's API token
    detector_key: str
    site: str
    camera: str

    def get(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = httpx.get(f"{self.url}{path}", params=params, headers=headers, timeout=30)
        response.raise_for_status()
        return response.json()

    def event_ids(self) -> set[str]:
        page = self.get("/api/v1/violations", limit=500)
        return {item["event_id"] for item in page["items"]}

    def healthz(self) -> bool:
        """the server container answers /healthz on 127.0.0.1"""
        try:
            return httpx.get(f"{self.url}/healthz", timeout=3).text == "ok"
        except httpx.HTTPError:
            return False


@pytest.fixture(scope="module")
def server(images: Images) -> Iterator[Server]:
    """`siteguard serve` in the server image, its data on a named volume; set up by docker exec."""
    port = free_port()
    volume = f"siteguard-test-data-{os.getpid()}"
    docker("volume", "create", volume)
    container = Container.run(
        f"siteguard-test-server-{os.getpid()}",
        images.server,
        options=["-v", f"{volume}:/var/lib/siteguard", "--health-interval", "2s"],
        env={"SITEGUARD_HOST": "127.0.0.1", "SITEGUARD_PORT": str(port)},
    )
    try:
        url = f"http://127.0.0.1:{port}"
        probe = Server(container, url, "", "", "site-c", "cam-c")
        wait_until(probe.healthz, timeout=120, interval=1, diagnose=container.logs)

        def admin(*args: str) -> dict[str, Any]:
            out = container.exec("siteguard", "admin", *args)
            return json.loads(out.strip().splitlines()[-1])

        password = secrets.token_urlsafe(18)
        admin("create-site", probe.site, "--name", "Container site")
        admin("create-camera", probe.camera, "--site", probe.site, "--require", "helmet")
        admin("create-user", "ops-admin", "--role", "admin", "--password", password)
        probe.token = str(admin("create-api-key", "panel", "--user", "ops-admin")["key"])
        probe.detector_key = str(admin("create-api-key", "edge-c", "--site", probe.site)["key"])
        yield probe
    finally:
        container.remove()
        docker("volume", "rm", "-f", volume, check=False)


def _frames(dest: Path, hardhat_dir: Path, count: int = 4) -> Path:
    """The test images with the tallest bare heads (labels, class 0), readable by the container."""
    ranked = []
    for label in (hardhat_dir / "test" / "labels").glob("*.txt"):
        heads = [line.split() for line in label.read_text().splitlines() if line.startswith("0 ")]
        if heads:
            ranked.append((max(float(h[4]) for h in heads), label.stem))
    dest.mkdir()
    for _, stem in sorted(ranked, reverse=True)[:count]:
        shutil.copy(hardhat_dir / "test" / "images" / f"{stem}.jpg", dest)
    for path in [dest, *dest.iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return dest


@pytest.fixture(scope="module")
def edge(
    images: Images, server: Server, hardhat_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Container]:
    """`siteguard detect` in the edge image, playing an image folder into the server."""
    tmp = tmp_path_factory.mktemp("edge")
    tmp.chmod(0o755)
    frames = _frames(tmp / "frames", hardhat_dir)
    metrics_port = free_port()
    config = {
        "detector_id": "edge-container",
        "model": {"path": "models/siteguard-ppe.onnx", "threads": 2, "watch": False},
        "service": {"url": server.url, "api_key": server.detector_key, "heartbeat_interval_s": 1},
        "cameras": [
            {
                "id": server.camera,
                "source": "/frames",
                "fps": 2,
                "playback_fps": 2,
                "image_hold_s": 4,
                "site_requires": ["helmet"],
            }
        ],
    }
    config_file = tmp / "detector.yaml"
    config_file.write_text(yaml.safe_dump(config))
    config_file.chmod(0o644)
    container = Container.run(
        f"siteguard-test-edge-{os.getpid()}",
        images.edge,
        options=[
            "-v", f"{frames}:/frames:ro",
            "-v", f"{config_file}:/etc/siteguard/detector.yaml:ro",
            "--health-interval", "2s",
        ],
        env={
            "SITEGUARD_DETECTOR__METRICS__HOST": "127.0.0.1",
            "SITEGUARD_DETECTOR__METRICS__PORT": str(metrics_port),
            "SITEGUARD_DETECTOR__MODEL__FOLLOW_PROMOTIONS": "false",
        },
    )  # fmt: skip
    try:
        yield container
    finally:
        container.remove()


def test_server_answers_healthz_and_reports_healthy(server: Server) -> None:
    assert server.healthz()
    wait_until(
        lambda: server.container.health() == "healthy",
        timeout=60,
        interval=1,
        diagnose=server.container.logs,
    )


def test_admin_cli_through_docker_exec(server: Server) -> None:
    """What `docker exec ... siteguard admin` created is what the API serves."""
    assert server.get("/api/v1/auth/me")["user"]["username"] == "ops-admin"
    cameras = {camera["id"]: camera for camera in server.get("/api/v1/cameras")}
    assert cameras[server.camera]["site_id"] == server.site
    keys = {key["name"] for key in server.get("/api/v1/api-keys")}
    assert {"panel", "edge-c"} <= keys


def test_edge_violations_land_in_server(server: Server, edge: Container) -> None:
    start = time.monotonic()

    def landed() -> set[str]:
        """the edge container's violations are in the server"""
        if not edge.state().get("Running"):
            raise AssertionError(f"edge container exited\n{edge.logs()}")
        return server.event_ids()

    ids = wait_until(
        landed, timeout=240, interval=2, diagnose=lambda: edge.logs() + server.container.logs()
    )
    _record(first_violation_s=round(time.monotonic() - start, 1))
    items = server.get("/api/v1/violations", limit=500)["items"]
    assert {item["camera_id"] for item in items} == {server.camera}
    assert {item["kind"] for item in items} <= {"no_helmet"}, items[0]
    assert ids
    wait_until(lambda: edge.health() == "healthy", timeout=60, interval=1, diagnose=edge.logs)


def test_both_containers_run_as_non_root(server: Server, edge: Container) -> None:
    for container in (server.container, edge):
        assert container.process_uids() == {SERVER_UID}, container.name
        assert container.exec("id", "-u").strip() == str(SERVER_UID)


def test_server_restart_loses_nothing(server: Server, edge: Container) -> None:
    """Users, keys and violations live on the volume; the edge's outbox bridges the gap."""
    before = wait_until(server.event_ids, timeout=240, interval=2, diagnose=edge.logs)
    start = time.monotonic()
    docker("restart", "--time", "20", server.container.name, timeout=90)
    wait_until(server.healthz, timeout=120, interval=1, diagnose=server.container.logs)
    _record(server_restart_s=round(time.monotonic() - start, 1))
    after = server.event_ids()  # the admin token still works: the user survived too
    assert before <= after, f"lost after restart: {sorted(before - after)}"
    wait_until(
        lambda: server.event_ids() - before,
        timeout=180,
        interval=2,
        diagnose=lambda: edge.logs() + server.container.logs(),
    )


def test_edge_image_has_no_torch_and_no_service(images: Images) -> None:
    code = (
        "import importlib.util as u; "
        "print(sorted(m for m in ('torch', 'ultralytics', 'service', 'alerts', 'training')"
        " if u.find_spec(m)))"
    )
    out = docker(
        "run", "--rm", "--network", "host", "--entrypoint", "python", images.edge, "-c", code
    )
    assert out.stdout.strip() == "[]", out.stdout
    help_text = docker("run", "--rm", "--network", "host", images.edge, "--help").stdout
    assert "detect" in help_text and "serve" not in help_text


def test_compose_file_is_valid(engine: None) -> None:
    """deploy/compose.yaml as Debian's compose reads it, with deploy/.env.example's values."""
    command = next(
        (c for c in (["docker-compose"], ["docker", "compose"]) if _compose_works(c)), None
    )
    if command is None:
        pytest.skip("no docker-compose / docker compose (apt-get install docker-compose)")
    deploy = REPO / "deploy"
    out = subprocess.run(
        [*command, "--project-directory", str(deploy), "--env-file", str(deploy / ".env.example")]
        + ["-f", str(deploy / "compose.yaml"), "config"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    services = yaml.safe_load(out.stdout)["services"]
    assert services["service"]["build"]["target"] == "server"
    assert services["detector"]["build"]["target"] == "edge"
    assert services["service"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def _compose_works(command: list[str]) -> bool:
    if shutil.which(command[0]) is None:
        return False
    probe = subprocess.run(
        [*command, "version"], capture_output=True, text=True, timeout=60, check=False
    )
    return probe.returncode == 0
