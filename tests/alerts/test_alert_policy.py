"""Routing and timing rules, end to end through a real receiver, on a controllable clock.

The hub's timer thread is parked (tick_interval_s = 1 h); tests move the clock and call
``hub.tick()`` themselves, so nothing depends on real time passing.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest
from alert_peers import FakeClock, Receiver, violation

from alerts import CameraNotice


def hooks(receiver: Receiver, *names: str) -> dict:
    return {n: {"type": "webhook", "url": receiver.url(f"/{n}"), "language": "en"} for n in names}


def settle(hub) -> None:
    assert hub.wait_idle()


def messages(receiver: Receiver, path: str) -> list[dict]:
    return [r.json for r in receiver.on(path)]


def test_cooldown_groups_a_burst_into_one_message(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    config = {
        "channels": hooks(receiver, "site"),
        "routes": [{"name": "r", "channels": ["site"], "cooldown_s": 300}],
    }
    hub = make_hub(config, clock)
    first = violation(clock)
    hub.notify_violation(first)  # nothing sent recently: goes out at once
    receiver.wait("/site")
    burst = []
    for _ in range(3):
        clock.advance(seconds=40)
        burst.append(violation(clock))
        hub.notify_violation(burst[-1])
    hub.notify_violation(violation(clock, camera_id="gate-2"))  # another camera: not held
    receiver.wait("/site", 2)
    hub.tick()
    settle(hub)
    sent = messages(receiver, "/site")
    assert [m["message"] for m in sent] == ["violation", "violation"]
    assert sent[1]["violations"][0]["camera_id"] == "gate-2"

    clock.advance(seconds=179)  # 299 s after the first message: still cooling down
    assert hub.tick() == 0
    clock.advance(seconds=1)
    assert hub.tick() == 1
    (group,) = [m for m in receiver.wait("/site", 3) if m.json["message"] == "group"]
    body = group.json
    assert [v["event_id"] for v in body["violations"]] == [n.event_id for n in burst]
    assert "gate-1: 3 safety violations" in body["title"]
    assert hub.tick() == 0  # nothing left


def test_group_window_delays_the_first_message(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    config = {
        "channels": hooks(receiver, "site"),
        "routes": [{"name": "r", "channels": ["site"], "group_window_s": 30}],
    }
    hub = make_hub(config, clock)
    a, b = violation(clock), violation(clock)
    hub.notify_violation(a)
    clock.advance(seconds=10)
    hub.notify_violation(b)
    assert hub.tick() == 0
    clock.advance(seconds=20)
    assert hub.tick() == 1
    (req,) = receiver.wait("/site")
    assert [v["event_id"] for v in req.json["violations"]] == [a.event_id, b.event_id]


def test_min_duration_and_duplicates(receiver: Receiver, make_hub, clock: FakeClock) -> None:
    config = {
        "channels": hooks(receiver, "site"),
        "routes": [{"name": "r", "channels": ["site"], "min_duration_s": 5}],
    }
    hub = make_hub(config, clock)
    short = violation(clock, duration_s=2.0)
    hub.notify_violation(short)
    settle(hub)
    assert receiver.on("/site") == []
    # The same episode reported again once it has lasted long enough gets through, once.
    longer = violation(clock, event_id=short.event_id, duration_s=6.0)
    hub.notify_violation(longer)
    hub.notify_violation(longer)
    receiver.wait("/site")
    settle(hub)
    assert len(receiver.on("/site")) == 1


def test_escalation_after_unreviewed_minutes(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    config = {
        "channels": hooks(receiver, "site", "manager"),
        "routes": [
            {
                "name": "r",
                "channels": ["site"],
                "escalation": {
                    "after_minutes": 10,
                    "channels": [{"channel": "manager", "recipients": ["boss"]}],
                },
            }
        ],
    }
    hub = make_hub(config, clock)
    reviewed, ignored = violation(clock), violation(clock)
    hub.notify_violation(reviewed)
    hub.notify_violation(ignored)
    receiver.wait("/site", 2)
    clock.advance(minutes=9)
    hub.mark_reviewed(reviewed.event_id)
    assert hub.tick() == 0
    clock.advance(minutes=1)
    assert hub.tick() == 1
    (req,) = receiver.wait("/manager")
    body = req.json
    assert body["message"] == "escalation"
    assert body["recipients"] == ["boss"]
    assert [v["event_id"] for v in body["violations"]] == [ignored.event_id]
    assert "unreviewed for over 10 min" in body["text"]
    clock.advance(minutes=30)
    assert hub.tick() == 0  # escalates once
    hub.mark_reviewed(ignored.event_id)  # late review: harmless


def test_escalation_counts_from_when_the_message_went_out(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    """Violations sent together in one group escalate together, N minutes after the group."""
    config = {
        "channels": hooks(receiver, "site", "manager"),
        "routes": [
            {
                "name": "r",
                "channels": ["site"],
                "group_window_s": 120,
                "escalation": {"after_minutes": 5, "channels": ["manager"]},
            }
        ],
    }
    hub = make_hub(config, clock)
    notices = [violation(clock) for _ in range(3)]
    for n in notices:
        hub.notify_violation(n)
    clock.advance(minutes=2)
    assert hub.tick() == 1  # the group goes out
    clock.advance(minutes=4)
    assert hub.tick() == 0  # 6 min after the first notice, but only 4 after the message
    clock.advance(minutes=1)
    assert hub.tick() == 1  # one escalation message for the 3
    (req,) = receiver.wait("/manager")
    assert len(req.json["violations"]) == 3


def test_reviewed_violation_leaves_the_pending_group(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    config = {
        "channels": hooks(receiver, "site"),
        "routes": [{"name": "r", "channels": ["site"], "cooldown_s": 60}],
    }
    hub = make_hub(config, clock)
    hub.notify_violation(violation(clock))
    held = violation(clock)
    hub.notify_violation(held)
    hub.mark_reviewed(held.event_id)
    clock.advance(seconds=61)
    assert hub.tick() == 0
    settle(hub)
    assert len(receiver.on("/site")) == 1


@pytest.mark.parametrize(
    ("utc_time", "severity", "sent"),
    [
        ("2026-11-23T14:30:00+00:00", None, False),  # Mon 22:30 Shanghai: quiet
        ("2026-11-23T21:59:00+00:00", None, False),  # Tue 05:59: still quiet (overnight)
        ("2026-11-23T22:00:00+00:00", None, True),  # Tue 06:00: quiet hours over
        ("2026-11-23T14:30:00+00:00", "critical", True),  # critical bypasses quiet hours
        ("2026-11-28T02:00:00+00:00", None, False),  # Saturday 10:00: no shift
    ],
)
def test_quiet_hours_and_shifts(
    receiver: Receiver, make_hub, utc_time: str, severity: str | None, sent: bool
) -> None:
    clock = FakeClock(datetime.fromisoformat(utc_time))
    config = {
        "timezone": "Asia/Shanghai",
        "channels": hooks(receiver, "site"),
        "routes": [
            {
                "name": "r",
                "channels": ["site"],
                "quiet_hours": [{"start": "22:00", "end": "06:00"}],
                "quiet_hours_bypass": "critical",
                "shifts": [
                    {"days": ["mon", "tue", "wed", "thu", "fri"], "start": "00:00", "end": "00:00"}
                ],
            }
        ],
    }
    hub = make_hub(config, clock)
    hub.notify_violation(violation(clock, severity=severity))
    settle(hub)
    assert bool(receiver.on("/site")) is sent


def test_quiet_hours_can_defer_to_one_message_when_they_end(receiver: Receiver, make_hub) -> None:
    clock = FakeClock(datetime.fromisoformat("2026-11-23T14:30:00+00:00"))  # 22:30 Shanghai
    config = {
        "channels": hooks(receiver, "site", "manager"),
        "routes": [
            {
                "name": "r",
                "channels": ["site"],
                "quiet_hours": [{"start": "22:00", "end": "06:00"}],
                "quiet_hours_action": "defer",
                "escalation": {"after_minutes": 30, "channels": ["manager"]},
            }
        ],
    }
    hub = make_hub(config, clock)
    night = [violation(clock), violation(clock, camera_id="gate-2")]
    for n in night:
        hub.notify_violation(n)
    clock.advance(hours=2)
    hub.notify_violation(late := violation(clock))
    clock.advance(minutes=60)  # 01:30: no escalation at night either
    assert hub.tick() == 0
    clock.advance(hours=4, minutes=29)  # 05:59
    assert hub.tick() == 0
    clock.advance(minutes=1)  # 06:00
    assert hub.tick() == 2  # one message per camera
    reqs = receiver.wait("/site", 2)
    got = sorted(v["event_id"] for r in reqs for v in r.json["violations"])
    assert got == sorted([night[0].event_id, night[1].event_id, late.event_id])
    clock.advance(minutes=30)
    assert hub.tick() == 2  # escalation counts from 06:00, per camera
    settle(hub)


def test_routing_by_site_camera_zone_kind_and_severity(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    config = {
        "severities": {"no_helmet": "high", "no_harness": "critical"},
        "channels": hooks(receiver, "site_a", "gates", "height", "critical"),
        "routes": [
            {"name": "a", "match": {"sites": ["site-a"]}, "channels": ["site_a"]},
            {"name": "g", "match": {"cameras": ["gate-*"]}, "channels": ["gates"]},
            {
                "name": "h",
                "match": {"zones": ["scaffold*"], "kinds": ["no_harness"]},
                "channels": ["height"],
            },
            {"name": "c", "match": {"min_severity": "critical"}, "channels": ["critical"]},
        ],
    }
    hub = make_hub(config, clock)
    hub.notify_violation(violation(clock, site_id="site-a", camera_id="yard-1", zone="yard"))
    hub.notify_violation(violation(clock, site_id="site-b", camera_id="gate-3", zone="site"))
    hub.notify_violation(
        violation(clock, site_id="site-b", camera_id="c9", zone="scaffold-2", kind="no_harness")
    )
    hub.notify_violation(violation(clock, site_id="site-b", camera_id="c9", zone="scaffold-2"))
    settle(hub)

    def cams(path: str) -> list[str]:
        return [m["violations"][0]["camera_id"] for m in messages(receiver, path)]

    assert cams("/site_a") == ["yard-1"]
    assert cams("/gates") == ["gate-3"]
    assert cams("/height") == ["c9"]
    assert [m["violations"][0]["kind"] for m in messages(receiver, "/critical")] == ["no_harness"]


def test_camera_offline_after_grace_then_online(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    config = {
        "camera_offline_grace_s": 120,
        "channels": hooks(receiver, "ops", "site"),
        "routes": [
            {"name": "ops", "events": ["camera"], "channels": ["ops"]},
            {"name": "site", "channels": ["site"]},  # violations only
        ],
    }
    hub = make_hub(config, clock)

    def camera(state: str, cam: str = "gate-1") -> CameraNotice:
        return CameraNotice(site_id="site-a", camera_id=cam, state=state, at=clock())

    # A flap shorter than the grace period says nothing.
    hub.notify_camera(camera("offline", "flappy"))
    clock.advance(seconds=60)
    hub.notify_camera(camera("online", "flappy"))
    clock.advance(seconds=120)
    assert hub.tick() == 0

    hub.notify_camera(camera("offline"))
    hub.notify_camera(camera("frozen"))  # still the same outage
    clock.advance(seconds=119)
    assert hub.tick() == 0
    clock.advance(seconds=1)
    assert hub.tick() == 1
    clock.advance(seconds=600)
    hub.notify_camera(camera("online"))
    hub.notify_camera(camera("online"))  # repeated heartbeats: one message
    reqs = receiver.wait("/ops", 2)
    settle(hub)
    assert [(r.json["camera"]["state"], r.json["camera"]["camera_id"]) for r in reqs] == [
        ("offline", "gate-1"),
        ("online", "gate-1"),
    ]
    assert reqs[0].json["text"].startswith("[Camera offline] gate-1")
    assert reqs[1].json["text"].startswith("[Camera back online] gate-1")
    assert len(receiver.on("/ops")) == 2
    assert receiver.on("/site") == []


def test_stop_flushes_pending_groups(receiver: Receiver, make_hub, clock: FakeClock) -> None:
    config = {
        "channels": hooks(receiver, "site"),
        "routes": [{"name": "r", "channels": ["site"], "group_window_s": 600}],
    }
    hub = make_hub(config, clock)
    held = violation(clock)
    hub.notify_violation(held)
    hub.stop(timeout=5)
    (req,) = receiver.on("/site")
    assert req.json["violations"][0]["event_id"] == held.event_id


def test_unrouted_notice_sends_nothing(receiver: Receiver, make_hub, clock: FakeClock) -> None:
    config = {
        "channels": hooks(receiver, "site"),
        "routes": [{"name": "r", "match": {"sites": ["elsewhere"]}, "channels": ["site"]}],
    }
    hub = make_hub(config, clock)
    hub.notify_violation(violation(clock))
    settle(hub)
    assert hub.attempts() == [] and receiver.on("/site") == []


def test_timer_thread_fires_on_its_own(receiver: Receiver) -> None:
    """Without manual ticks, the hub's own timer thread flushes groups (real clock)."""
    from alert_peers import FAST_DELIVERY

    from alerts import AlertHub

    hub = AlertHub.from_config(
        {
            "tick_interval_s": 0.05,
            "delivery": FAST_DELIVERY,
            "channels": hooks(receiver, "site"),
            "routes": [{"name": "r", "channels": ["site"], "group_window_s": 1.0}],
        },
        env={},
    )
    hub.start()
    try:
        hub.notify_violation(violation(started_at=datetime.now(UTC)))
        assert receiver.on("/site") == []
        receiver.wait("/site")
    finally:
        hub.stop(timeout=2)


