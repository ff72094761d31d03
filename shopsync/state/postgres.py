"""PostgreSQL state store (asyncpg) and the connection pool it shares with the PostgreSQL sink.

URL: ``postgresql://user:password@host:5432/dbname?schema=shopsync`` — everything asyncpg accepts,
plus shopsync's own ``schema`` parameter (default ``public``): the PostgreSQL schema that holds
``meta``, ``stream_state``, ``bulk_operations`` and, for the sink, one table per resource.

PostgreSQL commits are durable on return with the server's default ``synchronous_commit = on``.
When the sink is a :class:`shopsync.sinks.postgres.PostgresSink` on the *same*
:class:`PostgresDatabase`, :meth:`PostgresStateStore.commit` writes rows and checkpoint in one
transaction on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import re
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from shopsync.engine.crashpoints import crashpoint
from shopsync.errors import ConfigError, StorageError
from shopsync.sinks.base import redact_url
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

STATE_SCHEMA_VERSION = 1
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_STREAM_COLUMNS = tuple(f.name for f in dataclasses.fields(StreamState))
_BULK_COLUMNS = tuple(f.name for f in dataclasses.fields(BulkOperationRecord))
_INTEGER_COLUMNS = {
    "records_in_window",
    "object_count",
    "root_object_count",
    "file_size",
    "bytes_downloaded",
    "lines_processed",
    "records_written",
}

# Errors that mean "the database did not do it": translated to StorageError at this boundary.
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    OSError,
    TimeoutError,
)


def split_schema(url: str) -> tuple[str, str]:
    """``(dsn for asyncpg, schema)`` from a shopsync PostgreSQL URL (``?schema=`` removed)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = "public"
    rest = []
    for key, value in query:
        if key == "schema":
            schema = value
        else:
            rest.append((key, value))
    if not _SCHEMA_NAME.match(schema):
        raise ConfigError(f"database URL {redact_url(url)!r}: schema {schema!r} must match [a-z_][a-z0-9_]*")
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return dsn, schema


