"""A throw-away PostgreSQL database per test, on the server `scripts/postgres-test-db.sh` set up.

Every test folder that needs a real PostgreSQL takes its database from here (tests/ is on the
import path of every test module), so the create/drop code exists once.

Example:
    >>> with scratch_database("sg_web") as url:
    ...     database = Database(url)
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

PG_URL = os.environ.get("SITEGUARD_TEST_POSTGRES_URL")


@contextmanager
def scratch_database(prefix: str = "sg_test") -> Iterator[str]:
    """A fresh, empty database (libpq URL), dropped afterwards even if connections are open.

    Skips the test when no server is configured (SITEGUARD_TEST_POSTGRES_URL)."""
    if not PG_URL:
        pytest.skip("SITEGUARD_TEST_POSTGRES_URL not set (scripts/postgres-test-db.sh)")
    import psycopg

    admin_url = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{admin_url.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
