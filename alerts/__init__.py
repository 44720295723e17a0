"""SiteGuard alerts: route violations and camera outages to webhook, email, WeCom, DingTalk
and Feishu/Lark, with cooldown, grouping, quiet hours, escalation and retried delivery.

The service uses only this surface (docs/contract.md)::

    hub = AlertHub.from_yaml("configs/alerts.yaml")
    hub.start()
    hub.notify_violation(ViolationNotice(...))
"""

from __future__ import annotations

from alerts.errors import AlertsConfigError
from alerts.hub import AlertHub
from alerts.notices import CameraNotice, DeliveryAttempt, ViolationNotice

__all__ = ["AlertHub", "AlertsConfigError", "CameraNotice", "DeliveryAttempt", "ViolationNotice"]
