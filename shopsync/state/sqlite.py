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
import functools
import logging
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from shopsync.errors import StorageError
from shopsync.state.base import settle
from shopsync.state.database import (
    BULK_COLUMNS,
    STREAM_COLUMNS,
    DatabaseStateStore,
    SharedDatabase,
    upsert_sql,
)
from shopsync.state.models import BulkOperationRecord, StreamState

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Version of the state tables this code writes. Bump with a migration in ``_MIGRATIONS``.
STATE_SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 10_000

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


_SAVE_STREAM_SQL = upsert_sql(
    "stream_state", STREAM_COLUMNS, ("shop", "resource"), ["?"] * len(STREAM_COLUMNS)
)
_SAVE_BULK_SQL = upsert_sql("bulk_operations", BULK_COLUMNS, ("id",), ["?"] * len(BULK_COLUMNS))


class SqliteDatabase(SharedDatabase):
    """One SQLite file, one connection, one worker thread; shared by the state store and the sink."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def url(self) -> str:  # type: ignore[override]
        return f"sqlite://{self.path}"

    @property
    def location(self) -> str:
        return str(self.path)

    def _fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} failed on SQLite database {self.path}: {exc}")

    async def _connect(self) -> None:
        """Open the file (creating it and its directory if missing) with WAL and full sync."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.path.name}")
        loop = asyncio.get_running_loop()
        try:
            self._conn = await loop.run_in_executor(executor, self._open_connection)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    def _open_connection(self) -> sqlite3.Connection:
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

    async def _disconnect(self) -> None:
        """Close the connection after the work queued on its thread."""
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

    async def atomic(self, what: str, *steps: Callable[[sqlite3.Connection], Any]) -> list[Any]:
        return await self.transaction(lambda conn: [step(conn) for step in steps], what=what)

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
    return StreamState(**dict(zip(STREAM_COLUMNS, row, strict=True)))


def _bulk_from_row(row: Sequence[Any]) -> BulkOperationRecord:
    values = dict(zip(BULK_COLUMNS, row, strict=True))
    values["finished"] = bool(values["finished"])
    return BulkOperationRecord(**values)


def _stream_params(state: StreamState) -> tuple[Any, ...]:
    return tuple(getattr(state, c) for c in STREAM_COLUMNS)


def _bulk_params(rec: BulkOperationRecord) -> tuple[Any, ...]:
    return tuple(int(v) if isinstance(v, bool) else v for v in (getattr(rec, c) for c in BULK_COLUMNS))


class SqliteStateStore(DatabaseStateStore[SqliteDatabase]):
    """The :class:`~shopsync.state.base.StateStore` on a SQLite file.

    ``sink`` is where :meth:`commit` writes records. A :class:`~shopsync.sinks.sqlite.SqliteSink`
    whose ``database`` is this store's ``database`` is written in the same transaction; any other
    sink is written (durably) first and the state saved after.
    """

    _UNFINISHED = "finished = 0"

    @staticmethod
    def _mark(n: int) -> str:
        return "?"

    async def _open_schema(self) -> None:
        await self.database.transaction(self._create_schema, what="creating the state tables")

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        def create() -> None:
            for statement in _STATE_SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

        self.database.ensure_schema_version(conn, "state_schema_version", STATE_SCHEMA_VERSION, create)

    async def _select_streams(self, where: str, params: list[Any], *, what: str) -> list[StreamState]:
        sql = f"SELECT {', '.join(STREAM_COLUMNS)} FROM stream_state{where} ORDER BY shop, resource"
        rows = await self.database.run(lambda conn: conn.execute(sql, params).fetchall(), what=what)
        return [_stream_from_row(r) for r in rows]

    async def _select_bulk(self, where: str, params: list[Any], *, what: str) -> list[BulkOperationRecord]:
        sql = f"SELECT {', '.join(BULK_COLUMNS)} FROM bulk_operations{where} ORDER BY created_at, id"
        rows = await self.database.run(lambda conn: conn.execute(sql, params).fetchall(), what=what)
        return [_bulk_from_row(r) for r in rows]

    def _save_state_in(
        self, conn: sqlite3.Connection, state: StreamState, bulk: BulkOperationRecord | None
    ) -> None:
        conn.execute(_SAVE_STREAM_SQL, _stream_params(state))
        if bulk is not None:
            self._save_bulk_in(conn, bulk)

    def _save_bulk_in(self, conn: sqlite3.Connection, rec: BulkOperationRecord) -> None:
        conn.execute(_SAVE_BULK_SQL, _bulk_params(rec))
