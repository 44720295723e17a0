"""One `siteguard` command; each package registers its own subcommands.

Every package exposes `register(subparsers)` in its `cli` module. Those modules import only
argparse at module level, so `siteguard --help` stays fast and never imports torch; the real
work is imported inside each handler.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Order is the order of `siteguard --help`. A package missing from an install is skipped.
COMMAND_MODULES = (
    "detector.cli",
    "service.cli",
    "alerts.cli",
    "training.cli",
    "siteguard.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="siteguard", description="PPE-compliance monitoring for construction sites."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # e.g. a dataset's recipe records it
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # one INFO line per HTTP request says nothing a user needs
        for noisy in ("httpx", "httpcore"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"siteguard {args.command}: error: {exc}", file=sys.stderr)
        return 2


class CliError(Exception):
    """A user-facing error: printed without a traceback, exit status 2."""
