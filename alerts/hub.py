"""AlertHub: the only object the service uses (see docs/contract.md)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from alerts.channels import Channel, build_channel
from alerts.config import AlertsConfig, load_config, parse_config
from alerts.delivery import AttemptLog, ChannelWorker, attempt_once
from alerts.messages import Dispatch
from alerts.notices import CameraNotice, DeliveryAttempt, ViolationNotice, utc_now
from alerts.outbox import OutboxStore, OutboxWorker
from alerts.policy import AlertPolicy, Outgoing
from alerts.templating import Templates

log = logging.getLogger(__name__)


class AlertHub:
    """Routes notices to channels and delivers them in background threads.

    Every public method returns at once (the delivery happens in one worker thread per
    channel), except ``send_test``, which makes one synchronous attempt for the admin page.
    ``clock`` returns an aware datetime; inject one to test cooldown/escalation/quiet hours.

    With a ``store`` (alerts/outbox.py) messages are queued there instead of in memory, and
    the caller drives the timers with ``tick()`` (the service does, beside its outbox of
    notices): a crash then loses no queued message, and several processes share the work.

    >>> hub = AlertHub.from_config({"channels": {"hook": {"type": "webhook",
    ...     "url": "http://127.0.0.1:9/"}}, "routes": [{"name": "all", "channels": ["hook"]}]})
    >>> hub.channels()
    {'hook': 'webhook'}
    >>> hub.stop()
    """

    def __init__(
        self,
        config: AlertsConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        http: httpx.Client | None = None,
        store: OutboxStore | None = None,
    ) -> None:
        self.config = config = parse_config(config)  # cross-checks a hand-built AlertsConfig too
        self._clock = clock or utc_now
        self._http = http or httpx.Client(headers={"User-Agent": "SiteGuard-alerts"})
        templates = Templates(timezone=config.timezone, user_dir=config.templates_dir)
        self._channels: dict[str, Channel] = {
            name: build_channel(
                name,
                cfg,
                templates=templates,
                language=config.language,
                timeout_s=config.delivery.timeout_s,
                http=self._http,
            )
            for name, cfg in config.channels.items()
        }
        self._log = AttemptLog(config.delivery.history)
        self._store = store
        self._workers: dict[str, ChannelWorker | OutboxWorker] = {
            name: (
                ChannelWorker(ch, config.delivery, self._log.add, self._clock)
                if store is None
                else OutboxWorker(ch, store, config.delivery, self._log.add, self._clock)
            )
            for name, ch in self._channels.items()
        }
        self._policy = AlertPolicy(config, self._clock)
        self._stop = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="alerts-timers", daemon=True)
        self._started = False
        self._stopped = False

    @classmethod
    def from_yaml(
        cls,
        path: str | Path,
        *,
        clock: Callable[[], datetime] | None = None,
        env: Mapping[str, str] | None = None,
        store: OutboxStore | None = None,
    ) -> AlertHub:
        """Load ``path``; AlertsConfigError (naming the key path) on any problem."""
        return cls(load_config(path, env=env), clock=clock, store=store)

    @classmethod
    def from_config(
        cls,
        data: Mapping[str, Any] | AlertsConfig,
        *,
        clock: Callable[[], datetime] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> AlertHub:
        """Build from a mapping (as parsed from YAML) or an AlertsConfig."""
        return cls(parse_config(data, env=env), clock=clock)

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the delivery threads and the timer thread (idempotent)."""
        if self._started:
            return
        self._started = True
        for worker in self._workers.values():
            worker.start()
        if self._store is None:
            self._ticker.start()
        log.info(
            "alerts hub started: %d channel(s), %d route(s)",
            len(self._channels),
            len(self.config.routes),
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Send pending batches, deliver what falls due within ``timeout`` s, then stop.

        Messages still waiting for a retry at the deadline are recorded as failed."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        if self._ticker.is_alive():
            self._ticker.join(timeout)
        if self._store is None:  # a durable outbox keeps batched notices for the next start
            self._submit(self._policy.flush())
        deadline = time.monotonic() + (timeout if self._started else 0.0)
        for worker in self._workers.values():
            worker.request_stop(deadline)
        for worker in self._workers.values():
            worker.join()
        self._http.close()

    def __enter__(self) -> AlertHub:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the service's calls -------------------------------------------------------------

    def notify_violation(self, notice: ViolationNotice, skip_routes: Collection[str] = ()) -> int:
        """Route a violation; returns at once (messages queued), delivery happens in the
        background. ``skip_routes``: routes a durable outbox already sent it on."""
        if not isinstance(notice, ViolationNotice):
            raise TypeError(f"expected ViolationNotice, got {type(notice).__name__}")
        return self._guarded(lambda n: self._policy.on_violation(n, skip_routes), notice)

    def mark_reviewed(self, event_id: str) -> None:
        """The violation was reviewed: cancel its pending escalation."""
        self._policy.on_reviewed(event_id)

    def notify_camera(self, notice: CameraNotice) -> None:
        """A camera went offline/frozen or came back online."""
        if not isinstance(notice, CameraNotice):
            raise TypeError(f"expected CameraNotice, got {type(notice).__name__}")
        self._guarded(self._policy.on_camera, notice)

    def send_test(self, channel_name: str) -> DeliveryAttempt:
        """One synchronous test message; KeyError for an unknown channel."""
        channel = self._channels.get(channel_name)
        if channel is None:
            raise KeyError(f"unknown channel {channel_name!r}; defined: {sorted(self._channels)}")
        dispatch = Dispatch(kind="test", created_at=self._clock())
        record, _ = attempt_once(channel, dispatch, 1, final=True, clock=self._clock)
        self._log.add(record)
        return record

    def attempts(self, limit: int = 100) -> list[DeliveryAttempt]:
        """The recent delivery attempts, newest first."""
        return self._log.recent(limit)

    # --- for the admin page and tests ----------------------------------------------------

    def channels(self) -> dict[str, str]:
        """Channel name -> type."""
        return {name: ch.type_label for name, ch in self._channels.items()}

    def tick(self) -> int:
        """Fire whatever is due now on the hub's clock; returns messages queued.

        The timer thread calls this every ``tick_interval_s``; tests with a fake clock call it
        directly after moving the clock."""
        return self._guarded(lambda _: self._policy.due(), None)

    def held_event_ids(self) -> set[str]:
        """Violations waiting in a batch (grouping, cooldown, deferred quiet hours)."""
        return self._policy.held_event_ids()

    def forget(self, event_id: str) -> None:
        """Let a violation be routed again (a durable outbox replays it after a failure)."""
        self._policy.forget(event_id)

    def pending(self) -> int:
        """Messages queued or in flight across all channels."""
        if self._store is not None:
            return self._store.pending()
        return sum(w.pending() for w in self._workers.values() if isinstance(w, ChannelWorker))

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until nothing is queued or in flight (retries included)."""
        deadline = time.monotonic() + timeout
        while self.pending():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    # --- internals -----------------------------------------------------------------------

    def _guarded(self, step: Callable[[Any], list[Outgoing]], arg: Any) -> int:
        try:
            outgoing = step(arg)
        except Exception:  # never let a bug in alerting break ingest
            log.exception("alerts: routing failed for %r", arg)
            return 0
        return self._submit(outgoing)

    def _submit(self, outgoing: list[Outgoing]) -> int:
        """Queue the messages; with a store all of them in one write, which raises if the
        store cannot take them (the caller then replays the notices)."""
        if self._store is not None:
            items = [
                (t.channel, dispatch.with_recipients(t.recipients))
                for targets, dispatch in outgoing
                for t in targets
            ]
            if items:
                self._store.put(items)
                for name in {name for name, _ in items}:
                    worker = self._workers[name]
                    if isinstance(worker, OutboxWorker):
                        worker.wake()
            return len(items)
        queued = 0
        for targets, dispatch in outgoing:
            for target in targets:
                message = dispatch.with_recipients(target.recipients)
                worker = self._workers[target.channel]
                assert isinstance(worker, ChannelWorker)
                queued += worker.submit(message)
        return queued

    def _tick_loop(self) -> None:
        while not self._stop.wait(self.config.tick_interval_s):
            self.tick()
