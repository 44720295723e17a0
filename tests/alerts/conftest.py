"""Fixtures for the alerts tests (the peers themselves are in alert_peers.py)."""

from __future__ import annotations

from alert_peers import clock, make_hub, receiver, smtp

__all__ = ["clock", "make_hub", "receiver", "smtp"]
