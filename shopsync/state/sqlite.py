"""SQLite state store (the embedded default) and the asyncio-friendly SQLite connection it runs on.

:class:`SqliteDatabase` owns one ``sqlite3`` connection and one worker thread; every statement runs
on that thread, and a transaction is one callable submitted to it, so the event loop never blocks
and transactions never interleave. The file is opened in WAL mode with ``synchronous=FULL``: a
commit that returned survives a crash or a power loss, and readers (``shopsync status``) do not
block the writer. A new file is created ``0600`` (and so are SQLite's ``-wal``/``-shm`` beside it);
an existing file that is not a SQLite database, or is shorter than its header says, is refused
without being written (:mod:`shopsync.state.sqlite_file`).

:class:`SqliteStateStore` keeps ``stream_state`` and ``bulk_operations`` in that database. When the
sink is a :class:`shopsync.state.sqlite_sink.SqliteSink` on the *same* :class:`SqliteDatabase` object,
:meth:`SqliteStateStore.commit` writes the rows and the checkpoint in one transaction.

The state tables upgrade themselves on open: :data:`MIGRATIONS` are numbered steps, and those past
the version ``meta`` records run in one ``BEGIN IMMEDIATE`` transaction (all or none). A database
``exclusive`` to its process (``shopsync run`` and ``sync``) is locked with
:class:`~shopsync.state.sqlite_file.DatabaseLock` while open.
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
from shopsync.fsutil import describe_os_error
from shopsync.state.database import Migration, SharedDatabase, Step, check_migrations, pending_migrations
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.state.settle import settle
from shopsync.state.sql_store import BULK_COLUMNS, STREAM_COLUMNS, SqlStateStore, upsert_sql
from shopsync.state.sqlite_file import DatabaseLock, prepare_database_file

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 10_000
#: The page size of a database file this code creates (SQLite's default is 4 KiB). A record is a
#: few KiB of JSON (an order with its line items: 3.7 KB on average), so with 4 KiB pages most
#: rows spill onto overflow pages, and a bulk ingest writes, journals and syncs twice the pages
#: it needs: with 16 KiB pages SQLite's own calls in a 100,000-order ingest took 1.46 s instead
#: of 2.48 s (README, "Bulk ingest"), while a daemon's small commits cost the same. An existing file
#: keeps the page size it was made with (changing it would take a VACUUM).
PAGE_SIZE = 16_384
#: The ``meta`` key recording the state tables' version.
STATE_SCHEMA_KEY = "state_schema_version"

# Version 1 (shopsync before issue 12): the ledger keyed by the operation's id alone.
_V1_STATE_SCHEMA = """
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

# Version 2: the ledger keyed by (shop, id). Shopify numbers bulk operations per shop, so two shops'
# operations may share an id; keyed by id alone, one shop's record replaced another's. SQLite cannot
# change a primary key in place: copy into a new table (every row already names its shop).
_V2_LEDGER_BY_SHOP = """
CREATE TABLE bulk_operations_v2 (
    id                TEXT NOT NULL,
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
    updated_at        TEXT,
    PRIMARY KEY (shop, id)
);
INSERT INTO bulk_operations_v2 (
    id, shop, resource, window_start, window_end, status, error_code, created_at, completed_at,
    object_count, root_object_count, file_size, url, partial_data_url, bytes_downloaded,
    lines_processed, records_written, finished, updated_at
) SELECT
    id, shop, resource, window_start, window_end, status, error_code, created_at, completed_at,
    object_count, root_object_count, file_size, url, partial_data_url, bytes_downloaded,
    lines_processed, records_written, finished, updated_at
FROM bulk_operations;
DROP TABLE bulk_operations;
ALTER TABLE bulk_operations_v2 RENAME TO bulk_operations;
CREATE INDEX bulk_operations_unfinished ON bulk_operations (finished, shop, resource);
"""

#: The state tables' migrations: step N brings version N - 1 to N (step 1 creates them). Append a
#: step to change the schema; never edit a released one.
# Version 3: the lease and heartbeat tables PostgreSQL's version 3 adds (state/leases.py). A SQLite
# database serves one daemon (it is locked) and keeps no leases; the tables keep both backends at
# one schema version, so a database's version means the same whichever backend holds it.
_V3_LEASES = """
CREATE TABLE leases (
    shop TEXT PRIMARY KEY, owner TEXT, epoch INTEGER NOT NULL,
    expires_at TEXT NOT NULL, renewed_at TEXT NOT NULL, acquired_at TEXT
);
CREATE TABLE daemons (
    id TEXT PRIMARY KEY, started_at TEXT NOT NULL, heartbeat_at TEXT NOT NULL, expires_at TEXT NOT NULL
);
"""

MIGRATIONS: tuple[Migration[sqlite3.Connection], ...] = (
    Migration(version=1, description="stream_state and bulk_operations", apply=_V1_STATE_SCHEMA),
    Migration(version=2, description="bulk operations keyed by (shop, id)", apply=_V2_LEDGER_BY_SHOP),
    Migration(version=3, description="shop leases and daemon heartbeats", apply=_V3_LEASES),
)
#: Version of the state tables this code writes.
STATE_SCHEMA_VERSION = check_migrations(MIGRATIONS)


_SAVE_STREAM_SQL = upsert_sql(
    "stream_state", STREAM_COLUMNS, ("shop", "resource"), ["?"] * len(STREAM_COLUMNS)
)
_SAVE_BULK_SQL = upsert_sql("bulk_operations", BULK_COLUMNS, ("shop", "id"), ["?"] * len(BULK_COLUMNS))


