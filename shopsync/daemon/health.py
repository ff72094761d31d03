"""Whether the daemon's own event loop and scheduler keep turning: the core of ``/healthz``.

The scheduler runs a heartbeat job every few seconds (and each stream job beats too). A gap
between two heartbeats longer than ``stall_after`` means the loop or the scheduler stalled — a
blocking call, a CPU-bound bug, a suspended process. :class:`Heartbeats` is the pure bookkeeping
(monotonic "now" passed in); the daemon adds its run state and the systemd watchdog's verdict.
"""

from __future__ import annotations

from typing import Any


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
