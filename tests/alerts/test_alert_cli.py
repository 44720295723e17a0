"""`siteguard alerts check|test` against real peers (registered via alerts.cli.register)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml
from alert_peers import Receiver

from alerts import cli as alerts_cli
from siteguard.cli import CliError


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="siteguard")
    alerts_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.handler(args)


def write(tmp_path: Path, config: dict) -> Path:
    path = tmp_path / "alerts.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_check_ok_and_bad(tmp_path: Path, receiver: Receiver, capsys) -> None:
    good = write(
        tmp_path,
        {
            "channels": {"w": {"type": "webhook", "url": receiver.url("/w")}},
            "routes": [{"name": "r", "channels": ["w"]}],
        },
    )
    assert run(["alerts", "check", str(good)]) == 0
    assert "OK — 1 channel(s), 1 route(s)" in capsys.readouterr().out
    bad = write(tmp_path, {"channels": {"w": {"type": "pager"}}})
    with pytest.raises(CliError, match=r"channels\.w\.type: unknown channel type 'pager'"):
        run(["alerts", "check", str(bad)])


def test_send_test_messages(tmp_path: Path, receiver: Receiver, free_port: int, capsys) -> None:
    path = write(
        tmp_path,
        {
            "channels": {
                "up": {"type": "webhook", "url": receiver.url("/up")},
                "down": {"type": "webhook", "url": f"http://127.0.0.1:{free_port}/"},
            },
            "routes": [{"name": "r", "channels": ["up", "down"]}],
        },
    )
    assert run(["alerts", "test", str(path), "up"]) == 0
    assert receiver.on("/up")[0].json["message"] == "test"
    assert run(["alerts", "test", str(path)]) == 1  # "down" fails
    out = capsys.readouterr().out
    assert "up (webhook): delivered" in out and "down (webhook): failed" in out
    with pytest.raises(CliError, match="unknown channel"):
        run(["alerts", "test", str(path), "nope"])
