"""`siteguard alerts check|test`: validate an alerts config, send a test message per channel.

Imports only argparse at module level; the alerts package loads inside the handlers.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alerts.hub import AlertHub


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("alerts", help="check an alerts config or send test messages")
    sub = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)

    check = sub.add_parser("check", help="validate the config (exit 2 naming each bad key)")
    check.add_argument("config", type=Path, help="alerts YAML, e.g. configs/alerts.yaml")
    check.set_defaults(handler=_check)

    test = sub.add_parser("test", help="send a test message now and print the outcome")
    test.add_argument("config", type=Path, help="alerts YAML")
    test.add_argument("channels", nargs="*", help="channel names (default: all)")
    test.set_defaults(handler=_test)


def _load(path: Path) -> AlertHub:
    from alerts import AlertHub, AlertsConfigError
    from siteguard.cli import CliError

    try:
        return AlertHub.from_yaml(path)
    except AlertsConfigError as exc:
        raise CliError(str(exc)) from exc


def _check(args: argparse.Namespace) -> int:
    hub = _load(args.config)
    try:
        channels = hub.channels()
        routes = [r.name for r in hub.config.routes]
    finally:
        hub.stop(timeout=0)
    print(f"{args.config}: OK — {len(channels)} channel(s), {len(routes)} route(s)")
    for name, kind in channels.items():
        print(f"  channel {name} ({kind})")
    for name in routes:
        print(f"  route {name}")
    return 0


def _test(args: argparse.Namespace) -> int:
    from siteguard.cli import CliError

    hub = _load(args.config)
    try:
        names = args.channels or list(hub.channels())
        unknown = [n for n in names if n not in hub.channels()]
        if unknown:
            raise CliError(f"unknown channel(s) {unknown}; defined: {sorted(hub.channels())}")
        failures = 0
        for name in names:
            attempt = hub.send_test(name)
            detail = f" — {attempt.error}" if attempt.error else ""
            print(f"{name} ({attempt.channel_type}): {attempt.outcome} "
                  f"in {attempt.duration_s * 1000:.0f} ms{detail}")  # fmt: skip
            failures += not attempt.ok
    finally:
        hub.stop(timeout=0)
    return 1 if failures else 0
