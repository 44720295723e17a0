"""`siteguard demo`: the service, a detector on the bundled model and the dashboard, in one command.

The demo drives the real programs as a user would: `siteguard admin` sets up a site, a camera,
an admin login and a detector key; `siteguard serve` and `siteguard detect` run as two processes
that meet only over HTTP, like on a real site. State lives in `var/demo/` and is reused on the
next run (`--fresh` starts over).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = Path(os.environ.get("SITEGUARD_SHARED", REPO_ROOT.parent / "shared"))
DEFAULT_SOURCES = (
    SHARED_DIR / "data" / "hardhat-workers" / "test" / "images",
    SHARED_DIR / "demo" / "power-crew-helmets.mp4",
)
DEFAULT_PORT = 8000
SITE_ID = "demo-site"
CAMERA_ID = "demo-cam"


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "demo", help="run service + detector + dashboard on the bundled model and a demo camera"
    )
    p.add_argument(
        "--port",
        type=int,
        default=None,
        help="dashboard/API port (default 8000, or the next free one when 8000 is taken; "
        "`make demo PORT=8010`)",
    )
    p.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to reach it from other machines")
    p.add_argument("--source", type=Path, help="image folder, video file or stream URL")
    p.add_argument(
        "--model",
        type=Path,
        default=REPO_ROOT / "models" / "siteguard-ppe.onnx",
        help="ONNX model the detector runs (default: the bundled one)",
    )
    p.add_argument(
        "--state-dir",
        type=Path,
        default=REPO_ROOT / "var" / "demo",
        help="where the demo keeps its database, logs and keys (default: var/demo)",
    )
    p.add_argument("--fresh", action="store_true", help="forget the previous demo's data")
    p.add_argument("--duration", type=float, help="stop after this many seconds (for scripts)")
    p.set_defaults(handler=_demo)


@dataclass(frozen=True)
class DemoState:
    """What the first run creates and later runs reuse."""

    admin_password: str
    detector_key: str
    trainer_token: str


def _demo(args: argparse.Namespace) -> int:
    from siteguard.cli import CliError

    source = args.source or next((s for s in DEFAULT_SOURCES if s.exists()), None)
    if source is None:
        raise CliError(
            f"no demo source: pass --source (looked for {', '.join(map(str, DEFAULT_SOURCES))})"
        )
    if not args.model.is_file():
        raise CliError(f"model not found: {args.model}")
    if args.fresh and args.state_dir.exists():
        shutil.rmtree(args.state_dir)
    args.port = _choose_port(args.host, args.port)
    args.state_dir.mkdir(parents=True, exist_ok=True)
    service_dir = args.state_dir / "service"
    state = _load_or_create_state(args.state_dir, service_dir)
    url = f"http://127.0.0.1:{args.port}"
    detector_config = _write_detector_config(args, source, url, state)

    processes: list[subprocess.Popen] = []
    # SIGTERM (systemd, timeout, docker stop) must stop the children too, like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        processes.append(
            _spawn(
                [
                    "serve",
                    "--data-dir",
                    str(service_dir),
                    "--host",
                    args.host,
                    "--port",
                    str(args.port),
                ],
                args.state_dir / "service.log",
            )
        )
        _wait_ready(url, processes[0], args.state_dir / "service.log")
        _register_bundled_model(args.model, url, state)
        processes.append(
            _spawn(["detect", "--config", str(detector_config)], args.state_dir / "detector.log")
        )
        _print_banner(url, source, args.state_dir, state)
        logs = [args.state_dir / "service.log", args.state_dir / "detector.log"]
        return _supervise(processes, logs, args.duration)
    finally:
        for proc in processes:
            _stop(proc)


def _siteguard(*argv: str) -> subprocess.CompletedProcess:
    """Run one `siteguard` subcommand in a child process, as a user would, capturing its output."""
    return subprocess.run(
        [sys.executable, "-m", "siteguard", *argv], capture_output=True, text=True, cwd=REPO_ROOT
    )


def _run_admin(service_dir: Path, *argv: str) -> dict:
    out = _siteguard("admin", "--data-dir", str(service_dir), *argv)
    if out.returncode != 0:
        from siteguard.cli import CliError

        raise CliError(f"siteguard admin {' '.join(argv[:1])} failed: {out.stderr.strip()}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _load_or_create_state(state_dir: Path, service_dir: Path) -> DemoState:
    state_file = state_dir / "state.json"
    if state_file.is_file():
        return DemoState(**json.loads(state_file.read_text()))
    print("setting up the demo site, camera and logins ...", flush=True)
    password = secrets.token_urlsafe(9)
    _run_admin(service_dir, "create-site", SITE_ID, "--name", "Demo site")
    _run_admin(service_dir, "create-camera", CAMERA_ID, "--site", SITE_ID, "--name", "Demo camera")
    _run_admin(
        service_dir,
        "create-user",
        "admin",
        "--role",
        "admin",
        "--sites",
        SITE_ID,
        "--password",
        password,
    )
    key = _run_admin(service_dir, "create-api-key", "demo-detector", "--site", SITE_ID)["key"]
    token = _run_admin(service_dir, "create-api-key", "demo-trainer", "--user", "admin")["key"]
    state = DemoState(admin_password=password, detector_key=key, trainer_token=token)
    state_file.write_text(json.dumps(state.__dict__, indent=2))
    state_file.chmod(0o600)
    return state


def _write_detector_config(
    args: argparse.Namespace, source: Path, url: str, state: DemoState
) -> Path:
    import yaml

    is_folder = Path(source).is_dir()
    # No zones or site_requires here: the camera's zones come from the service (drawn in the
    # admin page's zone editor), which a detector.yaml entry would override.
    camera: dict = {"id": CAMERA_ID, "source": str(source), "fps": 5}
    if is_folder:
        camera.update(playback_fps=5, image_hold_s=3)
    config = {
        "detector_id": "demo-edge",
        "model": {
            "path": str(args.model.resolve()),
            "follow_promotions": True,
            "download_dir": str((args.state_dir / "models").resolve()),
        },
        "service": {"url": url, "api_key": state.detector_key},
        "outbox": {"path": str((args.state_dir / "outbox.sqlite3").resolve())},
        "metrics": {"enabled": True, "host": "127.0.0.1", "port": _metrics_port(args.port)},
        "cameras": [camera],
    }
    path = args.state_dir / "detector.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def _spawn(argv: list[str], log_path: Path) -> subprocess.Popen:
    log = log_path.open("ab")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "siteguard", *argv],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=REPO_ROOT,
        env=env,
        start_new_session=True,
    )


def port_in_use(host: str, port: int) -> bool:
    """True when another program listens on `port` (or the port cannot be bound on `host`)."""
    import socket

    probe = "127.0.0.1" if host in ("0.0.0.0", "", "localhost") else host
    with contextlib.suppress(OSError), socket.create_connection((probe, port), timeout=0.5):
        return True  # something answers there
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _choose_port(host: str, asked: int | None) -> int:
    """The port asked for when free (else a plain error); without one, 8000 or the next free."""
    from siteguard.cli import CliError

    if asked is not None:
        if port_in_use(host, asked):
            raise CliError(
                f"port {asked} is already in use by another program; choose a free one: "
                f"make demo PORT={asked + 1}  (or siteguard demo --port {asked + 1})"
            )
        return asked
    for port in range(DEFAULT_PORT, DEFAULT_PORT + 50):
        if not port_in_use(host, port):
            if port != DEFAULT_PORT:
                print(
                    f"port {DEFAULT_PORT} is already in use by another program; "
                    f"using port {port} (choose one with: make demo PORT=...)",
                    flush=True,
                )
            return port
    raise CliError(
        f"ports {DEFAULT_PORT}-{DEFAULT_PORT + 49} are all in use; choose one: make demo PORT=..."
    )


def _metrics_port(port: int) -> int:
    """The detector's metrics port: port + 108 (8108 beside 8000) when free, else any free one."""
    wanted = port + 108
    return 0 if port_in_use("127.0.0.1", wanted) else wanted


