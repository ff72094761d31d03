"""A large bulk window cut into time slices of balanced record counts, exported at once.

Shopify runs up to five bulk queries per shop at once (shopify-api-facts §3) and an export is the
long wait of a backfill, so a window worth it is cut into up to ``max_concurrent_bulk`` slices
over ``updatedAt`` whose counts are about equal (count queries, refined where the shop is dense:
:func:`balanced_cuts`), and each slice is exported by its own operation, on the shop's fair bulk
slots (:mod:`shopsync.engine.slots`).

State. The plan (the slices' bounds) is in the window's own state row (its ``cursor``, which a
bulk window does not otherwise use), and each slice is a state row of its own,
``<resource>@slice<i>``, read by the bulk path like any window (its operation, failed exports and
re-attachment after a restart are the bulk path's). The stream's watermark only ever moves over
the contiguous prefix of finished slices, so a kill between slices loses nothing and a restart
exports only the slices that had not finished.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import orjson

from shopsync.crashpoints import crashpoint
from shopsync.engine import bulk, paginated
from shopsync.engine.context import Meter, StreamContext
from shopsync.engine.windows import SHOPIFY_EPOCH, Window, floor_second
from shopsync.queries import builder
from shopsync.state.models import StreamState
from shopsync.timeutil import epoch_to_ts, format_ts, parse_ts

log = logging.getLogger(__name__)

SLICE_SUFFIX = "@slice"
#: Fewer records than this per slice and an operation's overhead outweighs the parallelism.
MIN_SLICE_RECORDS = 2_000
#: Count queries sent at once while cutting (each a few points; they run in one round trip).
PROBES = 8
#: Refinement rounds of :func:`balanced_cuts` (each narrows a cut's bracket ``PROBES + 1``-fold).
ROUNDS = 6
#: A cut is good enough once its slice is within this fraction of the ideal count.
TOLERANCE = 0.1

CountUpTo = Callable[[datetime], Awaitable[int]]


async def balanced_cuts(count_up_to: CountUpTo, lo: datetime, hi: datetime, total: int, parts: int) -> list[datetime]:
    """Times ``t1 < … < t(parts-1)`` in ``(lo, hi)`` such that about ``i/parts`` of ``total`` records
    have ``updatedAt ≤ ti`` (``count_up_to(t)``: how many records of the window have ``updatedAt ≤ t``).

    Each round probes :data:`PROBES` times inside every unresolved cut's bracket at once; a cut is
    resolved within :data:`TOLERANCE` of a slice or when its bracket is one second. Cuts that fall
    on one second (a dense second holds more than a slice) are merged: fewer, still exact, slices.
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

    for _ in range(ROUNDS):
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
    cuts = sorted({bracket(target)[1] for target in targets} - {lo, hi})
    return cuts


def slice_key(resource: str, index: int) -> str:
    return f"{resource}{SLICE_SUFFIX}{index}"


def _plan_of(state: StreamState) -> list[Window] | None:
    """The slices recorded in a bulk window's state (None: not sliced)."""
    if not state.cursor or not state.cursor.startswith('{"slices"'):
        return None
    bounds = orjson.loads(state.cursor)["slices"]
    return [Window(parse_ts(s) if s else None, parse_ts(e)) for s, e in bounds]


def _plan_json(plan: list[Window]) -> str:
    bounds = [[format_ts(w.start) if w.start else None, format_ts(w.end)] for w in plan]
    return orjson.dumps({"slices": bounds}).decode()


def eligible(ctx: StreamContext, state: StreamState) -> bool:
    """Whether the bulk window in flight may be cut: nothing of it started yet (no operation, no
    cursor), a countable, searchable resource, and more than one slot for the shop."""
    r = ctx.resource
    return (
        ctx.settings.max_concurrent_bulk > 1
        and state.bulk_operation_id is None
        and state.cursor is None
        and r.incremental
        and bool(r.count_field)
        and not r.parent_field
    )


async def read_window(ctx: StreamContext, state: StreamState) -> StreamState:
    """Read the bulk window in flight, sliced when it is large (else as one export)."""
    plan = _plan_of(state)
    if plan is None:
        if not eligible(ctx, state):
            return await bulk.read_window(ctx, state)
        plan = await _make_plan(ctx, state)
        if plan is None:
            return await bulk.read_window(ctx, state)
        state = await _save_plan(ctx, state, plan)
    return await _read_slices(ctx, state, plan)


