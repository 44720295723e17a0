"""The alerts configuration: one pydantic tree, loaded from YAML and checked at start-up.

Secrets stay out of the file: any string may hold ``${VAR}`` (or ``${VAR:-default}``) and is
expanded from the environment before validation; an unset variable is an error naming its key.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from alerts.errors import AlertsConfigError
from alerts.notices import SEVERITIES
from alerts.schedule import TimeWindow
from siteguard.kinds import DEFAULT_SEVERITIES

Severity = Literal["low", "medium", "high", "critical"]
Language = Literal["zh", "en"]
Secret = Annotated[SecretStr, Field(min_length=1)]  # hidden in repr/logs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _url(value: AnyHttpUrl | str) -> str:
    return str(value)


class _ChannelBase(_Strict):
    language: Language | None = None  # default: the top-level ``language``
    timeout_s: float | None = Field(default=None, gt=0)  # default: ``delivery.timeout_s``


class WebhookChannelConfig(_ChannelBase):
    """Generic JSON webhook; with ``secret``, the body is signed with HMAC-SHA256."""

    type: Literal["webhook"]
    url: AnyHttpUrl
    secret: Secret | None = None
    signature_header: str = "X-SiteGuard-Signature"
    headers: dict[str, str] = Field(default_factory=dict)
    include_snapshot: bool = False  # base64 JPEG in the JSON (large); the link is always sent
    recipients: list[str] = Field(default_factory=list)


class EmailChannelConfig(_ChannelBase):
    """SMTP mail; the snapshot is attached (``attach_snapshot``) and the link is in the text."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    type: Literal["email"]
    host: str = Field(min_length=1)
    port: int = Field(default=25, gt=0, lt=65536)
    sender: str = Field(alias="from", pattern=r".+@.+")
    to: list[Annotated[str, Field(pattern=r".+@.+")]] = Field(min_length=1)
    username: str | None = None
    password: Secret | None = None
    starttls: bool = False
    ssl: bool = False
    ca_file: Path | None = None  # a private CA to trust for STARTTLS/SSL (default: system CAs)
    attach_snapshot: bool = True

    @model_validator(mode="after")
    def _login_needs_password(self) -> EmailChannelConfig:
        if self.username and not self.password:
            raise ValueError("password is required when username is set")
        if self.ssl and self.starttls:
            raise ValueError("choose either ssl (implicit TLS) or starttls, not both")
        return self


class _RobotBase(_ChannelBase):
    url: AnyHttpUrl
    msgtype: Literal["markdown", "text"] = "markdown"


class WeComChannelConfig(_RobotBase):
    """企业微信 group robot (``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=...``)."""

    type: Literal["wecom"]
    mentioned_mobiles: list[str] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _has_key(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if "key" not in parse_qs(urlsplit(str(url)).query):
            raise ValueError("a WeCom robot URL carries its key: ...webhook/send?key=...")
        return url


class DingTalkChannelConfig(_RobotBase):
    """钉钉 custom robot; with ``secret`` (加签), each request carries timestamp + sign."""

    type: Literal["dingtalk"]
    secret: Secret | None = None
    at_mobiles: list[str] = Field(default_factory=list)
    at_all: bool = False

    @field_validator("url")
    @classmethod
    def _has_token(cls, url: AnyHttpUrl) -> AnyHttpUrl:
        if "access_token" not in parse_qs(urlsplit(str(url)).query):
            raise ValueError(
                "a DingTalk robot URL carries its token: ...robot/send?access_token=..."
            )
        return url


class FeishuChannelConfig(_ChannelBase):
    """飞书/Lark custom bot; with ``secret`` (签名校验), each body carries timestamp + sign."""

    type: Literal["feishu", "lark"]
    url: AnyHttpUrl
    secret: Secret | None = None
    msgtype: Literal["interactive", "text"] = "interactive"
    at_user_ids: list[str] = Field(default_factory=list)


ChannelConfig = Annotated[
    WebhookChannelConfig
    | EmailChannelConfig
    | WeComChannelConfig
    | DingTalkChannelConfig
    | FeishuChannelConfig,
    Field(discriminator="type"),
]
CHANNEL_TYPES = ("webhook", "email", "wecom", "dingtalk", "feishu", "lark")


class ChannelTarget(_Strict):
    """A channel a route sends to; ``recipients`` replace the channel's own defaults."""

    channel: str
    recipients: list[str] = Field(default_factory=list)


def _targets(value: Any) -> Any:
    if isinstance(value, list):
        return [{"channel": v} if isinstance(v, str) else v for v in value]
    return value


class RouteMatch(_Strict):
    """Which notices a route takes; an empty list matches anything; shell globs allowed."""

    sites: list[str] = Field(default_factory=list)
    cameras: list[str] = Field(default_factory=list)
    zones: list[str] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    min_severity: Severity = "low"

    def accepts(self, *, site: str, camera: str, zone: str | None, kind: str | None) -> bool:
        def ok(patterns: list[str], value: str | None) -> bool:
            if not patterns:
                return True
            return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)

        return (
            ok(self.sites, site)
            and ok(self.cameras, camera)
            and ok(self.zones, zone)
            and (kind is None or ok(self.kinds, kind))
        )


