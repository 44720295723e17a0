"""Channels, one module each; ``build_channel`` picks the class by the config's ``type``."""

from __future__ import annotations

from typing import Any

import httpx

from alerts.channels.base import Channel, DeliveryError
from alerts.channels.dingtalk import DingTalkChannel
from alerts.channels.email import EmailChannel
from alerts.channels.feishu import FeishuChannel
from alerts.channels.webhook import WebhookChannel
from alerts.channels.wecom import WeComChannel
from alerts.templating import Templates

CHANNEL_CLASSES: dict[str, type[Channel]] = {
    "webhook": WebhookChannel,
    "email": EmailChannel,
    "wecom": WeComChannel,
    "dingtalk": DingTalkChannel,
    "feishu": FeishuChannel,
    "lark": FeishuChannel,
}


def build_channel(
    name: str,
    config: Any,
    *,
    templates: Templates,
    language: str,
    timeout_s: float,
    http: httpx.Client,
) -> Channel:
    cls = CHANNEL_CLASSES[config.type]
    return cls(name, config, templates=templates, language=language, timeout_s=timeout_s, http=http)


__all__ = ["CHANNEL_CLASSES", "Channel", "DeliveryError", "build_channel"]
