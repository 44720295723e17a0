"""Who hears about what, and when: routing, quiet hours, minimum duration, cooldown + grouping,
escalation and camera outages. Pure bookkeeping on the injected clock; no I/O, no threads.

Grouping, per route and camera: a notice opens a batch that is sent ``group_window_s`` later
(at once when 0), but never sooner than ``cooldown_s`` after the previous message for that
camera; everything arriving meanwhile joins the batch, so a burst becomes one message and
nothing is dropped. Quiet hours drop notices, or with ``quiet_hours_action: defer`` hold them in
the batch until the quiet window ends. Escalation timers start when a violation is sent.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from alerts.config import AlertsConfig, ChannelTarget, RouteConfig, severity_rank
from alerts.messages import Dispatch
from alerts.metrics import NOTICES
from alerts.notices import CameraNotice, ViolationNotice
from alerts.schedule import in_any

log = logging.getLogger(__name__)

Outgoing = tuple[list[ChannelTarget], Dispatch]
SEEN_LIMIT = 100_000


@dataclass
class _Batch:
    last_sent: datetime | None = None
    pending: list[ViolationNotice] = field(default_factory=list)
    flush_at: datetime | None = None


@dataclass
class _Escalation:
    route: RouteConfig
    notice: ViolationNotice
    due: datetime


@dataclass
class _Outage:
    notice: CameraNotice
    due: datetime
    notified_routes: list[str] | None = None  # None: still within the grace period


class AlertPolicy:
    """Turns notices into Dispatches; thread-safe.

    >>> from alerts.config import parse_config
    >>> cfg = parse_config({"channels": {"hook": {"type": "webhook", "url": "http://x/"}},
    ...                     "routes": [{"name": "all", "channels": ["hook"]}]}, env={})
    >>> from alerts.notices import utc_now
    >>> p = AlertPolicy(cfg, utc_now)
    >>> [d.kind for _, d in p.on_violation(ViolationNotice(event_id="e", site_id="s",
    ...     camera_id="c", zone=None, kind="no_helmet", started_at=utc_now()))]
    ['violation']
    """

    def __init__(self, config: AlertsConfig, clock: Callable[[], datetime]) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._batches: dict[tuple[str, str, str], _Batch] = {}
        self._escalations: dict[str, list[_Escalation]] = {}
        self._outages: dict[tuple[str, str], _Outage] = {}
        self._routes = {r.name: r for r in config.routes}

    # --- violations ----------------------------------------------------------------------

    def on_violation(
        self, notice: ViolationNotice, skip_routes: Collection[str] = ()
    ) -> list[Outgoing]:
        """Dispatches due now (the rest wait in batches); ``skip_routes``: routes a durable
        outbox already sent this notice on (a replay after a crash repeats none of them)."""
        now = self._clock()
        severity = self.config.severity_of(notice.kind, notice.severity)
        out: list[Outgoing] = []
        routes = self._matching(notice, severity)
        if not routes:
            self._count("unrouted", notice.event_id)
        with self._lock:
            for route in routes:
                key = (route.name, notice.event_id)
                if route.name in skip_routes:
                    self._remember(key)
                    continue
                if key in self._seen:
                    self._count("duplicate", notice.event_id, route)
                    continue
                if (notice.duration_s or 0.0) < route.min_duration_s:
                    # Not remembered: a later notice for the same episode, once it has lasted
                    # long enough, still gets through.
                    self._count("too_short", notice.event_id, route)
                    continue
                self._remember(key)
                reason = self._suppressed(route, now, severity)
                if reason == "quiet" and route.quiet_hours_action == "defer":
                    self._count("deferred", notice.event_id, route)
                    out.extend(self._add_to_batch(route, notice, now, self._quiet_end(route, now)))
                elif reason:
                    self._count(reason, notice.event_id, route)
                else:
                    out.extend(self._add_to_batch(route, notice, now))
        return out

    def on_reviewed(self, event_id: str) -> None:
        """A reviewed violation needs no escalation, nor a place in a pending batch."""
        with self._lock:
            cancelled = self._escalations.pop(event_id, None)
            for batch in self._batches.values():
                batch.pending = [n for n in batch.pending if n.event_id != event_id]
                if not batch.pending:
                    batch.flush_at = None
        if cancelled:
            NOTICES.labels("reviewed").inc()
            log.info("alert %s reviewed: escalation cancelled", event_id)

    def _matching(self, notice: ViolationNotice, severity: str) -> list[RouteConfig]:
        return [
            r
            for r in self.config.routes
            if "violation" in r.events
            and r.match.accepts(
                site=notice.site_id, camera=notice.camera_id, zone=notice.zone, kind=notice.kind
            )
            and severity_rank(severity) >= severity_rank(r.match.min_severity)
        ]

    def _suppressed(self, route: RouteConfig, now: datetime, severity: str | None) -> str | None:
        tz = ZoneInfo(route.timezone or self.config.timezone)
        if route.shifts and not in_any(route.shifts, now, tz):
            return "off_shift"
        if route.quiet_hours and in_any(route.quiet_hours, now, tz):
            bypass = route.quiet_hours_bypass
            if severity and bypass and severity_rank(severity) >= severity_rank(bypass):
                return None
            return "quiet"
        return None

    def _quiet_end(self, route: RouteConfig, now: datetime) -> datetime:
        """The first minute after ``now`` outside every quiet window (at most 8 days on)."""
        tz = ZoneInfo(route.timezone or self.config.timezone)
        t = now.replace(second=0, microsecond=0)
        for _ in range(8 * 24 * 60):
            t += timedelta(minutes=1)
            if not in_any(route.quiet_hours, t, tz):
                return t
        return t

    def _add_to_batch(
        self,
        route: RouteConfig,
        notice: ViolationNotice,
        now: datetime,
        not_before: datetime | None = None,
    ) -> list[Outgoing]:
        batch = self._batches.setdefault((route.name, notice.site_id, notice.camera_id), _Batch())
        if batch.pending:
            batch.pending.append(notice)
            self._count("grouped", notice.event_id, route)
            return []
        flush_at = now + timedelta(seconds=route.group_window_s)
        if batch.last_sent is not None:
            flush_at = max(flush_at, batch.last_sent + timedelta(seconds=route.cooldown_s))
        if not_before is not None:
            flush_at = max(flush_at, not_before)
        batch.pending = [notice]
        batch.flush_at = flush_at
        if flush_at > now:
            self._count("grouped", notice.event_id, route)
            return []
        self._count("routed", notice.event_id, route)
        return [self._flush(route, batch, now)]

    def _flush(self, route: RouteConfig, batch: _Batch, now: datetime) -> Outgoing:
        notices = sorted(batch.pending, key=lambda n: n.started_at)
        batch.pending, batch.flush_at, batch.last_sent = [], None, now
        if route.escalation:
            due = now + timedelta(minutes=route.escalation.after_minutes)
            for n in notices:
                self._escalations.setdefault(n.event_id, []).append(_Escalation(route, n, due))
        return route.channels, Dispatch(
            kind="violation" if len(notices) == 1 else "group",
            created_at=now,
            route=route.name,
            violations=tuple(notices),
            severity=self._max_severity(notices),
        )

    def _max_severity(self, notices: list[ViolationNotice]) -> str:
        severities = [self.config.severity_of(n.kind, n.severity) for n in notices]
        return max(severities, key=severity_rank)

    # --- cameras -------------------------------------------------------------------------

    def on_camera(self, notice: CameraNotice) -> list[Outgoing]:
        """Outages are reported after ``camera_offline_grace_s``; a recovery only if the
        outage was reported (a short flap says nothing)."""
        key = (notice.site_id, notice.camera_id)
        now = self._clock()
        with self._lock:
            outage = self._outages.get(key)
            if notice.is_outage:
                if outage is None:
                    due = now + timedelta(seconds=self.config.camera_offline_grace_s)
                    self._outages[key] = _Outage(notice, due)
                return self._due_outages(now)
            if outage is None:
                return []
            del self._outages[key]
            if outage.notified_routes is None:
                log.info("camera %s/%s flapped: back within the grace period", *key)
                return []
            out = []
            for name in outage.notified_routes:
                route = self._routes[name]
                dispatch = Dispatch(kind="camera", created_at=now, route=name, camera=notice)
                out.append((route.channels, dispatch))
            return out

    def _due_outages(self, now: datetime) -> list[Outgoing]:
        out: list[Outgoing] = []
        for outage in self._outages.values():
            if outage.notified_routes is not None or outage.due > now:
                continue
            n = outage.notice
            routes = [
                r
                for r in self.config.routes
                if "camera" in r.events
                and r.match.accepts(site=n.site_id, camera=n.camera_id, zone=None, kind=None)
                and self._suppressed(r, now, None) is None
            ]
            outage.notified_routes = [r.name for r in routes]
            for r in routes:
                dispatch = Dispatch(kind="camera", created_at=now, route=r.name, camera=n)
                out.append((r.channels, dispatch))
        return out

    # --- timers --------------------------------------------------------------------------

    def due(self) -> list[Outgoing]:
        """Everything whose time has come: batches, escalations, camera outages."""
        now = self._clock()
        out: list[Outgoing] = []
        with self._lock:
            for (route_name, _, _), batch in self._batches.items():
                if batch.pending and batch.flush_at is not None and batch.flush_at <= now:
                    route = self._routes[route_name]
                    severity = self._max_severity(batch.pending)
                    if (
                        route.quiet_hours_action == "defer"
                        and self._suppressed(route, now, severity) == "quiet"
                    ):  # a cooldown that ends inside quiet hours waits for them to end
                        batch.flush_at = self._quiet_end(route, now)
                        continue
                    out.append(self._flush(route, batch, now))
            out.extend(self._due_escalations(now))
            out.extend(self._due_outages(now))
        return out

    def flush(self) -> list[Outgoing]:
        """Send every pending batch now (the hub is stopping)."""
        now = self._clock()
        with self._lock:
            return [
                self._flush(self._routes[key[0]], batch, now)
                for key, batch in self._batches.items()
                if batch.pending
            ]

    def _due_escalations(self, now: datetime) -> list[Outgoing]:
        fired: dict[tuple[str, str, str], list[_Escalation]] = {}
        for event_id in list(self._escalations):
            remaining = []
            for esc in self._escalations[event_id]:
                if esc.due <= now:
                    key = (esc.route.name, esc.notice.site_id, esc.notice.camera_id)
                    fired.setdefault(key, []).append(esc)
                else:
                    remaining.append(esc)
            if remaining:
                self._escalations[event_id] = remaining
            else:
                del self._escalations[event_id]
        out: list[Outgoing] = []
        for escs in fired.values():
            route = escs[0].route
            assert route.escalation is not None
            notices = sorted((e.notice for e in escs), key=lambda n: n.started_at)
            log.warning(
                "alert escalation on route %s: %s unreviewed",
                route.name,
                ", ".join(n.event_id for n in notices),
            )
            dispatch = Dispatch(
                kind="escalation",
                created_at=now,
                route=route.name,
                violations=tuple(notices),
                escalated_after_min=route.escalation.after_minutes,
                severity=self._max_severity(notices),
            )
            out.append((route.escalation.channels, dispatch))
        return out

    def forget(self, event_id: str) -> None:
        """Forget that ``event_id`` was routed, so a replay of it is not a duplicate."""
        with self._lock:
            for route in self.config.routes:
                self._seen.pop((route.name, event_id), None)

    def held_event_ids(self) -> set[str]:
        """Violations waiting in a batch (grouping, cooldown, deferred quiet hours)."""
        with self._lock:
            return {n.event_id for b in self._batches.values() for n in b.pending}

    def pending_escalations(self) -> int:
        with self._lock:
            return sum(len(v) for v in self._escalations.values())

    # --- helpers -------------------------------------------------------------------------

    def _remember(self, key: tuple[str, str]) -> None:
        self._seen[key] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)

    @staticmethod
    def _count(decision: str, event_id: str, route: RouteConfig | None = None) -> None:
        NOTICES.labels(decision).inc()
        log.debug("alert %s: %s%s", event_id, decision, f" on route {route.name}" if route else "")