def _log_tail(path: Path, lines: int = 8) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return ""
    return "".join(f"\n    | {line}" for line in text)


def _wait_ready(url: str, proc: subprocess.Popen, log_path: Path, timeout_s: float = 60) -> None:
    """Wait for /readyz of the service we started (never another program's on the same port)."""
    import httpx

    from siteguard.cli import CliError

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise CliError(
                f"the service exited during start-up (status {proc.returncode}); "
                f"the end of {log_path}:{_log_tail(log_path)}"
            )
        try:
            ready = httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            ready = False
        if ready:
            time.sleep(0.3)  # a port taken under us shows as our process exiting here
            if proc.poll() is None:
                return
            continue
        time.sleep(0.3)
    raise CliError(f"the service did not become ready at {url} in {timeout_s:.0f} s")


def bundled_lineage(model: Path) -> list[Path]:
    """The model and the earlier versions kept beside it (`<stem>-v*.onnx`, e.g.
    `models/siteguard-ppe-v1.onnx` before `models/siteguard-ppe.onnx`), oldest first by the
    export date in their metadata; the model itself comes last."""
    from training.onnx_meta import read_metadata

    earlier = [p for p in sorted(model.parent.glob(f"{model.stem}-v*.onnx")) if p != model]
    dated = [(read_metadata(p).get("date", ""), p.name, p) for p in earlier]
    return [p for *_, p in sorted(dated)] + [model]


