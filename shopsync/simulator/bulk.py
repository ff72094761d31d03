"""Bulk query operations of a simulated shop: validation, lifecycle, result files and downloads.

Lifecycle (shopify-api-facts §3): ``bulkOperationRunQuery`` validates the inner query against the
schema and Shopify's bulk rules and answers ``userErrors`` (``INVALID``, ``LIMIT_REACHED``, or
``OPERATION_IN_PROGRESS`` when only one operation may run). An accepted operation is ``CREATED``,
then ``RUNNING`` in an asyncio task that writes JSONL rows from ``Executor.bulk_rows`` at
``bulk_objects_per_second × time_scale`` (``objectCount``/``rootObjectCount`` grow as it goes),
then ``COMPLETED`` (``url`` null when nothing matched), ``FAILED`` (``INTERNAL_SERVER_ERROR`` or
``TIMEOUT`` from the ``bulk_fail`` fault, with ``partialDataUrl`` when rows were written) or,
after ``bulkOperationCancel``, ``CANCELING`` → ``CANCELED``. A completed operation whose URL has
expired reports ``EXPIRED``.

Result files live in a temporary directory and are served by the simulator itself
(:mod:`shopsync.simulator.bulk_files`); the bulk rules a query must follow are
:mod:`shopsync.simulator.bulk_query`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from graphql import DocumentNode, GraphQLSchema

from shopsync.simulator.bulk_files import UrlSigner, abort_transport, s3_error, serve_file
from shopsync.simulator.bulk_query import MAX_CONNECTION_DEPTH, MAX_CONNECTIONS, check_bulk_query
from shopsync.simulator.exec_context import BulkQueryError
from shopsync.simulator.executor import Executor
from shopsync.simulator.faults import Faults
from shopsync.simulator.hostile import corrupt_bulk_rows
from shopsync.timeutil import format_ts, from_epoch

__all__ = [
    "MAX_CONNECTIONS",
    "MAX_CONNECTION_DEPTH",
    "TERMINAL",
    "BulkManager",
    "BulkOperation",
    "UrlSigner",
    "abort_transport",
    "check_bulk_query",
]

log = logging.getLogger(__name__)

#: Rows written between two yields to the event loop (keeps the server responsive during exports).
_CHUNK_ROWS = 500

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELED", "EXPIRED"})


# ---------------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------------
@dataclass(kw_only=True)
class BulkOperation:
    """The state of one bulk query operation (mutable: the run task updates it)."""

    number: int
    query: str
    group_objects: bool
    created_at: float
    path: Path
    status: str = "CREATED"
    type: str = "QUERY"
    error_code: str | None = None
    completed_at: float | None = None
    object_count: int = 0
    root_object_count: int = 0
    file_size: int | None = None
    has_file: bool = False
    url_expires: int | None = None
    task: asyncio.Task | None = field(default=None, repr=False)
    cancel_requested: bool = False
    cancel_event: asyncio.Event = field(default_factory=asyncio.Event, repr=False)
    finished: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    @property
    def gid(self) -> str:
        return f"gid://shopify/BulkOperation/{self.number}"


class BulkManager:
    """The bulk operations of one shop: GraphQL resolvers, run tasks and result-file downloads.

    ``public_url`` returns the server's base URL (known once it listens) for the result links.
    """

    def __init__(
        self,
        *,
        shop_name: str,
        schema: GraphQLSchema,
        executor: Executor,
        faults: Faults,
        directory: Path,
        signer: UrlSigner,
        public_url: Callable[[], str],
        clock: Callable[[], float],
        objects_per_second: float,
        max_concurrent: int,
        url_ttl: float,
        cancel_delay: float,
        start_delay: float = 0.0,
    ) -> None:
        self.shop_name = shop_name
        self.schema = schema
        self.executor = executor
        self.faults = faults
        #: Operations by status reached (CREATED, COMPLETED, FAILED, CANCELED), the most RUNNING at
        #: once (max_concurrent), and the download counters (downloads, downloads_cut, download_bytes).
        self.stats: Counter[str] = Counter()
        self.directory = directory
        self.signer = signer
        self.public_url = public_url
        self.clock = clock
        self.objects_per_second = objects_per_second
        self.max_concurrent = max_concurrent
        self.url_ttl = url_ttl
        self.cancel_delay = cancel_delay
        self.start_delay = start_delay
        #: Set by the shop: the scope a document needs but the app lacks, or ``None``.
        self.denied_scope: Callable[[DocumentNode], str | None] = lambda _doc: None
        self.operations: dict[int, BulkOperation] = {}
        self._next = 1
        directory.mkdir(parents=True, exist_ok=True)

    # -- lookups ------------------------------------------------------------------------------
    def by_gid(self, gid: str | None) -> BulkOperation | None:
        if not gid or not gid.startswith("gid://shopify/BulkOperation/"):
            return None
        tail = gid.rsplit("/", 1)[-1]
        return self.operations.get(int(tail)) if tail.isdigit() else None

    def running(self) -> list[BulkOperation]:
        return [op for op in self.operations.values() if op.status in ("CREATED", "RUNNING", "CANCELING")]

    def status_of(self, op: BulkOperation) -> str:
        if op.status == "COMPLETED" and op.url_expires is not None and self.clock() >= op.url_expires:
            return "EXPIRED"
        return op.status

    def file_path(self, op: BulkOperation) -> str:
        return f"/_sim/files/{self.shop_name}/{op.path.name}"

    def to_node(self, op: BulkOperation) -> dict[str, Any]:
        """The ``BulkOperation`` object as plain data (UnsignedInt64 values are strings, as on Shopify)."""
        url = partial = None
        if op.has_file and op.url_expires is not None:
            signed = self.signer.sign(self.public_url(), self.file_path(op), op.url_expires)
            if op.status == "COMPLETED":
                url = signed
            elif op.status == "FAILED":
                partial = signed
        return {
            "__typename": "BulkOperation",
            "id": op.gid,
            "status": self.status_of(op),
            "type": op.type,
            "errorCode": op.error_code,
            "createdAt": format_ts(from_epoch(op.created_at)),
            "completedAt": format_ts(from_epoch(op.completed_at)) if op.completed_at is not None else None,
            "objectCount": str(op.object_count),
            "rootObjectCount": str(op.root_object_count),
            "fileSize": str(op.file_size) if op.file_size is not None else None,
            "url": url,
            "partialDataUrl": partial,
            "query": op.query,
        }

    # -- resolvers (registered with the executor) --------------------------------------------
    def resolve_bulk_operation(self, args: dict, context: Any = None) -> dict | None:
        op = self.by_gid(args.get("id"))
        return self.to_node(op) if op else None

    def resolve_current(self, args: dict, context: Any = None) -> dict | None:
        wanted = args.get("type") or "QUERY"
        ops = [op for op in self.operations.values() if op.type == wanted]
        return self.to_node(max(ops, key=lambda o: o.number)) if ops else None

    def resolve_list(self, args: dict, context: Any = None) -> dict:
        """``bulkOperations(first:, after:, query: "status:RUNNING type:QUERY", reverse:, sortKey:)``."""
        filters = _parse_filter(args.get("query"))
        ops = sorted(self.operations.values(), key=lambda o: o.number, reverse=True)  # newest first
        if args.get("sortKey") == "COMPLETED_AT":
            ops.sort(key=lambda o: (o.completed_at or 0.0, o.number), reverse=True)
        if args.get("reverse"):
            ops.reverse()
        out = []
        for op in ops:
            status = self.status_of(op)
            if "status" in filters and status.lower() not in filters["status"]:
                continue
            if "type" in filters and op.type.lower() not in filters["type"]:
                continue
            if "id" in filters and str(op.number) not in filters["id"] and op.gid.lower() not in filters["id"]:
                continue
            out.append(op)
        start = 0
        if args.get("after"):
            start = next((i + 1 for i, op in enumerate(out) if _cursor(op) == args["after"]), len(out))
        size = args.get("first") or args.get("last") or len(out) or 1
        page = out[start : start + size]
        nodes = [self.to_node(op) for op in page]
        return {
            "__typename": "BulkOperationConnection",
            "nodes": nodes,
            "edges": [{"__typename": "BulkOperationEdge", "cursor": _cursor(op), "node": n} for op, n in zip(page, nodes, strict=True)],
            "pageInfo": {
                "__typename": "PageInfo",
                "hasNextPage": start + size < len(out),
                "hasPreviousPage": start > 0,
                "startCursor": _cursor(page[0]) if page else None,
                "endCursor": _cursor(page[-1]) if page else None,
            },
        }

    def resolve_run_query(self, args: dict, context: Any = None) -> dict:
        """``bulkOperationRunQuery(query:, groupObjects:)`` → payload with ``userErrors``."""
        query = args.get("query") or ""
        group = bool(args.get("groupObjects", False))
        busy = self.running()
        if len(busy) >= self.max_concurrent:
            if self.max_concurrent == 1:
                err = _user_error(
                    None, f"A bulk query operation for this app and shop is already in progress: {busy[0].gid}.", "OPERATION_IN_PROGRESS"
                )
            else:
                err = _user_error(
                    None, f"Bulk operations limit reached ({self.max_concurrent} running). Please try again later.", "LIMIT_REACHED"
                )
            return _payload(None, [err])
        document, problems = check_bulk_query(self.schema, query)
        if document is None:
            return _payload(None, [_user_error(["query"], p, "INVALID") for p in problems])
        try:
            # Refuses (before reading anything) what the simulator cannot export, e.g. a bad search.
            rows = self.executor.bulk_rows(document, group_objects=group, root_order=self.faults.settings.bulk_order)
        except BulkQueryError as exc:
            messages = [e.get("message", str(exc)) for e in exc.errors] or [str(exc)]
            return _payload(None, [_user_error(["query"], f"Invalid bulk query: {m}", "INVALID") for m in messages])
        number = self._next
        self._next += 1
        op = BulkOperation(
            number=number,
            query=query,
            group_objects=group,
            created_at=self.clock(),
            path=self.directory / f"bulk-{number}-{secrets.token_hex(6)}.jsonl",
        )
        self.operations[number] = op
        self.stats["CREATED"] += 1
        op.task = asyncio.get_running_loop().create_task(self._run(op, document, rows), name=f"sim-bulk-{self.shop_name}-{number}")
        return _payload(self.to_node(op), [])

    def resolve_cancel(self, args: dict, context: Any = None) -> dict:
        op = self.by_gid(args.get("id"))
        if op is None:
            return {"__typename": "BulkOperationCancelPayload", "bulkOperation": None,
                    "userErrors": [{"__typename": "UserError", "field": ["id"], "message": "Bulk operation does not exist"}]}
        if op.status in TERMINAL or op.status == "CANCELING":
            state = self.status_of(op).lower()
            return {"__typename": "BulkOperationCancelPayload", "bulkOperation": self.to_node(op),
                    "userErrors": [{"__typename": "UserError", "field": None, "message": f"A bulk operation cannot be canceled when it is {state}"}]}
        op.cancel_requested = True
        op.cancel_event.set()
        op.status = "CANCELING"
        return {"__typename": "BulkOperationCancelPayload", "bulkOperation": self.to_node(op), "userErrors": []}

    # -- the run task ---------------------------------------------------------------------------
    async def _run(self, op: BulkOperation, document: DocumentNode, clean_rows: Iterator[dict]) -> None:
        loop = asyncio.get_running_loop()
        if self.denied_scope(document) is not None:
            # Shopify accepts the operation and fails it: "run the query normally to see which field".
            await asyncio.sleep(0)
            self._finish(op, "FAILED", error_code="ACCESS_DENIED")
            return
        failure = self.faults.take_bulk_failure()
        bad_line = self.faults.take("bulk_bad_line")
        rows: Iterator[dict | bytes] = iter(clean_rows)
        if bad_line is not None:  # counted when armed; "bad_lines" counts those actually written
            rows = corrupt_bulk_rows(clean_rows, bad_line, lambda: self.stats.update(("bad_lines",)))
        try:
            fail_at: int | None = None
            if failure is not None:
                # The failure point is a fraction of the whole export, so count it first.
                total = 0
                for i, _ in enumerate(self.executor.bulk_rows(document, group_objects=op.group_objects)):
                    total += 1
                    if i % 5000 == 4999:
                        await asyncio.sleep(0)
                fail_at = math.floor(total * failure.after)
            if self.start_delay > 0 and not op.cancel_requested:
                # Queued at Shopify: CREATED for a while, a cancel ends the wait at once.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(op.cancel_event.wait(), self.start_delay)
            if not op.cancel_requested:
                op.status = "RUNNING"
                # The most operations seen RUNNING at once (the 5-slot limit is on these).
                running = sum(1 for o in self.operations.values() if o.status == "RUNNING")
                self.stats["max_concurrent"] = max(self.stats["max_concurrent"], running)
            rate = self.objects_per_second
            # About 50 ms of rows per chunk, so the counts grow smoothly at the simulated speed.
            chunk_rows = max(1, min(_CHUNK_ROWS, int(rate * 0.05))) if rate > 0 else _CHUNK_ROWS
            start = loop.time()
            with op.path.open("wb") as out:
                done = False
                while not done:
                    if op.cancel_requested:
                        break
                    lines: list[bytes] = []
                    for row in rows:
                        if fail_at is not None and op.object_count + len(lines) >= fail_at:
                            done = True
                            break
                        if isinstance(row, bytes):  # a hostile line, written as it is
                            lines.append(row)
                            continue
                        lines.append(orjson.dumps(row))
                        if "__parentId" not in row:
                            op.root_object_count += 1
                        if len(lines) >= chunk_rows:
                            break
                    else:
                        done = True
                    if lines:
                        out.write(b"\n".join(lines) + b"\n")
                        op.object_count += len(lines)
                    # Pace to the simulated export speed; sleep(0) at least, to let requests in.
                    delay = start + op.object_count / rate - loop.time() if rate > 0 else 0.0
                    if delay > 0:
                        with contextlib.suppress(TimeoutError):  # a cancel wakes the pacing early
                            await asyncio.wait_for(op.cancel_event.wait(), timeout=delay)
                    else:
                        await asyncio.sleep(0)
                out.flush()
            op.file_size = op.path.stat().st_size
            op.has_file = op.object_count > 0 and not op.cancel_requested
            if op.cancel_requested:
                await asyncio.sleep(self.cancel_delay)
                self._finish(op, "CANCELED")
            elif failure is not None:
                self._finish(op, "FAILED", error_code=failure.error_code)
            else:
                self._finish(op, "COMPLETED")
        except asyncio.CancelledError:
            self._finish(op, "CANCELED")
            raise
        except Exception:  # a bug in the executor must not leave the operation RUNNING forever
            log.exception("simulator: bulk operation %s of shop %s crashed", op.gid, self.shop_name)
            op.has_file = op.path.exists() and op.object_count > 0
            self._finish(op, "FAILED", error_code="INTERNAL_SERVER_ERROR")
            self.stats["crashed"] += 1

    def _finish(self, op: BulkOperation, status: str, *, error_code: str | None = None) -> None:
        if op.status in TERMINAL:
            return
        now = self.clock()
        op.status = status
        op.error_code = error_code
        op.completed_at = now
        if status == "COMPLETED" and op.object_count == 0:
            op.has_file = False  # Shopify: url is null when the query matched nothing
        if op.has_file:
            op.url_expires = int(now + self.url_ttl)
        self.stats[status] += 1
        op.finished.set()

    async def close(self) -> None:
        """Cancel the running tasks (server shutdown)."""
        tasks = [op.task for op in self.operations.values() if op.task and not op.task.done()]
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t

    # -- downloads ------------------------------------------------------------------------------
    async def download(self, request: web.Request) -> web.StreamResponse:
        """Serve a result file: signed URL check, ``Range`` support, the ``download_cut`` fault."""
        name = request.match_info["name"]
        op = next((o for o in self.operations.values() if o.path.name == name and o.has_file), None)
        if op is None:
            return s3_error(404, "NoSuchKey", "The specified key does not exist.")
        problem = self.signer.check(self.file_path(op), request.query.get("Expires"), request.query.get("Signature"), self.clock())
        if problem == "ExpiredRequest":
            return s3_error(403, "AccessDenied", "Request has expired")
        if problem is not None:
            return s3_error(403, problem, "The request signature we calculated does not match the signature you provided.")
        return await serve_file(request, op.path, etag_id=op.gid.rsplit("/", 1)[-1], stats=self.stats, faults=self.faults)


def _cursor(op: BulkOperation) -> str:
    return f"bulk:{op.number}"


def _user_error(fld: list[str] | None, message: str, code: str) -> dict:
    return {"__typename": "BulkOperationUserError", "field": fld, "message": message, "code": code}


def _payload(node: dict | None, errors: list[dict]) -> dict:
    return {"__typename": "BulkOperationRunQueryPayload", "bulkOperation": node, "userErrors": errors}


def _parse_filter(query: str | None) -> dict[str, set[str]]:
    """``"status:RUNNING type:QUERY"`` → ``{"status": {"running"}, "type": {"query"}}`` (AND of terms)."""
    out: dict[str, set[str]] = {}
    for term in (query or "").split():
        if term.upper() in ("AND", "OR") or ":" not in term:
            continue
        key, _, value = term.partition(":")
        out.setdefault(key.lower(), set()).add(value.strip("'\"").lower())
    return out
