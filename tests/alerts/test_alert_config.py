"""Bad configuration fails at start-up with the key path of the fault."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alerts import AlertHub, AlertsConfigError
from alerts.config import parse_config

HOOK = {"type": "webhook", "url": "http://127.0.0.1:9/hook"}


def config(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "channels": {"hook": dict(HOOK)},
        "routes": [{"name": "all", "channels": ["hook"]}],
    }
    base.update(overrides)
    return base


def problems(data: dict[str, Any], env: dict[str, str] | None = None) -> dict[str, str]:
    with pytest.raises(AlertsConfigError) as info:
        AlertHub.from_config(data, env=env or {})
    return dict(info.value.problems)


def test_valid_config_builds_a_hub() -> None:
    hub = AlertHub.from_config(config(), env={})
    assert hub.channels() == {"hook": "webhook"}
    hub.stop()


def test_unknown_channel_type_names_the_channel() -> None:
    found = problems(config(channels={"sms": {"type": "sms", "url": "http://x/"}}))
    assert "channels.sms.type" in found
    assert "unknown channel type 'sms'" in found["channels.sms.type"]


def test_bad_url_names_the_key() -> None:
    found = problems(config(channels={"hook": {"type": "webhook", "url": "not a url"}}))
    assert list(found) == ["channels.hook.url"]
    assert "URL" in found["channels.hook.url"]


def test_dingtalk_url_without_token_is_rejected() -> None:
    ding = {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send"}
    found = problems(config(channels={"hook": HOOK, "ding": ding}))
    assert "access_token" in found["channels.ding.url"]


def test_wecom_url_without_key_is_rejected() -> None:
    wecom = {"type": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}
    found = problems(config(channels={"hook": HOOK, "wx": wecom}))
    assert "key" in found["channels.wx.url"]


def test_missing_secret_env_var_names_key_and_variable() -> None:
    ding = {
        "type": "dingtalk",
        "url": "https://oapi.dingtalk.com/robot/send?access_token=abc",
        "secret": "${DINGTALK_SECRET}",
    }
    found = problems(config(channels={"hook": HOOK, "ding": ding}), env={})
    assert found == {"channels.ding.secret": "environment variable DINGTALK_SECRET is not set"}
    # With the variable set, the same file is fine.
    parsed = parse_config(
        config(channels={"hook": HOOK, "ding": ding}), env={"DINGTALK_SECRET": "s"}
    )
    assert parsed.channels["ding"].secret.get_secret_value() == "s"


def test_empty_secret_is_rejected() -> None:
    feishu = {
        "type": "feishu",
        "url": "https://open.feishu.cn/open-apis/bot/v2/hook/x",
        "secret": "",
    }
    found = problems(config(channels={"hook": HOOK, "fs": feishu}))
    assert "channels.fs.secret" in found


def test_email_login_without_password() -> None:
    mail = {
        "type": "email",
        "host": "smtp.example.com",
        "from": "siteguard@example.com",
        "to": ["hse@example.com"],
        "username": "siteguard",
    }
    found = problems(config(channels={"hook": HOOK, "mail": mail}))
    assert "password is required" in found["channels.mail"]


def test_email_needs_recipients_and_a_sender() -> None:
    mail = {"type": "email", "host": "smtp.example.com"}
    found = problems(config(channels={"hook": HOOK, "mail": mail}))
    assert {"channels.mail.from", "channels.mail.to"} <= set(found)


def test_route_referencing_unknown_channel() -> None:
    data = config(routes=[{"name": "r", "channels": ["hook", "pager"]}])
    found = problems(data)
    assert list(found) == ["routes[0].channels[1]"]
    assert "unknown channel 'pager'" in found["routes[0].channels[1]"]
    assert "hook" in found["routes[0].channels[1]"]  # lists what is defined


def test_escalation_referencing_unknown_channel() -> None:
    route = {
        "name": "r",
        "channels": ["hook"],
        "escalation": {"after_minutes": 5, "channels": ["boss"]},
    }
    found = problems(config(routes=[route]))
    assert list(found) == ["routes[0].escalation.channels[0]"]


def test_bad_quiet_hours_and_timezone() -> None:
    route = {
        "name": "r",
        "channels": ["hook"],
        "timezone": "Mars/Olympus",
        "quiet_hours": [{"days": ["funday"], "start": "25:00", "end": "06:00"}],
    }
    found = problems(config(routes=[route]))
    assert "unknown timezone" in found["routes[0].timezone"]
    assert "routes[0].quiet_hours[0].days" in found
    assert "routes[0].quiet_hours[0].start" in found


def test_unknown_key_and_duplicate_route() -> None:
    found = problems(config(retries=3))
    assert found == {"retries": "unknown key"}
    found = problems(config(routes=[{"name": "a", "channels": ["hook"]}] * 2))
    assert "duplicate route name" in found["routes[1].name"]


def test_error_message_is_readable() -> None:
    with pytest.raises(AlertsConfigError) as info:
        AlertHub.from_config(config(channels={"hook": {"type": "webhook", "url": "nope"}}), env={})
    text = str(info.value)
    assert text.startswith("invalid alerts config")
    assert "channels.hook.url" in text


def test_from_yaml_bad_file(tmp_path: Path) -> None:
    with pytest.raises(AlertsConfigError, match="cannot read"):
        AlertHub.from_yaml(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("channels: [unclosed\n")
    with pytest.raises(AlertsConfigError, match="not valid YAML"):
        AlertHub.from_yaml(bad)


def test_example_config_loads_with_its_env_vars(repo_root: Path) -> None:
    example = repo_root / "configs" / "alerts.example.yaml"
    env = {
        "WEBHOOK_SECRET": "w",
        "SMTP_PASSWORD": "p",
        "WECOM_KEY": "k",
        "DINGTALK_TOKEN": "t",
        "DINGTALK_SECRET": "d",
        "FEISHU_HOOK": "h",
        "FEISHU_SECRET": "f",
    }
    hub = AlertHub.from_yaml(example, env=env)
    types = set(hub.channels().values())
    assert {"webhook", "email", "wecom", "dingtalk", "feishu"} <= types
    hub.stop()
    # Without the environment, every placeholder is reported by its key path.
    with pytest.raises(AlertsConfigError) as info:
        AlertHub.from_yaml(example, env={})
    assert any(p.endswith(".secret") for p in info.value.paths)
    assert len(info.value.problems) == len(env)


def test_templates_dir_is_relative_to_the_config_file(tmp_path: Path, receiver) -> None:
    (tmp_path / "tpl" / "webhook").mkdir(parents=True)
    (tmp_path / "tpl" / "webhook" / "test.text.en.j2").write_text("custom test text")
    path = tmp_path / "alerts.yaml"
    path.write_text(
        f"language: en\ntemplates_dir: tpl\n"
        f"channels: {{w: {{type: webhook, url: '{receiver.url('/w')}'}}}}\n"
        f"routes: [{{name: r, channels: [w]}}]\n"
    )
    hub = AlertHub.from_yaml(path, env={})
    assert hub.config.templates_dir == tmp_path / "tpl"
    assert hub.send_test("w").ok
    hub.stop()
    (req,) = receiver.on("/w")
    assert req.json["text"] == "custom test text"  # the user's template won
    assert req.json["title"] == "[SiteGuard] test message"  # others stay bundled
    path.write_text(path.read_text().replace("tpl", "missing"))
    with pytest.raises(AlertsConfigError) as info:
        AlertHub.from_yaml(path, env={})
    assert info.value.paths == ["templates_dir"]
