"""The bulk path: one window exported by a Shopify bulk operation, streamed and reassembled.

Life of a window on this path (state in brackets is committed before the next step starts):

1. start ``bulkOperationRunQuery`` (``groupObjects: false``) when one of the shop's bulk slots is
   free; ``LIMIT_REACHED``/``OPERATION_IN_PROGRESS`` mean wait and try again — never cancel anyone's
   operation  [operation id, its window, status CREATED — *before* the first poll];
2. poll ``bulkOperation(id:)`` with an interval that grows with the job's age  [status, counts];
3. COMPLETED: download the file to the work directory (Range-resumed), reassemble children onto
   parents by ``__parentId`` through a spill database, write records in batches  [records];
   then check the root lines against ``rootObjectCount``  [window start moves to the op's end];
4. FAILED (``TIMEOUT``, ``INTERNAL_SERVER_ERROR``): write the records of the partial file that are
   provably complete, then export the failed window's first half again, then the rest; a part
   Shopify counts under ``bulk_threshold`` is read paginated instead. Nothing a failed operation
   exported decides what is done: its file need not follow the sort key (shopify-api-facts §3).
   :data:`MAX_FAILED_EXPORTS` failures at one start (or a ``TIMEOUT`` on under a minute) fail the
   stream loudly  [each failed operation, finished, in the bulk_operations ledger — the plan is
   rebuilt from it after a restart]. CANCELED/EXPIRED: export again; ``ACCESS_DENIED``: the
   resource is parked (missing scope).

A process that dies anywhere re-attaches on restart: the stream's state names the operation, the
result file on disk is resumed, and records already written are simply upserted again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shopsync.crashpoints import crashpoint
from shopsync.engine import bulk_files, failed_exports
from shopsync.engine.context import StreamContext
from shopsync.engine.failed_exports import MAX_GUARD_RETRIES
from shopsync.engine.paginated import operation
from shopsync.engine.windows import SHOPIFY_EPOCH, Window
from shopsync.errors import (
    BulkFileError,
    IntegrityError,
    OutcomeUnknownError,
    QueryError,
    ResourceUnavailableError,
)
from shopsync.queries import builder
from shopsync.shopify.shape import bulk_list_problem, bulk_start_problem
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.timeutil import epoch_to_ts, format_ts, parse_ts

log = logging.getLogger(__name__)

#: Below this a TIMEOUT is not split further: the stream fails with the error.
MIN_SPLIT_SECONDS = 60.0
#: Re-export attempts after a result file with a bad line or an orphan (BulkFileError).
MAX_FILE_RETRIES = 1
#: Operations of one window that may end CANCELED or EXPIRED (each exported again) before the
#: stream fails: Shopify cancels a stalled job now and then, never every time.
MAX_RESTARTS = 3
#: Seconds an operation may stay unfinished before polling gives up: Shopify stops and fails any
#: operation after 10 days (shopify-api-facts §3); a day more allows for clocks and the last poll.
MAX_OPERATION_SECONDS = 11 * 86_400
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}


async def read_window(ctx: StreamContext, state: StreamState) -> StreamState:
    """Export the in-flight window ``[state.window_start, state.window_end]`` through bulk operations."""
    op = await ctx.state_store.get_bulk_operation(ctx.shop.name, state.bulk_operation_id) if state.bulk_operation_id else None
    op_end = failed_exports.window_end_of(op.window_end if op else state.window_end)
    tries = _Attempts()
    while True:
        if op is None:
            part, paged = await failed_exports.next_part(ctx, state, tries.failed)
            op_end = part.end
            if paged:
                state = await failed_exports.read_paginated(ctx, state, part)
                if state.window_start == state.window_end:
                    return state
                continue
        # A running operation occupies one of the shop's bulk slots, whether this process started
        # it or re-attached to it after a restart.
        async with ctx.shop.bulk_slots.hold(ctx.resource.name, ctx.priority):
            if op is None:
                op, state = await _start(ctx, state, op_end)
            op = await _wait(ctx, op)
        if op.status == "COMPLETED":
            _learn_export(ctx, op)
            state, advanced = await _after_completed(ctx, state, op, tries)
        elif op.status == "FAILED":
            state, advanced = await _after_failed(ctx, state, op, tries), False
        else:  # CANCELED (Shopify cancels stalled jobs) or EXPIRED: export again
            tries.restarts += 1
            if tries.restarts > MAX_RESTARTS:
                raise QueryError(
                    f"{ctx.label}: bulk operation {op.id} ended {op.status}, the {tries.restarts}th operation "
                    "of this window to end so; the watermark did not move"
                )
            log.warning("%s: bulk operation %s ended %s; starting it again", ctx.label, op.id, op.status)
            _, state = await _finish(ctx, state, op, window_start=state.window_start)
            advanced = False
        op = None
        # A completed operation: the window is done when its end is the stream's window end.
        if advanced and state.window_start == state.window_end:
            return state


def _learn_export(ctx: StreamContext, op: BulkOperationRecord) -> None:
    """Feed a completed operation's export time (start to COMPLETED) to the shop's path planner."""
    if op.created_at:
        seconds = ctx.clock() - parse_ts(op.created_at).timestamp()
        ctx.shop.exports.add_export(ctx.resource.name, op.object_count, op.root_object_count, seconds)


@dataclass
class _Attempts:
    """What one call of :func:`read_window` tried, for its bounds."""

    guard: int = 0  # re-exports after a rootObjectCount mismatch
    files: int = 0  # result files refused for a bad line or an orphan
    restarts: int = 0  # operations that ended CANCELED or EXPIRED
    #: Operations that FAILED in this call: only they count towards the loud failure (earlier
    #: runs' shape the plan from the ledger but do not exhaust the bound, so a later run can finish).
    failed: set[str] = field(default_factory=set)


async def _after_completed(
    ctx: StreamContext, state: StreamState, op: BulkOperationRecord, tries: _Attempts
) -> tuple[StreamState, bool]:
    """Ingest a COMPLETED operation's file. Returns the state and whether the window's start moved
    to the operation's end (False: the window is to be exported again)."""
    try:
        async with ctx.ingest_slots:
            began = time.monotonic()
            state = await bulk_files.ingest_result(ctx, state, op)
            ctx.shop.exports.add_ingest(op.object_count, time.monotonic() - began)
    except BulkFileError as exc:
        # Nothing of the file was written. Its operation is finished either way: a file is
        # stored at Shopify once, so reading it again would find the same line.
        tries.files += 1
        ctx.observer.on_guard_mismatch(ctx.shop.name, ctx.resource.name, "bulk_file")
        message = f"shop {ctx.shop.name}: resource {ctx.resource.name}: bulk operation {op.id}: {exc}"
        _, state = await _finish(ctx, state, op, window_start=state.window_start)
        if tries.files > MAX_FILE_RETRIES:
            raise BulkFileError(
                f"{message}; the window was exported {tries.files} times and nothing of it was "
                "written (the watermark did not move)",
                line=exc.line,
            ) from None
        log.warning("%s: %s; exporting the window again", ctx.label, message)
        return state, False
    except IntegrityError as exc:
        tries.guard += 1
        ctx.observer.on_guard_mismatch(ctx.shop.name, ctx.resource.name, "bulk_root_count")
        if tries.guard > MAX_GUARD_RETRIES:
            raise
        log.warning("%s: %s; exporting the window again", ctx.label, exc)
        _, state = await _finish(ctx, state, op, window_start=state.window_start)
        return state, False
    _, state = await _finish(ctx, state, op, window_start=op.window_end)
    return state, True


