"""Alembic: an old database (revision 0001) with data upgrades to head and loses nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from service_testkit import make_db_url
from sqlalchemy import inspect, text

from service.db import Database


@pytest.fixture()
def db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    yield from make_db_url(backend, tmp_path)


ROWS = {
    "sites": "INSERT INTO sites (id, name, created_at) VALUES ('s1', 'Site 1', '2026-01-01')",
    "cameras": "INSERT INTO cameras (id, site_id, name, zones, required_ppe, created_at) "
    "VALUES ('c1', 's1', 'Cam', '[]', '[\"helmet\"]', '2026-01-01')",
    "users": "INSERT INTO users (id, username, password_hash, role, is_active, created_at) "
    "VALUES (1, 'old', 'x', 'manager', true, '2026-01-01')",
    "violations": "INSERT INTO violations (id, event_id, site_id, camera_id, kind, zone, "
    "started_at, confidence, boxes, status, received_at) VALUES (1, 'e1', 's1', 'c1', "
    "'no_helmet', 'site', '2026-01-02 08:00:00', 0.8, '[]', 'confirmed', '2026-01-02')",
    "reviews": "INSERT INTO reviews (id, violation_id, outcome, comment, user_id, created_at) "
    "VALUES (1, 1, 'confirmed', 'kept', 1, '2026-01-03')",
    "audit_log": "INSERT INTO audit_log (id, at, actor, action, detail) "
    "VALUES (1, '2026-01-03', 'old', 'review', '{}')",
    "training_samples": "INSERT INTO training_samples (id, violation_id, site_id, image_sha256, "
    "boxes, outcome, updated_at) VALUES (1, 1, 's1', 'ab', '[]', 'confirmed', '2026-01-03')",
}


def test_upgrade_from_first_revision_keeps_data(db_url: str) -> None:
    db = Database(db_url)
    try:
        db.upgrade("0001")
        assert "detectors" not in inspect(db.engine).get_table_names()
        with db.engine.begin() as conn:
            for sql in ROWS.values():
                conn.execute(text(sql))
        db.upgrade("head")
        assert "detectors" in inspect(db.engine).get_table_names()
        with db.engine.connect() as conn:
            for table in ROWS:
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 1, table
            cam = conn.execute(text("SELECT name, state, fps FROM cameras")).one()
            assert tuple(cam) == ("Cam", "unknown", None)
            v = conn.execute(text("SELECT event_id, status, confidence FROM violations")).one()
            assert tuple(v) == ("e1", "confirmed", 0.8)
            comment = conn.execute(text("SELECT comment FROM reviews")).scalar()
            assert comment == "kept"
            sample = conn.execute(text("SELECT kind, audit_frame_id FROM training_samples")).one()
            assert tuple(sample) == ("review", None)  # 0004: every earlier sample is a review's
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        assert version == "0005"
        db.upgrade("head")  # a second start is a no-op
    finally:
        db.dispose()


def test_audit_frames_migration_goes_down_and_up_again(db_url: str) -> None:
    """0004 down to 0003 drops the audit frames and their samples, keeps the reviews' samples."""
    from alembic import command

    from service.db import alembic_config

    db = Database(db_url)
    try:
        db.upgrade("head")
        with db.engine.begin() as conn:
            for table, sql in ROWS.items():
                if table != "training_samples":
                    conn.execute(text(sql))
            conn.execute(text(ROWS["training_samples"]))
            conn.execute(
                text(
                    "INSERT INTO audit_frames (id, audit_id, site_id, camera_id, captured_at, "
                    "model_version, frame_width, frame_height, detections, thresholds, "
                    "received_at) VALUES (1, 'a1', 's1', 'c1', '2026-01-04', 'v1', 64, 48, '[]', "
                    "'{}', '2026-01-04')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO training_samples (id, site_id, image_sha256, boxes, outcome, "
                    "updated_at, kind, audit_frame_id) VALUES (2, 's1', 'cd', '[]', 'audit', "
                    "'2026-01-04', 'audit', 1)"
                )
            )
        command.downgrade(alembic_config(db_url), "0003")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT id FROM training_samples")).scalars().all() == [1]
        assert "audit_frames" not in inspect(db.engine).get_table_names()
        db.upgrade("head")
        assert "audit_frames" in inspect(db.engine).get_table_names()
    finally:
        db.dispose()


def test_alert_outbox_migration_goes_down_and_up_again(db_url: str) -> None:
    """0005 adds the alerts outbox and the shared login failures; down to 0004 drops them and
    keeps the violations; up again restores them empty, with their constraints."""
    from alembic import command
    from sqlalchemy.exc import IntegrityError

    from service.db import alembic_config

    tables = {"alert_notices", "alert_deliveries", "login_failures"}
    db = Database(db_url)
    try:
        db.upgrade("head")
        with db.engine.begin() as conn:
            for table in ("sites", "cameras", "users", "violations"):
                conn.execute(text(ROWS[table]))
            conn.execute(
                text(
                    "INSERT INTO alert_notices (event_id, status, routes_done, created_at) "
                    "VALUES ('e1', 'pending', '[]', '2026-01-05')"
                )
            )
            conn.execute(
                text(
                    "INSERT INTO login_failures (client, username, at) "
                    "VALUES ('10.0.0.1', 'old', '2026-01-05')"
                )
            )
        with pytest.raises(IntegrityError), db.engine.begin() as conn:  # one notice per event
            conn.execute(
                text(
                    "INSERT INTO alert_notices (event_id, status, routes_done, created_at) "
                    "VALUES ('e1', 'pending', '[]', '2026-01-05')"
                )
            )
        command.downgrade(alembic_config(db_url), "0004")
        assert not tables & set(inspect(db.engine).get_table_names())
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT event_id FROM violations")).scalars().all() == ["e1"]
        db.upgrade("head")
        assert tables <= set(inspect(db.engine).get_table_names())
        indexes = {i["name"] for i in inspect(db.engine).get_indexes("alert_deliveries")}
        assert {"ix_alert_deliveries_due", "ix_alert_deliveries_status"} <= indexes
    finally:
        db.dispose()
