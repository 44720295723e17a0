"""Camera health: `online`, `offline` or `frozen`, from when frames arrive and what they show.

A camera is `offline` when it is not connected or when no frame has arrived for `stall_after_s`
(a stalled stream keeps its connection open and says nothing). It is `online` again only once
frames have arrived steadily for `recover_after_s`, so one late frame out of a stalled stream does
not end the outage (the very first frames count at once: there is no outage to end yet).
`frozen` = connected and delivering, but the same picture for `frozen_after_s`. Each change is
kept with the moment it happened (not when someone looked), so the heartbeat, the logs and the
tests read the same times.

Example:
    >>> health = CameraHealth("gate-1", stall_after_s=6, frozen_after_s=30, recover_after_s=2)
    >>> health.connected(now=0.0)
    >>> for t in (0.0, 1.0, 2.0):
    ...     health.frame(now=t, same_picture=False)
    >>> health.state(now=2.0), health.state(now=9.0)
    ('online', 'offline')
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

State = Literal["online", "offline", "frozen"]


@dataclass(frozen=True)
class Transition:
    """The camera entered `state` at `at` (wall clock, seconds) because of `reason`."""

    state: State
    at: float
    reason: str


class CameraHealth:
    """Thread-safe health of one camera: the reader reports, the heartbeat asks."""

    def __init__(
        self,
        camera_id: str,
        stall_after_s: float,
        frozen_after_s: float,
        recover_after_s: float,
        history: int = 100,
    ) -> None:
        if stall_after_s <= 0 or frozen_after_s <= 0 or recover_after_s < 0:
            raise ValueError("stall_after_s and frozen_after_s must be > 0, recover_after_s >= 0")
        self.camera_id = camera_id
        self.stall_after_s = stall_after_s
        self.frozen_after_s = frozen_after_s
        self.recover_after_s = recover_after_s
        self._lock = threading.Lock()
        self._connected = False
        self._last_frame: float | None = None
        self._run_start: float | None = None  # first frame of the current steady run
        self._same_since: float | None = None
        self._state: State = "offline"
        self._was_online = False  # after that, `online` again is a recovery
        self.transitions: deque[Transition] = deque(maxlen=history)

    # -- the reader reports ----------------------------------------------------------------
    def connected(self, now: float | None = None) -> None:
        with self._lock:
            self._connected = True
            self._run_start = None  # a fresh connection earns its `online` like a recovery

    def disconnected(self, reason: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._settle(now)  # a stall that came first keeps its own (earlier) time
            self._connected = False
            self._run_start = None
            self._enter("offline", now, reason)

    def frame(self, now: float | None = None, same_picture: bool = False) -> None:
        now = time.time() if now is None else now
        with self._lock:
            self._settle(now)  # records a stall that ended with this frame, at its own time
            if self._last_frame is None or now - self._last_frame > self.stall_after_s:
                self._run_start = None  # a frame after a stall starts a new run
            self._run_start = now if self._run_start is None else self._run_start
            self._last_frame = now
            if same_picture:
                self._same_since = self._same_since or now
            else:
                self._same_since = None
            self._settle(now)

    # -- anyone asks ----------------------------------------------------------------------
    def state(self, now: float | None = None) -> State:
        with self._lock:
            return self._settle(time.time() if now is None else now)

    def last(self, state: State) -> Transition | None:
        """The latest transition into `state`, if any."""
        with self._lock:
            return next((t for t in reversed(self.transitions) if t.state == state), None)

    # -- internals (lock held) ------------------------------------------------------------
    def _settle(self, now: float) -> State:
        """Bring the state up to `now`, recording a change at the time it really happened."""
        if not self._connected or self._last_frame is None or self._run_start is None:
            return self._state  # offline until connected and delivering
        stalled_at = self._last_frame + self.stall_after_s
        if now > stalled_at:
            self._enter("offline", stalled_at, f"no frame for {self.stall_after_s:g} s")
            return self._state
        if self._state == "offline":
            steady = self._last_frame - self._run_start
            if self._was_online and steady < self.recover_after_s:
                return self._state  # not steady long enough (one late frame is not a recovery)
            self._enter("online", self._last_frame, "frames arrive again")
        if self._same_since is not None:
            frozen_at = self._same_since + self.frozen_after_s
            if now >= frozen_at:
                self._enter("frozen", frozen_at, f"same picture for {self.frozen_after_s:g} s")
        elif self._state == "frozen":
            self._enter("online", self._last_frame, "the picture changes again")
        return self._state

    def _enter(self, state: State, at: float, reason: str) -> None:
        if state == self._state:
            return
        if self.transitions:  # in order, even when two conditions fell due at once
            at = max(at, self.transitions[-1].at)
        self._state = state
        self._was_online = self._was_online or state == "online"
        self.transitions.append(Transition(state, at, reason))
        level = logging.INFO if state == "online" else logging.WARNING
        log.log(level, "camera %s: %s (%s)", self.camera_id, state, reason)
