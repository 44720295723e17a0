"""企业微信 (WeCom) group robot: ``markdown`` (colours, ``<@userid>`` mentions) or ``text``
(``mentioned_mobile_list``). No signature scheme: the ``key`` in the URL is the secret.
"""

from __future__ import annotations

from typing import Any

from alerts.channels.base import Channel, check_robot_errcode, dump_json, response_json
from alerts.config import WeComChannelConfig, channel_url
from alerts.messages import Dispatch

RETRYABLE_ERRCODES = {-1, 45009}  # system busy; API frequency limit (20 messages/minute)


class WeComChannel(Channel):
    type = "wecom"
    config: WeComChannelConfig

    def payload(self, dispatch: Dispatch) -> dict[str, Any]:
        people = self.recipients(dispatch, self.config.mentioned_mobiles)
        if self.config.msgtype == "text":
            return {
                "msgtype": "text",
                "text": {"content": self.render(dispatch, "text"), "mentioned_mobile_list": people},
            }
        text = self.render(dispatch, "markdown")
        if people:
            text += "\n" + " ".join(f"<@{p}>" for p in people)
        return {"msgtype": "markdown", "markdown": {"content": text}}

    def send(self, dispatch: Dispatch) -> int | None:
        response = self.post(channel_url(self.config), dump_json(self.payload(dispatch)))
        check_robot_errcode(
            response_json(response),
            code_key="errcode",
            msg_key="errmsg",
            retryable=RETRYABLE_ERRCODES,
            status_code=response.status_code,
        )
        return response.status_code
