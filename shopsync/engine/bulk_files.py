"""A bulk operation's file → records in the sink: download, reassemble, write in batches, check.

A COMPLETED operation's result file is downloaded (Range-resumed, see :mod:`~shopsync.engine.download`),
reassembled in a worker thread (:mod:`~shopsync.engine.reassembly`: each line parsed once,
children onto parents by ``__parentId``, within the ``[sync] ingest_memory`` budget; a file past
it is read by ``[sync] ingest_workers`` processes at once, :mod:`~shopsync.engine.spill_worker`), and its
records committed in large batches with the stream's state; its root lines must match the
operation's ``rootObjectCount``. A FAILED operation's partial file gives only the records that are
provably complete (:func:`ingest_partial`). The bulk path's orchestration is :mod:`~shopsync.engine.bulk`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import itertools
import logging
import threading
from collections.abc import AsyncIterator, Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shopsync.crashpoints import crashpoint
from shopsync.engine.context import MAX_CONCURRENT_INGEST, StreamContext
from shopsync.engine.download import download_to_file, iter_line_blocks
from shopsync.engine.paginated import operation
from shopsync.engine.reassembly import BulkReassembler
from shopsync.engine.spill_worker import SLOTS, TextColumns, columns_from_worker, parts_for, spill_in_parts
from shopsync.errors import BulkFileError, IntegrityError, QueryError, UrlExpiredError
from shopsync.queries import builder
from shopsync.shopify.shape import bulk_operation_problem
from shopsync.state.models import BulkOperationRecord, RecordTexts, StreamState

log = logging.getLogger(__name__)

#: Records written per commit while ingesting a result file, and the most JSON text one batch
#: holds: large batches make one commit (one fsync) cheap against the rows it covers.
INGEST_BATCH = 5000
INGEST_BATCH_BYTES = 8 << 20

#: The reassembly workers' own threads: long jobs on the default pool (min(32, cores + 4) threads)
#: would leave few threads for every other stream's download open/fsync calls.
_REASSEMBLY_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=MAX_CONCURRENT_INGEST, thread_name_prefix="bulk-reassembly")


def file_paths(ctx: StreamContext, op: BulkOperationRecord, kind: str) -> tuple[Path, Path]:
    num = op.id.rsplit("/", 1)[-1]
    base = ctx.work_dir / "bulk" / ctx.shop.name / ctx.resource.name
    return base / f"{num}.{kind}.jsonl", base / f"{num}.{kind}.spill.sqlite"


async def bulk_status(ctx: StreamContext, op_id: str) -> dict[str, Any] | None:
    """Shopify's ``bulkOperation(id:)`` now (its status, counts and signed URLs), or None when
    Shopify does not know the id."""
    response = await ctx.shop.client.execute(
        builder.bulk_status_query(),
        {"id": op_id},
        priority=ctx.priority,
        operation=operation(ctx, "bulk status"),
        check=bulk_operation_problem,
    )
    remote: dict[str, Any] | None = response.data.get("bulkOperation")
    return remote


async def download_file(ctx: StreamContext, op: BulkOperationRecord, url: str, kind: str) -> Path:
    dest, _ = file_paths(ctx, op, kind)
    expected = op.file_size if kind == "result" else None
    for _ in range(3):
        try:
            await download_to_file(
                ctx.session, url, dest, sleep=ctx.sleep, expected_size=expected, on_progress=lambda n: crashpoint("mid_download")
            )
            return dest
        except UrlExpiredError:
            # Signed URLs expire: ask Shopify for the operation again, which signs a fresh one.
            remote = await bulk_status(ctx, op.id) or {}
            url = remote.get("url" if kind == "result" else "partialDataUrl") or ""
            if not url or remote.get("status") == "EXPIRED":
                break
    raise QueryError(f"{ctx.label}: the result file of {op.id} can no longer be downloaded")


async def ingest_result(ctx: StreamContext, state: StreamState, op: BulkOperationRecord) -> StreamState:
    """Download, reassemble and write a completed operation's records; check the root count."""
    if not op.url:  # nothing matched the query
        if op.root_object_count:
            raise IntegrityError(f"{ctx.label}: {op.id} reports {op.root_object_count} roots but no result file")
        return state
    path = await download_file(ctx, op, op.url, "result")
    roots, state = await write_file(ctx, state, op, path, keep=None)
    if roots != op.root_object_count:
        raise IntegrityError(
            f"{ctx.label}: bulk operation {op.id} reported rootObjectCount {op.root_object_count} "
            f"but its file holds {roots} root objects"
        )
    return state


