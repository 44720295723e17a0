"""Service configuration: one pydantic-settings tree, from YAML and `SITEGUARD_*` variables.

Precedence (highest first): keyword arguments, environment (`SITEGUARD_DATA_DIR`,
`SITEGUARD_DATABASE_URL`, ...), the YAML file, defaults. A bad key fails at start-up with its path::

    settings = load_settings("configs/service.yaml")
    settings.database_url   # sqlite:///<data_dir>/siteguard.db unless configured
"""

from __future__ import annotations

import secrets
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

_YAML_DATA: ContextVar[dict[str, Any] | None] = ContextVar("_YAML_DATA", default=None)


class ConfigError(ValueError):
    """The configuration is invalid; the message names the bad key."""


class _YamlSource(PydanticBaseSettingsSource):
    """Values from the YAML file chosen by `load_settings` (lower priority than the env)."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        data = _YAML_DATA.get() or {}
        return data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(_YAML_DATA.get() or {})


class ServiceSettings(BaseSettings):
    """Everything the service reads at start-up."""

    model_config = SettingsConfigDict(
        env_prefix="SITEGUARD_", env_nested_delimiter="__", extra="forbid"
    )

    data_dir: Path = Field(Path("var/service"), description="database, snapshots, model files")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL; default SQLite in data_dir; postgresql://... for scale"
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    public_url: str | None = Field(None, description="base URL used in alert links")
    secret_key: str | None = Field(None, description="reserved; sessions are random server tokens")
    session_max_age_s: int = Field(8 * 3600, gt=0)
    cookie_secure: bool = Field(False, description="set the Secure flag on the session cookie")
    max_snapshot_bytes: int = Field(2 * 1024 * 1024, gt=0)
    max_model_bytes: int = Field(512 * 1024 * 1024, gt=0)
    login_max_failures: int = Field(5, gt=0, description="failures per window before 429")
    login_window_s: float = Field(300.0, gt=0)
    login_max_failures_per_address: int = Field(
        20, gt=0, description="failures per window from one address, whatever the user names"
    )
    login_hash_concurrency: int = Field(
        0, ge=0, description="password hashes at once (0 = half the CPU cores, at least 1)"
    )
    login_queue_max: int = Field(
        32, gt=0, description="logins waiting for a hashing slot before 503 (flood guard)"
    )
    failed_login_retention_days: int = Field(
        90, ge=1, description="failed-login audit entries are deleted after"
    )
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="reverse proxies (IPs or CIDRs) whose X-Forwarded-For names the client",
    )
    max_json_bytes: int = Field(
        1024 * 1024, gt=0, description="request bodies other than uploads (JSON, forms)"
    )
    event_max_age_days: float = Field(
        365.0, gt=0, description="ingest refuses event times older than this (422)"
    )
    event_max_ahead_s: float = Field(
        86400.0, ge=0, description="ingest refuses event times further ahead of the clock (422)"
    )
    unblurred_frame_role: Literal["viewer", "manager", "trainer", "admin"] = Field(
        "trainer", description="minimum role that sees raw (unblurred) frames"
    )
    unblurred_frame_role_by_site: dict[str, Literal["viewer", "manager", "trainer", "admin"]] = (
        Field(default_factory=dict, description="per site: another minimum role for raw frames")
    )
    sse_recheck_s: float = Field(
        5.0, gt=0, le=60, description="live streams re-check the session and sites this often"
    )
    retention_days: int = Field(30, ge=1, description="delete snapshots/unreviewed events after")
    retention_interval_s: float = Field(3600.0, gt=0, description="how often the job runs")
    frame_retention_days: int = Field(
        14, ge=1, description="raw unblurred frames and their training samples are kept this long"
    )
    # Detectors beat every 1.5 s (heartbeat_interval_s): 4 missed beats, and the live panel
    # shows a stopped detector's cameras offline within 10 s (checked every second), with room
    # to spare on a loaded server.
    camera_offline_after_s: float = Field(
        6.0, gt=0, description="no heartbeat for this long -> the camera is offline"
    )
    promotion_tolerance: float = Field(
        0.01, ge=0, le=1, description="gate: max benchmark drop (mAP50, worker accuracy), 0.01=1pt"
    )
    promotion_field_tolerance: float = Field(
        0.0, ge=0, le=1, description="gate: max drop of worker accuracy on held-back field samples"
    )
    promotion_audit_tolerance: float = Field(
        0.02, ge=0, le=1, description="gate: max drop of violation recall and worker accuracy "
        "on labelled audit frames (random frames, so fewer of them: a wider margin)"
    )  # fmt: skip
    alerts_config: Path | None = Field(None, description="alerts YAML; alerts off when unset")
    event_bus: str = Field("auto", pattern="^(auto|memory|postgres)$")
    upgrade_db_on_start: bool = True
    snapshot_store: Literal["local", "s3"] = Field(
        "local", description="where snapshots, frames and model files go: data_dir or S3"
    )
    s3_bucket: str | None = Field(None, description="bucket (snapshot_store: s3)")
    s3_endpoint_url: str | None = Field(
        None, description="S3-compatible endpoint (MinIO, Ceph, R2...); unset = AWS S3"
    )
    s3_region: str | None = Field(None, description="unset = AWS_REGION / AWS config")
    s3_prefix: str = Field("blobs", description="key prefix: <prefix>/ab/cd/<sha256>")
    s3_access_key_id: str | None = Field(None, description="unset = the usual AWS credentials")
    s3_secret_access_key: SecretStr | None = None
    s3_addressing_style: Literal["path", "virtual", "auto"] | None = Field(
        None, description="unset = path with s3_endpoint_url, else boto3's choice"
    )
    s3_timeout_s: float = Field(10.0, gt=0, description="connect and read timeout per request")

    @field_validator("database_url")
    @classmethod
    def _known_scheme(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        import ipaddress

        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an IP address or network: {item!r}") from exc
        return value

    @model_validator(mode="after")
    def _s3_needs_bucket(self) -> ServiceSettings:
        if self.snapshot_store == "s3" and not self.s3_bucket:
            raise ValueError("snapshot_store 's3' needs s3_bucket")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    @property
    def db_url(self) -> str:
        """The effective SQLAlchemy URL (psycopg 3 driver for PostgreSQL)."""
        url = self.database_url or f"sqlite:///{(self.data_dir / 'siteguard.db').resolve()}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def is_sqlite(self) -> bool:
        return self.db_url.startswith("sqlite")


def load_settings(path: str | Path | None = None, **overrides: Any) -> ServiceSettings:
    """Build settings from an optional YAML file, the environment and `overrides`."""
    data: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except OSError as exc:
            raise ConfigError(f"cannot read {path}: {exc}") from exc
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: invalid YAML: {exc}") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: top level must be a mapping")
        data = loaded.get("service", loaded) if isinstance(loaded.get("service"), dict) else loaded
    token = _YAML_DATA.set(data)
    try:
        return ServiceSettings(**overrides)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{where}invalid service config: {problems}") from exc
    finally:
        _YAML_DATA.reset(token)


def new_token(nbytes: int = 32) -> str:
    """A URL-safe random token (sessions, CSRF, API keys)."""
    return secrets.token_urlsafe(nbytes)
