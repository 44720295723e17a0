"""camera health from heartbeats: camera state columns and the detectors table

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.models

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=16), server_default="unknown", nullable=False)
        )
        batch_op.add_column(sa.Column("fps", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("frames_dropped", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_frame_at", service.models.UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("last_heartbeat_at", service.models.UTCDateTime(), nullable=True)
        )
        batch_op.add_column(sa.Column("detector_id", sa.String(length=64), nullable=True))
    op.create_table(
        "detectors",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=True),
        sa.Column("last_seen_at", service.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("detectors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_detectors_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("detectors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_detectors_site_id"))
    op.drop_table("detectors")
    with op.batch_alter_table("cameras", schema=None) as batch_op:
        for name in (
            "detector_id",
            "last_heartbeat_at",
            "last_frame_at",
            "frames_dropped",
            "fps",
            "state",
        ):
            batch_op.drop_column(name)