class PostgresDatabase:
    """A pool of asyncpg connections to one database and schema, shared by state store and sink.

    ``open``/``close`` are reference counted like :class:`shopsync.state.sqlite.SqliteDatabase`.
    """

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 10.0) -> None:
        self.dsn, self.schema = split_schema(url)
        self.url = redact_url(url)
        self.min_size, self.max_size, self.timeout = min_size, max_size, timeout
        self._pool: asyncpg.Pool | None = None
        self._users = 0
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.url!r})"

    def __eq__(self, other: object) -> bool:  # identity: one pool per object
        return self is other

    __hash__ = object.__hash__

    def table(self, name: str) -> str:
        """``"schema"."name"`` (``name`` must already be validated)."""
        return f'"{self.schema}"."{name}"'

    def fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} failed on PostgreSQL database {self.url} (schema {self.schema}): {exc}")

    async def open(self) -> None:
        async with self._lock:
            if self._users:
                self._users += 1
                return
            try:
                pool = await asyncpg.create_pool(
                    self.dsn, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout
                )
                async with pool.acquire() as conn, conn.transaction():
                    await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                    await conn.execute(
                        f"CREATE TABLE IF NOT EXISTS {self.table('meta')} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                    )
            except DB_ERRORS as exc:
                raise self.fail("connecting", exc) from exc
            self._pool = pool
            self._users = 1

    async def close(self) -> None:
        async with self._lock:
            if not self._users:
                return
            self._users -= 1
            if self._users:
                return
            pool, self._pool = self._pool, None
            assert pool is not None
            try:
                await pool.close()
            except DB_ERRORS as exc:
                raise self.fail("closing", exc) from exc

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @contextlib.asynccontextmanager
    async def connection(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection outside an explicit transaction; errors become StorageError."""
        if self._pool is None:
            raise StorageError(f"PostgreSQL database {self.url} is not open")
        try:
            async with self._pool.acquire() as conn:
                yield conn
        except DB_ERRORS as exc:
            raise self.fail(what, exc) from exc

    @contextlib.asynccontextmanager
    async def transaction(self, what: str) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one transaction, committed when the block exits cleanly."""
        async with self.connection(what) as conn, conn.transaction():
            yield conn

    async def ensure_schema_version(
        self, conn: asyncpg.Connection, key: str, current: int, create: Any
    ) -> None:
        """Inside a transaction: create the schema part ``key`` if missing, refuse a newer one."""
        # One creator at a time (two processes starting together).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"shopsync:{self.schema}")
        found = await conn.fetchval(f"SELECT value FROM {self.table('meta')} WHERE key = $1", key)
        if found is None:
            await create(conn)
            await conn.execute(
                f"INSERT INTO {self.table('meta')} (key, value) VALUES ($1, $2)", key, str(current)
            )
            return
        if int(found) > current:
            raise StorageError(
                f"PostgreSQL database {self.url} (schema {self.schema}) has {key} {found}, newer than this "
                f"shopsync understands ({current}); upgrade shopsync or point it at another database"
            )
        if int(found) < current:
            raise StorageError(
                f"PostgreSQL database {self.url} has {key} {found}; no migration to {current} known"
            )


def _column_type(name: str) -> str:
    if name in _INTEGER_COLUMNS:
        return "BIGINT"
    if name == "finished":
        return "BOOLEAN NOT NULL DEFAULT FALSE"
    return "TEXT"


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    marks = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return (
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        f" ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


class PostgresStateStore:
    """The :class:`~shopsync.state.base.StateStore` in a PostgreSQL schema."""

    def __init__(self, database: PostgresDatabase, sink: Sink | None = None) -> None:
        self.database = database
        self.sink = sink
        self._opened = False
        t = database.table
        self._save_stream_sql = _upsert_sql(t("stream_state"), _STREAM_COLUMNS, ("shop", "resource"))
        self._save_bulk_sql = _upsert_sql(t("bulk_operations"), _BULK_COLUMNS, ("id",))

    @property
    def url(self) -> str:
        return self.database.url

    def __repr__(self) -> str:
        return f"PostgresStateStore({self.database.url!r})"

    @property
    def shares_transaction(self) -> bool:
        return getattr(self.sink, "database", None) is self.database and hasattr(self.sink, "write_in")

    async def open(self) -> None:
        if self._opened:
            return
        await self.database.open()
        try:
            async with self.database.transaction("creating the state tables") as conn:
                await self.database.ensure_schema_version(
                    conn, "state_schema_version", STATE_SCHEMA_VERSION, self._create
                )
        except BaseException:
            await self.database.close()
            raise
        self._opened = True

    async def _create(self, conn: asyncpg.Connection) -> None:
        t = self.database.table
        stream_cols = ", ".join(f"{c} {_column_type(c)}" for c in _STREAM_COLUMNS)
        bulk_cols = ", ".join(f"{c} {_column_type(c)}" for c in _BULK_COLUMNS)
        await conn.execute(f"CREATE TABLE {t('stream_state')} ({stream_cols}, PRIMARY KEY (shop, resource))")
        await conn.execute(f"CREATE TABLE {t('bulk_operations')} ({bulk_cols}, PRIMARY KEY (id))")
        await conn.execute(
            f'CREATE INDEX "bulk_operations_unfinished" ON {t("bulk_operations")} (finished, shop, resource)'
        )

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            await self.database.close()

    async def get_stream(self, shop: str, resource: str) -> StreamState | None:
        sql = f"SELECT {', '.join(_STREAM_COLUMNS)} FROM {self.database.table('stream_state')} WHERE shop = $1 AND resource = $2"
        async with self.database.connection(f"reading stream state of {shop}/{resource}") as conn:
            row = await conn.fetchrow(sql, shop, resource)
        return None if row is None else StreamState(**dict(row))

    async def list_streams(self) -> list[StreamState]:
        sql = (
            f"SELECT {', '.join(_STREAM_COLUMNS)} FROM {self.database.table('stream_state')}"
            ' ORDER BY shop COLLATE "C", resource COLLATE "C"'
        )
        async with self.database.connection("listing stream states") as conn:
            rows = await conn.fetch(sql)
        return [StreamState(**dict(r)) for r in rows]

    async def save_stream(self, state: StreamState) -> None:
        await settle(self._save_state(f"saving stream state of {state.shop}/{state.resource}", state, None))

    async def get_bulk_operation(self, id: str) -> BulkOperationRecord | None:
        sql = f"SELECT {', '.join(_BULK_COLUMNS)} FROM {self.database.table('bulk_operations')} WHERE id = $1"
        async with self.database.connection(f"reading bulk operation {id}") as conn:
            row = await conn.fetchrow(sql, id)
        return None if row is None else BulkOperationRecord(**dict(row))

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
            params.append(shop)
            where.append(f"shop = ${len(params)}")
        if resource is not None:
            params.append(resource)
            where.append(f"resource = ${len(params)}")
        if unfinished_only:
            where.append("NOT finished")
        sql = f"SELECT {', '.join(_BULK_COLUMNS)} FROM {self.database.table('bulk_operations')}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += ' ORDER BY created_at COLLATE "C" NULLS FIRST, id COLLATE "C"'
        async with self.database.connection("listing bulk operations") as conn:
            rows = await conn.fetch(sql, *params)
        return [BulkOperationRecord(**dict(r)) for r in rows]

    async def save_bulk_operation(self, rec: BulkOperationRecord) -> None:
        await settle(self._save_bulk(rec))

    async def _save_bulk(self, rec: BulkOperationRecord) -> None:
        async with self.database.transaction(f"saving bulk operation {rec.id}") as conn:
            await conn.execute(self._save_bulk_sql, *(getattr(rec, c) for c in _BULK_COLUMNS))

    async def _save_state_in(
        self, conn: asyncpg.Connection, state: StreamState, bulk: BulkOperationRecord | None
    ) -> None:
        await conn.execute(self._save_stream_sql, *(getattr(state, c) for c in _STREAM_COLUMNS))
        if bulk is not None:
            await conn.execute(self._save_bulk_sql, *(getattr(bulk, c) for c in _BULK_COLUMNS))

    async def commit(
        self,
        state: StreamState,
        records: Sequence[Record] = (),
        deletions: Sequence[Deletion] = (),
        bulk: BulkOperationRecord | None = None,
    ) -> CommitResult:
        what = f"committing {len(records)} records and the checkpoint of {state.shop}/{state.resource}"
        if (records or deletions) and self.sink is None:
            raise StorageError(f"{what}: no sink configured for {self.database.url}")
        sink = self.sink
        if self.shares_transaction and (records or deletions):
            await sink.prepare(records, deletions)  # type: ignore[union-attr]
            # Settled: once the transaction started it ends (commit or rollback) before a
            # cancellation reaches the caller; a connection is never left mid-transaction.
            return await settle(self._commit_shared(what, state, records, deletions, bulk))
        result = WriteResult()
        if records or deletions:
            assert sink is not None
            result = await sink.write(records, deletions)
            crashpoint("after_sink_write")
        await settle(self._save_state(what, state, bulk))
        return result

    async def _save_state(self, what: str, state: StreamState, bulk: BulkOperationRecord | None) -> None:
        async with self.database.transaction(what) as conn:
            await self._save_state_in(conn, state, bulk)

    async def _commit_shared(
        self,
        what: str,
        state: StreamState,
        records: Sequence[Record],
        deletions: Sequence[Deletion],
        bulk: BulkOperationRecord | None,
    ) -> WriteResult:
        async with self.database.transaction(what) as conn:
            result: WriteResult = await self.sink.write_in(conn, records, deletions)  # type: ignore[union-attr]
            await self._save_state_in(conn, state, bulk)
        return result
