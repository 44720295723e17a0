"""Generic JSON webhook, optionally signed (HMAC-SHA256 over ``timestamp.body``).

A receiver verifies with::

    expected = "sha256=" + hmac.new(secret, f"{ts}.".encode() + body, sha256).hexdigest()
    hmac.compare_digest(expected, request.headers["X-SiteGuard-Signature"])

where ``ts`` is the ``X-SiteGuard-Timestamp`` header (Unix seconds; reject old ones to stop
replays). With the service's durable outbox, ``X-SiteGuard-Delivery`` names the message:
it is the same on every retry, so a receiver that keeps the ids it saw never acts twice, even
on the rare resend after a crash between its answer and the outbox's record of it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from alerts.channels.base import Channel, dump_json
from alerts.config import WebhookChannelConfig, channel_url
from alerts.messages import Dispatch

TIMESTAMP_HEADER = "X-SiteGuard-Timestamp"
DELIVERY_HEADER = "X-SiteGuard-Delivery"  # a durable outbox's message id


def sign_body(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


class WebhookChannel(Channel):
    type = "webhook"
    config: WebhookChannelConfig

    def payload(self, dispatch: Dispatch) -> dict[str, Any]:
        violations = []
        for v in dispatch.violations:
            item: dict[str, Any] = {
                "event_id": v.event_id,
                "site_id": v.site_id,
                "camera_id": v.camera_id,
                "zone": v.zone,
                "kind": v.kind,
                "started_at": v.started_at.isoformat(),
                "duration_s": v.duration_s,
                "confidence": v.confidence,
                "link": v.link,
            }
            if self.config.include_snapshot and v.snapshot_jpeg:
                item["snapshot_jpeg_base64"] = base64.b64encode(v.snapshot_jpeg).decode()
            violations.append(item)
        camera = dispatch.camera
        return {
            "source": "siteguard",
            "message": dispatch.kind,
            "route": dispatch.route,
            "severity": dispatch.severity,
            "title": self.render(dispatch, "subject"),
            "text": self.render(dispatch, "text"),
            "recipients": self.recipients(dispatch, self.config.recipients),
            "escalated_after_min": dispatch.escalated_after_min,
            "violations": violations,
            "camera": None
            if camera is None
            else {
                "site_id": camera.site_id,
                "camera_id": camera.camera_id,
                "state": camera.state,
                "at": camera.at.isoformat(),
            },
            "created_at": dispatch.created_at.isoformat(),
        }

    def send(self, dispatch: Dispatch) -> int | None:
        body = dump_json(self.payload(dispatch))
        headers = dict(self.config.headers)
        if "delivery_id" in dispatch.extra:  # the same on every retry: receivers may dedupe
            headers[DELIVERY_HEADER] = dispatch.extra["delivery_id"]
        if self.config.secret:
            ts = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = ts
            secret = self.config.secret.get_secret_value()
            headers[self.config.signature_header] = sign_body(secret, ts, body)
        return self.post(channel_url(self.config), body, headers).status_code
