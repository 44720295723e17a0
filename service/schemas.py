"""Request and response bodies of `/api/v1` (pydantic), and the shared violation filter.

Input models reject unknown enum values, NaN/inf, naive datetimes and ids that could be paths;
FastAPI turns those into 422 responses that name the bad field. Every input model is `Inbound`:
it also refuses what a database would refuse later (a NUL character in any string, a time that
leaves the datetime range in UTC), so a bad post fails alone, at once, with its own 422.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from siteguard.kinds import Kind, Requirement

# Ids that end up in URLs, never in paths: letters, digits, '-', '_' (and '.' for versions).
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
EVENT_ID = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
VERSION = r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$"

SiteId = Annotated[str, Field(pattern=SLUG)]
CameraId = Annotated[str, Field(pattern=SLUG)]
EventId = Annotated[str, Field(pattern=EVENT_ID)]
Version = Annotated[str, Field(pattern=VERSION)]
Outcome = Literal["confirmed", "false_alarm", "unsure"]
Status = Literal["unreviewed", "confirmed", "false_alarm", "unsure"]
Role = Literal["viewer", "manager", "trainer", "admin"]
Ppe = Requirement  # Kind and Ppe: siteguard/kinds.py lists them for every part
Coordinate = Annotated[float, Field(ge=-1e6, le=1e6, description="pixels")]


def _database_problem(value: Any) -> str | None:
    """Why PostgreSQL or SQLite would refuse `value` (None: they would not), nested values too."""
    if isinstance(value, str):
        return "NUL character (\\u0000) not allowed" if "\x00" in value else None
    if isinstance(value, dt.datetime):
        try:
            value.astimezone(dt.UTC)
        except OverflowError:
            return "time out of range in UTC"
        return None
    if isinstance(value, dict):
        return next(filter(None, map(_database_problem, (*value.keys(), *value.values()))), None)
    if isinstance(value, list | tuple | set | frozenset):
        return next(filter(None, map(_database_problem, value)), None)
    return None  # numbers (finite: allow_inf_nan=False), bools, nested models (checked alone)


class Inbound(BaseModel):
    """Base of every input model: refuses values a database would refuse (see the module)."""

    model_config = ConfigDict(allow_inf_nan=False)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        problem = _database_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class Input(Inbound):
    model_config = ConfigDict(allow_inf_nan=False, extra="forbid", str_max_length=4096)


# --- detector -> service ----------------------------------------------------------------------


class BoxIn(Inbound):
    model_config = ConfigDict(allow_inf_nan=False, extra="ignore", populate_by_name=True)
    class_name: str = Field(alias="class", min_length=1, max_length=64)
    confidence: float = Field(ge=0, le=1)
    xyxy: tuple[Coordinate, Coordinate, Coordinate, Coordinate]
    track_id: int | None = Field(None, ge=-(2**31), lt=2**31)


class ViolationIn(Inbound):
    """The `event` part of `POST /api/v1/violations` (docs/contract.md)."""

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    event_id: EventId
    camera_id: CameraId
    kind: Kind
    zone: str = Field("site", min_length=1, max_length=64)
    started_at: AwareDatetime
    ended_at: AwareDatetime | None = None
    duration_s: float | None = Field(None, ge=0, le=7 * 86400)
    confidence: float = Field(ge=0, le=1)
    track_id: int | None = Field(None, ge=-(2**31), lt=2**31)
    model_version: str | None = Field(None, max_length=128)
    frame_width: int | None = Field(None, gt=0, le=100_000)
    frame_height: int | None = Field(None, gt=0, le=100_000)
    boxes: list[BoxIn] = Field(default_factory=list, max_length=1000)


class AuditFrameIn(Inbound):
    """The `audit` part of `POST /api/v1/audit-frames`: a frame the detector sampled at random,
    with the detections of the model that saw it at its operating thresholds (docs/contract.md).
    """

    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    audit_id: EventId
    camera_id: CameraId
    captured_at: AwareDatetime
    model_version: str = Field(min_length=1, max_length=128)
    frame_width: int = Field(gt=0, le=100_000)
    frame_height: int = Field(gt=0, le=100_000)
    detections: list[BoxIn] = Field(max_length=1000, description="[] = the model saw nothing")
    thresholds: dict[str, Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=dict, max_length=100, description="per class: the operating threshold"
    )


class AuditFrameOut(BaseModel):
    """An audit frame as stored. The raw frame is a training sample's image (trainers only:
    `GET /api/v1/samples/{sample_id}/image`); everyone else gets the blurred snapshot."""

    audit_id: str
    site_id: str
    camera_id: str
    captured_at: dt.datetime
    model_version: str
    frame_width: int
    frame_height: int
    detections: list[dict[str, Any]]
    thresholds: dict[str, Any]
    status: Literal["to_label", "labelled"]
    labelled_at: dt.datetime | None
    received_at: dt.datetime
    snapshot_url: str | None
    sample_id: int | None = Field(None, description="its training sample (while the frame lasts)")


class AuditFramePage(BaseModel):
    items: list[AuditFrameOut]
    total: int
    limit: int
    offset: int


class ViolationEndIn(Input):
    ended_at: AwareDatetime
    duration_s: float | None = Field(None, ge=0, le=7 * 86400)


class CameraBeat(Inbound):
    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    camera_id: CameraId
    state: Literal["online", "offline", "frozen"]
    fps: float | None = Field(None, ge=0, le=1000)
    last_frame_at: AwareDatetime | None = None
    frames_dropped: int | None = Field(None, ge=0, lt=2**31)


class HeartbeatIn(Inbound):
    model_config = ConfigDict(allow_inf_nan=False, extra="ignore")
    detector_id: str = Field(pattern=SLUG)
    model_version: str | None = Field(None, max_length=128)
    cameras: list[CameraBeat] = Field(default_factory=list, max_length=256)


class ActiveModel(BaseModel):
    version: str
    sha256: str
    url: str


class CameraSettings(BaseModel):
    """What the service keeps for one camera of a heartbeat (drawn in the admin page's zone
    editor): its zones (frame pixels) and the PPE required outside every zone. A detector uses
    them unless its own config sets `zones` / `site_requires` for that camera."""

    camera_id: str
    zones: list[dict[str, Any]] = Field(default_factory=list)
    required_ppe: list[str] = Field(default_factory=lambda: ["helmet"])


class HeartbeatOut(BaseModel):
    active_model: ActiveModel | None
    cameras: list[CameraSettings] = Field(default_factory=list)


class DetectorOut(BaseModel):
    id: str
    site_id: str
    model_version: str | None
    last_seen_at: dt.datetime


# --- violations -------------------------------------------------------------------------------


class ReviewOut(BaseModel):
    outcome: Outcome
    comment: str
    user: str | None
    created_at: dt.datetime


class ViolationOut(BaseModel):
    event_id: str
    site_id: str
    camera_id: str
    kind: str
    zone: str
    started_at: dt.datetime
    ended_at: dt.datetime | None
    duration_s: float | None
    confidence: float
    track_id: int | None
    model_version: str | None
    frame_width: int | None
    frame_height: int | None
    boxes: list[dict[str, Any]]
    status: Status
    received_at: dt.datetime
    snapshot_url: str | None
    frame_url: str | None
    reviews: list[ReviewOut] = Field(default_factory=list)


class ViolationPage(BaseModel):
    items: list[ViolationOut]
    total: int
    limit: int
    offset: int


class ViolationFilter(Inbound):
    """One filter for every list of violations: the API list, stats and the dashboard.

    Use as `filters: Annotated[ViolationFilter, Query()]`, then
    `service.violations.filter_conditions(filters, scope)` for the WHERE clauses.
    """

    model_config = ConfigDict(extra="ignore")
    site_id: SiteId | None = None
    camera_id: CameraId | None = None
    kind: Kind | None = None
    zone: str | None = Field(None, max_length=64)
    status: Status | None = None
    model_version: str | None = Field(None, max_length=128)
    since: AwareDatetime | None = Field(None, description="started_at >= since")
    until: AwareDatetime | None = Field(None, description="started_at < until")

    @field_validator("since", "until")
    @classmethod
    def _in_utc_range(cls, value: dt.datetime | None) -> dt.datetime | None:
        """A time the database can be asked about (9999-12-31 west of UTC is not)."""
        try:
            return None if value is None else value.astimezone(dt.UTC)
        except OverflowError:
            raise ValueError("out of range") from None

    limit: int = Field(50, ge=1, le=500)
    offset: int = Field(0, ge=0, le=1_000_000)


class ReviewIn(Input):
    outcome: Outcome
    comment: str = Field("", max_length=2000)
    false_alarm_as: Literal["helmet", "background"] | None = Field(
        None,
        description="false alarms only: the flagged head is a `helmet` (relabelled in the "
        "training sample) or `background` (dropped, the default)",
    )


class StatsRow(BaseModel):
    key: str
    total: int
    unreviewed: int
    confirmed: int
    false_alarm: int
    unsure: int
    confirmed_rate: float | None = Field(description="confirmed / (confirmed + false_alarm)")


class StatsOut(BaseModel):
    group_by: str
    rows: list[StatsRow]


# --- models, samples --------------------------------------------------------------------------


class ModelMetaIn(Input):
    version: Version
    dataset_version: str | None = Field(None, max_length=128)
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: str = Field("", max_length=4000)


class ModelPatchIn(Input):
    dataset_version: str | None = Field(None, max_length=128)
    metrics: dict[str, Any] | None = None
    notes: str | None = Field(None, max_length=4000)


class FieldPrecision(BaseModel):
    reviewed: int
    confirmed: int
    false_alarm: int
    precision: float | None


class AuditFigures(BaseModel):
    """A model version's field figures from labelled audit frames (service/field.py): the
    detections it made on site against a trainer's labels, as `training/worker_metrics.py`
    defines the figures. Each ratio is None when nothing stands behind it."""

    frames: int = Field(description="labelled audit frames this version saw")
    to_label: int = Field(0, description="its audit frames still waiting for a trainer")
    workers: int = Field(description="labelled heads and helmets on them")
    heads: int = Field(description="labelled bare heads (violation recall's denominator)")
    head_detections: int = Field(description="its bare-head detections (precision's)")
    false_alarms: int
    worker_accuracy: float | None
    violation_precision: float | None
    violation_recall: float | None
    matching: str = "iou"


class FieldOut(BaseModel):
    """`GET /api/v1/models/{version}/field`: both kinds of field figure of one version."""

    version: str
    site_id: str | None
    reviews: FieldPrecision
    audit: AuditFigures


class ModelVersionOut(BaseModel):
    version: str
    sha256: str
    size_bytes: int
    metrics: dict[str, Any]
    dataset_version: str | None
    notes: str
    status: str
    created_at: dt.datetime
    promoted_at: dt.datetime | None
    file_url: str
    field: FieldPrecision
    weights_url: str | None = Field(None, description="the .pt it was exported from, if stored")
    shadow_disagreements: int = Field(0, description="frames where it disagreed in shadow mode")
    audit: AuditFigures | None = Field(
        None, description="field figures from labelled audit frames (None: no audit frames)"
    )


class SampleOut(BaseModel):
    id: int
    kind: Literal["review", "audit"] = "review"
    status: Literal["reviewed", "to_label", "labelled"] = Field(
        "reviewed", description="audit samples: to_label until a trainer saves labels"
    )
    event_id: str = Field(description="the violation's event id, or the audit frame's audit id")
    site_id: str
    camera_id: str
    image_url: str
    width: int | None
    height: int | None
    boxes: list[dict[str, Any]]
    outcome: str
    updated_at: dt.datetime
    false_alarm_as: str | None = None
    corrected_at: dt.datetime | None = None
    labels: list[dict[str, Any]] = Field(
        default_factory=list, description="the boxes as they are exported for training"
    )
    model_version: str | None = Field(None, description="audit samples: the model that saw it")
    detections: list[dict[str, Any]] | None = Field(
        None, description="audit samples: that model's detections, as it made them"
    )
    captured_at: dt.datetime | None = None


class SamplePage(BaseModel):
    items: list[SampleOut]
    next_since: dt.datetime | None


class SampleBoxIn(Input):
    class_name: str = Field(alias="class", min_length=1, max_length=64, pattern=r"^[a-z_]+$")
    xyxy: tuple[float, float, float, float]

    model_config = ConfigDict(allow_inf_nan=False, extra="forbid", populate_by_name=True)


class SampleLabelsIn(Input):
    """A trainer's labels for a sample: they replace the detections as the training labels."""

    boxes: list[SampleBoxIn] = Field(max_length=500)


