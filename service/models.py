"""SQLAlchemy 2.0 models: the service's whole data model in one place.

Times are stored as naive UTC and read back as aware UTC (`UTCDateTime`), the same on SQLite and
PostgreSQL. Snapshots, frames and model files live in the blob store; rows keep their sha256.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from siteguard.kinds import KIND_NAMES

ROLES = ("viewer", "manager", "trainer", "admin")
KINDS = KIND_NAMES  # siteguard/kinds.py; no database constraint lists them
REVIEW_OUTCOMES = ("confirmed", "false_alarm", "unsure")
VIOLATION_STATUSES = ("unreviewed", *REVIEW_OUTCOMES)
MODEL_STATUSES = ("candidate", "active", "retired")
SAMPLE_KINDS = ("review", "audit")
SAMPLE_STATUSES = ("reviewed", "to_label", "labelled")  # to_label/labelled: audit samples
CAMERA_STATES = ("online", "offline", "frozen", "unknown")


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Aware datetimes in, aware UTC out; stored naive UTC so SQLite and PostgreSQL agree."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime; pass an aware one")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        return None if value is None else value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dt.datetime: UTCDateTime(), dict[str, Any]: JSON, list[Any]: JSON}


user_sites = Table(
    "user_sites",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("site_id", ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True),
)


class Site(Base):
    __tablename__ = "sites"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    cameras: Mapped[list[Camera]] = relationship(back_populates="site")


class Camera(Base):
    """A camera; `zones` is a list of {name, polygon, required_ppe}; ids are global."""

    __tablename__ = "cameras"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    zones: Mapped[list[Any]] = mapped_column(default=list)
    required_ppe: Mapped[list[Any]] = mapped_column(default=lambda: ["helmet"])
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    # Health, from heartbeats (migration 0002).
    state: Mapped[str] = mapped_column(String(16), default="unknown", server_default="unknown")
    fps: Mapped[float | None] = mapped_column(Float)
    frames_dropped: Mapped[int | None] = mapped_column(Integer)
    last_frame_at: Mapped[dt.datetime | None]
    last_heartbeat_at: Mapped[dt.datetime | None]
    detector_id: Mapped[str | None] = mapped_column(String(64))
    site: Mapped[Site] = relationship(back_populates="cameras")


class Detector(Base):
    """An edge box, as last seen in a heartbeat (migration 0002)."""

    __tablename__ = "detectors"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str | None] = mapped_column(String(128))
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class Violation(Base):
    __tablename__ = "violations"
    __table_args__ = (
        Index("ix_violations_site_started", "site_id", "started_at"),
        Index("ix_violations_camera_started", "camera_id", "started_at"),
        Index("ix_violations_status", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    zone: Mapped[str] = mapped_column(String(64), default="site")
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    duration_s: Mapped[float | None] = mapped_column(Float)
    confidence: Mapped[float] = mapped_column(Float)
    track_id: Mapped[int | None] = mapped_column(Integer)
    model_version: Mapped[str | None] = mapped_column(String(128))
    frame_width: Mapped[int | None] = mapped_column(Integer)
    frame_height: Mapped[int | None] = mapped_column(Integer)
    boxes: Mapped[list[Any]] = mapped_column(default=list)
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))
    frame_sha256: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="unreviewed")
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    reviews: Mapped[list[Review]] = relationship(
        back_populates="violation", order_by="Review.id", cascade="all, delete-orphan"
    )


class Review(Base):
    __tablename__ = "reviews"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    violation_id: Mapped[int] = mapped_column(
        ForeignKey("violations.id", ondelete="CASCADE"), index=True
    )
    outcome: Mapped[str] = mapped_column(String(16))
    comment: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    violation: Mapped[Violation] = relationship(back_populates="reviews")
    user: Mapped[User | None] = relationship()


class ModelVersion(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    version: Mapped[str] = mapped_column(String(128), unique=True)
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(Integer)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    dataset_version: Mapped[str | None] = mapped_column(String(128))
    notes: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="candidate")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    promoted_at: Mapped[dt.datetime | None]
    promoted_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # The Ultralytics .pt the ONNX was exported from, so `siteguard retrain` can fine-tune it
    # (migration 0003).
    weights_sha256: Mapped[str | None] = mapped_column(String(64))
    weights_size_bytes: Mapped[int | None] = mapped_column(Integer)


class AuditFrame(Base):
    """A frame a detector sampled at random (detector/audit.py) with the detections of the model
    that saw it; a trainer's labels make it count in that version's field figures (migration
    0004). The row (boxes, no images) outlives its raw frame, so the figures do too."""

    __tablename__ = "audit_frames"
    __table_args__ = (Index("ix_audit_frames_version", "model_version", "labelled_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audit_id: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    camera_id: Mapped[str] = mapped_column(ForeignKey("cameras.id", ondelete="CASCADE"))
    captured_at: Mapped[dt.datetime] = mapped_column(index=True)
    model_version: Mapped[str] = mapped_column(String(128))
    frame_width: Mapped[int] = mapped_column(Integer)
    frame_height: Mapped[int] = mapped_column(Integer)
    detections: Mapped[list[Any]] = mapped_column(default=list)  # at the operating thresholds
    thresholds: Mapped[dict[str, Any]] = mapped_column(default=dict)
    frame_sha256: Mapped[str | None] = mapped_column(String(64))  # raw: trainers only
    snapshot_sha256: Mapped[str | None] = mapped_column(String(64))  # heads blurred
    labels: Mapped[list[Any] | None] = mapped_column(JSON)  # None until a trainer labels it
    labelled_at: Mapped[dt.datetime | None]
    labelled_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class TrainingSample(Base):
    """A frame with its boxes: what `training/` fetches to fine-tune. `kind` "review": a
    reviewed alert's frame (`violation_id`); "audit": an audit frame (`audit_frame_id`, 0004)."""

    __tablename__ = "training_samples"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    violation_id: Mapped[int | None] = mapped_column(
        ForeignKey("violations.id", ondelete="CASCADE"), unique=True
    )
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    image_sha256: Mapped[str] = mapped_column(String(64))
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    boxes: Mapped[list[Any]] = mapped_column(default=list)
    outcome: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    # Migration 0003: the reviewer's reading of a false alarm (the flagged head is a `helmet`,
    # or `background`), and a trainer's correction (then `boxes` are the labels as they stand).
    false_alarm_as: Mapped[str | None] = mapped_column(String(16))
    corrected_at: Mapped[dt.datetime | None]
    corrected_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(16), default="review", server_default="review")
    audit_frame_id: Mapped[int | None] = mapped_column(
        ForeignKey("audit_frames.id", ondelete="CASCADE"), unique=True
    )


