"""Leaky-bucket arithmetic shared by the simulated shop (which enforces it) and the client budget
(which models it from ``throttleStatus``). Pure: the caller passes the time.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LeakyBucket:
    """A bucket of ``capacity`` points refilling at ``rate`` points per second.

    ``available`` is the level at time ``updated`` (seconds on any monotonic clock).
    """

    capacity: float
    rate: float
    available: float
    updated: float

    @classmethod
    def full(cls, capacity: float, rate: float, now: float) -> LeakyBucket:
        return cls(capacity=capacity, rate=rate, available=capacity, updated=now)

    def level(self, now: float) -> float:
        """The level at ``now`` without changing the bucket."""
        elapsed = max(0.0, now - self.updated)
        return min(self.capacity, self.available + elapsed * self.rate)

    def refill(self, now: float) -> None:
        self.available = self.level(now)
        self.updated = max(self.updated, now)

    def try_take(self, points: float, now: float) -> bool:
        """Take ``points`` if the bucket holds them now; otherwise change nothing."""
        self.refill(now)
        if points > self.available:
            return False
        self.available -= points
        return True

    def take(self, points: float, now: float) -> None:
        """Take ``points`` unconditionally (the level may go negative: a debt repaid by refill)."""
        self.refill(now)
        self.available -= points

    def give_back(self, points: float, now: float) -> None:
        """Return ``points`` (a refund of requested minus actual cost), never above capacity."""
        self.refill(now)
        self.available = min(self.capacity, self.available + points)

    def wait_time(self, points: float, now: float) -> float:
        """Seconds until the bucket holds ``points`` (0 if it does now; inf if it never can)."""
        level = self.level(now)
        if points <= level:
            return 0.0
        if points > self.capacity or self.rate <= 0:
            return float("inf")
        return (points - level) / self.rate