# --- shadow mode ------------------------------------------------------------------------------


class ShadowDisagreementIn(Input):
    camera_id: CameraId
    at: AwareDatetime
    kind: Literal["missed_violation", "extra_violation", "class_changed"]
    active_boxes: list[BoxIn] = Field(default_factory=list, max_length=300)
    candidate_boxes: list[BoxIn] = Field(default_factory=list, max_length=300)


class ShadowReportIn(Input):
    """`POST /api/v1/shadow`: disagreements of a candidate run beside the active model."""

    detector_id: str = Field(min_length=1, max_length=64)
    candidate_version: str = Field(min_length=1, max_length=128)
    active_version: str = Field(min_length=1, max_length=128)
    disagreements: list[ShadowDisagreementIn] = Field(max_length=500)


class ShadowReportOut(BaseModel):
    id: int
    site_id: str
    detector_id: str
    camera_id: str
    candidate_version: str
    active_version: str
    at: dt.datetime
    kind: str
    active_boxes: list[dict[str, Any]]
    candidate_boxes: list[dict[str, Any]]


# --- admin ------------------------------------------------------------------------------------


class SiteIn(Input):
    id: SiteId
    name: str = Field(min_length=1, max_length=200)


class SitePatch(Input):
    name: str = Field(min_length=1, max_length=200)


