"""retraining loop: model weights, sample labels, shadow reports

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.models

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("weights_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("weights_size_bytes", sa.Integer(), nullable=True))
    with op.batch_alter_table("training_samples", schema=None) as batch_op:
        batch_op.add_column(sa.Column("false_alarm_as", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("corrected_at", service.models.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("corrected_by", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            "fk_training_samples_corrected_by_users",
            "users",
            ["corrected_by"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "shadow_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("detector_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("candidate_version", sa.String(length=128), nullable=False),
        sa.Column("active_version", sa.String(length=128), nullable=False),
        sa.Column("at", service.models.UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("active_boxes", sa.JSON(), nullable=False),
        sa.Column("candidate_boxes", sa.JSON(), nullable=False),
        sa.Column("received_at", service.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("shadow_reports", schema=None) as batch_op:
        batch_op.create_index("ix_shadow_reports_candidate", ["candidate_version", "at"])
        batch_op.create_index(batch_op.f("ix_shadow_reports_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("shadow_reports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_shadow_reports_site_id"))
        batch_op.drop_index("ix_shadow_reports_candidate")
    op.drop_table("shadow_reports")
    with op.batch_alter_table("training_samples", schema=None) as batch_op:
        batch_op.drop_constraint("fk_training_samples_corrected_by_users", type_="foreignkey")
        for name in ("corrected_by", "corrected_at", "false_alarm_as"):
            batch_op.drop_column(name)
    with op.batch_alter_table("model_versions", schema=None) as batch_op:
        batch_op.drop_column("weights_size_bytes")
        batch_op.drop_column("weights_sha256")
