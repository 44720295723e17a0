"""Camera settings kept by the service (issue 19): the zones drawn in the admin page's zone
editor, their schedules, and the PPE required outside every zone. Every heartbeat reply carries
them for the detector's cameras (like the active model); the detector applies a change at once.

The local file wins: a camera whose `detector.yaml` entry sets `zones` (even `[]`) keeps its own
zones, one that sets `site_requires` its own requirement; the service's are then not used (and a
log line says so once).

    >>> settings = ServiceSettings()
    >>> settings.apply(cameras, reply["cameras"])   # cameras: {camera_id: (config, rule engine)}
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from detector.config import CameraConfig, TimeWindow, ZoneConfig
from detector.rules import RuleEngine
from siteguard.kinds import REQUIREMENTS

log = logging.getLogger(__name__)
KNOWN_PPE = REQUIREMENTS  # what the rules can judge (siteguard/kinds.py); others are skipped


def zones_from_service(camera_id: str, raw: list[Any]) -> list[ZoneConfig]:
    """The service's zones as the detector's ZoneConfig; a zone that does not fit is skipped
    with a warning (the others still apply)."""
    zones = []
    for item in raw:
        try:
            required = [p for p in item.get("required_ppe") or ["helmet"] if p in KNOWN_PPE]
            schedule = item.get("schedule")
            zones.append(
                ZoneConfig(
                    name=item["name"],
                    polygon=[tuple(point) for point in item.get("polygon") or []],
                    requires=required or ["helmet"],
                    danger=bool(item.get("danger", False)),
                    schedule=[TimeWindow(**w) for w in schedule] if schedule else None,
                )
            )
        except (KeyError, TypeError, AttributeError, ValidationError) as exc:
            name = item.get("name") if isinstance(item, dict) else item
            log.warning("camera %s: service zone %r skipped: %s", camera_id, name, exc)
    return zones


class ServiceSettings:
    """Applies each camera's service-kept settings to its rule engine when they change."""

    def __init__(self) -> None:
        self._applied: dict[str, str] = {}
        self.sources: dict[str, str] = {}  # camera id -> "service" | "local" (its zones)

    def apply(
        self,
        cameras: Mapping[str, tuple[CameraConfig, RuleEngine]],
        settings: list[Any] | None,
    ) -> list[str]:
        """Returns the ids of the cameras whose rules changed."""
        changed = []
        for item in settings or []:
            if not isinstance(item, dict) or item.get("camera_id") not in cameras:
                continue
            camera_id = item["camera_id"]
            fingerprint = json.dumps(item, sort_keys=True, default=str)
            if self._applied.get(camera_id) == fingerprint:
                continue
            self._applied[camera_id] = fingerprint
            config, engine = cameras[camera_id]
            local = config.model_fields_set
            zones = None if "zones" in local else zones_from_service(camera_id, item.get("zones"))
            required = item.get("required_ppe") or ["helmet"]
            site = None if "site_requires" in local else [p for p in required if p in KNOWN_PPE]
            self.sources[camera_id] = "local" if zones is None else "service"
            if zones is None and site is None:
                log.info("camera %s: zones and PPE from detector.yaml (the service's are not used)",
                         camera_id)  # fmt: skip
                continue
            if site is not None and not site:
                site = ["helmet"]  # a requirement the rules cannot judge: helmet, as by default
            engine.set_zones(zones, site)
            changed.append(camera_id)
            log.info(
                "camera %s: %s from the service%s",
                camera_id,
                f"{len(zones)} zone(s) ({', '.join(z.name for z in zones) or 'none'})"
                if zones is not None
                else "required PPE",
                "; zones from detector.yaml" if zones is None else "",
            )
        return changed
