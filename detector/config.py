"""The detector's whole configuration: one pydantic tree, loaded from YAML, env overrides.

Every key can be overridden from the environment with the `SITEGUARD_DETECTOR__` prefix and `__`
between levels, e.g. `SITEGUARD_DETECTOR__SERVICE__API_KEY=...`. Unknown or invalid keys fail at
start-up with their path (`cameras.0.zones.1.polygon: ...`).

Example:
    >>> cfg = load_config("configs/detector.example.yaml")
    >>> cfg.cameras[0].id
    'gate-1'
"""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from siteguard.kinds import BY_REQUIREMENT, Requirement

ENV_PREFIX = "SITEGUARD_DETECTOR__"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
PPE = Requirement  # helmet, harness, vest: siteguard/kinds.py
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"  # camera/detector ids, as the service accepts them


class ConfigError(ValueError):
    """The configuration is invalid; the message lists every bad key with its path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(_Strict):
    path: Path = Path("models/siteguard-ppe.onnx")
    int8_path: Path | None = Path("models/siteguard-ppe-int8.onnx")
    use_int8: bool | Literal["auto"] = Field(
        "auto", description="run int8_path: true, false, or auto (VNNI CPU + int8 of `path`)"
    )
    conf: float = Field(0.2, ge=0.0, le=1.0)  # below tracking.high_conf: extends tracks only
    iou: float = Field(0.5, ge=0.0, le=1.0)
    threads: int = Field(0, ge=0, description="onnxruntime intra-op threads; 0 = all cores")
    spin_wait: bool = Field(False, description="let idle onnxruntime threads busy-wait")
    watch: bool = Field(True, description="hot-reload when the model file changes")
    watch_interval_s: float = Field(5.0, gt=0)
    follow_promotions: bool = Field(True, description="download the model the service promotes")
    download_dir: Path = Path("var/detector/models")
    # Shadow mode (detector/shadow.py): a candidate runs beside the active model, no alerts.
    shadow_path: Path | None = Field(None, description="candidate ONNX to run in shadow mode")
    shadow_version: str | None = Field(
        None, max_length=128, description="or a registered version, downloaded from the service"
    )

    @model_validator(mode="after")
    def _int8_needs_path(self) -> ModelConfig:
        if self.use_int8 is True and self.int8_path is None:
            raise ValueError("use_int8 is true but int8_path is not set")
        return self


class ServiceConfig(_Strict):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # inf: the thread dies

    url: str = "http://127.0.0.1:8000"
    api_key: str = Field("", description="the site's detector key (X-API-Key)")
    timeout_s: float = Field(10.0, gt=0, le=3600)
    # The service marks a camera offline after camera_offline_after_s (6 s) without one.
    heartbeat_interval_s: float = Field(1.5, gt=0, le=3600)
    retry_initial_s: float = Field(1.0, gt=0, le=86400)
    retry_max_s: float = Field(60.0, gt=0, le=86400)

    @field_validator("api_key")
    @classmethod
    def _key_given(cls, value: str) -> str:
        """A key set to "" (often an unset variable in compose) is a mistake, not "no key"."""
        if not value.strip():
            raise ValueError("must not be empty: set the site's detector key, or leave it out")
        return value.strip()

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError(f"must be an http(s) URL, got {value!r}")
        return value.rstrip("/")


class OutboxConfig(_Strict):
    path: Path = Path("var/detector/outbox.sqlite3")


class MotionConfig(_Strict):
    enabled: bool = True
    width: int = Field(320, ge=32, description="frames are compared at this width")
    pixel_delta: int = Field(25, ge=1, le=255, description="grey-level change counted as motion")
    min_area: float = Field(0.002, ge=0, le=1, description="changed fraction that is motion")
    keyframe_interval_s: float = Field(5.0, gt=0, description="run inference at least this often")


DEFAULT_OPERATING_CONF = 0.3  # for models exported without `siteguard export --conf`


class TrackingConfig(_Strict):
    """ByteTrack: detections >= high_conf match first and may start a track (if also >=
    activation_conf); weaker ones (down to model.conf) only extend existing tracks."""

    lost_track_s: float = Field(2.0, ge=0)
    # None = the model's operating threshold (`siteguard_conf` in its ONNX metadata, chosen on
    # the validation split, see models/MODEL_CARD.md), else DEFAULT_OPERATING_CONF: a worker the
    # evaluation counts as detected must be able to start a track, or a bare head just above
    # the threshold would never become a violation. Set a number to override the model.
    activation_conf: float | None = Field(None, ge=0, le=1)
    high_conf: float | None = Field(None, ge=0, le=1)
    min_frames: int = Field(1, ge=1)
    min_iou: float = Field(0.1, ge=0, le=1)


class TimeWindow(_Strict):
    """Rules apply on these days between start and end (end < start crosses midnight)."""

    days: list[str] = Field(default_factory=lambda: list(DAYS))
    start: dt.time = dt.time(0, 0)
    end: dt.time = dt.time(23, 59, 59)

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: list[str]) -> list[str]:
        days = [d.lower()[:3] for d in value]
        bad = [d for d, short in zip(value, days, strict=True) if short not in DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {', '.join(DAYS)}")
        return days

    def contains(self, when: dt.datetime) -> bool:
        day, clock = DAYS[when.weekday()], when.time()
        if self.start <= self.end:
            return day in self.days and self.start <= clock <= self.end
        if clock >= self.start:
            return day in self.days
        yesterday = DAYS[(when.weekday() - 1) % 7]  # the shift began yesterday evening
        return yesterday in self.days and clock <= self.end


class ZoneConfig(_Strict):
    name: str = Field(min_length=1)
    polygon: list[tuple[float, float]] = Field(description="frame pixels, at least 3 points")
    at_height: bool = False
    requires: list[PPE] | None = Field(None, description="default: helmet, + harness at height")
    danger: bool = Field(False, description="no one may enter: a person inside is an intrusion")
    schedule: list[TimeWindow] | None = Field(None, description="default: the camera's")

    @field_validator("polygon")
    @classmethod
    def _polygon(cls, value: list[tuple[float, float]]) -> list[tuple[float, float]]:
        if len(value) < 3:
            raise ValueError(f"a polygon needs at least 3 points, got {len(value)}")
        return value

    @property
    def required(self) -> set[str]:
        if self.requires is not None:
            return set(self.requires)
        return {"helmet", "harness"} if self.at_height else {"helmet"}


class TilingConfig(_Strict):
    """Tiled inference for small, distant workers (detector/tiling.py). Costs grid**2 (+1 with
    the full frame) model runs per frame: 5x for the 2x2 default; docs/benchmarks.md says when
    it pays. `tiling: true` on a camera means these defaults."""

    grid: int = Field(2, ge=2, le=4, description="tiles per side: 2 = a 2x2 grid")  # 4: MAX_GRID
    overlap: float = Field(0.2, ge=0.0, lt=0.5, description="share of a tile its neighbour sees")
    full_frame: bool = Field(True, description="also run the whole frame (large close-up heads)")


class CameraConfig(_Strict):
    id: str = Field(pattern=SLUG, description="as registered in the service")
    source: str = Field(min_length=1, description="rtsp/http URL, video file, webcam index, dir")
    enabled: bool = True
    fps: float = Field(5.0, gt=0, description="max frames per second to process")
    playback_fps: float | None = Field(None, gt=0, description="image folders/files: play rate")
    image_hold_s: float | None = Field(
        None, gt=0, description="image folders: show each image this long (repeated frames)"
    )
    loop: bool = Field(True, description="video files and image folders restart at the end")
    frozen_after_s: float = Field(30.0, gt=0)
    stall_after_s: float = Field(
        6.0, gt=0, le=3600, description="no frame this long -> offline (a stalled stream)"
    )
    recover_after_s: float = Field(
        2.0, ge=0, le=3600, description="frames this long without a stall -> online again"
    )
    open_timeout_s: float = Field(10.0, gt=0, le=600, description="streams: give up opening")
    reconnect_initial_s: float = Field(1.0, gt=0)
    # 3 s: a restarted camera is read again within 10 s however long it was away (measured
    # on a loaded 2-core box: up to 3 s of backoff + about 2 s to open and decode a key frame).
    reconnect_max_s: float = Field(3.0, gt=0)
    site_requires: list[PPE] = Field(default_factory=lambda: ["helmet"])
    zones: list[ZoneConfig] = Field(default_factory=list)
    schedule: list[TimeWindow] = Field(default_factory=list, description="empty = always")
    audit_share: float | None = Field(None, ge=0, le=1, description="overrides audit.share")
    tiling: TilingConfig | None = Field(
        None, description="tiled inference for small, distant workers; off (None) by default"
    )

    @field_validator("tiling", mode="before")
    @classmethod
    def _tiling_switch(cls, value: Any) -> Any:
        """`tiling: true` = the defaults, `tiling: false` = off."""
        if value is True:
            return {}
        return None if value is False else value


class PpeClasses(_Strict):
    """The model's class names showing one piece of PPE worn, and showing it missing."""

    worn: list[str] = Field(default_factory=list)
    missing: list[str] = Field(default_factory=list)