class SiteOut(BaseModel):
    id: str
    name: str
    created_at: dt.datetime


Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")]


class ZoneWindow(Input):
    """When a zone's rules apply: these days, from `start` to `end` (local time of the detector's
    `rules.timezone`; an end before the start runs past midnight)."""

    days: list[Day] = Field(
        default_factory=lambda: ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], max_length=7
    )
    start: Clock = "00:00"
    end: Clock = "23:59:59"


class Zone(Input):
    name: str = Field(min_length=1, max_length=64)
    polygon: list[tuple[float, float]] = Field(default_factory=list, max_length=100)
    required_ppe: list[Ppe] = Field(default_factory=lambda: ["helmet"])
    danger: bool = Field(False, description="no one may enter: a person inside is an intrusion")
    schedule: list[ZoneWindow] | None = Field(
        None, max_length=14, description="when its rules apply; none = the camera's (always)"
    )


class CameraIn(Input):
    id: CameraId
    site_id: SiteId
    name: str = Field(min_length=1, max_length=200)
    zones: list[Zone] = Field(default_factory=list, max_length=50)
    required_ppe: list[Ppe] = Field(default_factory=lambda: ["helmet"])


class CameraPatch(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    zones: list[Zone] | None = Field(None, max_length=50)
    required_ppe: list[Ppe] | None = None


class CameraOut(BaseModel):
    id: str
    site_id: str
    name: str
    zones: list[dict[str, Any]]
    required_ppe: list[str]
    state: str
    fps: float | None
    frames_dropped: int | None
    last_frame_at: dt.datetime | None
    last_heartbeat_at: dt.datetime | None
    detector_id: str | None


class UserIn(Input):
    username: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
    password: str = Field(min_length=8, max_length=256)
    role: Role = "viewer"
    sites: list[SiteId] = Field(default_factory=list, max_length=1000)

    @model_validator(mode="after")
    def _strong_password(self) -> UserIn:
        from service.passwords import password_problem

        problem = password_problem(self.password, self.username)
        if problem:
            raise ValueError(f"password {problem}")
        return self


class UserPatch(Input):
    """A password change is checked against the policy in the route (it needs the user name)."""

    password: str | None = Field(None, min_length=8, max_length=256)
    role: Role | None = None
    sites: list[SiteId] | None = Field(None, max_length=1000)
    is_active: bool | None = None


class UserOut(BaseModel):
    id: int
    username: str
    role: str
    is_active: bool
    sites: list[str]
    created_at: dt.datetime


class ApiKeyIn(Input):
    name: str = Field(min_length=1, max_length=100)
    site_id: SiteId | None = Field(None, description="a detector key for this site")
    user_id: int | None = Field(None, ge=1, lt=2**31, description="a token acting as this user")


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    site_id: str | None
    user_id: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="the secret; shown only once")


class LoginIn(Input):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class MeOut(BaseModel):
    user: UserOut
    csrf_token: str | None


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    site_id: str | None
    target: str | None
    detail: dict[str, Any]
    ip: str | None


class RetentionOut(BaseModel):
    violations_deleted: int
    snapshots_cleared: int
    blobs_deleted: int
    sessions_deleted: int
    samples_deleted: int = 0
    audit_frames_deleted: int = 0