async def ingest_partial(
    ctx: StreamContext, state: StreamState, op: BulkOperationRecord
) -> tuple[BulkOperationRecord, StreamState, int]:
    """Write the records of a failed operation's partial file that are provably complete.

    Returns the operation (its ``records_written`` set), the state and the records written. What
    is written only saves work: the window is exported again whatever the file held (the upsert
    makes the second copy harmless), because the file's roots follow no order one could resume
    after — not the sort key, and inventory items have none.

    A record is complete when the file cannot still hold lines of it. The file is cut at an
    arbitrary line, and in an ungrouped file (``groupObjects: false``) a child line may come any
    distance after its parent (whether it always comes after is undocumented), so *any* root with
    a nested connection may have lost children past the cut, not only the last one. Only when the
    resource selects no nested connection is each record one whole line (inventory items; the
    levels of ``locations.inventoryLevels``, whose lines need nothing of their parent's): then
    every record of the file is complete and written. Otherwise no record can be proven complete
    and none is written. A file with a broken line is not used at all.
    """
    if ctx.resource.has_nested or not op.partial_data_url:
        return op, state, 0
    path = await download_file(ctx, op, op.partial_data_url, "partial")
    before = state.records_in_window
    try:
        _, state = await write_file(ctx, state, op, path, keep=_keep_all)
    except BulkFileError as exc:
        # Raised while the file is read, before any of its records is handed out.
        log.warning("%s: the partial file of %s is not used: %s", ctx.label, op.id, exc)
        return op, state, 0
    written = state.records_in_window - before
    return op.with_progress(records_written=written), state, written


def _keep_all(_data: dict[str, Any]) -> bool:
    """Keep every record (of a partial file whose records are all complete)."""
    return True


@dataclass
class _FileSummary:
    lines: int = 0
    roots: int = 0
    orphans: int = 0
    duplicates: int = 0


#: Which reassembled records of a file to write (None: all of them).
Keep = Callable[[dict[str, Any]], bool] | None
#: What the reassembly worker hands the event loop: a batch, its failure, or None at the end.
_Item = RecordTexts | BaseException | None
#: Records of a file read in this process, gathered into columns this many at a time.
_CHUNK_RECORDS = 500


def text_columns(texts: Iterable[tuple[str, str | None, bytes]]) -> Generator[TextColumns, None, None]:
    """Reassembled ``texts`` (:meth:`BulkReassembler.texts`) as columns of up to
    :data:`_CHUNK_RECORDS` records, the form a spill worker sends them in."""
    it = iter(texts)
    while chunk := list(itertools.islice(it, _CHUNK_RECORDS)):
        ids, updated_at, data = zip(*chunk, strict=True)
        yield list(ids), list(updated_at), list(data)


def record_batches(
    columns: Iterable[TextColumns], shop: str, resource: str, *, keep: Keep = None
) -> Iterator[RecordTexts]:
    """The records of reassembled ``columns`` in commit batches of about :data:`INGEST_BATCH`
    records or :data:`INGEST_BATCH_BYTES` of JSON (a batch ends after the chunk that reaches either).

    Each record's JSON text is made once, in reassembly, and goes to the sink as is, in columns:
    no object per record (:class:`~shopsync.state.models.RecordTexts`).
    """
    ids: list[str] = []
    updated: list[str | None] = []
    texts: list[bytes] = []
    size = 0
    for chunk_ids, chunk_updated, chunk_texts in columns:
        if keep is not None:
            kept = [i for i, text in enumerate(chunk_texts) if keep(orjson.loads(text))]
            chunk_ids = [chunk_ids[i] for i in kept]
            chunk_updated = [chunk_updated[i] for i in kept]
            chunk_texts = [chunk_texts[i] for i in kept]
        ids += chunk_ids
        updated += chunk_updated
        texts += chunk_texts
        size += sum(map(len, chunk_texts))
        if len(ids) >= INGEST_BATCH or size >= INGEST_BATCH_BYTES:
            yield RecordTexts(shop, resource, ids, updated, texts)
            ids, updated, texts, size = [], [], [], 0
    if ids:
        yield RecordTexts(shop, resource, ids, updated, texts)


