"""The bulk path: one window exported by a Shopify bulk operation, streamed and reassembled.

Life of a window on this path (state in brackets is committed before the next step starts):

1. start ``bulkOperationRunQuery`` (``groupObjects: false``) when one of the shop's bulk slots is
   free; ``LIMIT_REACHED``/``OPERATION_IN_PROGRESS`` mean wait and try again — never cancel anyone's
   operation  [operation id, its window, status CREATED — *before* the first poll];
2. poll ``bulkOperation(id:)`` with an interval that grows with the job's age  [status, counts];
3. COMPLETED: download the file to the work directory (Range-resumed), reassemble children onto
   parents by ``__parentId`` through a spill database, write records in batches  [records];
   then check the root lines against ``rootObjectCount``  [window start moves to the op's end];
4. FAILED with ``TIMEOUT``: split the operation's window in two and export the halves;
   FAILED with partial data: keep what the partial file provably covers, resume after it;
   CANCELED/EXPIRED: export again; ``ACCESS_DENIED``: the resource is parked (missing scope).

A process that dies anywhere re-attaches on restart: the stream's state names the operation, the
result file on disk is resumed, and records already written are simply upserted again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

from shopsync.engine.context import MAX_CONCURRENT_INGEST, StreamContext
from shopsync.engine.crashpoints import crashpoint
from shopsync.engine.download import UrlExpiredError, download_to_file, iter_lines
from shopsync.engine.reassembly import BulkReassembler
from shopsync.engine.records import serialize
from shopsync.engine.windows import Window
from shopsync.errors import IntegrityError, OutcomeUnknownError, QueryError, ShopUnavailableError
from shopsync.queries import builder
from shopsync.state.models import BulkOperationRecord, Record, StreamState
from shopsync.timeutil import format_ts, from_epoch, parse_ts

log = logging.getLogger(__name__)

#: Windows without a lower bound start here when they must be split (Shopify was founded in 2006).
SHOPIFY_EPOCH = datetime.fromisoformat("2006-01-01T00:00:00+00:00")
#: Below this a TIMEOUT is not split further: the stream fails with the error.
MIN_SPLIT_SECONDS = 60.0
#: Records written per commit while ingesting a result file.
INGEST_BATCH = 500
#: Roots at the end of a partial file that are not trusted (their children may lie past the cut):
#: Shopify exports at most 250 roots a page, so a full page of margin.
PARTIAL_TAIL_ROOTS = 250
#: Re-export attempts after a rootObjectCount mismatch before the stream fails loudly.
MAX_GUARD_RETRIES = 2
TERMINAL = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}

#: The reassembly workers' own threads: long jobs on the default pool (min(32, cores + 4) threads)
#: would leave few threads for every other stream's download open/fsync calls.
_REASSEMBLY_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_CONCURRENT_INGEST, thread_name_prefix="bulk-reassembly")


async def read_window(ctx: StreamContext, state: StreamState) -> StreamState:
    """Export the in-flight window ``[state.window_start, state.window_end]`` through bulk operations."""
    op = await ctx.state_store.get_bulk_operation(state.bulk_operation_id) if state.bulk_operation_id else None
    op_end = parse_ts(op.window_end) if op else parse_ts(state.window_end)
    guard_failures = 0
    while True:
        # A running operation occupies one of the shop's bulk slots, whether this process started
        # it or re-attached to it after a restart.
        async with ctx.shop.bulk_slots:
            if op is None:
                op, state = await _start(ctx, state, op_end)
            op = await _wait(ctx, op)
        if op.status == "COMPLETED":
            try:
                async with ctx.ingest_slots:
                    state = await _ingest(ctx, state, op)
            except IntegrityError as exc:
                guard_failures += 1
                ctx.observer.on_guard_mismatch(ctx.shop.name, ctx.resource.name, "bulk_root_count")
                if guard_failures > MAX_GUARD_RETRIES:
                    raise
                log.warning("%s: %s; exporting the window again", ctx.label, exc)
                op, state = await _finish(ctx, state, op, window_start=state.window_start)
                op = None
                continue
            op, state = await _finish(ctx, state, op, window_start=op.window_end)
        elif op.status == "FAILED" and op.error_code == "ACCESS_DENIED":
            raise ShopUnavailableError(
                f"{ctx.label}: bulk operation {op.id} failed with ACCESS_DENIED",
                status=403,
                reason="access denied to a field of this resource (missing access scope)",
                resource_only=True,
            )
        elif op.status == "FAILED" and op.error_code == "TIMEOUT":
            start = parse_ts(op.window_start) if op.window_start else SHOPIFY_EPOCH
            end = parse_ts(op.window_end)
            if (end - start).total_seconds() < MIN_SPLIT_SECONDS:
                raise QueryError(f"{ctx.label}: bulk operation timed out on a window of under a minute ({op.id})")
            mid = start + (end - start) / 2
            log.info("%s: bulk operation %s timed out; splitting its window at %s", ctx.label, op.id, format_ts(mid))
            op, state = await _finish(ctx, state, op, window_start=state.window_start)
            op = None
            op_end = mid
            continue
        elif op.status == "FAILED":
            resume_at = state.window_start
            if op.partial_data_url:
                async with ctx.ingest_slots:
                    state, resume_at = await _ingest_partial(ctx, state, op)
            log.warning(
                "%s: bulk operation %s failed (%s); resuming the window from %s",
                ctx.label, op.id, op.error_code, resume_at or "its start",
            )
            op, state = await _finish(ctx, state, op, window_start=resume_at)
            op = None
            op_end = parse_ts(state.window_end)
            continue
        else:  # CANCELED (Shopify cancels stalled jobs) or EXPIRED: export again
            log.warning("%s: bulk operation %s ended %s; starting it again", ctx.label, op.id, op.status)
            op, state = await _finish(ctx, state, op, window_start=state.window_start)
            op = None
            continue
        # A completed operation: the window is done when its end is the stream's window end.
        op = None
        if state.window_start == state.window_end:
            return state
        op_end = parse_ts(state.window_end)


async def _start(ctx: StreamContext, state: StreamState, end: datetime) -> tuple[BulkOperationRecord, StreamState]:
    """Start an operation for ``[state.window_start, end]`` and record it before anything else."""
    window = Window(parse_ts(state.window_start) if state.window_start else None, end)
    search = builder.window_search(window.start, window.end) if ctx.resource.incremental else None
    inner = builder.bulk_query(ctx.resource, search)
    attempt = 0
    # A process killed between Shopify's answer and the commit below left an operation running
    # that no state names; the window (and so the query text) is the same now: adopt it.
    payload = {"bulkOperation": await _find_started(ctx, state, inner, end)}
    while payload["bulkOperation"] is None:
        try:
            response = await ctx.shop.client.execute(
                builder.bulk_mutation(), {"query": inner}, priority=ctx.priority, idempotent=False, operation="bulk start"
            )
        except OutcomeUnknownError as exc:
            # The answer was lost: resending blindly could leave a second, orphaned operation
            # running in one of the shop's five slots. Look for ours first.
            started = await _find_started(ctx, state, inner, end)
            if started is not None:
                log.info("%s: the bulk start's answer was lost (%s) but it started %s", ctx.label, exc.reason, started["id"])
                payload = {"bulkOperation": started}
                continue
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
    state = replace(state, bulk_operation_id=op.id, path="bulk")
    await ctx.state_store.commit(state, bulk=op)
    log.info("%s: started bulk operation %s for %s .. %s", ctx.label, op.id, op.window_start or "the beginning", op.window_end)
    return op, state


async def _find_started(ctx: StreamContext, state: StreamState, inner: str, end: datetime) -> dict | None:
    """The newest operation on the shop running exactly ``inner`` that no stream has recorded.

    Whatever its status: a failed one is handled like any failed operation (split, partial data).
    Older unrecorded copies (a start resent after a lost answer whose operation had already
    failed, then a kill) are recorded as finished, so every operation started is accounted for.
    """
    response = await ctx.shop.client.execute(builder.recent_bulk_operations_query(), priority=ctx.priority)
    found = None
    for node in response.data["bulkOperations"]["nodes"]:  # newest first
        if node.get("query") != inner or await ctx.state_store.get_bulk_operation(node["id"]) is not None:
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
    return format_ts(from_epoch(ctx.clock()))


async def _wait(ctx: StreamContext, op: BulkOperationRecord) -> BulkOperationRecord:
    """Poll ``bulkOperation(id:)`` until the operation is terminal, recording its progress."""
    started = time.monotonic()
    min_poll = ctx.settings.bulk_poll_min.total_seconds()
    max_poll = ctx.settings.bulk_poll_max.total_seconds()
    last_status = None
    while True:
        response = await ctx.shop.client.execute(builder.bulk_status_query(), {"id": op.id}, priority=ctx.priority)
        remote = response.data.get("bulkOperation")
        if remote is None:
            # Unknown to Shopify (expired long ago, or another shop's id): export again.
            remote = {"status": "EXPIRED"}
        op = replace(
            op,
            status=remote["status"],
            error_code=remote.get("errorCode"),
            object_count=int(remote.get("objectCount") or 0),
            root_object_count=int(remote.get("rootObjectCount") or 0),
            file_size=int(remote["fileSize"]) if remote.get("fileSize") else None,
            url=remote.get("url"),
            partial_data_url=remote.get("partialDataUrl"),
            completed_at=remote.get("completedAt"),
            updated_at=format_ts_now(ctx),
        )
        if op.status != last_status:
            ctx.observer.on_bulk_status(ctx.shop.name, ctx.resource.name, op.status, op.object_count)
            last_status = op.status
        await ctx.state_store.save_bulk_operation(op)
        crashpoint("polling")
        if op.status in TERMINAL:
            return op
        # Poll about ten times over the job's life so far: quick jobs are seen quickly, an hour-long
        # job is polled about once a minute (Shopify's advice), within the configured bounds.
        elapsed = time.monotonic() - started
        await ctx.sleep(min(max_poll, max(min_poll, elapsed / 10.0)))


def _paths(ctx: StreamContext, op: BulkOperationRecord, kind: str) -> tuple[Path, Path]:
    num = op.id.rsplit("/", 1)[-1]
    base = ctx.work_dir / "bulk" / ctx.shop.name / ctx.resource.name
    return base / f"{num}.{kind}.jsonl", base / f"{num}.{kind}.spill.sqlite"


async def _download(ctx: StreamContext, op: BulkOperationRecord, url: str, kind: str) -> Path:
    dest, _ = _paths(ctx, op, kind)
    expected = op.file_size if kind == "result" else None
    for _ in range(3):
        try:
            await download_to_file(
                ctx.session, url, dest, sleep=ctx.sleep, expected_size=expected, on_progress=lambda n: crashpoint("mid_download")
            )
            return dest
        except UrlExpiredError:
            # Signed URLs expire: ask Shopify for the operation again, which signs a fresh one.
            response = await ctx.shop.client.execute(builder.bulk_status_query(), {"id": op.id}, priority=ctx.priority)
            remote = response.data.get("bulkOperation") or {}
            url = remote.get("url" if kind == "result" else "partialDataUrl") or ""
            if not url or remote.get("status") == "EXPIRED":
                break
    raise QueryError(f"{ctx.label}: the result file of {op.id} can no longer be downloaded")


async def _ingest(ctx: StreamContext, state: StreamState, op: BulkOperationRecord) -> StreamState:
    """Download, reassemble and write a completed operation's records; check the root count."""
    if not op.url:  # nothing matched the query
        if op.root_object_count:
            raise IntegrityError(f"{ctx.label}: {op.id} reports {op.root_object_count} roots but no result file")
        return state
    path = await _download(ctx, op, op.url, "result")
    roots, state = await _write_file(ctx, state, op, path, keep=None)
    if roots != op.root_object_count:
        raise IntegrityError(
            f"{ctx.label}: bulk operation {op.id} reported rootObjectCount {op.root_object_count} "
            f"but its file holds {roots} root objects"
        )
    return state