async def _after_failed(ctx: StreamContext, state: StreamState, op: BulkOperationRecord, tries: _Attempts) -> StreamState:
    """Handle a FAILED operation: park the resource on ACCESS_DENIED; else write what its partial
    file holds of complete records and leave the window's start where it was (the next part is
    planned from the ledger: :func:`~shopsync.engine.failed_exports.next_part`)."""
    if op.error_code == "ACCESS_DENIED":
        raise ResourceUnavailableError(
            f"{ctx.label}: bulk operation {op.id} failed with ACCESS_DENIED",
            status=403,
            reason="access denied to a field of this resource (missing access scope)",
        )
    if op.error_code == "TIMEOUT":
        start = parse_ts(op.window_start) if op.window_start else SHOPIFY_EPOCH
        if (failed_exports.window_end_of(op.window_end) - start).total_seconds() < MIN_SPLIT_SECONDS:
            raise QueryError(f"{ctx.label}: bulk operation timed out on a window of under a minute ({op.id})")
    written = 0
    if op.partial_data_url:
        async with ctx.ingest_slots:
            op, state, written = await bulk_files.ingest_partial(ctx, state, op)
    log.warning(
        "%s: bulk operation %s failed (%s) after %d objects over %s .. %s; %d complete records of its "
        "partial file written; nothing else of its window is taken as read",
        ctx.label, op.id, op.error_code, op.object_count, op.window_start or "the beginning", op.window_end,
        written,
    )  # fmt: skip
    op, state = await _finish(ctx, state, op, window_start=state.window_start)
    tries.failed.add(op.id)
    crashpoint("after_failed_export")
    return state


