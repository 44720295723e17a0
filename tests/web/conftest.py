"""Fixtures for the dashboard tests (defined in testkit.py, shared with the test modules)."""

from .testkit import live_service

__all__ = ["live_service"]
