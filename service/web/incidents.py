"""One camera, one moment: the live panel's incidents.

A photo with seven bare heads raises seven violations, one per worker; each keeps its own record,
review and audit entry. The panel shows them as one incident row (count, expandable to the
per-worker rows, reviewable at once) by one rule:

    alerts of the same camera whose start lies within `WINDOW_S` of the incident's
    earliest alert form one incident (2 or more alerts; a lone alert stays a plain row).

Why start times and 2 s: the detector opens every worker's episode from the frame in which the
hold time is reached, and `started_at` is when that worker was first seen violating, so workers
of one frame share a start time or differ by a frame or two (a head missed in one frame). The
window is measured from the incident's first alert, never chained, so a steady stream of alerts
at one camera still splits into moments. `alerts.js` applies the same rule to alerts arriving
live (`incident_window_s` in the page config).

    >>> from service.web.incidents import group_alerts
    >>> shown = group_alerts(rows)            # newest first, as `queries.list_alerts` returns
    >>> [len(x.rows) if isinstance(x, Incident) else 1 for x in shown]
    [7, 1]
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from service.web.queries import AlertRow

WINDOW_S = 2.0
UNDECIDED = ("unreviewed", "unsure")  # what reviewing an incident at once applies to


@dataclass(frozen=True)
class Incident:
    """Two or more alerts of one camera and moment, newest first (as the list shows them)."""

    rows: tuple[AlertRow, ...]

    def __post_init__(self) -> None:
        if len(self.rows) < 2:
            raise ValueError("an incident holds at least two alerts")
        if len({r.camera_id for r in self.rows}) != 1:
            raise ValueError("an incident's alerts come from one camera")

    @property
    def first(self) -> AlertRow:
        """The earliest alert: its start is the incident's, its event id the incident's key."""
        return min(self.rows, key=lambda r: (r.started_at, r.event_id))

    @property
    def key(self) -> str:
        return self.first.event_id

    @property
    def newest(self) -> AlertRow:
        return self.rows[0]

    @property
    def kinds(self) -> list[tuple[str, int]]:
        return sorted(Counter(r.kind for r in self.rows).items())

    @property
    def statuses(self) -> list[tuple[str, int]]:
        return sorted(Counter(r.status for r in self.rows).items())

    @property
    def zones(self) -> list[str]:
        return sorted({r.zone for r in self.rows})

    @property
    def model_versions(self) -> list[str]:
        return sorted({r.model_version for r in self.rows if r.model_version})

    @property
    def undecided(self) -> int:
        return sum(r.status in UNDECIDED for r in self.rows)


def same_moment(first: dt.datetime, other: dt.datetime, window_s: float = WINDOW_S) -> bool:
    return abs((other - first).total_seconds()) <= window_s


def group_alerts(rows: Sequence[AlertRow], window_s: float = WINDOW_S) -> list[AlertRow | Incident]:
    """`rows` (newest first) as the panel shows them: lone alerts and incidents, each placed
    where its newest alert is."""
    if window_s < 0:
        raise ValueError("window_s must be >= 0")
    position = {r.event_id: i for i, r in enumerate(rows)}
    groups: list[list[AlertRow]] = []
    open_group: dict[str, list[AlertRow]] = {}  # camera -> its latest group, oldest alert first
    for row in sorted(rows, key=lambda r: (r.started_at, r.event_id)):
        group = open_group.get(row.camera_id)
        if group is not None and same_moment(group[0].started_at, row.started_at, window_s):
            group.append(row)
            continue
        open_group[row.camera_id] = [row]
        groups.append(open_group[row.camera_id])
    shown: list[AlertRow | Incident] = []
    for group in sorted(groups, key=lambda g: min(position[r.event_id] for r in g)):
        ordered = sorted(group, key=lambda r: position[r.event_id])
        shown.append(ordered[0] if len(ordered) == 1 else Incident(tuple(ordered)))
    return shown
