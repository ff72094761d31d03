"""A window cut into time slices read at once, each its own state row, the watermark over the finished prefix.

Both paths use it: the bulk path exports a large window as several operations at once
(:mod:`shopsync.engine.slices`), and the paginated path pages a latency-bound window as several
cursor chains at once (:mod:`shopsync.engine.paginated`). Either way:

* the cuts are times over ``updatedAt`` at which the slices' record counts are about equal
  (:func:`balanced_cuts`, from count queries); neighbours share their boundary second (bounds
  are inclusive), so a record there is read twice, never by neither;
* the plan (the slices' bounds) is kept in the window's own state row (its ``cursor``), and each
  slice is a state row of its own, ``<resource>@slice<i>``, read like any window of its path (its
  own cursor or bulk operation, so a restart resumes each slice where it stopped);
* the stream's watermark only ever moves over the contiguous prefix of finished slices
  (:func:`advance`): a failure or a kill in a middle slice leaves the checkpoint before it, and the
  rerun reads only the slices that had not finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

import orjson

from shopsync.engine.context import Meter, StreamContext
from shopsync.engine.windows import Window, floor_second
from shopsync.state.models import StreamState, SyncPath
from shopsync.timeutil import epoch_to_ts, format_ts, parse_ts

log = logging.getLogger(__name__)

SLICE_SUFFIX = "@slice"
#: Count queries sent at once while cutting (each a few points; they run in one round trip).
PROBES = 8
#: Refinement rounds of :func:`balanced_cuts` (each narrows a cut's bracket ``PROBES + 1``-fold).
ROUNDS = 6
#: A cut is good enough once its slice is within this fraction of the ideal count.
TOLERANCE = 0.1

CountUpTo = Callable[[datetime], Awaitable[int]]
#: Reads one slice to its end: ``read(ctx, index, row, window)`` (the slice's own meter in ``ctx``),
#: leaving its row completed (:func:`done` is true of it afterwards).
ReadSlice = Callable[[StreamContext, int, StreamState, Window], Coroutine[Any, Any, None]]


async def balanced_cuts(
    count_up_to: CountUpTo, lo: datetime, hi: datetime, total: int, parts: int, *, rounds: int = ROUNDS
) -> list[datetime]:
    """Times ``t1 < … < t(parts-1)`` in ``(lo, hi)`` such that about ``i/parts`` of ``total`` records
    have ``updatedAt ≤ ti`` (``count_up_to(t)``: how many records of the window have ``updatedAt ≤ t``).

    Each round (at most ``rounds``, each one round trip) probes :data:`PROBES` times inside every
    unresolved cut's bracket at once; a cut is
    resolved within :data:`TOLERANCE` of a slice or when its bracket is one second. Cuts that fall
    on one second (a dense second holds more than a slice) are merged: fewer, still exact, slices;
    and a cut is never put on a second denser than the slack, which both neighbours would read.
    """
    if parts < 2 or total <= 0 or hi <= lo:
        return []
    known: dict[datetime, int] = {lo: 0, hi: total}
    targets = [total * i / parts for i in range(1, parts)]
    slack = TOLERANCE * total / parts

    def bracket(target: float) -> tuple[datetime, datetime]:
        below = max((t for t, c in known.items() if c < target), default=lo)
        above = min((t for t, c in known.items() if c >= target and t > below), default=hi)
        return below, above

    for _ in range(rounds):
        probes: set[datetime] = set()
        for target in targets:
            a, b = bracket(target)
            if known[b] - target <= slack or (b - a) <= timedelta(seconds=1):
                continue
            step = (b - a) / (PROBES + 1)
            probes.update(floor_second(a + step * k) for k in range(1, PROBES + 1))
        probes -= set(known)
        if not probes:
            break
        ordered = sorted(probes)
        counts = await asyncio.gather(*(count_up_to(t) for t in ordered))
        # Counts only grow with t; an answer that says otherwise is not believed for cutting.
        for t, c in zip(ordered, counts, strict=True):
            known[t] = min(max(c, 0), total)

    def cut(target: float) -> datetime:
        a, b = bracket(target)
        # Neighbours both read their boundary second: a cut on a second that alone holds more
        # than the slack (one dense second of thousands) would have them both read it. The second
        # before is cut instead; the dense one goes whole to the slice after.
        if b - a <= timedelta(seconds=1) and known[b] - known[a] > slack and a > lo:
            return a
        return b

    return sorted({cut(target) for target in targets} - {lo, hi})


def plan_windows(start: datetime | None, cuts: list[datetime], end: datetime) -> list[Window]:
    """The slices between ``start`` (None: from the beginning), the ``cuts`` and ``end``."""
    bounds: list[datetime | None] = [start, *cuts, end]
    return [Window(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]  # type: ignore[arg-type]


def slice_key(resource: str, index: int) -> str:
    return f"{resource}{SLICE_SUFFIX}{index}"


def plan_of(state: StreamState) -> list[Window] | None:
    """The slices recorded in a window's state (None: not sliced)."""
    if not state.cursor or not state.cursor.startswith('{"slices"'):
        return None
    bounds = orjson.loads(state.cursor)["slices"]
    return [Window(parse_ts(s) if s else None, parse_ts(e)) for s, e in bounds]