class ShadowReport(Base):
    """A frame where a candidate model in shadow mode disagreed with the active one (0003)."""

    __tablename__ = "shadow_reports"
    __table_args__ = (Index("ix_shadow_reports_candidate", "candidate_version", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    site_id: Mapped[str] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    detector_id: Mapped[str] = mapped_column(String(64))
    camera_id: Mapped[str] = mapped_column(String(64))
    candidate_version: Mapped[str] = mapped_column(String(128))
    active_version: Mapped[str] = mapped_column(String(128))
    at: Mapped[dt.datetime]
    kind: Mapped[str] = mapped_column(String(32))
    active_boxes: Mapped[list[Any]] = mapped_column(default=list)
    candidate_boxes: Mapped[list[Any]] = mapped_column(default=list)
    received_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="viewer")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    sites: Mapped[list[Site]] = relationship(secondary=user_sites, lazy="selectin")


class UserSession(Base):
    """A web login; the cookie carries a random token, the row only its sha256."""

    __tablename__ = "user_sessions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime]
    user: Mapped[User] = relationship(lazy="joined")


class ApiKey(Base):
    """A detector key (bound to a site) or a user token (acts as that user, e.g. training)."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    site_id: Mapped[str | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[dt.datetime | None]
    user: Mapped[User | None] = relationship(lazy="joined")


class AuditEntry(Base):
    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(100))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(64), index=True)
    site_id: Mapped[str | None] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))


class AlertNotice(Base):
    """A stored violation the alert channels have yet to route (the alerts outbox, issue 17).

    Written in the violation's own transaction; a replica claims it (``claimed_by`` until
    ``lease_until``), routes it, and records the routes done so a replay never repeats one.
    """

    __tablename__ = "alert_notices"
    __table_args__ = (Index("ix_alert_notices_status_lease", "status", "lease_until"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[str] = mapped_column(
        ForeignKey("violations.event_id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | routed
    routes_done: Mapped[list[Any]] = mapped_column(default=list)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class AlertDelivery(Base):
    """One message for one channel: pending -> sending -> delivered, or dead after its retries."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("ix_alert_deliveries_due", "channel", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_status", "status"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    channel: Mapped[str] = mapped_column(String(100))
    route: Mapped[str | None] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    subject: Mapped[str] = mapped_column(String(200))
    dispatch: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class LoginFailure(Base):
    """A failed login, counted by every replica (the shared login rate limit, issue 17)."""

    __tablename__ = "login_failures"
    __table_args__ = (
        Index("ix_login_failures_client_at", "client", "at"),
        Index("ix_login_failures_pair", "client", "username", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(100))
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


__all__ = [
    "AlertDelivery",
    "AlertNotice",
    "ApiKey",
    "AuditFrame",
    "AuditEntry",
    "Base",
    "Camera",
    "Detector",
    "LoginFailure",
    "ModelVersion",
    "Review",
    "ShadowReport",
    "Site",
    "TrainingSample",
    "User",
    "UserSession",
    "Violation",
    "user_sites",
]
