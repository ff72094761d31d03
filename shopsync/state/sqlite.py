"""SQLite state store (the embedded default) and the asyncio-friendly SQLite connection it runs on.

:class:`SqliteDatabase` owns one ``sqlite3`` connection and one worker thread; every statement runs
on that thread, and a transaction is one callable submitted to it, so the event loop never blocks
and transactions never interleave. The file is opened in WAL mode with ``synchronous=FULL``: a
commit that returned survives a crash or a power loss, and readers (``shopsync status``) do not
block the writer.

:class:`SqliteStateStore` keeps ``stream_state`` and ``bulk_operations`` in that database. When the
sink is a :class:`shopsync.sinks.sqlite.SqliteSink` on the *same* :class:`SqliteDatabase` object,
:meth:`SqliteStateStore.commit` writes the rows and the checkpoint in one transaction.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from shopsync.engine.crashpoints import crashpoint
from shopsync.errors import StorageError
from shopsync.state.base import settle
from shopsync.state.models import (
    BulkOperationRecord,
    CommitResult,
    Deletion,
    Record,
    StreamState,
    WriteResult,
)

if TYPE_CHECKING:
    from shopsync.sinks.base import Sink

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Version of the state tables this code writes. Bump with a migration in ``_MIGRATIONS``.
STATE_SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

_STREAM_COLUMNS = tuple(f.name for f in dataclasses.fields(StreamState))
_BULK_COLUMNS = tuple(f.name for f in dataclasses.fields(BulkOperationRecord))

_STATE_SCHEMA = """
CREATE TABLE IF NOT EXISTS stream_state (
    shop              TEXT NOT NULL,
    resource          TEXT NOT NULL,
    watermark         TEXT,
    window_start      TEXT,
    window_end        TEXT,
    path              TEXT,
    cursor            TEXT,
    bulk_operation_id TEXT,
    records_in_window INTEGER NOT NULL DEFAULT 0,
    last_success_at   TEXT,
    last_error        TEXT,
    last_error_at     TEXT,
    parked_until      TEXT,
    parked_reason     TEXT,
    updated_at        TEXT,
    PRIMARY KEY (shop, resource)
);
CREATE TABLE IF NOT EXISTS bulk_operations (
    id                TEXT NOT NULL PRIMARY KEY,
    shop              TEXT NOT NULL,
    resource          TEXT NOT NULL,
    window_start      TEXT,
    window_end        TEXT,
    status            TEXT NOT NULL,
    error_code        TEXT,
    created_at        TEXT,
    completed_at      TEXT,
    object_count      INTEGER NOT NULL DEFAULT 0,
    root_object_count INTEGER NOT NULL DEFAULT 0,
    file_size         INTEGER,
    url               TEXT,
    partial_data_url  TEXT,
    bytes_downloaded  INTEGER NOT NULL DEFAULT 0,
    lines_processed   INTEGER NOT NULL DEFAULT 0,
    records_written   INTEGER NOT NULL DEFAULT 0,
    finished          INTEGER NOT NULL DEFAULT 0,
    updated_at        TEXT
);
CREATE INDEX IF NOT EXISTS bulk_operations_unfinished ON bulk_operations (finished, shop, resource);
"""


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    cols = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"


_SAVE_STREAM_SQL = _upsert_sql("stream_state", _STREAM_COLUMNS, ("shop", "resource"))
_SAVE_BULK_SQL = _upsert_sql("bulk_operations", _BULK_COLUMNS, ("id",))


class SqliteDatabase:
    """One SQLite file, one connection, one worker thread; shared by the state store and the sink.

    ``open``/``close`` are reference counted so the state store and a sink on the same file can each
    open and close it; the connection closes with the last ``close``.
    """

    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._users = 0
        self._lock = asyncio.Lock()

    @property
    def url(self) -> str:
        return f"sqlite://{self.path}"

    def __repr__(self) -> str:
        return f"SqliteDatabase({str(self.path)!r})"

    def _fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} failed on SQLite database {self.path}: {exc}")

    async def open(self) -> None:
        """Open the file (creating it and its directory if missing) with WAL and full sync."""
        async with self._lock:
            if self._users:
                self._users += 1
                return
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.path.name}")
            loop = asyncio.get_running_loop()
            try:
                self._conn = await loop.run_in_executor(executor, self._connect)
            except BaseException:
                executor.shutdown(wait=False)
                raise
            self._executor = executor
            self._users = 1

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail("opening", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                # Still durable with synchronous=FULL, only readers block the writer.
                log.warning("SQLite database %s: WAL mode unavailable (journal_mode=%s)", self.path, mode)
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = OFF")
            # Make sure the file really exists and is writable now, not at the first commit.
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)"
            )
            conn.execute("COMMIT")
        except (sqlite3.Error, OSError) as exc:
            conn.close()
            raise self._fail("opening", exc) from exc
        return conn

    async def close(self) -> None:
        """Drop one user; the last one closes the connection (after queued work finished)."""
        async with self._lock:
            if not self._users:
                return
            self._users -= 1
            if self._users:
                return
            conn, executor = self._conn, self._executor
            self._conn = self._executor = None
            assert conn is not None and executor is not None
            try:
                await asyncio.get_running_loop().run_in_executor(executor, conn.close)
            except sqlite3.Error as exc:
                raise self._fail("closing", exc) from exc
            finally:
                executor.shutdown(wait=False)

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    async def run(self, fn: Callable[[sqlite3.Connection], T], *, what: str) -> T:
        """Run ``fn(conn)`` on the database thread outside any explicit transaction (reads)."""
        return await self._submit(functools.partial(self._call, fn, what))

    async def transaction(self, fn: Callable[[sqlite3.Connection], T], *, what: str) -> T:
        """Run ``fn(conn)`` inside ``BEGIN IMMEDIATE … COMMIT`` on the database thread.

        If ``fn`` raises, the transaction is rolled back and the error re-raised (sqlite and OS
        errors as StorageError naming the file and ``what``). The commit is durable on return.
        """
        return await self._submit(functools.partial(self._call_in_transaction, fn, what))

    async def _submit(self, job: Callable[[], T]) -> T:
        if self._conn is None or self._executor is None:
            raise StorageError(f"SQLite database {self.path} is not open")
        # A job on the thread cannot be interrupted anyway; settle() also makes the caller wait for
        # it, so after a cancellation nothing of the caller's is still running.
        return await settle(asyncio.get_running_loop().run_in_executor(self._executor, job))

    def _call(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        conn = self._conn
        if conn is None:
            raise StorageError(f"SQLite database {self.path} is not open")
        try:
            return fn(conn)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail(what, exc) from exc

    def _call_in_transaction(self, fn: Callable[[sqlite3.Connection], T], what: str) -> T:
        conn = self._conn
        if conn is None:
            raise StorageError(f"SQLite database {self.path} is not open")
        try:
            conn.execute("BEGIN IMMEDIATE")
            result = fn(conn)
            conn.execute("COMMIT")
            return result
        except BaseException as exc:
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    log.exception("SQLite database %s: rollback after a failed %s failed", self.path, what)
            if isinstance(exc, (sqlite3.Error, OSError)):
                raise self._fail(what, exc) from exc
            raise

    # -- schema versions (the meta table), used by the state store and the sink ---------------------

    def ensure_schema_version(
        self, conn: sqlite3.Connection, key: str, current: int, create: Callable[[], None]
    ) -> None:
        """Inside a transaction: create the schema part ``key`` if missing, refuse a newer one."""
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            create()
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (key, str(current)))
            return
        found = int(row[0])
        if found > current:
            raise StorageError(
                f"SQLite database {self.path} has {key} {found}, newer than this shopsync understands "
                f"({current}); upgrade shopsync or point it at another database"
            )
        if found < current:
            # No older versions exist yet; a future migration goes here, step by step.
            raise StorageError(
                f"SQLite database {self.path} has {key} {found}; no migration to {current} known"
            )


def _stream_from_row(row: Sequence[Any]) -> StreamState:
    return StreamState(**dict(zip(_STREAM_COLUMNS, row, strict=True)))


def _bulk_from_row(row: Sequence[Any]) -> BulkOperationRecord:
    values = dict(zip(_BULK_COLUMNS, row, strict=True))
    values["finished"] = bool(values["finished"])
    return BulkOperationRecord(**values)


def _stream_params(state: StreamState) -> tuple[Any, ...]:
    return tuple(getattr(state, c) for c in _STREAM_COLUMNS)


def _bulk_params(rec: BulkOperationRecord) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, bool) else v for v in (getattr(rec, c) for c in _BULK_COLUMNS))


class SqliteStateStore:
    """The :class:`~shopsync.state.base.StateStore` on a SQLite file.

    ``sink`` is where :meth:`commit` writes records. A :class:`~shopsync.sinks.sqlite.SqliteSink`
    whose ``database`` is this store's ``database`` is written in the same transaction; any other
    sink is written (durably) first and the state saved after.
    """

    def __init__(self, database: SqliteDatabase, sink: Sink | None = None) -> None:
        self.database = database
        self.sink = sink
        self._opened = False

    @property
    def url(self) -> str:
        return self.database.url

    def __repr__(self) -> str:
        return f"SqliteStateStore({str(self.database.path)!r})"

    @property
    def shares_transaction(self) -> bool:
        """True when :meth:`commit` writes rows and state in one transaction."""
        return getattr(self.sink, "database", None) is self.database and hasattr(self.sink, "write_in")

    async def open(self) -> None:
        if self._opened:
            return
        await self.database.open()
        try:
            await self.database.transaction(self._create_schema, what="creating the state tables")
        except BaseException:
            await self.database.close()
            raise
        self._opened = True

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        def create() -> None:
            for statement in _STATE_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

        self.database.ensure_schema_version(conn, "state_schema_version", STATE_SCHEMA_VERSION, create)

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self.database.close()

    async def get_stream(self, shop: str, resource: str) -> StreamState | None:
        sql = f"SELECT {', '.join(_STREAM_COLUMNS)} FROM stream_state WHERE shop = ? AND resource = ?"
        row = await self.database.run(
            lambda conn: conn.execute(sql, (shop, resource)).fetchone(),
            what=f"reading stream state of {shop}/{resource}",
        )
        return None if row is None else _stream_from_row(row)

    async def list_streams(self) -> list[StreamState]:
        sql = f"SELECT {', '.join(_STREAM_COLUMNS)} FROM stream_state ORDER BY shop, resource"
        rows = await self.database.run(
            lambda conn: conn.execute(sql).fetchall(), what="listing stream states"
        )
        return [_stream_from_row(r) for r in rows]

    async def save_stream(self, state: StreamState) -> None:
        params = _stream_params(state)
        await self.database.transaction(
            lambda conn: conn.execute(_SAVE_STREAM_SQL, params),
            what=f"saving stream state of {state.shop}/{state.resource}",
        )

    async def get_bulk_operation(self, id: str) -> BulkOperationRecord | None:
        sql = f"SELECT {', '.join(_BULK_COLUMNS)} FROM bulk_operations WHERE id = ?"
        row = await self.database.run(
            lambda conn: conn.execute(sql, (id,)).fetchone(), what=f"reading bulk operation {id}"
        )
        return None if row is None else _bulk_from_row(row)

    async def list_bulk_operations(
        self,
        *,
        shop: str | None = None,
        resource: str | None = None,
        unfinished_only: bool = True,
    ) -> list[BulkOperationRecord]:
        where: list[str] = []
        params: list[Any] = []
        if shop is not None:
            where.append("shop = ?")
            params.append(shop)
        if resource is not None:
            where.append("resource = ?")
            params.append(resource)
        if unfinished_only:
            where.append("finished = 0")
        sql = f"SELECT {', '.join(_BULK_COLUMNS)} FROM bulk_operations"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id"
        rows = await self.database.run(
            lambda conn: conn.execute(sql, params).fetchall(), what="listing bulk operations"
        )
        return [_bulk_from_row(r) for r in rows]

    async def save_bulk_operation(self, rec: BulkOperationRecord) -> None:
        params = _bulk_params(rec)
        await self.database.transaction(
            lambda conn: conn.execute(_SAVE_BULK_SQL, params), what=f"saving bulk operation {rec.id}"
        )

    def _save_state_in(
        self, conn: sqlite3.Connection, state: StreamState, bulk: BulkOperationRecord | None
    ) -> None:
        conn.execute(_SAVE_STREAM_SQL, _stream_params(state))
        if bulk is not None:
            conn.execute(_SAVE_BULK_SQL, _bulk_params(bulk))

    async def commit(
        self,
        state: StreamState,
        records: Sequence[Record] = (),
        deletions: Sequence[Deletion] = (),
        bulk: BulkOperationRecord | None = None,
    ) -> CommitResult:
        what = f"committing {len(records)} records and the checkpoint of {state.shop}/{state.resource}"
        if (records or deletions) and self.sink is None:
            raise StorageError(f"{what}: no sink configured for {self.database.path}")
        sink = self.sink
        if self.shares_transaction and (records or deletions):
            # Same file: rows and checkpoint in ONE transaction. Missing tables are created first,
            # in their own transaction, so that a rollback here never leaves the sink's cache of
            # existing tables wrong.
            await sink.prepare(records, deletions)  # type: ignore[union-attr]

            def tx(conn: sqlite3.Connection) -> WriteResult:
                result: WriteResult = sink.write_in(conn, records, deletions)  # type: ignore[union-attr]
                self._save_state_in(conn, state, bulk)
                return result

            return await self.database.transaction(tx, what=what)
        result = WriteResult()
        if records or deletions:
            assert sink is not None
            result = await sink.write(records, deletions)  # durable on return
            crashpoint("after_sink_write")
        await self.database.transaction(lambda conn: self._save_state_in(conn, state, bulk), what=what)
        return result