async def _ingest_partial(ctx: StreamContext, state: StreamState, op: BulkOperationRecord) -> tuple[StreamState, str | None]:
    """Write what a failed operation's partial file provably covers; return where to resume.

    Shopify writes a root before its children but promises nothing about how far after; the
    export walks the roots in ``updatedAt`` order. So the roots of the partial file are ranked by
    ``updatedAt``, the last :data:`PARTIAL_TAIL_ROOTS` of them (whose children may lie beyond the
    cut) are dropped, and the window resumes at the oldest dropped root's ``updatedAt`` (inclusive,
    so ties are read again). Without ``updatedAt`` windows nothing partial is trusted.
    """
    if not ctx.resource.incremental:
        return state, state.window_start
    path = await _download(ctx, op, op.partial_data_url, "partial")
    _, spill = _paths(ctx, op, "partial")
    stamps: list[str] = []
    async for batch in _reassembled(ctx, path, spill, _FileSummary()):
        stamps.extend(r.updated_at or "" for r in batch)
    if len(stamps) <= PARTIAL_TAIL_ROOTS:
        return state, state.window_start
    stamps.sort()
    resume_at = stamps[-PARTIAL_TAIL_ROOTS]
    _, state = await _write_file(ctx, state, op, path, keep=lambda rec: (rec.get("updatedAt") or "") < resume_at)
    return state, resume_at


