"""飞书/Lark custom bot: an ``interactive`` card (title, text, review button) or ``text``.

Signed bots (签名校验): the body carries ``timestamp`` (s) and ``sign = base64(HMAC-SHA256(
key=f"{timestamp}\\n{secret}", msg=b""))`` — the secret is in the *key*, the message is empty.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

from alerts.channels.base import Channel, check_robot_errcode, dump_json, response_json
from alerts.config import FeishuChannelConfig, channel_url
from alerts.messages import Dispatch

RETRYABLE_CODES = {9499, 11232}  # too many requests; frequency limited
CARD_COLOURS = {"camera": "orange", "test": "blue", "escalation": "carmine"}
BUTTON = {"zh": "查看并审核", "en": "Review"}


def feishu_sign(secret: str, timestamp_s: str) -> str:
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


class FeishuChannel(Channel):
    type = "feishu"
    config: FeishuChannelConfig

    def payload(self, dispatch: Dispatch) -> dict[str, Any]:
        people = self.recipients(dispatch, self.config.at_user_ids)
        mention = "".join(f'<at user_id="{p}"></at>' for p in people)
        text = self.render(dispatch, "text")
        if self.config.msgtype == "text":
            return {"msg_type": "text", "content": {"text": f"{text}\n{mention}".strip()}}
        elements: list[dict[str, Any]] = [
            {"tag": "div", "text": {"tag": "lark_md", "content": f"{text}\n{mention}".strip()}}
        ]
        link = next((v.link for v in dispatch.violations if v.link), None)
        if link:
            button = {
                "tag": "button",
                "text": {"tag": "plain_text", "content": BUTTON[self.language]},
                "url": link,
                "type": "primary",
            }
            elements.append({"tag": "action", "actions": [button]})
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "title": {"tag": "plain_text", "content": self.render(dispatch, "subject")},
                    "template": CARD_COLOURS.get(dispatch.kind, "red"),
                },
                "elements": elements,
            },
        }

    def send(self, dispatch: Dispatch) -> int | None:
        payload = self.payload(dispatch)
        if self.config.secret:
            ts = str(int(time.time()))
            sign = feishu_sign(self.config.secret.get_secret_value(), ts)
            payload = {"timestamp": ts, "sign": sign, **payload}
        response = self.post(channel_url(self.config), dump_json(payload))
        data = response_json(response)
        key = "code" if "code" in data else "StatusCode"
        check_robot_errcode(
            data,
            code_key=key,
            msg_key="msg" if key == "code" else "StatusMessage",
            retryable=RETRYABLE_CODES,
            status_code=response.status_code,
        )
        return response.status_code