# SQLite reports ENOSPC as SQLITE_FULL ("database or disk is full") and an OS read/write error as
# SQLITE_IOERR_* ("disk I/O error"); say so in the words describe_os_error uses for files.
_SQLITE_PLAIN = {"SQLITE_FULL": "disk full", "SQLITE_IOERR": "I/O error", "SQLITE_READONLY": "read-only"}
_NO_MESSAGE = frozenset({"", "not an error"})


def describe_sqlite_error(exc: sqlite3.Error) -> str:
    """``disk full (SQLITE_FULL: database or disk is full)``; other errors as SQLite words them."""
    name = getattr(exc, "sqlite_errorname", None)
    if not isinstance(name, str):
        return str(exc)
    summary = _SQLITE_PLAIN.get("_".join(name.split("_")[:2]))  # SQLITE_IOERR_WRITE -> SQLITE_IOERR
    if summary:
        return f"{summary} ({name}: {exc})"
    if str(exc) in _NO_MESSAGE:
        # Seen in CI, rarely: a failed BEGIN whose message SQLite had already reset ("not an
        # error"); the error's name still says what happened.
        return f"{name} (SQLite gave no message)"
    return str(exc)


class SqliteDatabase(SharedDatabase[sqlite3.Connection]):
    """One SQLite file, one connection, one worker thread; shared by the state store and the sink."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = BUSY_TIMEOUT_MS, exclusive: bool = False) -> None:
        super().__init__()
        self.path = Path(path)
        self.busy_timeout_ms = busy_timeout_ms
        # exclusive: hold ``<path>.lock`` while open, refusing a second holder (DatabaseLock).
        self.exclusive = exclusive
        self._file_lock = DatabaseLock(self.path)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def url(self) -> str:
        return f"sqlite://{self.path}"

    @property
    def location(self) -> str:
        return str(self.path)

    def _fail(self, what: str, exc: BaseException) -> StorageError:
        if isinstance(exc, OSError):
            cause = describe_os_error(exc)
        elif isinstance(exc, sqlite3.Error):
            cause = describe_sqlite_error(exc)
        else:
            cause = str(exc)
        return StorageError(f"{what} failed on SQLite database {self.path}: {cause}")

    async def _connect(self) -> None:
        """Open the file with WAL and full sync: created private (0600, directories 0700) if
        missing, refused without a write if it is not a SQLite database or was cut short."""
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"sqlite-{self.path.name}")
        loop = asyncio.get_running_loop()
        try:
            if self.exclusive:
                # Before the file is touched: a second process must not even create or check it.
                await loop.run_in_executor(executor, self._file_lock.acquire)
            self._conn = await loop.run_in_executor(executor, self._open_connection)
        except BaseException:
            self._file_lock.release()
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    def _open_connection(self) -> sqlite3.Connection:
        prepare_database_file(self.path)  # before SQLite makes -wal/-shm with the file's mode
        try:
            # isolation_level=None: no implicit transactions; we issue BEGIN IMMEDIATE ourselves.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=self.busy_timeout_ms / 1000)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail("opening", exc) from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            # Before journal_mode: only a file without pages yet takes it; an existing one ignores it.
            conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
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
            self._file_lock.release()  # after the connection is closed: the next holder finds it quiet
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

    async def atomic(self, what: str, *steps: Step[sqlite3.Connection]) -> list[object]:
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

    def migrate(self, conn: sqlite3.Connection, key: str, migrations: Sequence[Migration[sqlite3.Connection]]) -> int:
        """Inside a transaction: run the steps of ``migrations`` past the version ``key`` records.

        Returns the version reached. A version newer than the last step is refused
        (:class:`~shopsync.errors.StorageError` naming the file); the caller's transaction then
        rolls back, so a failing step leaves the database at its old version.
        """
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        found = int(row[0]) if row is not None else None
        steps = pending_migrations(migrations, found, key=key, where=f"SQLite database {self.path}")
        for step in steps:
            if isinstance(step.apply, str):
                for statement in step.apply.split(";"):
                    if statement.strip():
                        conn.execute(statement)
            else:
                step.apply(conn)
        version = steps[-1].version if steps else int(found or 0)
        if steps:
            log.info(
                "SQLite database %s: %s migrated from %s to %s (%s)",
                self.path, key, found or 0, version, "; ".join(s.description for s in steps),
            )  # fmt: skip
            conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, str(version)),
            )
        return version

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


class SqliteStateStore(SqlStateStore[SqliteDatabase, sqlite3.Connection]):
    """The :class:`~shopsync.state.store.StateStore` on a SQLite file.

    ``sink`` is where :meth:`commit` writes records. A :class:`~shopsync.state.sqlite_sink.SqliteSink`
    whose ``database`` is this store's ``database`` is written in the same transaction; any other
    sink is written (durably) first and the state saved after.
    """

    _UNFINISHED = "finished = 0"

    @staticmethod
    def _mark(n: int) -> str:
        return "?"

    async def _open_schema(self) -> None:
        await self.database.transaction(
            lambda conn: self.database.migrate(conn, STATE_SCHEMA_KEY, MIGRATIONS),
            what="creating or migrating the state tables",
        )

    async def _select_streams(self, where: str, params: list[str], *, what: str) -> list[StreamState]:
        sql = f"SELECT {', '.join(STREAM_COLUMNS)} FROM stream_state{where} ORDER BY shop, resource"
        rows = await self.database.run(lambda conn: conn.execute(sql, params).fetchall(), what=what)
        return [_stream_from_row(r) for r in rows]

    async def _select_bulk(self, where: str, params: list[str], *, what: str) -> list[BulkOperationRecord]:
        sql = f"SELECT {', '.join(BULK_COLUMNS)} FROM bulk_operations{where} ORDER BY created_at, id, shop"
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
