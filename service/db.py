"""Engine, sessions and schema upgrades.

SQLite (default, a file in the data dir) runs in WAL mode with foreign keys on. Writes go through
`Database.writing`: threads of one process queue on a Python lock (no busy-wait polling), and the
transaction starts with `BEGIN IMMEDIATE`, so a read-modify-write never fails with SQLITE_BUSY
when several processes share the file. PostgreSQL (psycopg 3) needs neither: the lock is a no-op.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy timeout alone serialises the writers
    fcntl = None  # type: ignore[assignment]

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and foreign keys."""
    if url.startswith("sqlite"):
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True, **kwargs)


class _NoLock(contextlib.AbstractContextManager[None]):
    def __exit__(self, *exc: object) -> None:
        return None


class Database:
    """The engine, a session factory and the write lock for one database URL."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite and url.startswith("sqlite:///") and url != "sqlite:///:memory:":
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)
        self.write_lock: contextlib.AbstractContextManager[Any] = (
            threading.Lock() if self.is_sqlite else _NoLock()
        )
        self._process_lock = _sqlite_process_lock(url) if self.is_sqlite else None

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session

    @contextlib.contextmanager
    def writing(self, session: Session) -> Iterator[Session]:
        """One write transaction: ends any read transaction, takes the lock, commits on exit.

        Reads done inside the block see a stable database (no writer from this process can
        commit in between), so read-modify-write is safe; an exception rolls everything back.
        """
        session.commit()  # close a read transaction left open, so the write one starts fresh
        with self.write_lock, _held(self._process_lock):
            try:
                if self.is_sqlite:  # take SQLite's write lock now (waits on other processes)
                    session.connection().exec_driver_sql("BEGIN IMMEDIATE")
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def upgrade(self, revision: str = "head") -> None:
        """Bring the schema to `revision` with Alembic (creates it on an empty database)."""
        from alembic import command

        command.upgrade(alembic_config(self.url), revision)

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:  # noqa: BLE001 - readiness: any failure means not ready
            log.warning("database ping failed", exc_info=True)
            return False

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_process_lock(url: str) -> int | None:
    """A lock file beside a SQLite database file, for `flock` across worker processes.

    SQLite's own busy handler waits for another process's write lock by sleeping in growing
    steps (up to 100 ms), which shows as a latency tail with several workers; `flock` wakes
    the waiter as soon as the lock is released. None for in-memory databases or off Linux/BSD.
    """
    path = url.removeprefix("sqlite:///")
    if not url.startswith("sqlite:///") or path in ("", ":memory:") or fcntl is None:
        return None
    return os.open(f"{path}.writelock", os.O_RDWR | os.O_CREAT, 0o600)


@contextlib.contextmanager
def _held(lock_fd: int | None) -> Iterator[None]:
    if lock_fd is None:
        yield
        return
    fcntl.flock(lock_fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(lock_fd, fcntl.LOCK_UN)


def alembic_config(url: str) -> Any:
    """An Alembic Config pointing at service/migrations for `url` (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["configure_logger"] = False
    return cfg