def test_concurrent_notices_are_each_delivered_exactly_once(
    receiver: Receiver, make_hub, clock: FakeClock
) -> None:
    """Four ingest threads and a ticking clock: every event reaches the channel exactly once,
    whether alone or inside a group message."""
    config = {
        "channels": hooks(receiver, "site"),
        "routes": [{"name": "r", "channels": ["site"], "cooldown_s": 30, "group_window_s": 5}],
    }
    hub = make_hub(config, clock)
    sent_ids: list[str] = []
    lock = threading.Lock()

    def ingest(worker: int) -> None:
        for i in range(40):
            n = violation(clock, camera_id=f"cam-{(worker + i) % 5}")
            with lock:
                sent_ids.append(n.event_id)
            hub.notify_violation(n)

    def ticker(stop: threading.Event) -> None:
        while not stop.is_set():
            clock.advance(seconds=3)
            hub.tick()

    stop = threading.Event()
    tick_thread = threading.Thread(target=ticker, args=(stop,))
    tick_thread.start()
    threads = [threading.Thread(target=ingest, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    tick_thread.join()
    hub.stop(timeout=10)  # flushes whatever is still batched

    received = [v["event_id"] for m in messages(receiver, "/site") for v in m["violations"]]
    assert sorted(received) == sorted(sent_ids)
    assert len(messages(receiver, "/site")) < len(sent_ids)  # bursts were grouped