async def _start(ctx: StreamContext, state: StreamState, end: datetime) -> tuple[BulkOperationRecord, StreamState]:
    """Start an operation for ``[state.window_start, end]`` and record it before anything else."""
    window = Window(parse_ts(state.window_start) if state.window_start else None, end)
    search = builder.window_search(window.start, window.end) if ctx.resource.incremental else None
    inner = builder.bulk_query(ctx.resource, search)
    attempt = 0
    lost = 0  # answers lost (or malformed), each followed by a look for the operation
    # A process killed between Shopify's answer and the commit below left an operation running
    # that no state names; the window (and so the query text) is the same now: adopt it.
    payload: dict[str, Any] = {"bulkOperation": await _find_started(ctx, state, inner, end)}
    while payload["bulkOperation"] is None:
        try:
            response = await ctx.shop.client.execute(
                builder.bulk_mutation(),
                {"query": inner},
                priority=ctx.priority,
                idempotent=False,
                operation=operation(ctx, "bulk start"),
                check=bulk_start_problem,
            )
        except OutcomeUnknownError as exc:
            # The answer was lost (or came back malformed): resending blindly could leave a second,
            # orphaned operation running in one of the shop's five slots. Look for ours first.
            started = await _find_started(ctx, state, inner, end)
            if started is not None:
                log.info("%s: the bulk start's answer was lost (%s) but it started %s", ctx.label, exc.reason, started["id"])
                payload = {"bulkOperation": started}
                continue
            lost += 1
            if lost >= ctx.settings.max_attempts:
                raise  # bounded: the shop keeps losing the answers and never shows an operation
            attempt += 1
            await ctx.sleep(min(ctx.settings.bulk_poll_max.total_seconds(), 0.5 * 2**attempt))
            continue
        payload = response.data["bulkOperationRunQuery"]
        errors = payload.get("userErrors") or []
        if not errors and payload.get("bulkOperation"):
            break
        codes = {e.get("code") for e in errors}
        if codes & {"LIMIT_REACHED", "OPERATION_IN_PROGRESS"}:
            # Someone (another process, or operations left by a crash) holds the shop's bulk
            # slots: wait for one to free up. Never cancel an operation we did not start.
            attempt += 1
            delay = min(ctx.settings.bulk_poll_max.total_seconds(), 2.0 * attempt)
            log.info("%s: bulk operation limit reached; retrying in %.0fs", ctx.label, delay)
            await ctx.sleep(delay)
            continue
        messages = "; ".join(str(e.get("message")) for e in errors) or "no operation returned"
        raise QueryError(f"{ctx.label}: bulkOperationRunQuery rejected: {messages}", errors=errors)
    started = payload["bulkOperation"]
    now = format_ts_now(ctx)
    op = BulkOperationRecord(
        id=started["id"],
        shop=ctx.shop.name,
        resource=ctx.resource.name,
        window_start=state.window_start,
        window_end=format_ts(end),
        status=started.get("status") or "CREATED",
        error_code=started.get("errorCode"),
        created_at=now,
        updated_at=now,
    )
    state = state.with_bulk_export(op.id)
    await ctx.state_store.commit(state, bulk=op)
    log.info("%s: started bulk operation %s for %s .. %s", ctx.label, op.id, op.window_start or "the beginning", op.window_end)
    return op, state


async def _find_started(ctx: StreamContext, state: StreamState, inner: str, end: datetime) -> dict[str, Any] | None:
    """The newest operation on the shop running exactly ``inner`` that no stream has recorded.

    Whatever its status: a failed one is handled like any failed operation (split, partial data).
    Older unrecorded copies (a start resent after a lost answer whose operation had already
    failed, then a kill) are recorded as finished, so every operation started is accounted for.
    """
    response = await ctx.shop.client.execute(
        builder.recent_bulk_operations_query(),
        priority=ctx.priority,
        operation=operation(ctx, "bulk operations"),
        check=bulk_list_problem,
    )
    found = None
    for node in response.data["bulkOperations"]["nodes"]:  # newest first
        if node.get("query") != inner or await ctx.state_store.get_bulk_operation(ctx.shop.name, node["id"]) is not None:
            continue
        if found is None:
            found = node
            continue
        now = format_ts_now(ctx)
        stray = BulkOperationRecord(
            id=node["id"], shop=ctx.shop.name, resource=ctx.resource.name, window_start=state.window_start,
            window_end=format_ts(end), status=node.get("status") or "CREATED", error_code=node.get("errorCode"),
            created_at=now, updated_at=now, finished=True,
        )  # fmt: skip
        await ctx.state_store.save_bulk_operation(stray)
        log.info("%s: recorded bulk operation %s (%s), an earlier copy of this window's export", ctx.label, stray.id, stray.status)
    return found


