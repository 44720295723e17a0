"""钉钉 (DingTalk) custom robot.

Signed robots (加签): ``timestamp`` (ms) and ``sign = urlencode(base64(HMAC-SHA256(key=secret,
msg=f"{timestamp}\\n{secret}")))`` go into the query string next to ``access_token``.
Mentions need the mobile in the text as ``@138...`` plus ``at.atMobiles``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode

from alerts.channels.base import Channel, check_robot_errcode, dump_json, response_json
from alerts.config import DingTalkChannelConfig, channel_url
from alerts.messages import Dispatch

RETRYABLE_ERRCODES = {-1, 130101}  # system busy; sending too fast (20 messages/minute)


def dingtalk_sign(secret: str, timestamp_ms: str) -> str:
    """The (not yet url-encoded) base64 signature for ``timestamp_ms``."""
    to_sign = f"{timestamp_ms}\n{secret}".encode()
    return base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()


def signed_url(url: str, secret: str, timestamp_ms: str) -> str:
    query = urlencode({"timestamp": timestamp_ms, "sign": dingtalk_sign(secret, timestamp_ms)})
    return f"{url}{'&' if '?' in url else '?'}{query}"


class DingTalkChannel(Channel):
    type = "dingtalk"
    config: DingTalkChannelConfig

    def payload(self, dispatch: Dispatch) -> dict[str, Any]:
        mobiles = self.recipients(dispatch, self.config.at_mobiles)
        mention = " ".join(f"@{m}" for m in mobiles)
        at = {"atMobiles": mobiles, "isAtAll": self.config.at_all}
        if self.config.msgtype == "text":
            text = self.render(dispatch, "text")
            return {"msgtype": "text", "text": {"content": f"{text}\n{mention}".strip()}, "at": at}
        text = self.render(dispatch, "markdown")
        return {
            "msgtype": "markdown",
            "markdown": {
                "title": self.render(dispatch, "subject"),
                "text": f"{text}\n\n{mention}".strip(),
            },
            "at": at,
        }

    def send(self, dispatch: Dispatch) -> int | None:
        url = channel_url(self.config)
        if self.config.secret:
            secret = self.config.secret.get_secret_value()
            url = signed_url(url, secret, str(round(time.time() * 1000)))
        response = self.post(url, dump_json(self.payload(dispatch)))
        check_robot_errcode(
            response_json(response),
            code_key="errcode",
            msg_key="errmsg",
            retryable=RETRYABLE_ERRCODES,
            status_code=response.status_code,
        )
        return response.status_code
