"""PPE rules: which worker violates what, where and when; one event per worker per episode.

Subjects are tracked heads/helmets (a `head` detection is a bare head = no helmet) and tracked
persons (body-worn PPE: harness, vest; and danger zones). The kinds, their requirements and their
default class names are listed once, in `siteguard/kinds.py`; `rules.ppe_classes` maps a model's
own class names to them. A zone is a polygon of one camera; what it requires defaults to a helmet,
plus a harness when it is marked `at_height` (`requires` lists it: helmet, harness, vest); outside
every zone the camera's `site_requires` applies (helmet everywhere on site). A `danger` zone is one
no one may enter: any tracked person whose feet are inside is a `zone_intrusion`. Zones and cameras
may have shift/time windows; outside them nothing is required.

A violation starts (its hold timer) only on a reading at or above `violation_conf`, the model's
operating threshold for a bare head (`set_violation_conf`); weaker readings of the same track keep
a started one going, as ByteTrack lets weak detections extend a track.

An episode opens when a violation holds for `hold_s`, closes when the worker has been compliant
or gone for `close_after_s`, and the same track cannot open the same kind again for `cooldown_s`.

Example:
    >>> engine = RuleEngine(camera_config, RulesConfig(hold_s=2))
    >>> for tracked, t in frames:
    ...     for event in engine.update(tracked, t):
    ...         print(event.type, event.episode.kind, event.episode.track_id)
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

import numpy as np
import supervision as sv

from detector.config import CameraConfig, RulesConfig, TimeWindow, ZoneConfig
from siteguard.kinds import KINDS, Kind

log = logging.getLogger(__name__)

SITE_ZONE = "site"


@dataclass
class Episode:
    """One worker violating one rule, from the first violating frame to the last."""

    camera_id: str
    kind: Kind
    track_id: int
    zone: str
    started_at: float
    last_violation_at: float
    confidence: float
    event_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    ended_at: float | None = None

    @property
    def duration_s(self) -> float:
        end = self.ended_at if self.ended_at is not None else self.last_violation_at
        return round(max(0.0, end - self.started_at), 3)


@dataclass
class RuleEvent:
    """`open` (the hold time has passed) or `end` (the episode closed)."""

    type: Literal["open", "end"]
    episode: Episode
    box_index: int | None = None  # the violating detection in this frame's detections


@dataclass
class _Pending:
    first_at: float
    last_at: float


class _Zone:
    def __init__(self, config: ZoneConfig, default_schedule: list[TimeWindow]) -> None:
        self.name = config.name
        self.required = config.required
        self.danger = config.danger
        self.schedule = config.schedule if config.schedule is not None else default_schedule
        polygon = np.array(config.polygon, dtype=np.int64)
        self.head_zone = sv.PolygonZone(polygon, triggering_anchors=(sv.Position.CENTER,))
        self.body_zone = sv.PolygonZone(polygon, triggering_anchors=(sv.Position.BOTTOM_CENTER,))


@dataclass
class _Place:
    """Where one subject is now: its zone, the PPE required there, the danger zone it is in."""

    zone: str = SITE_ZONE
    required: set[str] = field(default_factory=set)
    danger: str | None = None


def _active(schedule: list[TimeWindow], when: dt.datetime) -> bool:
    return not schedule or any(window.contains(when) for window in schedule)


# Body-worn PPE, judged on tracked persons: harness, vest (one code path, see _observe_persons).
BODY_KINDS = tuple(k for k in KINDS if k.subject == "person" and k.requirement)


class RuleEngine:
    """Turns one camera's tracked detections into open/end violation events."""

    def __init__(self, camera: CameraConfig, config: RulesConfig) -> None:
        self.camera = camera
        self.config = config
        self.tz = ZoneInfo(config.timezone)
        self.zones = [_Zone(z, camera.schedule) for z in camera.zones]
        self.worn = {r: set(c.worn) for r, c in config.ppe_classes.items()}
        self.missing = {r: set(c.missing) for r, c in config.ppe_classes.items()}
        self.bare, self.helmet = self.missing["helmet"], self.worn["helmet"]
        self.person = set(config.person_classes)
        self.open: dict[tuple[int, Kind], Episode] = {}
        self._pending: dict[tuple[int, Kind], _Pending] = {}
        self._cooldown_until: dict[tuple[int, Kind], float] = {}
        self._model_classes: set[str] = set()
        self._warned: set[str] = set()
        self.violation_conf: dict[Kind, float] = {}

    def set_violation_conf(self, kind: Kind, conf: float | None) -> None:
        """Readings below `conf` cannot start a `kind` violation (None: any reading can)."""
        if conf is None:
            self.violation_conf.pop(kind, None)
        else:
            self.violation_conf[kind] = conf

    def set_zones(
        self, zones: list[ZoneConfig] | None = None, site_requires: list[str] | None = None
    ) -> None:
        """New zones and/or the PPE required outside them (None: keep what is there), e.g. as
        drawn in the service's zone editor. Open episodes go on; new ones use the new zones."""
        update: dict = {}
        if zones is not None:
            update["zones"] = zones
        if site_requires is not None:
            update["site_requires"] = site_requires
        self.camera = self.camera.model_copy(update=update)
        self.zones = [_Zone(z, self.camera.schedule) for z in self.camera.zones]
        self.set_model_classes(self._model_classes)  # warns if a zone now needs an unseen class

    def can_judge(self, requirement: str) -> bool:
        """Does the model have a class showing `requirement` worn or missing?"""
        return bool(self._model_classes & (self.worn[requirement] | self.missing[requirement]))

    def set_model_classes(self, names: set[str]) -> None:
        """Tell the engine what the model can see. A requirement the model has no class for is
        never judged (no alerts); a warning says so once per camera and requirement."""
        self._model_classes = set(names)
        wanted = set(self.camera.site_requires).union(*(z.required for z in self.zones))
        unseen = {r for r in wanted if not self.can_judge(r)}
        if any(z.danger for z in self.zones) and not names & self.person:
            unseen.add("danger zones (person)")
        for what in sorted(unseen - self._warned):
            log.warning(
                "camera %s: %s required but the model has no class for it; those rules wait "
                "for a model that has one (or map its class names in rules.ppe_classes)",
                self.camera.id,
                what,
            )
        self._warned = unseen

    # -- where a subject is and what is required there --------------------------------------
    def _places(self, detections: sv.Detections, anchor: str, when: dt.datetime) -> list[_Place]:
        """Per detection: its zone (the first that holds it), the PPE required there now (every
        active zone holding it adds its own) and the first active danger zone holding it."""
        site = set(self.camera.site_requires) if _active(self.camera.schedule, when) else set()
        places = [_Place(required=set(site)) for _ in range(len(detections))]
        matched = np.zeros(len(detections), dtype=bool)
        for zone in self.zones:
            polygon = zone.head_zone if anchor == "head" else zone.body_zone
            inside = polygon.trigger(detections) if len(detections) else np.zeros(0, bool)
            active = _active(zone.schedule, when)
            for i in np.flatnonzero(inside):
                place = places[i]
                if not matched[i]:
                    place.zone, place.required = zone.name, set()
                    matched[i] = True
                if active:
                    place.required |= zone.required
                    if zone.danger and place.danger is None:
                        place.danger = zone.name
        return places

    # -- the state machine ----------------------------------------------------------------------
    def update(self, tracked: sv.Detections, timestamp: float) -> list[RuleEvent]:
        """Feed one frame's tracked detections (tracker_id set) taken at `timestamp` (epoch s)."""
        when = dt.datetime.fromtimestamp(timestamp, self.tz)
        names = np.asarray(tracked.data.get("class_name", np.array([], dtype=str)))
        ids = (
            np.asarray(tracked.tracker_id)
            if tracked.tracker_id is not None
            else np.full(len(tracked), -1)
        )
        conf = (
            np.asarray(tracked.confidence)
            if tracked.confidence is not None
            else np.ones(len(tracked))
        )
        seen: dict[tuple[int, Kind], tuple[bool, int, str]] = {}
        self._observe_heads(tracked, names, ids, when, seen)
        self._observe_persons(tracked, names, ids, when, seen)

        events: list[RuleEvent] = []
        for key, (violating, index, zone) in seen.items():
            if violating:
                events.extend(self._violating(key, index, zone, float(conf[index]), timestamp))
            else:
                self._pending.pop(key, None)
        events.extend(self._close_stale(timestamp))
        for key in [k for k, p in self._pending.items() if timestamp - p.last_at > self._gap]:
            del self._pending[key]
        return events

    @property
    def _gap(self) -> float:
        return max(self.config.close_after_s, 1.0)

    def _observe_heads(self, det, names, ids, when, seen) -> None:
        mask = np.isin(names, list(self.bare | self.helmet)) & (ids >= 0)
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        for i, place in zip(idx, self._places(det[idx], "head", when), strict=True):
            if "helmet" in place.required:
                seen[(int(ids[i]), "no_helmet")] = (names[i] in self.bare, int(i), place.zone)

    def _observe_persons(self, det, names, ids, when, seen) -> None:
        """Body-worn PPE (harness, vest) and danger zones, on tracked persons (feet anchor).

        Per requirement the model can judge: a `missing` item on the person is a violation, a
        `worn` one compliance; with neither, a model that knows the `worn` class and sees none
        on the worker counts it missing, one that knows only `missing` cannot tell.
        """
        mask = np.isin(names, list(self.person)) & (ids >= 0)
        if not mask.any():
            return
        idx = np.flatnonzero(mask)
        places = self._places(det[idx], "body", when)
        for j, i in enumerate(idx):
            if places[j].danger is not None:
                seen[(int(ids[i]), "zone_intrusion")] = (True, int(i), places[j].danger)
        for info in BODY_KINDS:
            requirement = info.requirement
            if not self.can_judge(requirement):
                continue  # the model cannot see this PPE: the rule cannot be judged
            worn = self._items_inside(det, names, self.worn[requirement], idx)
            missing = self._items_inside(det, names, self.missing[requirement], idx)
            can_see_worn = bool(self._model_classes & self.worn[requirement])
            for j, i in enumerate(idx):
                if requirement not in places[j].required:
                    continue
                if missing[j]:
                    violating = True
                elif worn[j]:
                    violating = False
                elif can_see_worn:
                    violating = True  # the model knows this PPE and sees none on the worker
                else:
                    continue
                seen[(int(ids[i]), info.kind)] = (violating, int(i), places[j].zone)

    @staticmethod
    def _items_inside(det, names, classes: set[str], persons: np.ndarray) -> list[bool]:
        """Per person: is an item of `classes` assigned to it (its centre inside the person)?"""
        items = det.xyxy[np.isin(names, list(classes))]
        if not len(items):
            return [False] * len(persons)
        cx, cy = (items[:, 0] + items[:, 2]) / 2, (items[:, 1] + items[:, 3]) / 2
        out = []
        for i in persons:
            x1, y1, x2, y2 = det.xyxy[i]
            out.append(bool(((cx >= x1) & (cx <= x2) & (cy >= y1) & (cy <= y2)).any()))
        return out

    def _violating(self, key, index: int, zone: str, conf: float, t: float) -> list[RuleEvent]:
        episode = self.open.get(key)
        if episode is not None:
            episode.last_violation_at = t
            episode.confidence = max(episode.confidence, conf)
            return []
        if t < self._cooldown_until.get(key, float("-inf")):
            return []
        pending = self._pending.get(key)
        if pending is None or t - pending.last_at > self._gap:
            if conf < self.violation_conf.get(key[1], 0.0):
                return []  # too weak to start a violation; it may continue one
            pending = self._pending[key] = _Pending(first_at=t, last_at=t)
        pending.last_at = t
        if t - pending.first_at < self.config.hold_s:
            return []
        del self._pending[key]
        track_id, kind = key
        episode = Episode(
            camera_id=self.camera.id,
            kind=kind,
            track_id=track_id,
            zone=zone,
            started_at=pending.first_at,
            last_violation_at=t,
            confidence=conf,
        )
        self.open[key] = episode
        log.info(
            "camera %s: %s opened (track %d, zone %s, event %s)",
            self.camera.id,
            kind,
            track_id,
            zone,
            episode.event_id,
        )
        return [RuleEvent("open", episode, box_index=index)]

    def _close_stale(self, t: float) -> list[RuleEvent]:
        events = []
        for key, episode in list(self.open.items()):
            if t - episode.last_violation_at >= self.config.close_after_s:
                events.append(self._close(key, episode))
        return events

    def _close(self, key, episode: Episode) -> RuleEvent:
        del self.open[key]
        episode.ended_at = episode.last_violation_at
        self._cooldown_until[key] = episode.last_violation_at + self.config.cooldown_s
        log.info("camera %s: %s closed (event %s)", self.camera.id, episode.kind, episode.event_id)
        return RuleEvent("end", episode)

    def close_all(self) -> list[RuleEvent]:
        """Close every open episode (shutdown), so the service never keeps dangling ones."""
        return [self._close(key, ep) for key, ep in list(self.open.items())]
