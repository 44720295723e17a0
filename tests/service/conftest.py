"""Service test fixtures; they live in service_testkit.py (a unique module name, so test modules
can import its helpers without clashing with the other folders' conftest modules)."""

from __future__ import annotations

from service_testkit import backend, live

__all__ = ["backend", "live"]
