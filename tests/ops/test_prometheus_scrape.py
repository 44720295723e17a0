"""A real Prometheus (Debian binary) scrapes a real service and detector on 127.0.0.1, loads the
shipped alert rules, and answers queries about them through its HTTP API."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from ops.opslib import Stack, free_port, wait_until


class Prometheus:
    def __init__(self, binary: str, workdir: Path, stack: Stack, rules_dir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        rules = workdir / "rules"
        shutil.copytree(rules_dir, rules)
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules / "*.yml")],
            "scrape_configs": [
                {
                    "job_name": "siteguard-service",
                    "static_configs": [{"targets": [f"127.0.0.1:{stack.service.port}"]}],
                },
                {
                    "job_name": "siteguard-detector",
                    "static_configs": [{"targets": [f"127.0.0.1:{stack.detector.metrics_port}"]}],
                },
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = (workdir / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def ready(self) -> bool:
        """Prometheus answers /-/ready"""
        assert self.proc.poll() is None, "prometheus exited (see prometheus.log)"
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success", body
        return body["data"]["result"]

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture(scope="module")
def prometheus(
    prometheus_bin: str, stack: Stack, deploy_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Prometheus]:
    prom = Prometheus(
        prometheus_bin,
        tmp_path_factory.mktemp("prometheus"),
        stack,
        deploy_dir / "prometheus" / "rules",
    )
    try:
        wait_until(prom.ready, timeout=60)
        yield prom
    finally:
        prom.close()


def test_both_targets_are_up(prometheus: Prometheus) -> None:
    def both_up() -> bool:
        """Prometheus scraped both targets successfully"""
        result = prometheus.query("up")
        return {r["metric"]["job"] for r in result if r["value"][1] == "1"} == {
            "siteguard-service",
            "siteguard-detector",
        }

    wait_until(both_up, timeout=60, interval=0.5)


def test_detector_metric_queried_back(prometheus: Prometheus, stack: Stack) -> None:
    """Frames the detector read, as Prometheus stored them, labelled by camera and job."""

    def frames() -> list[dict[str, Any]]:
        """Prometheus has a positive frame count for the camera"""
        result = prometheus.query(
            f'siteguard_detector_frames_read_total{{camera="{stack.camera}"}} > 0'
        )
        return result

    [series] = wait_until(frames, timeout=90, interval=0.5)
    assert series["metric"]["job"] == "siteguard-detector"
    assert float(series["value"][1]) > 0


def test_service_camera_state_queried_back(prometheus: Prometheus, stack: Stack) -> None:
    """The service's view of the camera, from the detector's heartbeats, through Prometheus."""

    def online() -> list[dict[str, Any]]:
        """Prometheus sees the camera online via the service"""
        return prometheus.query(
            f'siteguard_camera_online{{site="{stack.site}", camera="{stack.camera}"}} == 1'
        )

    [series] = wait_until(online, timeout=90, interval=0.5)
    assert series["metric"]["job"] == "siteguard-service"


def test_shipped_rules_load_and_evaluate_cleanly(prometheus: Prometheus) -> None:
    """Every rule group is loaded and evaluates against live data without an error."""

    def evaluated() -> list[dict[str, Any]]:
        """every shipped rule has been evaluated at least once"""
        groups = httpx.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = rules and all(rule.get("lastEvaluation", "").startswith("20") for rule in rules)
        return rules if done else []

    rules = wait_until(evaluated, timeout=60, interval=0.5)
    assert len(rules) >= 8
    broken = {rule["name"]: rule.get("lastError") for rule in rules if rule["health"] != "ok"}
    assert not broken, broken
    firing = [rule["name"] for rule in rules if rule.get("state") == "firing"]
    assert not firing, f"alerts firing on a healthy stack: {firing}"