# The older per-role fields, kept as spellings of `ppe_classes` entries: (worn, missing).
_LEGACY_CLASSES = {
    "helmet": ("helmet_classes", "bare_head_classes"),
    "harness": ("harness_classes", "no_harness_classes"),
}


class RulesConfig(_Strict):
    hold_s: float = Field(2.0, ge=0, description="a violation must hold this long to open")
    close_after_s: float = Field(5.0, ge=0, description="compliant/gone this long closes it")
    cooldown_s: float = Field(30.0, ge=0, description="per track, after an episode closes")
    timezone: str = "UTC"
    # Class names in the model for each role (the contract maps by name, never by index).
    bare_head_classes: list[str] = Field(default_factory=lambda: ["head"])
    helmet_classes: list[str] = Field(default_factory=lambda: ["helmet"])
    person_classes: list[str] = Field(default_factory=lambda: ["person"])
    harness_classes: list[str] = Field(default_factory=lambda: ["harness"])
    no_harness_classes: list[str] = Field(default_factory=lambda: ["no_harness"])
    # Per requirement, the classes showing it worn / missing, e.g. a site model's
    # `vest: {worn: [Safety Vest], missing: [NO-Safety Vest]}`. Unset requirements use the
    # fields above (helmet, harness) or siteguard/kinds.py's defaults (vest).
    ppe_classes: dict[PPE, PpeClasses] = Field(default_factory=dict)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @model_validator(mode="after")
    def _one_spelling_per_requirement(self) -> RulesConfig:
        """Fill `ppe_classes` for every requirement and keep the older fields in step with it."""
        for requirement, info in BY_REQUIREMENT.items():
            legacy = _LEGACY_CLASSES.get(requirement)
            given = self.ppe_classes.get(requirement)
            if legacy is None:
                if given is None:
                    self.ppe_classes[requirement] = PpeClasses(
                        worn=list(info.worn), missing=list(info.missing)
                    )
                continue
            worn_field, missing_field = legacy
            if given is None:
                self.ppe_classes[requirement] = PpeClasses(
                    worn=list(getattr(self, worn_field)), missing=list(getattr(self, missing_field))
                )
                continue
            both = {worn_field, missing_field} & self.model_fields_set
            if both:
                raise ValueError(
                    f"ppe_classes.{requirement} and {', '.join(sorted(both))} both set: "
                    "use ppe_classes only"
                )
            # Assigned through __dict__: validate_assignment is off, and this keeps
            # model_fields_set telling what the user wrote.
            self.__dict__[worn_field] = list(given.worn)
            self.__dict__[missing_field] = list(given.missing)
        return self


