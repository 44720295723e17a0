"""docs/dashboard.md's "first five minutes" stays true: every test it names exists, every picture
it shows is committed, small, and written by a browser test (issue 17.8)."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DOC = REPO / "docs" / "dashboard.md"
MAX_PICTURE_BYTES = 300_000
MAX_PICTURES_BYTES = 800_000
PNG = b"\x89PNG\r\n\x1a\n"


def _section(title: str) -> str:
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"## {title}")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _claims() -> list[str]:
    """The numbered items of the section, each with its continuation lines."""
    items = re.split(r"\n(?=\d+\. )", _section("The first five minutes"))
    return [item for item in items if re.match(r"\d+\. ", item)]


def _pictures(text: str) -> list[str]:
    return re.findall(r"!\[[^\]]+\]\((img/[^)]+)\)", text)


def test_every_claim_names_a_test_that_exists() -> None:
    claims = _claims()
    assert len(claims) >= 5, "the list of the first five minutes is gone"
    for claim in claims:
        named = re.findall(r"`(tests/[\w/]+\.py)::(test_\w+)`", claim)
        assert named, f"no test named for: {claim[:80]}"
        for path, test in named:
            source = REPO / path
            assert source.is_file(), f"{path} (named in docs/dashboard.md) is missing"
            assert re.search(rf"^def {test}\(", source.read_text(encoding="utf-8"), re.M), (
                f"{path}::{test} (named in docs/dashboard.md) is missing"
            )


def test_every_picture_is_committed_small_and_made_by_a_test() -> None:
    pictures = _pictures(_section("The first five minutes"))
    assert pictures, "the section shows no screenshot"
    tests = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "tests").rglob("test_*.py"))
    total = 0
    for picture in pictures:
        path = DOC.parent / picture
        assert path.is_file(), f"docs/{picture} is referenced but not committed"
        data = path.read_bytes()
        assert data.startswith(PNG), f"docs/{picture} is not a PNG"
        assert len(data) <= MAX_PICTURE_BYTES, f"docs/{picture}: {len(data)} bytes"
        total += len(data)
        name = re.escape(Path(picture).name)
        assert re.search(rf'"{name}",\s*docs=True', tests), f"no test writes docs/{picture}"
    assert total <= MAX_PICTURES_BYTES, f"the pictures weigh {total} bytes"


def test_no_picture_is_left_unreferenced() -> None:
    shown = {Path(p).name for p in _pictures(DOC.read_text(encoding="utf-8"))}
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md"))
    docs += (REPO / "README.md").read_text(encoding="utf-8")
    for png in (DOC.parent / "img").glob("*.png"):
        assert png.name in shown or f"img/{png.name}" in docs, f"docs/img/{png.name} is unused"