async def _reassembled(
    ctx: StreamContext, path: Path, spill: Path, summary: _FileSummary, *, keep: Keep = None, strict: bool = True
) -> AsyncIterator[RecordTexts]:
    """Batches of complete records from a result file, reassembled in a worker thread.

    Parsing, the spill database and serialising are CPU and disk work proportional to the file;
    done on the event loop they would stall every other shop (and the daemon's health checks).
    A bounded queue keeps memory flat: the worker waits while the caller commits.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[_Item] = asyncio.Queue(maxsize=2)
    stop = threading.Event()

    def put(item: _Item) -> bool:
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
        parts = 1
        try:
            spill.unlink(missing_ok=True)
            budget = ctx.settings.ingest_memory
            workers = ctx.settings.ingest_workers
            parts = SLOTS.take(parts_for(path.stat().st_size, workers=workers, memory_budget=budget), workers)
            with BulkReassembler(ctx.resource, spill, strict=strict, memory_budget=budget) as reassembler:
                if parts > 1:
                    if not spill_in_parts(reassembler, path, parts, strict=strict, stop=stop.is_set):
                        return
                else:
                    for block in iter_line_blocks(path):
                        if stop.is_set():
                            return
                        reassembler.feed_lines(block)
                        summary.lines = reassembler.lines
                summary.lines = reassembler.lines
                # A file read in parts is read back by a worker too, while this process writes.
                columns = (
                    columns_from_worker(reassembler, path, stop=stop.is_set) if parts > 1
                    else text_columns(reassembler.texts())
                )  # fmt: skip
                with contextlib.closing(columns):
                    for batch in record_batches(columns, ctx.shop.name, ctx.resource.name, keep=keep):
                        if not put(batch):
                            return
                if stop.is_set():  # the worker's records were cut short: this is not the file's end
                    return
                # Shopify's rootObjectCount counts the top-level connection's nodes: for a
                # parent.child resource those are the parents (locations), not the records.
                summary.roots = reassembler.parent_lines if ctx.resource.parent_field else reassembler.root_lines
                summary.orphans = reassembler.orphan_count
                summary.duplicates = reassembler.duplicate_roots
            SLOTS.give(parts)  # every worker of this file has ended
            parts = 1
            spill.unlink(missing_ok=True)
            put(None)
        except BaseException as exc:  # handed to the event loop side, which re-raises it
            put(exc)
        finally:
            SLOTS.give(parts)

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


async def write_file(
    ctx: StreamContext, state: StreamState, op: BulkOperationRecord, path: Path, *, keep: Keep
) -> tuple[int, StreamState]:
    """Reassemble ``path`` and commit its records in batches. Returns (root objects, state)."""
    _, spill = file_paths(ctx, op, "partial" if keep is not None else "result")
    summary = _FileSummary()
    written = 0
    # A complete file must hold every child's parent; a partial one (keep is set) is cut short.
    async for batch in _reassembled(ctx, path, spill, summary, keep=keep, strict=keep is None):
        written += len(batch)
        state = state.with_records(len(batch))
        op = op.with_progress(lines_processed=summary.lines, records_written=written)
        await ctx.state_store.commit(state, batch, bulk=op)
        ctx.observer.on_records(ctx.shop.name, ctx.resource.name, "bulk", len(batch))
        crashpoint("mid_bulk_write")
    if summary.orphans:
        log.warning("%s: %d rows in %s had no parent in the file", ctx.label, summary.orphans, op.id)
    if summary.duplicates:
        log.info("%s: %d records of %s were exported twice (changed during the export); the newest copy was kept",
                 ctx.label, summary.duplicates, op.id)  # fmt: skip
    return summary.roots, state
