"""Tracking of workers across frames, so one worker gives one violation episode.

Uses the `trackers` package's ByteTrack (Roboflow; numpy + scipy, no torch). Heads and helmets
are tracked together as one "head" subject, because the same worker's head flips between the two
classes as they put a helmet on or take it off; persons are tracked separately. Each group keeps
its own ByteTrack so a head box never steals a person's track id. Other classes (harness, vest)
are not tracked: the rules assign them to a tracked person by position; they pass through with
`tracker_id` -1.

A scene cut (`scene` changes: the next photo of an image folder, another picture on a stream,
see `detector.sources`) starts every group's tracking afresh, so a worker in one photo never
inherits the track (and the open episode, or its cooldown) of someone who stood at the same
place in the previous one. Track ids keep counting up across cuts: an id is never reused.

A model may carry per-class operating thresholds (`siteguard_class_conf`, e.g. helmet 0.2, head
0.4); a group's tracker then starts and first-matches tracks at the lowest threshold of its
classes, so every detection the evaluation counts can be tracked. Whether a bare head raises a
violation is the rules' threshold (`RuleEngine.set_violation_conf`), not the tracker's.

Example:
    >>> tracker = WorkerTracker(TrackingConfig(), head_classes={"head", "helmet"},
    ...                         person_classes={"person"})
    >>> tracked = tracker.update(detections, timestamp=12.5)   # tracker_id filled in
    >>> tracked = tracker.update(detections, timestamp=12.7, scene=frame.scene)
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import supervision as sv
from trackers import ByteTrackTracker

from detector.config import DEFAULT_OPERATING_CONF, TrackingConfig

GROUPS = ("head", "person")


class WorkerTracker:
    """ByteTrack per group of classes; returns all detections with `tracker_id` (-1 = none).

    Track ids are made unique across groups by an offset per group.
    """

    ID_STRIDE = 1_000_000

    def __init__(
        self,
        config: TrackingConfig,
        head_classes: set[str],
        person_classes: set[str],
        operating_conf: float | None = None,
        class_conf: Mapping[str, float] | None = None,
    ) -> None:
        self.config = config
        self.head_classes = head_classes
        self.person_classes = person_classes
        self.thresholds = self._thresholds(operating_conf, class_conf or {})
        self._trackers = {group: self._new_tracker(group) for group in GROUPS}
        self._id_base = dict.fromkeys(GROUPS, 0)  # raw ids of the current trackers start here
        self._next_base = dict.fromkeys(GROUPS, 0)  # past every id handed out so far
        self._scene: int | None = None
        self.scene_cuts = 0

    def _classes(self, group: str) -> set[str]:
        return self.head_classes if group == "head" else self.person_classes

    def _thresholds(
        self, operating_conf: float | None, class_conf: Mapping[str, float]
    ) -> dict[str, tuple[float, float]]:
        """Per group (activation, high): the config's where set, else the lowest operating
        threshold of the group's classes (the model's per-class ones, else its single one)."""
        model = operating_conf if operating_conf is not None else DEFAULT_OPERATING_CONF
        activation, high = self.config.activation_conf, self.config.high_conf
        out = {}
        for group in GROUPS:
            lowest = min((class_conf.get(c, model) for c in self._classes(group)), default=model)
            out[group] = (
                lowest if activation is None else activation,
                lowest if high is None else high,
            )
        return out

    @property
    def activation_conf(self) -> float:
        """The head group's activation threshold (the one that decides violations)."""
        return self.thresholds["head"][0]

    @property
    def high_conf(self) -> float:
        return self.thresholds["head"][1]

    def use_operating_conf(
        self, operating_conf: float | None, class_conf: Mapping[str, float] | None = None
    ) -> None:
        """A new model was loaded: follow its thresholds, keeping the tracks (no new episodes)."""
        self.thresholds = self._thresholds(operating_conf, class_conf or {})
        for group, tracker in self._trackers.items():
            activation, high = self.thresholds[group]
            tracker.track_activation_threshold = activation
            tracker.high_conf_det_threshold = high

    def _new_tracker(self, group: str) -> ByteTrackTracker:
        activation, high = self.thresholds[group]
        return ByteTrackTracker(
            lost_track_buffer=max(1, round(self.config.lost_track_s * 30)),
            frame_rate=30.0,
            track_activation_threshold=activation,
            minimum_consecutive_frames=self.config.min_frames,
            minimum_iou_threshold=self.config.min_iou,
            high_conf_det_threshold=high,
        )

    def _group_of(self, names: np.ndarray) -> np.ndarray:
        groups = np.full(len(names), "other", dtype=object)
        groups[np.isin(names, list(self.head_classes))] = "head"
        groups[np.isin(names, list(self.person_classes))] = "person"
        return groups

    def cut(self) -> None:
        """Forget every track (a scene cut); later ids continue past the ones handed out."""
        for group in GROUPS:
            self._trackers[group] = self._new_tracker(group)
            self._id_base[group] = self._next_base[group]
        self.scene_cuts += 1

    def update(
        self, detections: sv.Detections, timestamp: float, scene: int | None = None
    ) -> sv.Detections:
        if scene is not None:
            if self._scene is not None and scene != self._scene:
                self.cut()
            self._scene = scene
        names = detections.data.get("class_name", np.array([], dtype=str))
        groups = self._group_of(np.asarray(names))
        parts = []
        for offset, group in enumerate(GROUPS):
            subset = detections[groups == group]
            tracker = self._trackers[group]
            if not len(subset) and not tracker.tracks:
                continue  # nothing to match and nothing to age
            tracked = tracker.update(subset, timestamp=timestamp)
            ids = np.asarray(tracked.tracker_id if tracked.tracker_id is not None else [], int)
            ids = np.where(ids >= 0, ids + self._id_base[group], -1)
            if len(ids) and ids.max() >= self._next_base[group]:
                self._next_base[group] = int(ids.max()) + 1
            tracked.tracker_id = np.where(ids >= 0, ids + offset * self.ID_STRIDE, -1)
            if len(tracked):
                parts.append(tracked)
        others = detections[groups == "other"]
        if len(others):
            others.tracker_id = np.full(len(others), -1, dtype=int)
            parts.append(others)
        if not parts:
            empty = sv.Detections.empty()
            empty.tracker_id = np.array([], dtype=int)
            empty.data["class_name"] = np.array([], dtype=str)
            return empty
        return sv.Detections.merge(parts)
