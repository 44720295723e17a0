"""deploy/ holds what operators run: compose, Kubernetes, configs, Grafana. No Docker engine or
cluster runs in CI, so these tests hold the manifests to the real code instead: every SITEGUARD_*
variable they set is loaded by the real settings classes, every config file they mount is loaded
by the real loaders, every file they mount or generate from exists, and the image targets exist.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ops.dockerfile import parse_dockerfile

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
_VAR = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")


def _env_example() -> dict[str, str]:
    lines = (DEPLOY / ".env.example").read_text().splitlines()
    pairs = (line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} with deploy/.env.example's values."""

    def sub(match: re.Match[str]) -> str:
        name, op, arg = match.groups()
        if env.get(name):
            return env[name]
        assert op != "?", f"${{{name}}} is required but missing from deploy/.env.example"
        return arg or ""

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def _k8s_docs() -> Iterator[dict[str, Any]]:
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                yield doc


def _k8s(kind: str, name: str) -> dict[str, Any]:
    found = [d for d in _k8s_docs() if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def _settle(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Clear every SITEGUARD_* variable of the test process, then set `env`."""
    import os

    for key in list(os.environ):
        if key.startswith("SITEGUARD_"):
            monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


# --- compose -----------------------------------------------------------------------------------


def test_compose_has_the_five_parts(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"service", "postgres", "prometheus", "grafana", "detector"}


def test_compose_builds_existing_dockerfile_targets(compose: dict[str, Any]) -> None:
    stages = parse_dockerfile((REPO / "Dockerfile").read_text())
    targets = {
        name: svc["build"]["target"] for name, svc in compose["services"].items() if "build" in svc
    }
    assert targets == {"service": "server", "detector": "edge"}
    assert set(targets.values()) <= stages.keys()
    for svc in compose["services"].values():
        if "build" in svc:
            assert (DEPLOY / svc["build"]["context"] / svc["build"]["dockerfile"]).is_file()


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: mounts missing {source}"


def test_compose_service_environment_is_valid_service_settings(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.config import load_settings

    env = _env_example()
    svc_env = {
        k: _interpolate(str(v), env)
        for k, v in compose["services"]["service"]["environment"].items()
    }
    _settle(monkeypatch, {k: v for k, v in svc_env.items() if k.startswith("SITEGUARD_")})
    settings = load_settings()
    assert settings.db_url.startswith("postgresql+psycopg://siteguard:")
    assert settings.event_bus == "postgres", "SSE fan-out across replicas needs the postgres bus"


def test_compose_detector_config_and_environment_load(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from detector.config import load_config

    env = _env_example() | {"SITEGUARD_API_KEY": "sg_example"}
    det = compose["services"]["detector"]
    det_env = {k: _interpolate(str(v), env) for k, v in det["environment"].items()}
    _settle(monkeypatch, det_env)
    config = load_config(DEPLOY / "config" / "detector.yaml")
    assert config.service.url == "http://service:8000"
    assert config.metrics.host == "0.0.0.0" and config.metrics.port == 9108
    assert {c.id for c in config.cameras} and all(
        c.source.startswith("rtsp://") for c in config.cameras
    )


def test_compose_alerts_config_loads(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mounted alerts.yaml loads with exactly the environment compose gives the service."""
    from alerts import AlertHub

    raw = compose["services"]["service"]["environment"]
    _settle(monkeypatch, {k: _interpolate(str(v), _env_example()) for k, v in raw.items()})
    assert raw["SITEGUARD_ALERTS_CONFIG"] == "/etc/siteguard/alerts.yaml"
    monkeypatch.delenv("ALERT_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("ALERT_WEBHOOK_URL", _interpolate(raw["ALERT_WEBHOOK_URL"], _env_example()))
    hub = AlertHub.from_yaml(DEPLOY / "config" / "alerts.yaml")
    assert hub is not None


def test_compose_prometheus_scrapes_compose_ports(compose: dict[str, Any]) -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in config["scrape_configs"]
    }
    assert targets["siteguard-service"] == ["service:8000"]
    assert targets["siteguard-detector"] == ["detector:9108"]
    assert "8000:8000" in compose["services"]["service"]["ports"]


# --- Kubernetes --------------------------------------------------------------------------------


def test_k8s_documents_are_well_formed() -> None:
    docs = list(_k8s_docs())
    assert docs
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc


def test_kustomization_references_existing_files() -> None:
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / resource).is_file(), resource
    assert {p.relative_to(DEPLOY).as_posix() for p in (DEPLOY / "k8s").glob("*.yaml")} == set(
        kustomization["resources"]
    ), "every k8s/*.yaml must be listed in deploy/kustomization.yaml"
    generated = {g["name"]: g["files"] for g in kustomization["configMapGenerator"]}
    for files in generated.values():
        for file in files:
            assert (DEPLOY / file).is_file(), file
    mounted = {
        vol["configMap"]["name"]
        for doc in _k8s_docs()
        if doc["kind"] in {"Deployment", "StatefulSet"}
        for vol in doc["spec"]["template"]["spec"].get("volumes", [])
        if "configMap" in vol
    }
    defined = {d["metadata"]["name"] for d in _k8s_docs() if d["kind"] == "ConfigMap"}
    assert mounted <= defined | set(generated), mounted - defined - set(generated)


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    """Container env with secret/field references replaced by plausible values."""
    stand_ins = {
        "database-url": "postgresql://siteguard:secret@postgres:5432/siteguard",
        "public-url": "https://siteguard.example.internal",
        "metadata.name": "siteguard-detector-0",
    }
    env = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
        else:
            ref = next(iter(item["valueFrom"].values()))
            env[item["name"]] = stand_ins.get(ref.get("key") or ref.get("fieldPath"), "x")
    return env


def test_k8s_api_is_replicated_with_a_shared_event_bus(monkeypatch: pytest.MonkeyPatch) -> None:
    from service.config import load_settings

    api = _k8s("Deployment", "siteguard-api")
    assert api["spec"]["replicas"] >= 2
    container = api["spec"]["template"]["spec"]["containers"][0]
    _settle(monkeypatch, _container_env(container))
    settings = load_settings()
    assert settings.event_bus == "postgres"
    assert not settings.upgrade_db_on_start, "replicas must not race on migrations"
    assert settings.db_url.startswith("postgresql+psycopg://")
    claim = next(
        v["persistentVolumeClaim"]["claimName"]
        for v in api["spec"]["template"]["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    )
    assert _k8s("PersistentVolumeClaim", claim)["spec"]["accessModes"] == ["ReadWriteMany"]


def test_k8s_detectors_each_have_a_camera_config_and_own_outbox(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from detector.config import load_config

    sts = _k8s("StatefulSet", "siteguard-detector")
    cameras = _k8s("ConfigMap", "siteguard-detectors")["data"]
    assert {f"siteguard-detector-{i}.yaml" for i in range(sts["spec"]["replicas"])} <= set(
        cameras
    ), "one camera file per detector replica"
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "outbox"
    container = sts["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][:3] == ["detect", "--config", "/etc/siteguard/$(POD_NAME).yaml"]
    seen: set[str] = set()
    for name, text in cameras.items():
        pod = name.removesuffix(".yaml")
        _settle(monkeypatch, _container_env(container) | {"SITEGUARD_DETECTOR__DETECTOR_ID": pod})
        path = tmp_path / name
        path.write_text(text)
        config = load_config(path)
        assert config.detector_id == pod and config.cameras
        ids = {c.id for c in config.cameras}
        assert not ids & seen, f"camera ids {ids & seen} watched by two detectors"
        seen |= ids


@pytest.mark.parametrize(
    "kind,name", [("Deployment", "siteguard-api"), ("Job", "siteguard-migrate")]
)
def test_k8s_server_pods_run_as_the_image_user(kind: str, name: str) -> None:
    pod = _k8s(kind, name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == 10001
    assert pod["containers"][0]["image"].startswith("siteguard-server:")


def test_k8s_probes_use_declared_ports() -> None:
    for doc in _k8s_docs():
        if doc["kind"] not in {"Deployment", "StatefulSet"}:
            continue
        for container in doc["spec"]["template"]["spec"]["containers"]:
            ports = {p["name"] for p in container.get("ports", [])}
            ports |= {p["containerPort"] for p in container.get("ports", [])}
            for probe in ("readinessProbe", "livenessProbe"):
                http = container.get(probe, {}).get("httpGet")
                if http:
                    assert http["port"] in ports, (doc["metadata"]["name"], probe, http)


# --- Grafana -----------------------------------------------------------------------------------


def test_grafana_dashboard_is_well_formed() -> None:
    dashboard = json.loads((DEPLOY / "grafana" / "dashboards" / "siteguard.json").read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert exprs and all(e.strip() for e in exprs)
    provider = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "dashboards" / "siteguard.yaml").read_text()
    )
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasource = yaml.safe_load(
        (DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    )
    assert datasource["datasources"][0]["type"] == "prometheus"