class EscalationConfig(_Strict):
    """Escalate when a notified violation stays unreviewed for ``after_minutes``."""

    after_minutes: float = Field(gt=0)
    channels: list[ChannelTarget] = Field(min_length=1)

    @field_validator("channels", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _targets(value)


class RouteConfig(_Strict):
    """Notices matching ``match`` go to ``channels`` subject to timing rules."""

    name: str = Field(min_length=1)
    match: RouteMatch = Field(default_factory=RouteMatch)
    events: list[Literal["violation", "camera"]] = Field(default_factory=lambda: ["violation"])
    channels: list[ChannelTarget] = Field(min_length=1)
    min_duration_s: float = Field(default=0.0, ge=0)
    cooldown_s: float = Field(default=0.0, ge=0)
    group_window_s: float = Field(default=0.0, ge=0)
    quiet_hours: list[TimeWindow] = Field(default_factory=list)
    shifts: list[TimeWindow] = Field(default_factory=list)
    quiet_hours_bypass: Severity | None = None
    quiet_hours_action: Literal["drop", "defer"] = "drop"  # defer: one message when they end
    timezone: str | None = None
    escalation: EscalationConfig | None = None

    @field_validator("channels", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        return _targets(value)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, tz: str | None) -> str | None:
        return None if tz is None else _check_tz(tz)


class DeliveryConfig(_Strict):
    """Retry policy and limits of the delivery workers (one worker thread per channel)."""

    max_attempts: int = Field(default=5, ge=1)
    backoff_initial_s: float = Field(default=2.0, gt=0)
    backoff_factor: float = Field(default=2.0, ge=1)
    backoff_max_s: float = Field(default=300.0, gt=0)
    timeout_s: float = Field(default=10.0, gt=0)
    queue_limit: int = Field(default=10_000, ge=1)
    history: int = Field(default=1_000, ge=1)

    def backoff(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = self.backoff_initial_s * self.backoff_factor ** (attempt - 1)
        return min(delay, self.backoff_max_s)


class AlertsConfig(_Strict):
    """The whole alerts configuration (see configs/alerts.example.yaml)."""

    language: Language = "zh"
    timezone: str = "Asia/Shanghai"
    templates_dir: Path | None = None
    severities: dict[str, Severity] = Field(
        default_factory=lambda: dict(DEFAULT_SEVERITIES)  # siteguard/kinds.py
    )
    default_severity: Severity = "medium"
    camera_offline_grace_s: float = Field(default=60.0, ge=0)
    tick_interval_s: float = Field(default=1.0, gt=0)
    delivery: DeliveryConfig = Field(default_factory=DeliveryConfig)
    channels: dict[str, ChannelConfig] = Field(default_factory=dict)
    routes: list[RouteConfig] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _tz(cls, tz: str) -> str:
        return _check_tz(tz)

    @field_validator("templates_dir")
    @classmethod
    def _dir_exists(cls, path: Path | None) -> Path | None:
        if path is not None and not path.is_dir():
            raise ValueError(f"templates_dir {path} is not a directory")
        return path

    def severity_of(self, kind: str, explicit: str | None) -> str:
        return explicit or self.severities.get(kind, self.default_severity)


def severity_rank(severity: str) -> int:
    return SEVERITIES.index(severity)


def _check_tz(tz: str) -> str:
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown timezone {tz!r} (use an IANA name like Asia/Shanghai)") from exc
    return tz


# --- loading -------------------------------------------------------------------------------

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any, path: str, env: Mapping[str, str], problems: list[tuple[str, str]]) -> Any:
    if isinstance(value, dict):
        return {k: _expand(v, _join(path, k), env, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", env, problems) for i, v in enumerate(value)]
    if isinstance(value, str):

        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            problems.append((path, f"environment variable {name} is not set"))
            return ""

        return _ENV.sub(sub, value)
    return value


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


def _loc_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for i, item in enumerate(loc):
        # A discriminated union adds the tag ("channels", name, "dingtalk", ...): drop it.
        if i == 2 and loc[0] == "channels" and item in CHANNEL_TYPES:
            continue
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def _pydantic_problems(exc: ValidationError) -> list[tuple[str, str]]:
    problems = []
    for err in exc.errors(include_url=False):
        path = _loc_path(tuple(err["loc"]))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "union_tag_invalid":
            path = _join(path, "type")
            msg = f"unknown channel type {err['input'].get('type')!r}; use one of {CHANNEL_TYPES}"
        elif err["type"] == "union_tag_not_found":
            path = _join(path, "type")
            msg = f"missing channel type; use one of {CHANNEL_TYPES}"
        elif err["type"] == "extra_forbidden":
            msg = "unknown key"
        problems.append((path, msg))
    return problems


def _reference_problems(config: AlertsConfig) -> list[tuple[str, str]]:
    known = sorted(config.channels)
    problems = []
    names: set[str] = set()
    for i, route in enumerate(config.routes):
        if route.name in names:
            problems.append((f"routes[{i}].name", f"duplicate route name {route.name!r}"))
        names.add(route.name)
        groups = [(f"routes[{i}].channels", route.channels)]
        if route.escalation:
            groups.append((f"routes[{i}].escalation.channels", route.escalation.channels))
        for prefix, targets in groups:
            for j, target in enumerate(targets):
                if target.channel not in config.channels:
                    problems.append(
                        (
                            f"{prefix}[{j}]",
                            f"unknown channel {target.channel!r} (defined: {', '.join(known)})",
                        )
                    )
    return problems


def parse_config(
    data: Mapping[str, Any] | AlertsConfig | None,
    *,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
) -> AlertsConfig:
    """Validate a config mapping (``${VAR}`` expanded from ``env``, default ``os.environ``)."""
    if isinstance(data, AlertsConfig):
        config = data
    else:
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise AlertsConfigError([("", "the config must be a mapping")], source)
        problems: list[tuple[str, str]] = []
        expanded = _expand(dict(data), "", os.environ if env is None else env, problems)
        if problems:
            raise AlertsConfigError(problems, source)
        try:
            config = AlertsConfig.model_validate(expanded)
        except ValidationError as exc:
            raise AlertsConfigError(_pydantic_problems(exc), source) from None
    problems = _reference_problems(config)
    if problems:
        raise AlertsConfigError(problems, source)
    return config


def load_config(path: str | Path, *, env: Mapping[str, str] | None = None) -> AlertsConfig:
    """Read and validate a YAML alerts config; any problem raises AlertsConfigError."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise AlertsConfigError([("", f"cannot read {path}: {exc.strerror}")], str(path)) from None
    except yaml.YAMLError as exc:
        raise AlertsConfigError([("", f"not valid YAML: {exc}")], str(path)) from None
    if isinstance(data, dict) and isinstance(data.get("templates_dir"), str):
        # Relative to the config file, not to wherever the service happens to start.
        data["templates_dir"] = str(path.parent / data["templates_dir"])
    return parse_config(data, env=env, source=str(path))


def channel_url(config: Any) -> str:
    """The channel's URL as a plain string (pydantic keeps it as a Url object)."""
    return _url(config.url)
