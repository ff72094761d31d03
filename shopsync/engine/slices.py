"""A large bulk window cut into time slices of balanced record counts, exported at once.

Shopify runs up to five bulk queries per shop at once (shopify-api-facts §3) and an export is the
long wait of a backfill, so a window worth it is cut into up to ``max_concurrent_bulk`` slices
over ``updatedAt`` whose counts are about equal (count queries, refined where the shop is dense:
:func:`balanced_cuts`), and each slice is exported by its own operation, on the shop's fair bulk
slots (:mod:`shopsync.engine.slots`).

State (:mod:`shopsync.engine.window_slices`, shared with the paginated path's cursor chains). The
plan (the slices' bounds) is in the window's own state row (its ``cursor``, which a bulk window
does not otherwise use), and each slice is a state row of its own, ``<resource>@slice<i>``, read by
the bulk path like any window (its operation, failed exports and re-attachment after a restart are
the bulk path's). The stream's watermark only ever moves over the contiguous prefix of finished
slices, so a kill between slices loses nothing and a restart exports only the slices that had not
finished.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shopsync.crashpoints import crashpoint
from shopsync.engine import bulk, paginated, window_slices
from shopsync.engine.context import StreamContext
from shopsync.engine.window_slices import (  # shared with paged chains
    SLICE_SUFFIX,
    TOLERANCE,
    balanced_cuts,
    slice_key,
)
from shopsync.engine.windows import SHOPIFY_EPOCH, Window
from shopsync.queries import builder
from shopsync.state.models import StreamState
from shopsync.timeutil import epoch_to_ts, parse_ts

log = logging.getLogger(__name__)

#: Fewer records than this per slice and an operation's overhead outweighs the parallelism.
MIN_SLICE_RECORDS = 2_000


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
    plan = window_slices.plan_of(state)
    if plan is None:
        if not eligible(ctx, state):
            return await bulk.read_window(ctx, state)
        plan = await _make_plan(ctx, state)
        if plan is None:
            return await bulk.read_window(ctx, state)
        state = await window_slices.save_plan(ctx, state, plan, "bulk")
    state = await window_slices.read_slices(ctx, state, plan, _read_slice)
    return state.replace(cursor=None, window_start=state.window_end)


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
    plan = window_slices.plan_windows(start, cuts, end)
    log.info(
        "%s: %d records in %s .. %s cut into %d slices exported at once: %s",
        ctx.label, total, state.window_start or "the beginning", state.window_end, len(plan),
        ", ".join(str(w) for w in plan),
    )  # fmt: skip
    return plan


async def _read_slice(ctx: StreamContext, index: int, row: StreamState, w: Window) -> None:
    """One slice by its own bulk operation (``ctx`` has the slice's own meter)."""
    row = await bulk.read_window(ctx, row)
    await ctx.state_store.save_stream(row.completed(row.window_end, epoch_to_ts(ctx.clock())))
    crashpoint("after_slice")


__all__ = ["MIN_SLICE_RECORDS", "SLICE_SUFFIX", "TOLERANCE", "balanced_cuts", "eligible", "read_window", "slice_key"]
