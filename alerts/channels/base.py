"""What every channel shares: rendering, recipients, and HTTP with error classification."""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import httpx

from alerts.messages import Dispatch
from alerts.templating import Templates

log = logging.getLogger(__name__)

RETRYABLE_HTTP = {408, 425, 429}


class DeliveryError(Exception):
    """A failed send. ``permanent`` errors (bad request, auth) are not retried."""

    def __init__(
        self, message: str, *, status_code: int | None = None, permanent: bool = False
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.permanent = permanent


class Channel(ABC):
    """One configured destination. ``send`` raises DeliveryError or returns a status code.

    Channels are shared by a delivery worker and ``send_test`` callers, so they keep no
    per-message state (httpx.Client is thread-safe).
    """

    type: ClassVar[str]

    def __init__(
        self,
        name: str,
        config: Any,
        *,
        templates: Templates,
        language: str,
        timeout_s: float,
        http: httpx.Client,
    ) -> None:
        self.name = name
        self.config = config
        self.templates = templates
        self.language = config.language or language
        self.timeout_s = config.timeout_s or timeout_s
        self.http = http

    @property
    def type_label(self) -> str:
        return self.config.type

    @abstractmethod
    def send(self, dispatch: Dispatch) -> int | None:
        """Deliver ``dispatch``; return the peer's status code (or None)."""

    def render(self, dispatch: Dispatch, fmt: str) -> str:
        return self.templates.render(
            dispatch, channel_type=self.type, fmt=fmt, language=self.language
        )

    def recipients(self, dispatch: Dispatch, defaults: list[str]) -> list[str]:
        """A route's recipients win over the channel's configured defaults."""
        return list(dispatch.recipients) if dispatch.recipients else list(defaults)

    def post(self, url: str, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``body`` as JSON; raise DeliveryError (retryable or permanent) on failure."""
        all_headers = {"Content-Type": "application/json; charset=utf-8", **(headers or {})}
        try:
            response = self.http.post(
                url, content=body, headers=all_headers, timeout=self.timeout_s
            )
        except httpx.TransportError as exc:
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from exc
        code = response.status_code
        if code >= 400:
            permanent = code < 500 and code not in RETRYABLE_HTTP
            raise DeliveryError(
                f"HTTP {code}: {response.text[:200]}", status_code=code, permanent=permanent
            )
        return response


def dump_json(payload: Any) -> bytes:
    """Compact UTF-8 JSON (Chinese stays readable in the peer's logs)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def response_json(response: httpx.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise DeliveryError(
            f"HTTP {response.status_code} with a non-JSON body: {response.text[:200]}",
            status_code=response.status_code,
        ) from exc
    if not isinstance(data, dict):
        raise DeliveryError(f"unexpected response: {response.text[:200]}")
    return data


def check_robot_errcode(
    data: dict[str, Any], *, code_key: str, msg_key: str, retryable: set[int], status_code: int
) -> None:
    """Chat robots answer HTTP 200 with an error code in the body; 0 means delivered."""
    code = data.get(code_key)
    if code in (0, None):
        return
    raise DeliveryError(
        f"{code_key}={code}: {data.get(msg_key)}",
        status_code=status_code,
        permanent=code not in retryable,
    )