def _plan_json(plan: list[Window]) -> str:
    bounds = [[format_ts(w.start) if w.start else None, format_ts(w.end)] for w in plan]
    return orjson.dumps({"slices": bounds}).decode()


async def save_plan(ctx: StreamContext, state: StreamState, plan: list[Window], path: SyncPath) -> StreamState:
    """Fresh slice rows (windows of ``path``) first, then the plan in the window's row (a kill in
    between re-plans: the window's row does not name the slices yet)."""
    now = epoch_to_ts(ctx.clock())
    for i, w in enumerate(plan):
        row = StreamState(
            shop=state.shop,
            resource=slice_key(ctx.resource.name, i),
            # Failed exports are planned from the ledger's operations since this time (failed_exports).
            last_success_at=now,
        ).with_window(format_ts(w.start) if w.start else None, format_ts(w.end), path)
        await ctx.state_store.save_stream(row)
    state = state.replace(cursor=_plan_json(plan))
    await ctx.state_store.save_stream(state)
    return state


def done(row: StreamState | None, w: Window) -> bool:
    """Whether the slice ``w`` whose state is ``row`` was read to its end."""
    if row is None:
        return False
    if not row.in_window:
        return row.watermark == format_ts(w.end)
    return row.window_end == format_ts(w.end) and row.window_start == row.window_end


async def slice_rows(ctx: StreamContext, state: StreamState, plan: list[Window]) -> list[StreamState | None]:
    return [await ctx.state_store.get_stream(state.shop, slice_key(ctx.resource.name, i)) for i in range(len(plan))]


async def read_slices(
    ctx: StreamContext, state: StreamState, plan: list[Window], read: ReadSlice, what: str = "exporting"
) -> StreamState:
    """Read every unfinished slice of ``plan`` at once with ``read``, moving the window's watermark
    over the finished prefix as slices finish. A slice that fails does not stop the others (what
    they read is kept, and a rerun skips them); the first failure is raised once all have ended."""
    rows = await slice_rows(ctx, state, plan)
    finished = [done(row, w) for row, w in zip(rows, plan, strict=True)]
    for i, (row, w) in enumerate(zip(rows, plan, strict=True)):
        if not finished[i] and (row is None or row.window_end != format_ts(w.end)):
            raise ValueError(f"{ctx.label}: slice {i} of the plan has no state row")
    pending: dict[asyncio.Task[None], int] = {
        asyncio.create_task(read(dataclasses.replace(ctx, meter=Meter()), i, row, w)): i
        for i, (row, w) in enumerate(zip(rows, plan, strict=True))
        if not finished[i] and row is not None
    }
    if any(finished):
        log.info("%s: %d of %d slices already read; %s the rest", ctx.label, sum(finished), len(plan), what)
    errors: list[BaseException] = []
    try:
        while pending:
            ended, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in ended:
                i = pending.pop(task)
                if task.exception() is not None:
                    errors.append(task.exception())  # type: ignore[arg-type]
                    continue
                finished[i] = True
            state = await advance(ctx, state, plan, finished)
    finally:
        for task in pending:
            task.cancel()
    if errors:
        raise errors[0]
    return state


async def advance(ctx: StreamContext, state: StreamState, plan: list[Window], finished: list[bool]) -> StreamState:
    """Move the watermark over the finished prefix of the plan (never past an unfinished slice)."""
    prefix = 0
    while prefix < len(plan) and finished[prefix]:
        prefix += 1
    if prefix == 0:
        return state
    mark = format_ts(plan[prefix - 1].end)
    if state.watermark is not None and parse_ts(state.watermark) >= parse_ts(mark):
        return state
    state = state.replace(watermark=mark)
    await ctx.state_store.save_stream(state)
    log.info("%s: slices 1..%d of %d read; watermark %s", ctx.label, prefix, len(plan), mark)
    return state


__all__ = [
    "SLICE_SUFFIX",
    "TOLERANCE",
    "advance",
    "balanced_cuts",
    "done",
    "plan_of",
    "plan_windows",
    "read_slices",
    "save_plan",
    "slice_key",
    "slice_rows",
]
