"""Outbox + poster against a real uvicorn service: nothing lost, nothing doubled."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest
from detector_testlib import API_KEY, ServiceProcess, wait_until

from detector.config import ServiceConfig
from detector.outbox import Outbox
from detector.poster import Poster


def _event(camera: str = "gate-1") -> dict:
    event_id = str(uuid.uuid4())
    return {
        "event_id": event_id,
        "camera_id": camera,
        "kind": "no_helmet",
        "zone": "site",
        "started_at": "2026-11-23T08:15:02+00:00",
        "ended_at": None,
        "duration_s": 2.1,
        "confidence": 0.8,
        "track_id": 1,
        "model_version": "test",
        "frame_width": 64,
        "frame_height": 48,
        "boxes": [],
    }


def _poster(service: ServiceProcess, outbox: Outbox, **kw) -> Poster:
    config = ServiceConfig(
        url=service.url, api_key=API_KEY, retry_initial_s=0.1, retry_max_s=0.5, timeout_s=5, **kw
    )
    return Poster(config, outbox)


def test_events_and_ends_arrive_with_their_images(service: ServiceProcess, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    event = _event()
    outbox.put("open", event["event_id"], event, snapshot=b"\xff\xd8snap", frame=b"\xff\xd8raw")
    outbox.put(
        "end", event["event_id"], {"ended_at": "2026-11-23T08:16:00+00:00", "duration_s": 58}
    )
    poster = _poster(service, outbox)
    assert poster.drain() is True
    rows = service.query("SELECT event_id, snapshot, frame, duration_s FROM events")
    assert rows == [(event["event_id"], 6, 5, 58.0)]
    assert outbox.depth() == 0


def test_repeat_is_stored_once(service: ServiceProcess, tmp_path: Path) -> None:
    """A re-send (answer lost) is deduplicated by the service through the event id."""
    event = _event()
    for name in ("a", "b"):  # two detector runs that both believe the event is unsent
        outbox = Outbox(tmp_path / f"{name}.sqlite3")
        outbox.put("open", event["event_id"], event)
        assert _poster(service, outbox).drain()
    assert service.event_ids() == [event["event_id"]]
    receipts = service.query("SELECT COUNT(*) FROM receipts WHERE path = 'open'")[0][0]
    assert receipts == 2


def test_outbox_survives_a_detector_restart(service: ServiceProcess, tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    first = Outbox(path)
    events = [_event() for _ in range(5)]
    for event in events:
        first.put("open", event["event_id"], event)
    first.close()  # the process ends before anything was sent
    second = Outbox(path)
    assert second.depth() == 5
    assert _poster(service, second).drain()
    assert sorted(service.event_ids()) == sorted(e["event_id"] for e in events)


def test_server_killed_mid_stream_every_event_arrives_exactly_once(
    service: ServiceProcess, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    poster = _poster(service, outbox)
    poster.start()
    sent: list[str] = []
    stop = threading.Event()

    def produce() -> None:  # the detector keeps finding violations all along
        while not stop.is_set() and len(sent) < 60:
            event = _event()
            outbox.put("open", event["event_id"], event, snapshot=b"x" * 2000)
            outbox.put("end", event["event_id"], {"ended_at": None, "duration_s": 1.0})
            sent.append(event["event_id"])
            poster.wake()
            stop.wait(0.05)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        wait_until(lambda: len(service.event_ids()) >= 10, timeout=60)
        service.kill()
        wait_until(lambda: poster.last_error is not None, timeout=60)  # it noticed the outage
        assert outbox.depth() > 0
        service.start()
        producer.join(120)
        wait_until(lambda: outbox.depth() == 0, timeout=120)
    finally:
        stop.set()
        producer.join(10)
        poster.stop()
    stored = service.event_ids()
    assert len(sent) == 60
    assert sorted(stored) == sorted(sent)  # all there, none twice (event_id is the key)
    ended = service.query("SELECT COUNT(*) FROM events WHERE duration_s IS NOT NULL")[0][0]
    assert ended == 60
    assert outbox.dead_count() == 0


def test_refused_event_is_kept_dead_and_the_queue_moves_on(
    service: ServiceProcess, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    bad = _event()
    outbox.put("open", bad["event_id"], {"not": "an event"})  # the service answers 422
    outbox.put("end", bad["event_id"], {"ended_at": None, "duration_s": 1})
    good = _event()
    outbox.put("open", good["event_id"], good)
    assert _poster(service, outbox).drain()
    assert service.event_ids() == [good["event_id"]]
    assert outbox.depth() == 0
    assert outbox.dead_count() == 2  # the refused open and its end, kept for an operator


@pytest.mark.parametrize("key", ["wrong-key", None], ids=["wrong-key", "no-key"])
def test_wrong_key_keeps_retrying_instead_of_dropping(
    service: ServiceProcess, tmp_path: Path, key: str | None
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    event = _event()
    outbox.put("open", event["event_id"], event)
    given = {} if key is None else {"api_key": key}  # an explicit "" is a config error now
    config = ServiceConfig(url=service.url, retry_initial_s=0.1, retry_max_s=0.2, **given)
    poster = Poster(config, outbox)
    assert poster.drain() is False
    assert "401" in (poster.last_error or "")
    assert outbox.depth() == 1 and outbox.dead_count() == 0
    assert _poster(service, outbox).drain()  # key fixed: delivered
    assert service.event_ids() == [event["event_id"]]


def test_heartbeat_returns_the_announced_model(service: ServiceProcess, tmp_path: Path) -> None:
    poster = _poster(service, Outbox(tmp_path / "o.sqlite3"))
    payload = {"detector_id": "edge-1", "model_version": "v1", "cameras": []}
    assert poster.heartbeat(payload) is None
    service.active_file.write_text('{"version": "v2", "sha256": "ab", "url": "/x"}')
    assert poster.heartbeat(payload) == {"version": "v2", "sha256": "ab", "url": "/x"}
    assert len(service.query("SELECT body FROM heartbeats")) == 2


def test_event_answered_5xx_is_set_aside_and_the_next_goes_at_once(
    service: ServiceProcess, tmp_path: Path
) -> None:
    """A poison event (the service fails on it alone) costs the next one a single try."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    poison = {**_event(), "zone": "server-error"}
    outbox.put("open", poison["event_id"], poison)
    outbox.put("end", poison["event_id"], {"ended_at": None, "duration_s": 1})  # waits behind it
    good = [_event() for _ in range(3)]
    for event in good:
        outbox.put("open", event["event_id"], event)
    poster = _poster(service, outbox)
    poster.drain()
    assert sorted(service.event_ids()) == sorted(e["event_id"] for e in good)
    receipts = [r[0] for r in service.query("SELECT event_id FROM receipts ORDER BY n")]
    assert receipts[:4] == [poison["event_id"]] + [e["event_id"] for e in good]  # one try, then on
    assert outbox.depth() == 2 and outbox.dead_count() == 0  # kept: the bug may be fixed
    assert [m.type for m in outbox.due(now=time.time() + 60)] == ["open"]  # its end waits


