"""A shop's bulk-operation slots, shared fairly between its resources, incremental work first.

Shopify runs up to five bulk queries per shop and app at once (API ≥ 2026-01, shopify-api-facts
§3). A backfill cut into five slices could take all five and leave an incremental window of
another resource waiting for the slowest slice. So a free slot goes to the waiter with the lowest
priority number (incremental windows are 0, backfills 1), then to the resource holding the fewest
slots now, then to the one that asked first.

Single-threaded asyncio code: state changes happen between awaits, so there are no locks.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass(eq=False)
class _Waiter:
    resource: str
    priority: int
    ticket: int
    granted: asyncio.Future[None] = field(default_factory=lambda: asyncio.get_running_loop().create_future())


class BulkSlots:
    """``async with slots.hold(resource, priority):`` while one operation runs (or is polled)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("a shop has at least one bulk slot")
        self.capacity = capacity
        self._held: Counter[str] = Counter()
        self._waiters: list[_Waiter] = []
        self._tickets = itertools.count()
        #: The most slots held at once since the runtime was made (for tests and status).
        self.peak = 0

    @property
    def in_use(self) -> int:
        return sum(self._held.values())

    @property
    def free(self) -> int:
        return self.capacity - self.in_use

    def held_by(self, resource: str) -> int:
        return self._held[resource]

    @asynccontextmanager
    async def hold(self, resource: str, priority: int = 0) -> AsyncIterator[None]:
        await self._acquire(resource, priority)
        try:
            yield
        finally:
            self._release(resource)

    async def _acquire(self, resource: str, priority: int) -> None:
        if self.free > 0 and not self._waiters:
            self._take(resource)
            return
        waiter = _Waiter(resource, priority, next(self._tickets))
        self._waiters.append(waiter)
        self._grant()
        try:
            await waiter.granted
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.granted.done() and not waiter.granted.cancelled():
                self._release(resource)  # granted just as it was cancelled: give the slot back
            raise

    def _take(self, resource: str) -> None:
        self._held[resource] += 1
        self.peak = max(self.peak, self.in_use)

    def _release(self, resource: str) -> None:
        self._held[resource] -= 1
        if self._held[resource] <= 0:
            del self._held[resource]
        self._grant()

    def _grant(self) -> None:
        while self.free > 0 and self._waiters:
            best = min(self._waiters, key=lambda w: (w.priority, self._held[w.resource], w.ticket))
            self._waiters.remove(best)
            if best.granted.done():  # cancelled while queued
                continue
            self._take(best.resource)
            best.granted.set_result(None)


__all__ = ["BulkSlots"]
