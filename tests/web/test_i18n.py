"""The message catalogue: both languages complete, Accept-Language negotiation, fallbacks."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.web.i18n import MESSAGES, client_messages, negotiate_language, translator
from siteguard.kinds import KIND_NAMES, kind_name

TEMPLATES = Path(__file__).resolve().parents[2] / "service" / "web" / "templates"


def test_every_language_has_every_key() -> None:
    english = set(MESSAGES["en"])
    for lang, table in MESSAGES.items():
        assert set(table) == english, f"{lang}: missing {english - set(table)}"
        assert all(value.strip() for value in table.values()), f"{lang}: empty message"


def test_every_key_used_by_a_template_exists() -> None:
    used: set[str] = set()
    for path in TEMPLATES.rglob("*.html"):
        used |= set(re.findall(r"t\('([a-z_]+\.[a-z_0-9]+)'\)", path.read_text(encoding="utf-8")))
    assert used, "no t('...') calls found: the pattern is stale"
    assert used <= set(MESSAGES["en"]), sorted(used - set(MESSAGES["en"]))


@pytest.mark.parametrize(
    ("cookie", "header", "expected"),
    [
        (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh"),
        (None, "en-US,en;q=0.9,zh;q=0.8", "en"),
        (None, "fr-FR,fr;q=0.9,zh-TW;q=0.5", "zh"),
        (None, "en;q=0.2, zh;q=0.7", "zh"),
        (None, "de", "en"),
        (None, None, "en"),
        (None, "zh;q=garbage", "en"),
        ("zh", "en-US", "zh"),
        ("xx", "zh-CN", "zh"),
    ],
)
def test_negotiate_language(cookie: str | None, header: str | None, expected: str) -> None:
    assert negotiate_language(cookie, header) == expected


def test_translator_falls_back_to_english_then_key() -> None:
    assert translator("zh")("nav.alerts") == "实时告警"
    assert translator("en")("nav.alerts") == "Live alerts"
    assert translator("xx")("nav.alerts") == "Live alerts"
    assert translator("zh")("no.such.key") == "no.such.key"


def test_client_messages_only_prefixes() -> None:
    msgs = client_messages("zh", ("kind.",))
    assert msgs == {
        "kind.no_harness": "未系安全带",
        "kind.no_helmet": "未戴安全帽",
        "kind.no_vest": "未穿反光背心",
        "kind.zone_intrusion": "进入危险区域",
    }


def test_every_kind_has_names_and_a_badge_colour() -> None:
    """siteguard/kinds.py is the list: names in both languages, a CSS badge per kind."""
    css = (TEMPLATES.parent / "static" / "css" / "app.css").read_text(encoding="utf-8")
    for kind in KIND_NAMES:
        assert translator("en")(f"kind.{kind}") == kind_name(kind, "en")
        assert translator("zh")(f"kind.{kind}") == kind_name(kind, "zh")
        assert f".kind-{kind} {{" in css, kind
    assert translator("zh")("ppe.vest") == "反光背心"
