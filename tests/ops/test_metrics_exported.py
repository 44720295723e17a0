"""Every metric an alert rule or a dashboard panel uses is exported by the real processes.

A renamed metric would otherwise leave an alert that can never fire and a panel that stays
empty, with nothing failing. The names are read from the shipped files and looked up on the
/metrics pages of a running `siteguard serve` and `siteguard detect`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx
import pytest
import yaml

from ops.opslib import Stack, exported_names, wait_until

_NAME = re.compile(r"\bsiteguard_[a-z0-9_]+\b")


def _rule_exprs(deploy_dir: Path) -> dict[str, str]:
    exprs = {}
    for path in sorted((deploy_dir / "prometheus" / "rules").glob("*.yml")):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                exprs[f"rule {rule.get('alert') or rule.get('record')}"] = rule["expr"]
    return exprs


def _dashboard_exprs(deploy_dir: Path) -> dict[str, str]:
    exprs = {}
    for path in sorted((deploy_dir / "grafana" / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                exprs[f"{path.name}: {panel['title']} ({target['refId']})"] = target["expr"]
    return exprs


def test_exprs_found(deploy_dir: Path) -> None:
    """The extraction below sees the files (so the real check cannot pass vacuously)."""
    rules, panels = _rule_exprs(deploy_dir), _dashboard_exprs(deploy_dir)
    assert len(rules) >= 5 and len(panels) >= 10
    used = {name for expr in [*rules.values(), *panels.values()] for name in _NAME.findall(expr)}
    assert any(n.startswith("siteguard_detector_") for n in used)
    assert any(not n.startswith("siteguard_detector_") for n in used)


@pytest.fixture(scope="module")
def exported(stack: Stack) -> set[str]:
    """Names on both /metrics pages once the detector has sent a heartbeat."""

    def camera_known() -> bool:
        """the service has the camera's heartbeat (its gauge has a sample)"""
        return "siteguard_camera_online{" in stack.service.metrics()

    wait_until(camera_known, timeout=90)
    return exported_names(stack.service.metrics()) | exported_names(stack.detector.metrics())


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_used_metric_is_exported(deploy_dir: Path, exported: set[str], source: str) -> None:
    exprs = _rule_exprs(deploy_dir) if source == "rules" else _dashboard_exprs(deploy_dir)
    missing = {
        where: sorted(set(_NAME.findall(expr)) - exported)
        for where, expr in exprs.items()
        if set(_NAME.findall(expr)) - exported
    }
    assert not missing, f"metrics used but not exported: {missing}"


def test_service_metrics_pass_promtool_check_metrics(promtool: str, stack: Stack) -> None:
    """The exposition format itself is clean (names, units, HELP) on both processes."""
    import subprocess

    for page in (stack.service.metrics(), stack.detector.metrics()):
        out = subprocess.run(
            [promtool, "check", "metrics"],
            input=page,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert out.returncode == 0, out.stdout + out.stderr


def test_metrics_endpoints_answer_plain_http(stack: Stack) -> None:
    """What Prometheus and the image's HEALTHCHECK rely on: 200 with the text format."""
    for url in (
        f"{stack.service.url}/metrics",
        f"http://127.0.0.1:{stack.detector.metrics_port}/metrics",
    ):
        response = httpx.get(url, timeout=30)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/plain")
    assert httpx.get(f"{stack.service.url}/healthz", timeout=30).status_code == 200


def test_operations_reference_matches_the_real_metrics(
    repo_root: Path, deploy_dir: Path, exported: set[str], stack: Stack
) -> None:
    """docs/operations.md documents exactly the metrics the processes export, and every alert."""
    doc = (repo_root / "docs" / "operations.md").read_text()
    documented = set(re.findall(r"^\| `(siteguard_[a-z0-9_]+)` \|", doc, re.MULTILINE))
    families = {
        name
        for text in (stack.service.metrics(), stack.detector.metrics())
        for name in re.findall(r"^# TYPE (siteguard_[a-z0-9_]+) ", text, re.MULTILINE)
        if not name.endswith("_created")  # prometheus_client's creation-time twins
    }
    # Name counters as they are queried (with `_total`), whatever the TYPE line says.
    queried = {f"{n}_total" if f"{n}_total" in exported else n for n in families}
    assert documented - exported == set(), "documented but not exported"
    assert queried - documented == set(), "exported but not documented in docs/operations.md"
    alerts = {name for name in _rule_exprs(deploy_dir) if name.startswith("rule ")}
    for alert in alerts:
        assert f"`{alert.removeprefix('rule ')}`" in doc, f"{alert} not in docs/operations.md"
