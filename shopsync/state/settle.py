"""Settling a storage write: it runs to its end even when the caller is cancelled meanwhile."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def settle(aw: Awaitable[T]) -> T:
    """Await ``aw`` to its end even if the caller is cancelled meanwhile, then re-raise the cancel.

    Storage writes use this so a transaction or an fsync is never abandoned half-way and, when
    the caller sees ``CancelledError``, no write of its is still running (a write is short).
    """
    task = asyncio.ensure_future(aw)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            try:
                await asyncio.wait([task])
            except asyncio.CancelledError:
                continue
        if not task.cancelled():
            task.exception()  # retrieved: its outcome is what the caller reads back, not an error here
        raise