class PrivacyConfig(_Strict):
    blur: bool = Field(True, description="blur heads/faces in snapshots (after inference)")
    blur_classes: list[str] = Field(default_factory=lambda: ["head", "helmet", "face"])
    send_raw_frame: bool = Field(True, description="also send the unblurred frame for retraining")
    jpeg_quality: int = Field(85, ge=10, le=100)


class AuditConfig(_Strict):
    """Audit sampling (detector/audit.py): a random share of the frames the model ran on goes to
    the service with the model's detections, for trainers to label (unbiased field figures).
    Off by default: it sends raw frames of people who raised no alert, and needs trainer time."""

    share: float = Field(0.0, ge=0, le=1, description="chance per processed frame; 0 = off")
    min_interval_s: float = Field(60.0, ge=0, description="per camera: at most one this often")


class MetricsConfig(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535)


class DetectorConfig(BaseSettings):
    """The root of the tree; `load_config` builds it from a YAML file plus the environment."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    detector_id: str = Field("edge-1", pattern=SLUG)
    model: ModelConfig = Field(default_factory=ModelConfig)
    service: ServiceConfig = Field(default_factory=ServiceConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    rules: RulesConfig = Field(default_factory=RulesConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    max_batch: int = Field(4, ge=1, description="frames per onnxruntime call")
    cameras: list[CameraConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_cameras(self) -> DetectorConfig:
        ids = [c.id for c in self.cameras]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"camera ids must be unique, repeated: {dupes}")
        return self

    @model_validator(mode="after")
    def _audit_needs_raw_frames(self) -> DetectorConfig:
        sampled = [c.id for c in self.cameras if self.audit_share(c) > 0]
        if sampled and not self.privacy.send_raw_frame:
            raise ValueError(
                f"audit sampling (audit.share / cameras.N.audit_share, on {sampled}) sends the "
                "raw frame for trainers to label: it needs privacy.send_raw_frame: true"
            )
        return self

    def audit_share(self, camera: CameraConfig) -> float:
        """The camera's audit sampling share: its own `audit_share`, else `audit.share`."""
        return self.audit.share if camera.audit_share is None else camera.audit_share

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The environment wins over the YAML file (passed as init kwargs).
        return (env_settings, init_settings)


def format_errors(exc: ValidationError) -> str:
    """One line per bad key: `path.to.key: message (got value)`."""
    lines = []
    for err in exc.errors():
        path = ".".join(str(part) for part in err["loc"]) or "(root)"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
        lines.append(f"{path}: {err['msg']}{shown}")
    return "\n".join(lines)


def load_config(path: str | Path | None = None, **overrides: Any) -> DetectorConfig:
    """Read YAML (optional), apply env overrides, validate. Raises ConfigError with key paths."""
    data: dict[str, Any] = {}
    if path is not None:
        file = Path(path)
        try:
            text = file.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config {file}: {exc.strerror}") from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{file}: invalid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"{file}: top level must be a mapping, got {type(data).__name__}")
    data.update(overrides)
    try:
        return DetectorConfig(**data)
    except ValidationError as exc:
        where = f"{path}" if path else "config"
        env = sorted(k for k in os.environ if k.upper().startswith(ENV_PREFIX))
        hint = f"\n(environment overrides in effect: {', '.join(env)})" if env else ""
        raise ConfigError(f"{where}: invalid configuration:\n{format_errors(exc)}{hint}") from exc
