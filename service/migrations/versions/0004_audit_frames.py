"""audit sampling: audit frames, training samples of kind "audit"

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.models

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_frames",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("audit_id", sa.String(length=64), nullable=False),
        sa.Column("site_id", sa.String(length=64), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("captured_at", service.models.UTCDateTime(), nullable=False),
        sa.Column("model_version", sa.String(length=128), nullable=False),
        sa.Column("frame_width", sa.Integer(), nullable=False),
        sa.Column("frame_height", sa.Integer(), nullable=False),
        sa.Column("detections", sa.JSON(), nullable=False),
        sa.Column("thresholds", sa.JSON(), nullable=False),
        sa.Column("frame_sha256", sa.String(length=64), nullable=True),
        sa.Column("snapshot_sha256", sa.String(length=64), nullable=True),
        sa.Column("labels", sa.JSON(), nullable=True),
        sa.Column("labelled_at", service.models.UTCDateTime(), nullable=True),
        sa.Column("labelled_by", sa.Integer(), nullable=True),
        sa.Column("received_at", service.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["camera_id"], ["cameras.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["labelled_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["site_id"], ["sites.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("audit_id"),
    )
    with op.batch_alter_table("audit_frames", schema=None) as batch_op:
        batch_op.create_index("ix_audit_frames_version", ["model_version", "labelled_at"])
        batch_op.create_index(batch_op.f("ix_audit_frames_site_id"), ["site_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_audit_frames_captured_at"), ["captured_at"], unique=False
        )
    with op.batch_alter_table("training_samples", schema=None) as batch_op:
        batch_op.alter_column("violation_id", existing_type=sa.Integer(), nullable=True)
        batch_op.add_column(
            sa.Column("kind", sa.String(length=16), server_default="review", nullable=False)
        )
        batch_op.add_column(sa.Column("audit_frame_id", sa.Integer(), nullable=True))
        batch_op.create_unique_constraint("uq_training_samples_audit_frame_id", ["audit_frame_id"])
        batch_op.create_foreign_key(
            "fk_training_samples_audit_frame_id_audit_frames",
            "audit_frames",
            ["audit_frame_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    op.execute("DELETE FROM training_samples WHERE kind = 'audit'")
    with op.batch_alter_table("training_samples", schema=None) as batch_op:
        batch_op.drop_constraint(
            "fk_training_samples_audit_frame_id_audit_frames", type_="foreignkey"
        )
        batch_op.drop_constraint("uq_training_samples_audit_frame_id", type_="unique")
        batch_op.drop_column("audit_frame_id")
        batch_op.drop_column("kind")
        batch_op.alter_column("violation_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("audit_frames", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_frames_captured_at"))
        batch_op.drop_index(batch_op.f("ix_audit_frames_site_id"))
        batch_op.drop_index("ix_audit_frames_version")
    op.drop_table("audit_frames")
