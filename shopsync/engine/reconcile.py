"""Reconciliation: compare one stream's sink rows with every id the shop has, and repair the gaps.

A run of :meth:`Reconciler.reconcile_stream`:

1. reads the stream's promise ``W`` — its watermark (for ``filter: none`` resources, the last
   success minus the safety margin) — *before* anything else (:mod:`shopsync.engine.drift` says why);
2. lists every id of the resource with its ``updatedAt`` only (``id updatedAt`` pages of 250, sorted
   by id, per parent for ``parent.child`` resources; about 1 point a record, sent at the lowest
   priority on the shop's budget, so the streams' own work goes first) — for a resource of more
   than ``[sync] bulk_threshold`` records, one bulk export of ``id updatedAt`` instead (a few
   points whatever its size, on one of the shop's bulk slots at the lowest priority);
3. reads the sink's ``(id, updated_at, deleted_at)`` and compares (:func:`~shopsync.engine.drift.compare`);
4. **repairs drift by reading the records again by id** (``nodes(ids:)`` with the resource's own
   fragment, batches sized by the page planner to stay under the cost limit, long nested lists
   drained like a page's) and writing them with the sink's newer-wins rule. Resetting the stream's
   window instead would not work: the drift this finds is an update the ``updated_at`` search
   never showed, so a window would not find it again either;
5. asks once more by id for the ids the listing did not show (``nodes(ids:)``, ``id`` only): only
   those that come back ``null`` are marked deleted at the run's start (``deleted_at``; with
   ``[reconcile] delete_rows`` the rows are then removed); any that still exists is re-read instead;
6. saves the outcome in the state row ``<resource>@reconcile`` (``watermark``: when the run
   started; ``cursor``: the findings as JSON) for ``shopsync status`` and ``/status``; each finding
   is logged with sample ids and counted (``shopsync_reconcile_*_total``).

Children that disappear with their parent (variants with their product) are part of the parent's
record, so re-reading the parent covers them. Callers must not run a stream's sync at the same time
(the daemon runs the reconciliation inside the stream's own run, after its sync).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from shopsync.engine import bulk_files, paginated
from shopsync.engine.context import StreamContext
from shopsync.engine.download import download_to_file, iter_lines
from shopsync.engine.drift import SAMPLE_SIZE, Findings, compare
from shopsync.engine.engine import SyncEngine
from shopsync.engine.records import page_shape
from shopsync.errors import (
    BulkFileError,
    LeaseLostError,
    OutcomeUnknownError,
    QueryError,
    QueryTooCostlyError,
    ShopsyncError,
    UrlExpiredError,
)
from shopsync.observability.metrics import Metrics
from shopsync.queries import Resource, builder
from shopsync.queries.builder.reconcile import MAX_NODE_IDS, exists_query, ids_resource, nodes_query
from shopsync.settings import ShopConfig
from shopsync.shopify.shape import bulk_start_problem, page_nodes
from shopsync.state import Deletion, Record, StateStore, StreamState
from shopsync.state.sink import Sink
from shopsync.timeutil import epoch_to_ts, format_ts, parse_ts

log = logging.getLogger(__name__)

#: Suffix of the state row holding a stream's last reconciliation.
RECONCILE_SUFFIX = "@reconcile"
#: Budget priority of reconciliation requests: after incremental windows (0) and backfills (1).
RECONCILE_PRIORITY = 2
#: Records listed per ids-only page (Shopify's maximum; about 252 points).
IDS_PAGE = 250
#: Records above which the ids come from a bulk export when ``[sync] bulk_threshold`` is unset
#: (paging them costs about a point each: 5,000 points is 50 s of a Standard plan's budget).
BULK_LISTING_ABOVE = 5000
#: Seconds a reconciliation's bulk export may run before the reconciliation fails.
MAX_EXPORT_SECONDS = 6 * 3600


@dataclass(frozen=True)
class ReconcileResult:
    """What one reconciliation of one stream did."""

    shop: str
    resource: str
    ok: bool
    findings: Findings = field(default_factory=Findings)
    listed: int = 0
    reread: int = 0
    deleted: int = 0
    removed: int = 0
    #: Why nothing was compared (the stream never synced), if so.
    skipped: str | None = None
    error: str | None = None

    def summary(self) -> str:
        """``shop/resource: 2 missing, 1 drifted, 3 deleted (…)`` — one line for people."""
        label = f"{self.shop}/{self.resource}"
        if not self.ok:
            return f"{label}: reconcile FAILED: {self.error}"
        if self.skipped:
            return f"{label}: not reconciled: {self.skipped}"
        f = self.findings
        if f.empty:
            return f"{label}: ok, {self.listed} records in the shop, nothing missing, drifted or deleted"
        parts = []
        for kind, ids, done in (
            ("missing", f.missing, "re-read"),
            ("drifted", f.drift, "re-read"),
            ("deleted", f.deleted, "rows removed" if self.removed else "marked deleted"),
        ):
            if ids:
                parts.append(f"{len(ids)} {kind} ({done}; e.g. {', '.join(ids[:SAMPLE_SIZE])})")
        return f"{label}: {self.listed} records in the shop; " + "; ".join(parts)


def reconcile_key(resource: str) -> str:
    return resource + RECONCILE_SUFFIX


def reconcile_summary(state: StreamState | None) -> dict[str, Any] | None:
    """The last reconciliation as stored in its ``@reconcile`` row, for status output (pure)."""
    if state is None or (state.last_success_at is None and state.last_error is None):
        return None
    counts: dict[str, Any] = {}
    if state.cursor:
        try:
            loaded = orjson.loads(state.cursor)
            if isinstance(loaded, dict):
                counts = {k: v for k, v in loaded.items() if k in ("missing", "drift", "deleted") and isinstance(v, int)}
        except orjson.JSONDecodeError:
            counts = {}
    return {
        "last_at": state.last_success_at,
        "missing": counts.get("missing", 0),
        "drift": counts.get("drift", 0),
        "deleted": counts.get("deleted", 0),
        "last_error": state.last_error,
        "last_error_at": state.last_error_at,
    }


class Reconciler:
    """Runs reconciliations on an entered :class:`SyncEngine` (its shop runtimes and budgets)."""

    def __init__(self, engine: SyncEngine, sink: Sink, *, metrics: Metrics | None = None) -> None:
        self.engine = engine
        self.sink = sink
        self.metrics = metrics
        self._first_asked: dict[tuple[str, str], float] = {}

    @property
    def _store(self) -> StateStore:
        return self.engine.state_store

    # -- scheduling --------------------------------------------------------------------------
    def every(self, shop: ShopConfig) -> timedelta:
        return shop.reconcile_every or self.engine.settings.reconcile.every

    async def due(self, shop: ShopConfig, resource: str) -> bool:
        """Whether the stream's reconciliation is due: ``every`` after the last one (kept in its
        ``@reconcile`` row). A stream never reconciled starts its clock the first time it is asked
        about in this process, so a fresh daemon does not list every store at once on its first runs.
        (That clock is not saved: a state row per stream before any reconciliation would be a row
        without a watermark among the streams'.)"""
        now = self.engine.clock()
        state = await self._store.get_stream(shop.name, reconcile_key(resource))
        last = state.watermark if state is not None else None
        if last is None:
            since = self._first_asked.setdefault((shop.name, resource), now)
        else:
            since = parse_ts(last).timestamp()
        return now - since >= self.every(shop).total_seconds()

    # -- one run -----------------------------------------------------------------------------
    async def reconcile_stream(self, shop: ShopConfig, resource: Resource) -> ReconcileResult:
        """Reconcile one stream (see the module docstring). Errors are recorded and returned, but
        :class:`~shopsync.errors.LeaseLostError` (the shop is another daemon's now), which is raised."""
        label = f"{shop.name}/{resource.name}"
        key = reconcile_key(resource.name)
        try:
            result = await self._reconcile(shop, resource)
        except LeaseLostError:
            raise  # another daemon owns the shop now: nothing to record, the caller stops its work
        except ShopsyncError as exc:
            message = f"{type(exc).__name__}: {exc}"
            log.error("%s: reconcile failed: %s", label, exc)
            await self._count_run(shop.name, resource.name, "failed")
            try:
                state = await self._store.get_stream(shop.name, key) or StreamState(shop=shop.name, resource=key)
                await self._store.save_stream(state.failed(message, self.engine.clock()))
            except ShopsyncError as store_exc:
                log.error("%s: could not record the reconcile error: %s", label, store_exc)
            return ReconcileResult(shop=shop.name, resource=resource.name, ok=False, error=message)
        await self._count_run(shop.name, resource.name, "ok")
        return result

    async def _count_run(self, shop: str, resource: str, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.reconcile_runs.labels(shop, resource, outcome).inc()

    async def _reconcile(self, shop: ShopConfig, resource: Resource) -> ReconcileResult:
        engine = self.engine
        sync = engine.settings.sync
        label = f"{shop.name}/{resource.name}"
        started = engine.clock()
        started_ts = epoch_to_ts(started)
        monotonic = time.monotonic()
        if resource.singular:
            # One object, read whole on every run; it cannot be listed and is never deleted.
            return ReconcileResult(shop=shop.name, resource=resource.name, ok=True, skipped="a single object: nothing to list")
        # The promise is read first: everything judged must have been promised before the listing.
        stream = await self._store.get_stream(shop.name, resource.name)
        bound = _bound(stream, resource, sync.safety_margin)
        if bound is None:
            return ReconcileResult(
                shop=shop.name, resource=resource.name, ok=True, skipped="the stream has not completed a sync yet"
            )
        ctx = _context(engine, shop, resource)
        key = reconcile_key(resource.name)
        rstate = await self._store.get_stream(shop.name, key) or StreamState(shop=shop.name, resource=key)
        listed = await _list_ids(ctx, rstate)
        rows = await self.sink.read_index(shop.name, resource.name)
        findings = compare(listed, rows, bound=bound)

        # The ids not listed, asked for by id: only those Shopify no longer has are deleted.
        still_there = await _existing(ctx, findings.deleted)
        if still_there:
            log.warning(
                "%s: reconcile: %d ids missing from the listing still exist (e.g. %s); re-reading them",
                label, len(still_there), ", ".join(sorted(still_there)[:SAMPLE_SIZE]),
            )
        findings = Findings(
            missing=sorted(set(findings.missing) | still_there),
            drift=findings.drift,
            deleted=[i for i in findings.deleted if i not in still_there],
        )
        reread = await self._reread(ctx, rstate, findings.reread)
        deletions = [
            Deletion(shop=shop.name, resource=resource.name, id=i, deleted_at=started_ts) for i in findings.deleted
        ]
        now_ts = epoch_to_ts(engine.clock())
        done = rstate.replace(
            watermark=started_ts,
            last_success_at=now_ts,
            cursor=orjson.dumps({**findings.counts(), "listed": len(listed), "bound": bound}).decode(),
            last_error=None,
            last_error_at=None,
            updated_at=now_ts,
        )
        written = await self._store.commit(done, deletions=deletions)
        removed = 0
        if findings.deleted and engine.settings.reconcile.delete_rows:
            removed = await self.sink.purge(shop.name, resource.name, findings.deleted)
        self._report(label, shop.name, resource.name, findings)
        log.info(
            "%s: reconciled %d records in %.1fs: %d missing, %d drifted, %d deleted (up to %s)",
            label, len(listed), time.monotonic() - monotonic, len(findings.missing), len(findings.drift),
            len(findings.deleted), bound,
        )
        return ReconcileResult(
            shop=shop.name,
            resource=resource.name,
            ok=True,
            findings=findings,
            listed=len(listed),
            reread=reread,
            deleted=written.deleted,
            removed=removed,
        )

    def _report(self, label: str, shop: str, resource: str, findings: Findings) -> None:
        for kind, ids, what in (
            ("missing", findings.missing, "in the shop but not in the sink; re-read"),
            ("drift", findings.drift, "newer in the shop than in the sink (an update the search did not show); re-read"),
            ("deleted", findings.deleted, "gone from the shop; marked deleted"),
        ):
            if not ids:
                continue
            log.warning("%s: reconcile %s: %d records %s (e.g. %s)", label, kind, len(ids), what, ", ".join(ids[:SAMPLE_SIZE]))
            if self.metrics is not None:
                counter = {
                    "missing": self.metrics.reconcile_missing,
                    "drift": self.metrics.reconcile_drift,
                    "deleted": self.metrics.reconcile_deleted,
                }[kind]
                counter.labels(shop, resource).inc(len(ids))

    async def _reread(self, ctx: StreamContext, rstate: StreamState, ids: Sequence[str]) -> int:
        """Read ``ids`` again by id with the full fragment and write them (newer wins); the count
        written. A record deleted meanwhile comes back null and is left to the deletion passes."""
        if not ids:
            return 0
        size = builder.plan_page_size(ctx.resource, bucket_size=ctx.shop.budget.snapshot().capacity)
        batch = min(size.first, MAX_NODE_IDS)
        written = 0
        pending = list(ids)
        while pending:
            chunk, pending = pending[:batch], pending[batch:]
            try:
                nodes = await _nodes(ctx, nodes_query(ctx.resource, size.nested_first), chunk, "re-read")
            except QueryTooCostlyError:
                if batch == 1:
                    raise
                batch = max(1, batch // 2)
                pending = chunk + pending
                continue
            records = [
                Record.from_node(shop=ctx.shop.name, resource=ctx.resource.name, data=await paginated._complete(ctx, node))
                for node in nodes
            ]
            if records:
                result = await ctx.state_store.commit(rstate, records)
                written += result.written
                ctx.observer.on_records(ctx.shop.name, ctx.resource.name, "reconcile", len(records))
        return written


def _bound(stream: StreamState | None, resource: Resource, margin: timedelta) -> str | None:
    """What the sink promises: records updated at or before this are all in it (None: nothing yet)."""
    if stream is None:
        return None
    if resource.incremental:
        return stream.watermark
    if stream.last_success_at is None:
        return None
    # A full read ends ``margin`` before its start, and its start is before its success.
    return format_ts(parse_ts(stream.last_success_at) - margin)


def _context(engine: SyncEngine, shop: ShopConfig, resource: Resource) -> StreamContext:
    return StreamContext(
        shop=engine.runtime(shop),
        resource=resource,
        state_store=engine.state_store,
        settings=engine.settings.sync,
        session=engine._http(),  # a large resource's ids come in a bulk file
        work_dir=engine.work_dir,
        observer=engine.observer,
        priority=RECONCILE_PRIORITY,
        clock=engine.clock,
        sleep=engine.sleep,
    )


async def _list_ids(ctx: StreamContext, rstate: StreamState) -> dict[str, str | None]:
    """Every id of the resource with its ``updatedAt``: from one bulk export of ``id updatedAt``
    for a large resource (more than ``[sync] bulk_threshold`` records, unset: 5,000, at the last reconciliation,
    else by Shopify's count; always with ``[sync] path = "bulk"``, never with ``"paginated"``),
    else — or when the export cannot be had — from ids-only pages."""
    path = ctx.settings.path
    above = ctx.settings.bulk_threshold if ctx.settings.bulk_threshold is not None else BULK_LISTING_ABOVE
    if path == "bulk" or (path == "auto" and (await _listing_size(ctx, rstate) or 0) > above):
        listed = await _list_ids_bulk(ctx)
        if listed is not None:
            return listed
    return await _list_ids_paged(ctx)


async def _listing_size(ctx: StreamContext, rstate: StreamState) -> int | None:
    """How many records the last reconciliation listed, else Shopify's count (None: unknown)."""
    if rstate.cursor:
        try:
            last = orjson.loads(rstate.cursor)
        except orjson.JSONDecodeError:
            last = None
        if isinstance(last, dict) and isinstance(last.get("listed"), int):
            return int(last["listed"])
    return await paginated.count_records(ctx, None)


async def _list_ids_bulk(ctx: StreamContext) -> dict[str, str | None] | None:
    """The listing from one bulk export, holding one of the shop's bulk slots at reconciliation's
    low priority; None (the caller lists by pages) when Shopify does not start it, its start's
    answer is lost (never resent: an orphan would hold a slot), or it does not complete."""
    ids_res = ids_resource(ctx.resource)
    ictx = dataclasses.replace(ctx, resource=ids_res)
    async with ctx.shop.bulk_slots.hold(ctx.resource.name, ctx.priority):
        try:
            response = await ctx.shop.client.execute(
                builder.bulk_mutation(),
                {"query": builder.bulk_query(ids_res, None)},
                priority=ctx.priority,
                idempotent=False,
                operation=paginated.operation(ctx, "reconcile bulk start"),
                check=bulk_start_problem,
            )
        except OutcomeUnknownError as exc:
            log.warning("%s: reconcile: the bulk export's start went unanswered (%s); listing by pages", ctx.label, exc.reason)
            return None
        payload = response.data["bulkOperationRunQuery"]
        started = payload.get("bulkOperation")
        if payload.get("userErrors") or not started:
            messages = "; ".join(str(e.get("message")) for e in payload.get("userErrors") or ()) or "no operation"
            log.info("%s: reconcile: bulk export not started (%s); listing by pages", ctx.label, messages)
            return None
        op_id = str(started["id"])
        remote = await _await_export(ictx, op_id)
    if remote.get("status") != "COMPLETED":
        log.warning("%s: reconcile: bulk export %s ended %s; listing by pages", ctx.label, op_id, remote.get("status"))
        return None
    url = remote.get("url")
    if not url:
        return {}  # COMPLETED with nothing to export: the shop has none
    dest = ctx.work_dir / "reconcile" / ctx.shop.name / f"{ctx.resource.name}-{op_id.rsplit('/', 1)[-1]}.jsonl"
    try:
        size = int(remote["fileSize"]) if remote.get("fileSize") else None
        await download_to_file(ctx.session, str(url), dest, sleep=ctx.sleep, expected_size=size)
        return _read_listing(dest, children=ids_res.parent_field is not None)
    except (UrlExpiredError, BulkFileError) as exc:
        log.warning("%s: reconcile: bulk export %s unusable (%s); listing by pages", ctx.label, op_id, exc)
        return None
    finally:
        dest.unlink(missing_ok=True)


async def _await_export(ctx: StreamContext, op_id: str) -> dict[str, Any]:
    """Poll ``bulkOperation(id:)`` until the operation is terminal, at the stream's poll bounds."""
    began = time.monotonic()
    low, high = ctx.settings.bulk_poll_min.total_seconds(), ctx.settings.bulk_poll_max.total_seconds()
    while True:
        remote = await bulk_files.bulk_status(ctx, op_id) or {"status": "EXPIRED"}
        if remote.get("status") in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED"):
            return remote
        elapsed = time.monotonic() - began
        if elapsed > MAX_EXPORT_SECONDS:
            raise QueryError(f"{ctx.label}: reconcile: bulk export {op_id} still {remote.get('status')} after {elapsed:.0f}s")
        await ctx.sleep(min(high, max(low, elapsed / 10.0)))


def _read_listing(path: Path, *, children: bool) -> dict[str, str | None]:
    """``id`` → ``updatedAt`` from an ids-only bulk file: its root lines, or for ``parent.child``
    resources its child lines (those with ``__parentId``). Raises :class:`BulkFileError`."""
    out: dict[str, str | None] = {}
    for number, line in enumerate(iter_lines(path), 1):
        try:
            row = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise BulkFileError(f"line {number} is not JSON") from exc
        if not isinstance(row, dict) or not isinstance(row.get("id"), str):
            raise BulkFileError(f"line {number} is not an object with an id")
        if ("__parentId" in row) == children:
            stamp = row.get("updatedAt")
            out[row["id"]] = stamp if isinstance(stamp, str) else None
    return out


async def _list_ids_paged(ctx: StreamContext) -> dict[str, str | None]:
    """Every id of the resource with its ``updatedAt``: ids-only pages, sorted by id."""
    ids_res = ids_resource(ctx.resource)
    ictx = dataclasses.replace(ctx, resource=ids_res)
    shape = page_shape(ids_res)
    document = builder.page_query(ids_res, IDS_PAGE)
    out: dict[str, str | None] = {}
    parents: list[str | None] = [None]
    if ids_res.parent_field:
        parents = list(await paginated.parent_ids(ictx, page_label="parents page", operation_label="reconcile parents"))
    for parent in parents:
        after: str | None = None
        seen: set[str] = set()
        while True:
            variables = builder.page_variables(IDS_PAGE, after=after, parent_id=parent)
            fetch = partial(_execute, ictx, document, variables, paginated.checker(shape), "ids")
            conn = await paginated.read_advancing_page(ictx, fetch, shape, after, seen, "ids page")
            if conn is None:  # the parent went away meanwhile
                break
            for node in page_nodes(conn):
                out[node["id"]] = node.get("updatedAt")
            info = conn["pageInfo"]
            if not info["hasNextPage"]:
                break
            after = info["endCursor"]
            seen.add(info["endCursor"])
    return out


async def _execute(
    ctx: StreamContext, document: str, variables: dict[str, Any], check: Any, what: str
) -> dict[str, Any]:
    response = await ctx.shop.client.execute(
        document, variables, priority=ctx.priority, operation=paginated.operation(ctx, f"reconcile {what}"), check=check
    )
    return response.data


async def _existing(ctx: StreamContext, ids: Sequence[str]) -> set[str]:
    """Those of ``ids`` that Shopify still returns by id."""
    found: set[str] = set()
    document = exists_query()
    for start in range(0, len(ids), MAX_NODE_IDS):
        chunk = list(ids[start : start + MAX_NODE_IDS])
        found.update(node["id"] for node in await _nodes(ctx, document, chunk, "deletion check"))
    return found & set(ids)


async def _nodes(ctx: StreamContext, document: str, ids: list[str], what: str) -> list[Mapping[str, Any]]:
    data = await _execute(ctx, document, {"ids": ids}, _nodes_problem, what)
    return [n for n in data["nodes"] if isinstance(n, dict) and isinstance(n.get("id"), str)]


def _nodes_problem(data: object) -> str | None:
    """The answer check of a ``nodes(ids:)`` query: a list of objects or nulls."""
    if not isinstance(data, Mapping) or not isinstance(data.get("nodes"), list):
        return "nodes: expected a list"
    for node in data["nodes"]:
        if node is not None and not isinstance(node, Mapping):
            return "nodes: an entry is neither an object nor null"
    return None


__all__ = [
    "RECONCILE_PRIORITY",
    "RECONCILE_SUFFIX",
    "ReconcileResult",
    "Reconciler",
    "reconcile_key",
    "reconcile_summary",
]
