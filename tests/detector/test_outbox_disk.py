"""The outbox's disk and path: a full disk sheds the oldest evidence images before any event and
says so; a message that still does not fit is refused loudly; a wrong or unwritable path stops
start-up naming it; `siteguard detect --dead-letters` lists what the service refused.

The full-disk test runs on a real 300 KB tmpfs (as root; it skips where mounting is not allowed).
"""

from __future__ import annotations

import logging
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_config_cli import siteguard

from detector.metrics import DetectorMetrics
from detector.outbox import Outbox, OutboxError, OutboxFull


@pytest.fixture()
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 300 KB tmpfs, unmounted afterwards."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=300k", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def _event_id(n: int) -> str:
    return f"{n:04d}-{uuid.uuid4().hex[:8]}"


def test_full_disk_sheds_the_oldest_images_first_and_never_drops_silently(
    tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    metrics = DetectorMetrics()
    outbox = Outbox(tiny_disk / "outbox.sqlite3", on_event=metrics.on_outbox_event)
    kept, refused = [], []
    with caplog.at_level(logging.WARNING, logger="detector.outbox"):
        for n in range(443):  # the run: 443 events opened on a 300 KB disk
            event_id = _event_id(n)
            try:
                outbox.put("open", event_id, {"event_id": event_id, "pad": "x" * 300},
                           snapshot=os.urandom(8_000), frame=os.urandom(12_000))  # fmt: skip
                kept.append(event_id)
            except OutboxFull as exc:
                assert str(tiny_disk) in str(exc)
                refused.append(event_id)
    due = outbox.due(limit=1000)
    assert [m.event_id for m in due] == kept  # every event it accepted is still there, in order
    assert len(kept) > 50  # images were shed to keep events (about 10 fit with their images)
    # Shedding went oldest first: the newest events kept their snapshots longest.
    with_snapshot = [m.snapshot is not None for m in due]
    assert with_snapshot == sorted(with_snapshot)
    sample = metrics.registry.get_sample_value
    assert sample("siteguard_detector_outbox_full_total") > 0
    assert sample("siteguard_detector_outbox_images_shed_total") >= 2 * (len(kept) - 20)
    assert sample("siteguard_detector_events_lost_total") == len(refused)
    text = caplog.text
    assert "is FULL" in text and "shed" in text and "free disk space" in text
    for event_id in refused:  # each refusal is logged with its event id
        assert f"open of event {event_id} NOT stored" in text
    # The poster can still delete what it delivered, and new events fit again.
    for message in due:
        outbox.done(message.message_id)
    outbox.put("open", "after", {"event_id": "after"}, snapshot=os.urandom(8_000))
    assert [m.snapshot is not None for m in outbox.due()] == [True]
    outbox.close()


def test_a_wrong_outbox_path_names_it(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    for path in (blocker / "outbox.sqlite3", tmp_path):  # under a file; a directory itself
        with pytest.raises(OutboxError, match=str(path)):
            Outbox(path)


def test_read_only_outbox_disk_is_refused_at_start(tiny_disk: Path) -> None:
    Outbox(tiny_disk / "outbox.sqlite3").close()
    subprocess.run(["mount", "-o", "remount,ro", str(tiny_disk)], check=True)
    with pytest.raises(OutboxError, match="outbox .*tiny/outbox.sqlite3: cannot open it"):
        Outbox(tiny_disk / "outbox.sqlite3")


def test_detect_stops_at_start_up_on_a_wrong_outbox_path(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    config = tmp_path / "c.yaml"
    config.write_text(
        f"outbox: {{path: {blocker / 'outbox.sqlite3'}}}\n"
        "metrics: {enabled: false}\ncameras: [{id: x, source: y.mp4}]\n"
    )
    result = siteguard("detect", "--config", str(config))
    assert result.returncode == 2
    assert f"outbox {blocker / 'outbox.sqlite3'}" in result.stderr
    assert "Traceback" not in result.stderr


def test_dead_letters_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    config = tmp_path / "c.yaml"
    config.write_text(f"outbox: {{path: {path}}}\ncameras: [{{id: x, source: y.mp4}}]\n")
    outbox = Outbox(path)
    outbox.put("open", "ev-nan", {"event_id": "ev-nan", "confidence": float("nan")})
    outbox.put("open", "ev-422", {"event_id": "ev-422"})
    outbox.dead("ev-422:open", "HTTP 422: zone: NUL character not allowed")
    outbox.put("open", "ev-ok", {"event_id": "ev-ok"})
    result = siteguard("detect", "--config", str(config), "--dead-letters")  # detector running
    outbox.close()
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "ev-nan" in lines[0] and "confidence is not a finite number" in lines[0]
    assert "ev-422" in lines[1] and "HTTP 422: zone: NUL" in lines[1]
    assert lines[2] == f"2 dead letter(s) in {path}"
