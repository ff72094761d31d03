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

import contextlib
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from shopsync.errors import ConfigError, StorageError
from shopsync.sinks.base import redact_url
from shopsync.state.base import settle
from shopsync.state.database import (
    BULK_COLUMNS,
    STREAM_COLUMNS,
    DatabaseStateStore,
    SharedDatabase,
    upsert_sql,
)
from shopsync.state.models import BulkOperationRecord, StreamState

if TYPE_CHECKING:
    from shopsync.sinks.base import Sink

STATE_SCHEMA_VERSION = 1
_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")
_INTEGER_COLUMNS = {
    "records_in_window",
    "object_count",
    "root_object_count",
    "file_size",
    "bytes_downloaded",
    "lines_processed",
    "records_written",
}

#: A step of :meth:`PostgresDatabase.atomic`.
Step = Callable[[asyncpg.Connection], Awaitable[Any]]

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


class PostgresDatabase(SharedDatabase):
    """A pool of asyncpg connections to one database and schema, shared by state store and sink."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 10.0) -> None:
        super().__init__()
        self.dsn, self.schema = split_schema(url)
        self.url = redact_url(url)
        self.min_size, self.max_size, self.timeout = min_size, max_size, timeout
        self._pool: asyncpg.Pool | None = None

    @property
    def location(self) -> str:
        return self.url

    def __eq__(self, other: object) -> bool:  # identity: one pool per object
        return self is other

    __hash__ = object.__hash__

    def table(self, name: str) -> str:
        """``"schema"."name"`` (``name`` must already be validated)."""
        return f'"{self.schema}"."{name}"'

    def fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} failed on PostgreSQL database {self.url} (schema {self.schema}): {exc}")

    async def _connect(self) -> None:
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

    async def _disconnect(self) -> None:
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

    async def atomic(self, what: str, *steps: Step) -> list[Any]:
        return await settle(self._atomic(what, steps))

    async def _atomic(self, what: str, steps: Sequence[Step]) -> list[Any]:
        async with self.transaction(what) as conn:
            return [await step(conn) for step in steps]

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
    return upsert_sql(table, columns, key, [f"${i}" for i in range(1, len(columns) + 1)])


class PostgresStateStore(DatabaseStateStore[PostgresDatabase]):
    """The :class:`~shopsync.state.base.StateStore` in a PostgreSQL schema."""

    _UNFINISHED = "NOT finished"

    def __init__(self, database: PostgresDatabase, sink: Sink | None = None) -> None:
        super().__init__(database, sink)
        t = database.table
        self._save_stream_sql = _upsert_sql(t("stream_state"), STREAM_COLUMNS, ("shop", "resource"))
        self._save_bulk_sql = _upsert_sql(t("bulk_operations"), BULK_COLUMNS, ("id",))

    @staticmethod
    def _mark(n: int) -> str:
        return f"${n}"

    async def _open_schema(self) -> None:
        async with self.database.transaction("creating the state tables") as conn:
            await self.database.ensure_schema_version(
                conn, "state_schema_version", STATE_SCHEMA_VERSION, self._create
            )

    async def _create(self, conn: asyncpg.Connection) -> None:
        t = self.database.table
        stream_cols = ", ".join(f"{c} {_column_type(c)}" for c in STREAM_COLUMNS)
        bulk_cols = ", ".join(f"{c} {_column_type(c)}" for c in BULK_COLUMNS)
        await conn.execute(f"CREATE TABLE {t('stream_state')} ({stream_cols}, PRIMARY KEY (shop, resource))")
        await conn.execute(f"CREATE TABLE {t('bulk_operations')} ({bulk_cols}, PRIMARY KEY (id))")
        await conn.execute(
            f'CREATE INDEX "bulk_operations_unfinished" ON {t("bulk_operations")} (finished, shop, resource)'
        )

    async def _select_streams(self, where: str, params: list[Any], *, what: str) -> list[StreamState]:
        sql = (
            f"SELECT {', '.join(STREAM_COLUMNS)} FROM {self.database.table('stream_state')}{where}"
            ' ORDER BY shop COLLATE "C", resource COLLATE "C"'
        )
        async with self.database.connection(what) as conn:
            rows = await conn.fetch(sql, *params)
        return [StreamState(**dict(r)) for r in rows]

    async def _select_bulk(self, where: str, params: list[Any], *, what: str) -> list[BulkOperationRecord]:
        sql = (
            f"SELECT {', '.join(BULK_COLUMNS)} FROM {self.database.table('bulk_operations')}{where}"
            ' ORDER BY created_at COLLATE "C" NULLS FIRST, id COLLATE "C"'
        )
        async with self.database.connection(what) as conn:
            rows = await conn.fetch(sql, *params)
        return [BulkOperationRecord(**dict(r)) for r in rows]

    async def _save_state_in(
        self, conn: asyncpg.Connection, state: StreamState, bulk: BulkOperationRecord | None
    ) -> None:
        await conn.execute(self._save_stream_sql, *(getattr(state, c) for c in STREAM_COLUMNS))
        if bulk is not None:
            await self._save_bulk_in(conn, bulk)

    async def _save_bulk_in(self, conn: asyncpg.Connection, rec: BulkOperationRecord) -> None:
        await conn.execute(self._save_bulk_sql, *(getattr(rec, c) for c in BULK_COLUMNS))
