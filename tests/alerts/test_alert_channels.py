"""Each HTTP channel against a real receiver on 127.0.0.1; signatures are recomputed here."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from alert_peers import JPEG, Receiver, violation


def one_route(channel: dict, **route: object) -> dict:
    return {
        "channels": {"ch": channel},
        "routes": [{"name": "r", "channels": ["ch"], **route}],
    }


def test_webhook_payload_and_hmac_signature(receiver: Receiver, make_hub) -> None:
    secret = "webhook-secret-ü"
    hook = {
        "type": "webhook",
        "url": receiver.url("/hook"),
        "secret": secret,
        "include_snapshot": True,
        "headers": {"X-Tenant": "acme"},
        "language": "en",
    }
    hub = make_hub(one_route(hook))
    notice = violation(zone="scaffold-2", confidence=0.9)
    hub.notify_violation(notice)
    (req,) = receiver.wait("/hook")

    ts = req.headers["X-SiteGuard-Timestamp"]
    assert abs(int(ts) - time.time()) < 120
    expected = hmac.new(secret.encode(), f"{ts}.".encode() + req.body, hashlib.sha256)
    assert hmac.compare_digest(
        req.headers["X-SiteGuard-Signature"], f"sha256={expected.hexdigest()}"
    )
    assert req.headers["X-Tenant"] == "acme"
    assert req.headers["Content-Type"].startswith("application/json")

    body = req.json
    assert body["message"] == "violation"
    assert body["route"] == "r"
    assert body["severity"] == "high"
    (item,) = body["violations"]
    assert item["event_id"] == notice.event_id
    assert item["camera_id"] == "gate-1"
    assert item["zone"] == "scaffold-2"
    assert item["link"] == notice.link
    assert base64.b64decode(item["snapshot_jpeg_base64"]) == JPEG
    assert "No helmet" in body["text"] and notice.link in body["text"]
    assert body["title"] == "[SiteGuard] site-a/gate-1: No helmet"

    hub.wait_idle()
    (attempt,) = hub.attempts()
    assert attempt.ok and attempt.attempt == 1 and attempt.status_code == 200
    assert attempt.event_ids == (notice.event_id,)


def test_webhook_without_secret_is_unsigned(receiver: Receiver, make_hub) -> None:
    hub = make_hub(one_route({"type": "webhook", "url": receiver.url("/plain")}))
    hub.notify_violation(violation(snapshot_jpeg=None))
    (req,) = receiver.wait("/plain")
    assert "X-SiteGuard-Signature" not in req.headers
    assert "snapshot_jpeg_base64" not in req.json["violations"][0]


def test_dingtalk_signed_markdown(receiver: Receiver, make_hub) -> None:
    secret = "SEC0123456789abcdef"
    ding = {
        "type": "dingtalk",
        "url": receiver.url("/robot/send?access_token=tok123"),
        "secret": secret,
        "at_mobiles": ["13800000000"],
    }
    hub = make_hub(one_route(ding))
    notice = violation()
    hub.notify_violation(notice)
    (req,) = receiver.wait("/robot/send")

    assert req.query["access_token"] == "tok123"
    ts = req.query["timestamp"]
    assert abs(int(ts) / 1000 - time.time()) < 120  # milliseconds
    to_sign = f"{ts}\n{secret}".encode()
    sign = base64.b64encode(hmac.new(secret.encode(), to_sign, hashlib.sha256).digest()).decode()
    assert req.query["sign"] == sign  # parse_qs has already url-decoded it

    body = req.json
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"] == "[SiteGuard] site-a/gate-1：未戴安全帽"
    text = body["markdown"]["text"]
    assert "未戴安全帽" in text and "gate-1" in text and notice.link in text
    assert text.endswith("@13800000000")
    assert body["at"] == {"atMobiles": ["13800000000"], "isAtAll": False}


def test_route_recipients_replace_channel_defaults(receiver: Receiver, make_hub) -> None:
    ding = {
        "type": "dingtalk",
        "url": receiver.url("/ding?access_token=t"),
        "msgtype": "text",
        "at_mobiles": ["111"],
    }
    config = {
        "channels": {"ding": ding},
        "routes": [{"name": "r", "channels": [{"channel": "ding", "recipients": ["222"]}]}],
    }
    hub = make_hub(config)
    hub.notify_violation(violation())
    (req,) = receiver.wait("/ding")
    assert "sign" not in req.query  # no secret, no signature
    assert req.json["msgtype"] == "text"
    assert req.json["at"]["atMobiles"] == ["222"]
    assert req.json["text"]["content"].endswith("@222")


def test_feishu_signed_card(receiver: Receiver, make_hub) -> None:
    secret = "feishu-secret"
    receiver.default = (200, {"code": 0, "msg": "success", "data": {}})
    fs = {"type": "feishu", "url": receiver.url("/open-apis/bot/v2/hook/abc"), "secret": secret}
    hub = make_hub(one_route(fs))
    notice = violation()
    hub.notify_violation(notice)
    (req,) = receiver.wait("/open-apis/bot/v2/hook/abc")

    body = req.json
    ts = body["timestamp"]
    assert abs(int(ts) - time.time()) < 120  # seconds
    key = f"{ts}\n{secret}".encode()
    assert body["sign"] == base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["title"]["content"] == "[SiteGuard] site-a/gate-1：未戴安全帽"
    assert "gate-1" in card["elements"][0]["text"]["content"]
    assert card["elements"][1]["actions"][0]["url"] == notice.link
    hub.wait_idle()
    assert hub.attempts()[0].ok


def test_lark_text_with_mentions(receiver: Receiver, make_hub) -> None:
    receiver.default = (200, {"StatusCode": 0, "StatusMessage": "success"})
    lark = {
        "type": "lark",
        "url": receiver.url("/lark"),
        "msgtype": "text",
        "at_user_ids": ["ou_1"],
        "language": "en",
    }
    hub = make_hub(one_route(lark))
    hub.notify_violation(violation())
    (req,) = receiver.wait("/lark")
    assert "sign" not in req.json
    assert req.json["msg_type"] == "text"
    text = req.json["content"]["text"]
    assert text.startswith("[Safety violation] No helmet")
    assert text.endswith('<at user_id="ou_1"></at>')


@pytest.mark.parametrize("msgtype", ["markdown", "text"])
def test_wecom(receiver: Receiver, make_hub, msgtype: str) -> None:
    wecom = {
        "type": "wecom",
        "url": receiver.url("/cgi-bin/webhook/send?key=k1"),
        "msgtype": msgtype,
        "mentioned_mobiles": ["13900000000"],
    }
    hub = make_hub(one_route(wecom))
    hub.notify_violation(violation())
    (req,) = receiver.wait("/cgi-bin/webhook/send")
    assert req.query["key"] == "k1"
    body = req.json
    assert body["msgtype"] == msgtype
    if msgtype == "markdown":
        content = body["markdown"]["content"]
        assert '<font color="warning">安全违规：未戴安全帽</font>' in content  # WeCom-specific
        assert content.endswith("<@13900000000>")
    else:
        assert body["text"]["mentioned_mobile_list"] == ["13900000000"]
        assert body["text"]["content"].startswith("【安全违规】未戴安全帽")


def test_robot_error_code_is_a_failed_attempt(receiver: Receiver, make_hub) -> None:
    """Robots answer HTTP 200 with an error code; a bad token is permanent (not retried)."""
    receiver.default = (200, {"errcode": 300001, "errmsg": "token is not exist"})
    hub = make_hub(one_route({"type": "dingtalk", "url": receiver.url("/bad?access_token=x")}))
    hub.notify_violation(violation())
    receiver.wait("/bad")
    assert hub.wait_idle()
    (attempt,) = hub.attempts()
    assert attempt.outcome == "failed"
    assert "errcode=300001" in (attempt.error or "")
    assert len(receiver.on("/bad")) == 1


def test_robot_rate_limit_is_retried(receiver: Receiver, make_hub) -> None:
    receiver.script["/busy"] = [(200, {"errcode": 45009, "errmsg": "api freq out of limit"})]
    hub = make_hub(one_route({"type": "wecom", "url": receiver.url("/busy?key=k")}))
    hub.notify_violation(violation())
    receiver.wait("/busy", 2)
    assert hub.wait_idle()
    assert [a.outcome for a in hub.attempts()] == ["delivered", "retry"]


def test_send_test_is_synchronous_and_logged(receiver: Receiver, make_hub) -> None:
    hub = make_hub(one_route({"type": "webhook", "url": receiver.url("/t"), "language": "en"}))
    attempt = hub.send_test("ch")
    assert attempt.ok and attempt.message == "test" and attempt.channel == "ch"
    (req,) = receiver.on("/t")  # already there: no waiting needed
    assert req.json["message"] == "test"
    assert req.json["text"].startswith("SiteGuard test message")
    assert hub.attempts(limit=1) == [attempt]
    with pytest.raises(KeyError, match="unknown channel 'nope'"):
        hub.send_test("nope")


def test_send_test_reports_an_unreachable_channel(free_port: int, make_hub) -> None:
    hub = make_hub(one_route({"type": "webhook", "url": f"http://127.0.0.1:{free_port}/x"}))
    attempt = hub.send_test("ch")
    assert attempt.outcome == "failed"
    assert "ConnectError" in (attempt.error or "")