@dataclass
class _FileSummary:
    lines: int = 0
    roots: int = 0
    orphans: int = 0
    duplicates: int = 0


async def _reassembled(
    ctx: StreamContext, path: Path, spill: Path, summary: _FileSummary, *, keep=None
) -> AsyncIterator[list[Record]]:
    """Batches of complete records from a result file, reassembled in a worker thread.

    Parsing, the spill database and serialising are CPU and disk work proportional to the file;
    done on the event loop they would stall every other shop (and the daemon's health checks).
    A bounded queue keeps memory flat: the worker waits while the caller commits.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=2)
    stop = threading.Event()

    def put(item) -> bool:
        future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        while not stop.is_set():
            try:
                future.result(timeout=0.2)
                return True
            except concurrent.futures.TimeoutError:
                continue
        future.cancel()
        return False

    def work() -> None:
        try:
            spill.unlink(missing_ok=True)
            with BulkReassembler(ctx.resource, spill) as reassembler:
                for line in iter_lines(path):
                    if stop.is_set():
                        return
                    reassembler.feed(line)
                    summary.lines += 1
                batch: list[Record] = []
                for data in reassembler.records():
                    if keep is not None and not keep(data):
                        continue
                    batch.append(Record.from_node(shop=ctx.shop.name, resource=ctx.resource.name, data=data, text=serialize(data)))
                    if len(batch) >= INGEST_BATCH:
                        if not put(batch):
                            return
                        batch = []
                if batch and not put(batch):
                    return
                # Shopify's rootObjectCount counts the top-level connection's nodes: for a
                # parent.child resource those are the parents (locations), not the records.
                summary.roots = reassembler.parent_lines if ctx.resource.parent_field else reassembler.root_lines
                summary.orphans = reassembler.orphan_count
                summary.duplicates = reassembler.duplicate_roots
            spill.unlink(missing_ok=True)
            put(None)
        except BaseException as exc:  # handed to the event loop side, which re-raises it
            put(exc)

    worker = loop.run_in_executor(_REASSEMBLY_POOL, work)
    try:
        while True:
            item = await queue.get()
            if item is None:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        await asyncio.shield(worker)


async def _write_file(ctx: StreamContext, state: StreamState, op: BulkOperationRecord, path: Path, *, keep) -> tuple[int, StreamState]:
    """Reassemble ``path`` and commit its records in batches. Returns (root objects, state)."""
    _, spill = _paths(ctx, op, "partial" if keep is not None else "result")
    summary = _FileSummary()
    written = 0
    async for batch in _reassembled(ctx, path, spill, summary, keep=keep):
        written += len(batch)
        state = replace(state, records_in_window=state.records_in_window + len(batch))
        op = replace(op, lines_processed=summary.lines, records_written=written)
        await ctx.state_store.commit(state, batch, bulk=op)
        ctx.observer.on_records(ctx.shop.name, ctx.resource.name, "bulk", len(batch))
        crashpoint("mid_bulk_write")
    if summary.orphans:
        log.warning("%s: %d rows in %s had no parent in the file", ctx.label, summary.orphans, op.id)
    if summary.duplicates:
        log.info("%s: %d records of %s were exported twice (changed during the export); the newest copy was kept",
                 ctx.label, summary.duplicates, op.id)  # fmt: skip
    return summary.roots, state


async def _finish(ctx: StreamContext, state: StreamState, op: BulkOperationRecord, *, window_start: str | None):
    """Mark ``op`` finished and move the window's start; remove its local files."""
    op = replace(op, finished=True, updated_at=format_ts_now(ctx))
    state = replace(state, bulk_operation_id=None, window_start=window_start)
    await ctx.state_store.commit(state, bulk=op)
    for kind in ("result", "partial"):
        for p in _paths(ctx, op, kind):
            p.unlink(missing_ok=True)
    started = parse_ts(op.created_at) if op.created_at else None
    duration = (ctx.clock() - started.timestamp()) if started else 0.0
    ctx.observer.on_bulk_finished(ctx.shop.name, ctx.resource.name, op.status, duration, op.object_count)
    return op, state
