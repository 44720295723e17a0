"""Every bundled template renders, in both languages, with the facts a reader needs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alert_peers import violation

from alerts.messages import Dispatch
from alerts.notices import CameraNotice
from alerts.templating import Templates
from siteguard.kinds import KIND_NAMES, kind_name

AT = datetime(2026, 11, 23, 8, 15, 2, tzinfo=UTC)  # 16:15:02 in Shanghai


def dispatches() -> dict[str, Dispatch]:
    one = violation(started_at=AT, event_id="e1", link="http://x/violations/e1")
    many = tuple(violation(started_at=AT, event_id=f"g{i}") for i in range(12))
    cam = CameraNotice(site_id="site-a", camera_id="gate-1", state="offline", at=AT)
    return {
        "violation": Dispatch(kind="violation", created_at=AT, violations=(one,), severity="high"),
        "group": Dispatch(kind="group", created_at=AT, violations=many, severity="high"),
        "escalation": Dispatch(
            kind="escalation", created_at=AT, violations=(one,), escalated_after_min=15
        ),
        "camera": Dispatch(kind="camera", created_at=AT, camera=cam),
        "test": Dispatch(kind="test", created_at=AT),
    }


EXPECTED = {
    ("violation", "zh"): ["未戴安全帽", "gate-1", "2026-11-23 16:15:02", "http://x/violations/e1"],
    ("violation", "en"): ["No helmet", "gate-1", "2026-11-23 16:15:02", "http://x/violations/e1"],
    ("group", "zh"): ["12 次", "另有 2 次"],
    ("group", "en"): ["12 safety violations", "and 2 more"],
    ("escalation", "zh"): ["15 分钟未审核"],
    ("escalation", "en"): ["unreviewed for over 15 min"],
    ("camera", "zh"): ["离线", "gate-1"],
    ("camera", "en"): ["offline", "gate-1"],
    ("test", "zh"): ["测试消息"],
    ("test", "en"): ["test message"],
}


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("kind", ["violation", "group", "escalation", "camera", "test"])
@pytest.mark.parametrize(
    ("channel_type", "fmt"),
    [("dingtalk", "markdown"), ("wecom", "markdown"), ("webhook", "text"), ("email", "subject")],
)
def test_bundled_templates(kind: str, language: str, channel_type: str, fmt: str) -> None:
    templates = Templates(timezone="Asia/Shanghai")
    text = templates.render(
        dispatches()[kind], channel_type=channel_type, fmt=fmt, language=language
    )
    assert text and "{{" not in text
    if fmt == "subject":
        assert "\n" not in text and text.startswith("[SiteGuard")
    else:
        for needle in EXPECTED[(kind, language)]:
            assert needle in text, f"{needle!r} missing from:\n{text}"


def test_user_templates_override_per_channel_and_language(tmp_path: Path) -> None:
    (tmp_path / "dingtalk").mkdir()
    (tmp_path / "dingtalk" / "violation.markdown.en.j2").write_text(
        "ALERT {{ first.camera_id }} {{ kind_label(first.kind) }}"
    )
    templates = Templates(timezone="UTC", user_dir=tmp_path)
    d = dispatches()["violation"]
    assert templates.render(d, channel_type="dingtalk", fmt="markdown", language="en") == (
        "ALERT gate-1 No helmet"
    )
    # Other channels and languages keep the bundled templates.
    zh = templates.render(d, channel_type="dingtalk", fmt="markdown", language="zh")
    assert zh.startswith("### ⚠️ 安全违规")


@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_every_violation_kind_has_its_name_in_every_template(kind: str, language: str) -> None:
    templates = Templates(timezone="Asia/Shanghai")
    one = violation(started_at=AT, event_id="k1", kind=kind)
    d = Dispatch(kind="violation", created_at=AT, violations=(one,), severity="high")
    for channel_type, fmt in [("wecom", "markdown"), ("webhook", "text"), ("email", "subject")]:
        text = templates.render(d, channel_type=channel_type, fmt=fmt, language=language)
        assert kind_name(kind, language) in text and kind not in text, text
