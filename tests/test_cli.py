"""The `siteguard` command as a newcomer meets it (issue 19): every option says what it does,
and installing the package prints no setuptools deprecation warnings."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from siteguard.cli import build_parser

REPO = Path(__file__).resolve().parents[1]


def _undocumented(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _undocumented(sub, f"{path} {name}")
        elif not isinstance(action, argparse._HelpAction) and not action.help:
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_command_has_help_text() -> None:
    assert _undocumented(build_parser(), "siteguard") == []


def test_package_metadata_builds_without_deprecation_warnings(tmp_path: Path) -> None:
    """`project.license` as a TOML table made setuptools warn three times per install."""
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, tmp_path / name)
    (tmp_path / "siteguard").mkdir()
    (tmp_path / "siteguard" / "__init__.py").write_text("")
    (tmp_path / "out").mkdir()
    code = "from setuptools import build_meta; build_meta.prepare_metadata_for_build_wheel('out')"
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", code], capture_output=True, text=True, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "Warning" not in done.stderr, done.stderr
    metadata = next((tmp_path / "out").glob("*.dist-info/METADATA")).read_text()
    assert "License-Expression: AGPL-3.0-only" in metadata