async def _make_plan(ctx: StreamContext, state: StreamState) -> list[Window] | None:
    start = parse_ts(state.window_start) if state.window_start else None
    end = parse_ts(state.window_end or "")
    total = await paginated.count_records(ctx, builder.window_search(start, end))
    if total is None:
        return None
    parts = min(ctx.settings.max_concurrent_bulk, total // MIN_SLICE_RECORDS)
    if parts < 2:
        return None

    async def count_up_to(t: datetime) -> int:
        return await paginated.count_records(ctx, builder.window_search(start, t)) or 0

    cuts = await balanced_cuts(count_up_to, start or SHOPIFY_EPOCH, end, total, parts)
    if not cuts:
        return None
    # Neighbours share their boundary second (inclusive bounds): a record there is read twice,
    # never by neither. The first slice keeps the window's start (None: from the beginning).
    bounds: list[datetime | None] = [start, *cuts, end]
    plan = [Window(bounds[i], bounds[i + 1]) for i in range(len(bounds) - 1)]  # type: ignore[arg-type]
    log.info(
        "%s: %d records in %s .. %s cut into %d slices exported at once: %s",
        ctx.label, total, state.window_start or "the beginning", state.window_end, len(plan),
        ", ".join(str(w) for w in plan),
    )  # fmt: skip
    return plan


async def _save_plan(ctx: StreamContext, state: StreamState, plan: list[Window]) -> StreamState:
    """Fresh slice rows first, then the plan in the window's row (a kill in between re-plans)."""
    now = epoch_to_ts(ctx.clock())
    for i, w in enumerate(plan):
        row = StreamState(
            shop=state.shop,
            resource=slice_key(ctx.resource.name, i),
            # Failed exports are planned from the ledger's operations since this time (failed_exports).
            last_success_at=now,
        ).with_window(format_ts(w.start) if w.start else None, format_ts(w.end), "bulk")
        await ctx.state_store.save_stream(row)
    state = state.replace(cursor=_plan_json(plan))
    await ctx.state_store.save_stream(state)
    return state


def _done(row: StreamState | None, w: Window) -> bool:
    if row is None:
        return False
    if not row.in_window:
        return row.watermark == format_ts(w.end)
    return row.window_end == format_ts(w.end) and row.window_start == row.window_end


async def _read_slices(ctx: StreamContext, state: StreamState, plan: list[Window]) -> StreamState:
    rows = [await ctx.state_store.get_stream(state.shop, slice_key(ctx.resource.name, i)) for i in range(len(plan))]
    done = [_done(row, w) for row, w in zip(rows, plan, strict=True)]
    pending = {
        asyncio.create_task(_read_slice(ctx, i, row, w)): i
        for i, (row, w) in enumerate(zip(rows, plan, strict=True))
        if not done[i]
    }
    if any(done):
        log.info("%s: %d of %d slices already read; exporting the rest", ctx.label, sum(done), len(plan))
    errors: list[BaseException] = []
    try:
        while pending:
            finished, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in finished:
                i = pending.pop(task)
                if task.exception() is not None:
                    errors.append(task.exception())  # type: ignore[arg-type]
                    continue
                done[i] = True
            state = await _advance(ctx, state, plan, done)
    finally:
        for task in pending:
            task.cancel()
    if errors:
        raise errors[0]
    return state.replace(cursor=None, window_start=state.window_end)


async def _read_slice(ctx: StreamContext, index: int, row: StreamState | None, w: Window) -> None:
    if row is None or row.window_end != format_ts(w.end):
        raise ValueError(f"{ctx.label}: slice {index} of the plan has no state row")
    own = dataclasses.replace(ctx, meter=Meter())
    row = await bulk.read_window(own, row)
    await ctx.state_store.save_stream(row.completed(row.window_end, epoch_to_ts(ctx.clock())))
    crashpoint("after_slice")


async def _advance(ctx: StreamContext, state: StreamState, plan: list[Window], done: list[bool]) -> StreamState:
    """Move the watermark over the finished prefix of the plan (never past an unfinished slice)."""
    prefix = 0
    while prefix < len(plan) and done[prefix]:
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


__all__ = ["MIN_SLICE_RECORDS", "SLICE_SUFFIX", "balanced_cuts", "eligible", "read_window", "slice_key"]