def test_service_down_still_pauses_the_whole_queue(service: ServiceProcess, tmp_path: Path) -> None:
    """Two failures in a row mean the service, not the event: nothing is set aside for good."""
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    events = [_event() for _ in range(3)]
    for event in events:
        outbox.put("open", event["event_id"], event)
    service.kill()
    poster = _poster(service, outbox)
    assert poster.drain() is False
    assert outbox.depth() == 3 and outbox.dead_count() == 0
    service.start()
    wait_until(lambda: poster.drain() and outbox.depth() == 0, timeout=30)
    assert sorted(service.event_ids()) == sorted(e["event_id"] for e in events)


def test_non_finite_values_are_dead_letters_before_sending(
    service: ServiceProcess, tmp_path: Path
) -> None:
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    nan_box = {**_event(), "boxes": [{"class": "head", "confidence": 0.9,
                                      "xyxy": [1.0, float("nan"), 3.0, 4.0]}]}  # fmt: skip
    outbox.put("open", nan_box["event_id"], nan_box, snapshot=b"\xff\xd8snap")
    outbox.put("end", "e-inf", {"ended_at": None, "duration_s": float("inf")})
    good = _event()
    outbox.put("open", good["event_id"], good)
    assert outbox.depth() == 1  # only the good one waits to be sent
    assert _poster(service, outbox).drain()
    assert service.event_ids() == [good["event_id"]]
    reasons = {d.event_id: d.reason for d in outbox.dead_letters()}
    assert reasons == {
        nan_box["event_id"]: "not sent: boxes.0.xyxy.1 is not a finite number",
        "e-inf": "not sent: duration_s is not a finite number",
    }
