"""After a failed export: plan what of the window to read next, from the ledger, trusting no order.

A FAILED operation's partial file follows no order one could resume after (not the sort key;
inventory items have none: shopify-api-facts §3), so nothing it exported decides what is done. The
window is exported again from its start: first the half of the failed operation's window, then the
rest, halving again at each failure at the same start (:func:`~shopsync.engine.windows.retry_window`);
a part sooner read page by page (by the path planner's estimates) is read paginated instead, and
:data:`MAX_FAILED_EXPORTS` failures at one start in one run fail the stream loudly. The plan is
rebuilt from the bulk_operations ledger, so a process killed after a failure plans the same next part.
"""

from __future__ import annotations

import logging
from datetime import datetime

from shopsync.engine import paginated, path_choice
from shopsync.engine.context import StreamContext
from shopsync.engine.windows import SHOPIFY_EPOCH, Window, retry_window
from shopsync.errors import IntegrityError, QueryError
from shopsync.queries import builder
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.timeutil import format_ts, parse_ts

log = logging.getLogger(__name__)

#: Failed operations (other than ``TIMEOUT``, bounded by :data:`MIN_SPLIT_SECONDS`) starting at
#: one point of a window before the stream fails loudly: the window halves at each, so four reach
#: a sixteenth of it.
MAX_FAILED_EXPORTS = 4
#: Re-export attempts after a rootObjectCount mismatch before the stream fails loudly.
MAX_GUARD_RETRIES = 2


def window_end_of(window_end: str | None) -> datetime:
    """A window's end: every window in flight, and every operation reading one, has one."""
    if window_end is None:
        raise ValueError("a bulk window without an end")
    return parse_ts(window_end)


async def next_part(ctx: StreamContext, state: StreamState, failed_here: set[str]) -> tuple[Window, bool]:
    """The part of the window to read next, and whether to read it paginated.

    What is left of the window starts at ``state.window_start``; exports that failed from there
    (this run's, or a killed run's: the ledger has them) make the part smaller. ``failed_here``:
    the operations that failed in this run, which alone count towards the loud failure (earlier
    runs' still shape the plan but do not exhaust the bound, so a later run can finish the window).
    """
    failed = await window_failures(ctx, state)
    failures = [f for f in failed if f.window_start == state.window_start]
    check_failures(ctx, state, failures, failed_here)
    part = retry_window(
        start_of(state), window_end_of(state.window_end), [window_end_of(f.window_end) for f in failures],
        earliest=SHOPIFY_EPOCH,
    )
    # Once an export of this window failed, each part is counted first: a small one is read
    # paginated (cheaper than an operation that may fail again).
    paged = bool(failed) and await paginated_instead(ctx, state, part)
    how = "paginated" if paged else "exported again"
    if failures:
        log.warning(
            "%s: re-read window %s .. %s after failed export: %s (%d failed at this start: %s)",
            ctx.label, state.window_start or "the beginning", format_ts(part.end), how, len(failures),
            describe_failures(failures),
        )  # fmt: skip
    elif failed:
        log.info("%s: the rest of the window, %s .. %s, %s", ctx.label, state.window_start, format_ts(part.end), how)
    return part, paged


def start_of(state: StreamState) -> datetime | None:
    return parse_ts(state.window_start) if state.window_start else None


async def window_failures(ctx: StreamContext, state: StreamState) -> list[BulkOperationRecord]:
    """The finished, failed operations of the window in flight (those starting at its current
    start decide the next part).

    Read from the bulk_operations ledger, so a process killed after a failure plans the same
    re-export as the one that saw it. An operation belongs to this window when it ends within it
    and was started after the stream's previous window completed (``last_success_at``; an
    operation of that same second counts: at worst one more halving, never a failure forgotten).
    """
    ops = await ctx.state_store.list_bulk_operations(shop=ctx.shop.name, resource=ctx.resource.name, unfinished_only=False)
    end = window_end_of(state.window_end)
    since = state.last_success_at
    return [
        o for o in ops
        if o.finished and o.status == "FAILED" and o.error_code != "ACCESS_DENIED"
        and o.window_end is not None and parse_ts(o.window_end) <= end
        and (since is None or (o.created_at or "") >= since)
    ]  # fmt: skip


def describe_failures(failures: list[BulkOperationRecord]) -> str:
    return ", ".join(f"{f.id} {f.error_code} over {f.window_start or 'the beginning'} .. {f.window_end}" for f in failures)


def check_failures(ctx: StreamContext, state: StreamState, failures: list[BulkOperationRecord], ours: set[str]) -> None:
    """Fail loudly once :data:`MAX_FAILED_EXPORTS` operations of ``ours`` (this run's) failed at
    the window's start."""
    hard = [f for f in failures if f.error_code != "TIMEOUT" and f.id in ours]
    if len(hard) < MAX_FAILED_EXPORTS:
        return
    start = state.window_start or "the beginning"
    raise QueryError(
        f"shop {ctx.shop.name}: resource {ctx.resource.name}: window {start} .. {state.window_end}: "
        f"{len(hard)} bulk exports starting at {start} failed ({describe_failures(failures)}); nothing of the "
        "window from there is taken as read and the watermark did not move"
    )


async def paginated_instead(ctx: StreamContext, state: StreamState, part: Window) -> bool:
    """Whether to read ``part`` (of a window an export of which failed) paginated rather than export it.

    Yes when a paginated read of it was under way (the state holds its cursor), or when it is
    sooner read page by page (:func:`~shopsync.engine.path_choice.paginated_is_faster`: by the
    estimates, or under ``bulk_threshold`` when that is set). Never when ``[sync] path = "bulk"``
    forces exports, nor for resources without a count.
    """
    if state.cursor is not None:
        return True
    if ctx.settings.path == "bulk" or not ctx.resource.count_field or ctx.resource.parent_field:
        return False
    return await path_choice.paginated_is_faster(ctx, part)


async def read_paginated(ctx: StreamContext, state: StreamState, part: Window) -> StreamState:
    """Read ``part`` (the start of what is left of the window) page by page, with the count guard.

    Pages commit their cursor in the bulk window's state, so a restart resumes this read (the same
    part: the ledger it is planned from has not changed). Then the window's start moves to the
    part's end, as after a completed export.
    """
    search = builder.window_search(part.start, part.end)
    for attempt in range(MAX_GUARD_RETRIES + 1):
        resumed = state.cursor is not None
        before = state.records_in_window
        state = await paginated.read_window(ctx, state, search)
        read = state.records_in_window - before
        # After a restart mid-read the earlier pages' records are not known here: no guard then.
        counted = None if resumed else await paginated.count_records(ctx, search)
        if counted is None or counted <= read:
            break
        ctx.observer.on_guard_mismatch(ctx.shop.name, ctx.resource.name, "count")
        message = f"{ctx.label}: Shopify counts {counted} records in {part} but {read} were read"
        if attempt == MAX_GUARD_RETRIES:
            raise IntegrityError(f"{message}; the part was read {attempt + 1} times")
        log.warning("%s; reading it again", message)
        state = state.replace(cursor=None)
        await ctx.state_store.save_stream(state)
    state = state.replace(cursor=None, window_start=format_ts(part.end))
    await ctx.state_store.save_stream(state)
    return state
