"""Delivery: retries with backoff, isolation between channels, never blocking, metrics."""

from __future__ import annotations

import time

from alert_peers import Receiver, violation, wait_until
from prometheus_client import REGISTRY

from alerts import AlertHub


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def hook(receiver: Receiver, path: str) -> dict:
    return {"type": "webhook", "url": receiver.url(path)}


def test_retried_after_500s_until_delivered(receiver: Receiver, make_hub) -> None:
    receiver.script["/flaky"] = [(500, {"error": "boom"}), (503, {"error": "busy"})]
    before = {o: sample("siteguard_alert_deliveries_total", channel_type="webhook", outcome=o)
              for o in ("retry", "delivered")}  # fmt: skip
    hub = make_hub(
        {"channels": {"w": hook(receiver, "/flaky")}, "routes": [{"name": "r", "channels": ["w"]}]}
    )
    notice = violation()
    hub.notify_violation(notice)
    requests = receiver.wait("/flaky", 3)
    assert hub.wait_idle()

    assert len(requests) == 3
    assert len({r.body for r in requests}) == 1  # the same message each time
    gaps = [b.at - a.at for a, b in zip(requests, requests[1:], strict=False)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.1  # backoff 0.05 s, then 0.1 s
    attempts = hub.attempts()[::-1]  # oldest first
    assert [(a.attempt, a.outcome, a.status_code) for a in attempts] == [
        (1, "retry", 500),
        (2, "retry", 503),
        (3, "delivered", 200),
    ]
    assert "HTTP 500" in (attempts[0].error or "")
    assert all(a.event_ids == (notice.event_id,) for a in attempts)
    after = {o: sample("siteguard_alert_deliveries_total", channel_type="webhook", outcome=o)
             for o in ("retry", "delivered")}  # fmt: skip
    assert after["retry"] - before["retry"] == 2
    assert after["delivered"] - before["delivered"] == 1
    assert sample("siteguard_alert_delivery_seconds_count", channel_type="webhook") >= 3


def test_retries_exhausted_is_recorded_as_failed(receiver: Receiver, make_hub) -> None:
    receiver.default = (500, {"error": "down"})
    hub = make_hub(
        {
            "delivery": {"max_attempts": 3, "backoff_initial_s": 0.05},
            "channels": {"w": hook(receiver, "/down")},
            "routes": [{"name": "r", "channels": ["w"]}],
        }
    )
    hub.notify_violation(violation())
    receiver.wait("/down", 3)
    assert hub.wait_idle()
    assert [(a.attempt, a.outcome) for a in hub.attempts()[::-1]] == [
        (1, "retry"),
        (2, "retry"),
        (3, "failed"),
    ]
    assert len(receiver.on("/down")) == 3


def test_client_error_is_not_retried(receiver: Receiver, make_hub) -> None:
    receiver.default = (400, {"error": "bad payload"})
    hub = make_hub(
        {"channels": {"w": hook(receiver, "/400")}, "routes": [{"name": "r", "channels": ["w"]}]}
    )
    hub.notify_violation(violation())
    assert hub.wait_idle()
    (attempt,) = hub.attempts()
    assert attempt.outcome == "failed" and attempt.status_code == 400


def test_a_failing_or_hanging_channel_never_delays_the_others(
    receiver: Receiver, make_hub, free_port: int
) -> None:
    receiver.delay_s["/slow"] = 1.5
    config = {
        "delivery": {"max_attempts": 3, "backoff_initial_s": 0.05, "timeout_s": 10},
        "channels": {
            "dead": {"type": "webhook", "url": f"http://127.0.0.1:{free_port}/nobody"},
            "slow": hook(receiver, "/slow"),
            "good": hook(receiver, "/good"),
        },
        "routes": [{"name": "r", "channels": ["dead", "slow", "good"]}],
    }
    hub = make_hub(config)
    started = time.monotonic()
    for _ in range(3):
        hub.notify_violation(violation(camera_id=f"cam-{time.monotonic_ns()}"))
    assert time.monotonic() - started < 1.0  # the caller never waits for delivery

    good = receiver.wait("/good", 3)
    first_slow = receiver.wait("/slow", 1)[0]
    # All three went out before the slow peer had answered even the first of its messages.
    assert good[-1].at < first_slow.at + receiver.delay_s["/slow"]
    assert hub.wait_idle(timeout=30)
    by_channel: dict[str, list[str]] = {}
    for a in hub.attempts():
        by_channel.setdefault(a.channel, []).append(a.outcome)
    assert by_channel["good"] == ["delivered"] * 3
    assert by_channel["slow"] == ["delivered"] * 3
    assert by_channel["dead"].count("failed") == 3  # each message recorded as failed...
    assert by_channel["dead"].count("retry") == 6  # ...after all its attempts


def test_notify_never_blocks_even_before_start(receiver: Receiver) -> None:
    """Notices accepted before start() are delivered once the hub starts."""
    hub = AlertHub.from_config(
        {"channels": {"w": hook(receiver, "/late")}, "routes": [{"name": "r", "channels": ["w"]}]},
        env={},
    )
    try:
        hub.notify_violation(violation())
        assert hub.pending() == 1 and receiver.on("/late") == []
        hub.start()
        receiver.wait("/late")
        assert hub.wait_idle()
    finally:
        hub.stop(timeout=2)
    assert hub.attempts()[0].ok


def test_stop_records_messages_still_waiting_as_failed(receiver: Receiver) -> None:
    receiver.default = (500, {"error": "down"})
    hub = AlertHub.from_config(
        {
            "delivery": {"max_attempts": 5, "backoff_initial_s": 60},
            "channels": {"w": hook(receiver, "/down")},
            "routes": [{"name": "r", "channels": ["w"]}],
        },
        env={},
    )
    hub.start()
    hub.notify_violation(violation())
    receiver.wait("/down")
    wait_until(lambda: hub.attempts(), what="first attempt recorded")
    t0 = time.monotonic()
    hub.stop(timeout=1)
    assert time.monotonic() - t0 < 5  # does not wait for a retry due in a minute
    outcomes = [(a.outcome, a.error) for a in hub.attempts()]
    assert outcomes[0] == ("failed", "alerts hub stopped before delivery")
    assert outcomes[1][0] == "retry"
    assert hub.pending() == 0
