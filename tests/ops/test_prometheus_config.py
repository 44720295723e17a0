"""The shipped Prometheus files pass the real `promtool`: config, rule syntax, rule unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml


def _promtool(promtool: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def _rule_files(deploy_dir: Path) -> list[Path]:
    files = sorted((deploy_dir / "prometheus" / "rules").glob("*.yml"))
    assert files, "no rule files under deploy/prometheus/rules"
    return files


def test_compose_prometheus_config_is_valid(promtool: str, deploy_dir: Path) -> None:
    out = _promtool(promtool, "check", "config", "prometheus/prometheus.yml", cwd=deploy_dir)
    assert out.returncode == 0, out.stdout + out.stderr


def test_kubernetes_prometheus_config_is_valid(
    promtool: str, deploy_dir: Path, tmp_path: Path
) -> None:
    """The config embedded in the k8s ConfigMap is checked like the compose one."""
    docs = list(yaml.safe_load_all((deploy_dir / "k8s" / "prometheus.yaml").read_text()))
    maps = [d for d in docs if d and d.get("kind") == "ConfigMap" and "prometheus.yml" in d["data"]]
    assert len(maps) == 1, "expected one ConfigMap holding prometheus.yml"
    config = tmp_path / "prometheus.yml"
    config.write_text(maps[0]["data"]["prometheus.yml"])
    out = _promtool(promtool, "check", "config", str(config), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_alert_rules_pass_promtool_check(promtool: str, deploy_dir: Path) -> None:
    files = [str(p) for p in _rule_files(deploy_dir)]
    out = _promtool(promtool, "check", "rules", *files, cwd=deploy_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


@pytest.mark.parametrize(
    "alert",
    [
        "SiteGuardCameraOffline",
        "SiteGuardDetectorDown",
        "SiteGuardIngestErrors",
        "SiteGuardOutboxBacklogGrowing",
        "SiteGuardFieldPrecisionDropping",
    ],
)
def test_required_alerts_exist_and_are_unit_tested(deploy_dir: Path, alert: str) -> None:
    """Each alert the operators rely on is defined and has at least one firing unit-test case."""
    defined = {
        rule["alert"]
        for path in _rule_files(deploy_dir)
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    assert alert in defined
    firing = {
        case["alertname"]
        for path in (deploy_dir / "prometheus" / "tests").glob("*.yml")
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alert in firing, f"{alert} has no unit-test case where it fires"


def test_alert_rules_unit_tests_pass(promtool: str, deploy_dir: Path) -> None:
    tests = sorted((deploy_dir / "prometheus" / "tests").glob("*.yml"))
    assert tests, "no promtool rule tests under deploy/prometheus/tests"
    out = _promtool(promtool, "test", "rules", *(str(t) for t in tests), cwd=deploy_dir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
