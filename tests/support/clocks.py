"""Clocks the tests control: code that needs "now" takes a ``Callable[[], float]`` (epoch seconds),
and code that sleeps takes a ``sleep`` coroutine, so no test waits on real time to move it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass


@dataclass
class FakeClock:
    """A clock that moves only when the test moves it (``advance`` or ``clock.now = …``)."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class OffsetClock:
    """Wall-clock time plus an offset the test can push forward, shared by simulator and engine.

    Lets a test make "the safety margin has passed" true at once instead of sleeping through it.
    """

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class AutoTime:
    """A clock whose sleep advances time at once (and records the duration): pass ``t.clock`` and
    ``t.sleep`` where the code takes a clock and a sleep."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)