def format_ts_now(ctx: StreamContext) -> str:
    return epoch_to_ts(ctx.clock())


#: The wake-up hook of bulk polls: (shop, operation id) → set by :func:`wake_poll`, bounded.
_poll_wakeups: dict[tuple[str, str], asyncio.Event] = {}
MAX_POLL_WAKEUPS = 1024


def wake_poll(shop: str, operation_id: str) -> None:
    """Poll ``operation_id`` now instead of at its next interval (a ``bulk_operations/finish``
    webhook). A wake-up that comes while no poll waits makes the next wait end at once."""
    while len(_poll_wakeups) >= MAX_POLL_WAKEUPS:
        del _poll_wakeups[next(iter(_poll_wakeups))]
    _poll_wakeups.setdefault((shop, operation_id), asyncio.Event()).set()


async def _poll_pause(ctx: StreamContext, operation_id: str, seconds: float) -> None:
    """``ctx.sleep(seconds)`` between two polls, ended early by :func:`wake_poll`."""
    key = (ctx.shop.name, operation_id)
    event = _poll_wakeups.setdefault(key, asyncio.Event())
    waits = (asyncio.ensure_future(ctx.sleep(seconds)), asyncio.ensure_future(event.wait()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waits:
            w.cancel()
        if _poll_wakeups.get(key) is event:
            del _poll_wakeups[key]


async def _wait(ctx: StreamContext, op: BulkOperationRecord) -> BulkOperationRecord:
    """Poll ``bulkOperation(id:)`` until the operation is terminal, recording its progress."""
    started = time.monotonic()
    min_poll = ctx.settings.bulk_poll_min.total_seconds()
    max_poll = ctx.settings.bulk_poll_max.total_seconds()
    last_status = None
    while True:
        remote = await bulk_files.bulk_status(ctx, op.id)
        if remote is None:
            # Unknown to Shopify (expired long ago, or another shop's id): export again.
            remote = {"status": "EXPIRED"}
        op = op.with_status(
            remote["status"],
            error_code=remote.get("errorCode"),
            object_count=int(remote.get("objectCount") or 0),
            root_object_count=int(remote.get("rootObjectCount") or 0),
            file_size=int(remote["fileSize"]) if remote.get("fileSize") else None,
            url=remote.get("url"),
            partial_data_url=remote.get("partialDataUrl"),
            completed_at=remote.get("completedAt"),
            now=format_ts_now(ctx),
        )
        if op.status != last_status:
            ctx.observer.on_bulk_status(ctx.shop.name, ctx.resource.name, op.status, op.object_count)
            last_status = op.status
        await ctx.state_store.save_bulk_operation(op)
        crashpoint("polling")
        if op.status in TERMINAL:
            return op
        age = ctx.clock() - parse_ts(op.created_at).timestamp() if op.created_at else 0.0
        if age > MAX_OPERATION_SECONDS:
            # Shopify would have failed it days ago: an answer that says otherwise is not believed.
            raise QueryError(
                f"{ctx.label}: bulk operation {op.id} still {op.status} {age / 86_400:.0f} days after it "
                "started (Shopify stops every operation after 10); the watermark did not move"
            )
        # Poll about ten times over the job's life so far: quick jobs are seen quickly, an hour-long
        # job is polled about once a minute (Shopify's advice), within the configured bounds.
        elapsed = time.monotonic() - started
        await _poll_pause(ctx, op.id, min(max_poll, max(min_poll, elapsed / 10.0)))


async def _finish(
    ctx: StreamContext, state: StreamState, op: BulkOperationRecord, *, window_start: str | None
) -> tuple[BulkOperationRecord, StreamState]:
    """Mark ``op`` finished and move the window's start; remove its local files."""
    op = op.mark_finished(format_ts_now(ctx))
    state = state.with_bulk_finished(window_start)
    await ctx.state_store.commit(state, bulk=op)
    for kind in ("result", "partial"):
        for p in bulk_files.file_paths(ctx, op, kind):
            p.unlink(missing_ok=True)
    started = parse_ts(op.created_at) if op.created_at else None
    duration = (ctx.clock() - started.timestamp()) if started else 0.0
    ctx.observer.on_bulk_finished(ctx.shop.name, ctx.resource.name, op.status, duration, op.object_count)
    return op, state
