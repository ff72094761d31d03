"""Whether the daemon's own event loop and scheduler keep turning: the core of ``/healthz``.

The scheduler runs a heartbeat job every few seconds (and each stream job beats too). A gap
between two heartbeats longer than ``stall_after`` means the loop or the scheduler stalled — a
blocking call, a CPU-bound bug, a suspended process. :class:`Heartbeats` is the pure bookkeeping
(monotonic "now" passed in); :class:`Liveness` is the daemon's heartbeat, which also tells the
systemd watchdog and gives ``/healthz`` its verdict with the daemon's run state.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from shopsync.daemon.sdnotify import Watchdog

log = logging.getLogger(__name__)


class Heartbeats:
    """The last heartbeat and the last stall seen, in monotonic seconds."""

    def __init__(self, stall_after: float, now: float) -> None:
        self.stall_after = stall_after
        self.last_beat = now
        self.stall_seen: float | None = None

    def beat(self, now: float) -> float | None:
        """Record a heartbeat at ``now``; returns the gap since the previous one if it was a stall."""
        gap = now - self.last_beat
        self.last_beat = now
        if gap > self.stall_after:
            self.stall_seen = now
            return gap
        return None

    def reset(self, now: float) -> None:
        """Start counting from ``now`` (the daemon has just started)."""
        self.last_beat = now

    def check(self, now: float) -> tuple[bool, dict[str, Any]]:
        """Fresh while the last heartbeat is younger than ``stall_after`` and no stall was seen
        within the last ``stall_after``; with the numbers ``/healthz`` shows.

        Either test alone has a blind spot after a long block of the loop: whichever of the
        heartbeat job and the health request runs first once the loop resumes decides. Together
        they report the stall whichever runs first.
        """
        since = now - self.last_beat
        recent_stall = self.stall_seen is not None and now - self.stall_seen <= self.stall_after
        fresh = since <= self.stall_after and not recent_stall
        return fresh, {
            "since_heartbeat_seconds": round(since, 3),
            "stall_after_seconds": self.stall_after,
            "stalled_recently": recent_stall,
        }


class Liveness:
    """The daemon's heartbeat (the scheduler's heartbeat job and every stream job beat it).

    A stall is logged; the systemd watchdog, once :meth:`attach`-ed, is told of every beat.
    """

    def __init__(self, stall_after: float, monotonic: Callable[[], float]) -> None:
        self.stall_after = stall_after
        self._monotonic = monotonic
        self._heartbeats = Heartbeats(stall_after, monotonic())
        self.watchdog: Watchdog | None = None

    def attach(self, watchdog: Watchdog) -> None:
        """The daemon has just started: count from now, and beat ``watchdog`` from here on."""
        self.watchdog = watchdog
        watchdog.heartbeat()
        self._heartbeats.reset(self._monotonic())

    def beat(self) -> None:
        stall = self._heartbeats.beat(self._monotonic())
        if stall is not None:
            log.warning("the daemon's event loop or scheduler stalled for %.1fs (limit %.1fs)", stall, self.stall_after)
        if self.watchdog is not None:
            self.watchdog.heartbeat()

    def check(self, *, running: bool, state: str) -> tuple[bool, dict[str, Any]]:
        """Healthy while ``running``, heartbeats are fresh and no stall was seen within the last
        ``stall_after`` (:meth:`Heartbeats.check`), and the watchdog agrees; with the details."""
        fresh, detail = self._heartbeats.check(self._monotonic())
        watchdog_ok = self.watchdog.healthy() if self.watchdog is not None else True
        ok = running and fresh and watchdog_ok
        return ok, {
            "state": state,
            **detail,
            "loop_lag_seconds": round(self.watchdog.loop_lag, 3) if self.watchdog is not None else None,
        }