def _register_bundled_model(model: Path, url: str, state: DemoState) -> None:
    """Register the bundled model and its earlier versions, each with the figures of its
    `.eval.json` (or its metadata) and the `.pt` beside it, and promote them in order, so the
    Model accuracy page opens on the model's history. Versions already registered are kept;
    only the new ones are added (a newer bundled model after `git pull` becomes active)."""
    import httpx

    from training.onnx_meta import read_metadata
    from training.registry import RegistryClient, RegistryError, register_model_file

    try:
        lineage = bundled_lineage(model)
        versions = [read_metadata(p).get("siteguard_version") for p in lineage]
        with RegistryClient(url, state.trainer_token) as client:
            known = {m["version"] for m in client.models()}
            for index, (path, version) in enumerate(zip(lineage, versions, strict=True)):
                if not version or version in known:
                    continue
                weights = path.with_suffix(".pt")
                record = register_model_file(
                    client,
                    path,
                    notes="bundled model" if path == model else "earlier bundled model",
                    weights=weights if weights.is_file() else None,
                )
                if any(v in known for v in versions[index + 1 :]):
                    continue  # a later version is registered already: this one joins the history
                try:
                    client.promote(record["version"])
                except RegistryError as exc:
                    if path != model or exc.status != 409:
                        raise
                    # The detector runs this file: the service must announce the same model.
                    client.promote(record["version"], force=True)
                    print(f"note: promoted {version} past the gate ({exc})", flush=True)
    except (RegistryError, httpx.HTTPError, ValueError, OSError) as exc:
        print(
            f"note: could not register the bundled model ({exc}); the Model accuracy page "
            "stays empty until `siteguard registry register` succeeds",
            flush=True,
        )


def _print_banner(url: str, source: Path, state_dir: Path, state: DemoState) -> None:
    print(
        "\n"
        "  SiteGuard demo is running\n"
        f"    dashboard   {url}/\n"
        f"    login       admin / {state.admin_password}\n"
        f"    camera      {CAMERA_ID} <- {source}\n"
        f"    metrics     {url}/metrics\n"
        f"    logs        {state_dir}/service.log, {state_dir}/detector.log\n"
        "  Ctrl-C stops both processes.\n",
        flush=True,
    )


def _supervise(processes: list[subprocess.Popen], logs: list[Path], duration: float | None) -> int:
    deadline = None if duration is None else time.monotonic() + duration
    while deadline is None or time.monotonic() < deadline:
        for proc, log_path, name in zip(processes, logs, ("service", "detector"), strict=False):
            if proc.poll() is not None:
                print(
                    f"the demo's {name} exited with status {proc.returncode}; stopping. "
                    f"The end of {log_path}:{_log_tail(log_path)}",
                    flush=True,
                )
                return 1
        time.sleep(0.5)
    return 0


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
