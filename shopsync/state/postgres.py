"""PostgreSQL state store (asyncpg) and the connection pool it shares with the PostgreSQL sink.

URL: ``postgresql://user:password@host:5432/dbname?schema=shopsync`` — everything asyncpg accepts,
plus shopsync's own ``schema`` parameter (default ``public``): the PostgreSQL schema that holds
``meta``, ``stream_state``, ``bulk_operations`` and, for the sink, one table per resource.

PostgreSQL commits are durable on return with the server's default ``synchronous_commit = on``.

The state tables upgrade themselves on open from :data:`MIGRATIONS`, numbered steps run in one
transaction under a transaction-scoped advisory lock on the schema's name, so several daemons
starting together migrate once and the others wait, then find the schema current. A schema newer
than the last step is refused.
When the sink is a :class:`shopsync.state.postgres_sink.PostgresSink` on the *same*
:class:`PostgresDatabase`, :meth:`PostgresStateStore.commit` writes rows and checkpoint in one
transaction on one connection.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from shopsync.errors import ConfigError, StorageError
from shopsync.settings.urls import redact_url
from shopsync.state.database import Migration, SharedDatabase, Step, check_migrations, pending_migrations
from shopsync.state.leases import Fence, Lease, check_lease
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.state.settle import settle
from shopsync.state.sql_store import BULK_COLUMNS, STREAM_COLUMNS, SqlStateStore, upsert_sql

if TYPE_CHECKING:
    from shopsync.state.sink import Sink

#: The ``meta`` key recording the state tables' version.
STATE_SCHEMA_KEY = "state_schema_version"

# The migrations' SQL names its tables "{schema}"."name"; the schema is substituted when run.
# Version 1 (shopsync before issue 12): the ledger keyed by the operation's id alone.
_V1_STATE_SCHEMA = """
CREATE TABLE "{schema}"."stream_state" (
    shop TEXT, resource TEXT, watermark TEXT, window_start TEXT, window_end TEXT, path TEXT,
    cursor TEXT, bulk_operation_id TEXT, records_in_window BIGINT, last_success_at TEXT,
    last_error TEXT, last_error_at TEXT, parked_until TEXT, parked_reason TEXT, updated_at TEXT,
    PRIMARY KEY (shop, resource)
);
CREATE TABLE "{schema}"."bulk_operations" (
    id TEXT, shop TEXT, resource TEXT, window_start TEXT, window_end TEXT, status TEXT,
    error_code TEXT, created_at TEXT, completed_at TEXT, object_count BIGINT,
    root_object_count BIGINT, file_size BIGINT, url TEXT, partial_data_url TEXT,
    bytes_downloaded BIGINT, lines_processed BIGINT, records_written BIGINT,
    finished BOOLEAN NOT NULL DEFAULT FALSE, updated_at TEXT,
    PRIMARY KEY (id)
);
CREATE INDEX "bulk_operations_unfinished" ON "{schema}"."bulk_operations" (finished, shop, resource);
"""

# Version 2: the ledger keyed by (shop, id). Shopify numbers bulk operations per shop, so two shops'
# operations may share an id; keyed by id alone, one shop's record replaced another's.
_V2_LEDGER_BY_SHOP = """
ALTER TABLE "{schema}"."bulk_operations" ALTER COLUMN shop SET NOT NULL;
ALTER TABLE "{schema}"."bulk_operations" DROP CONSTRAINT "bulk_operations_pkey";
ALTER TABLE "{schema}"."bulk_operations" ADD CONSTRAINT "bulk_operations_pkey" PRIMARY KEY (shop, id);
"""

# Version 3: shop leases with fencing epochs and daemon heartbeats (state/leases.py), so several
# daemons can share one database, each shop owned by one of them at a time.
_V3_LEASES = """
CREATE TABLE "{schema}"."leases" (
    shop TEXT PRIMARY KEY, owner TEXT, epoch BIGINT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL, renewed_at TIMESTAMPTZ NOT NULL, acquired_at TIMESTAMPTZ
);
CREATE TABLE "{schema}"."daemons" (
    id TEXT PRIMARY KEY, started_at TIMESTAMPTZ NOT NULL, heartbeat_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
"""

#: The state tables' migrations: step N brings version N - 1 to N (step 1 creates them). Append a
#: step to change the schema; never edit a released one.
MIGRATIONS: tuple[Migration[asyncpg.Connection], ...] = (
    Migration(version=1, description="stream_state and bulk_operations", apply=_V1_STATE_SCHEMA),
    Migration(version=2, description="bulk operations keyed by (shop, id)", apply=_V2_LEDGER_BY_SHOP),
    Migration(version=3, description="shop leases and daemon heartbeats", apply=_V3_LEASES),
)
#: Version of the state tables this code writes.
STATE_SCHEMA_VERSION = check_migrations(MIGRATIONS)

log = logging.getLogger(__name__)

#: The ``leases`` columns as :class:`~shopsync.state.leases.Lease` fields (times as epoch seconds).
LEASE_COLUMNS = (
    "shop, owner, epoch, extract(epoch FROM expires_at)::float8 AS expires_at,"
    " extract(epoch FROM renewed_at)::float8 AS renewed_at"
)


def lease_of(row: asyncpg.Record) -> Lease:
    """A :class:`Lease` from a row selected with :data:`LEASE_COLUMNS`."""
    return Lease(
        shop=row["shop"], owner=row["owner"], epoch=row["epoch"],
        expires_at=row["expires_at"], renewed_at=row["renewed_at"],
    )  # fmt: skip

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}\Z")

# Errors that mean "the database did not do it": translated to StorageError at this boundary.
DB_ERRORS: tuple[type[BaseException], ...] = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    # A connection whose session the server ended mid-exchange (a claimer ending the session of an
    # expired owner) refuses its next query with this, outside the two classes above.
    asyncpg.exceptions.InternalClientError,
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


#: Connections of the control pool at most: the lease cycle's statements one at a time, plus its
#: claims, which run a few at a time (``CLAIMS_AT_ONCE`` in daemon/ownership.py, 3), each of which
#: may hold a probe and a waiter. Fewer only make claims wait for one another, never for a run.
CONTROL_CONNECTIONS = 4

#: Seconds a transaction under the schema's advisory lock may sit idle between its statements
#: before the server ends it. Its statements (DDL) are sent back to back, so a client idle that
#: long is stalled or frozen (SIGSTOP), and until then it would hold every other daemon's table
#: creation, and the runs that wait for it, on this schema.
SCHEMA_LOCK_IDLE_TIMEOUT = 10.0


class PostgresDatabase(SharedDatabase[asyncpg.Connection]):
    """A pool of asyncpg connections to one database and schema, shared by state store and sink,
    and a small control pool of its own for the leases (``connection(…, control=True)``)."""

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 4, timeout: float = 10.0) -> None:
        super().__init__()
        self.dsn, self.schema = split_schema(url)
        self._url = redact_url(url)
        self.min_size, self.max_size, self.timeout = min_size, max_size, timeout
        self.lock_idle_timeout = SCHEMA_LOCK_IDLE_TIMEOUT
        self._pool: asyncpg.Pool | None = None
        # The leases' heartbeat, renewals and claims must never wait for a connection behind this
        # process's own runs (which may all be waiting on another daemon's lock): they would then
        # miss their renewals and claims for as long as the runs wait. Opened empty; a daemon's
        # first heartbeat opens its one connection, which its renewals then keep.
        self._control: asyncpg.Pool | None = None

    @property
    def url(self) -> str:
        return self._url

    @property
    def location(self) -> str:
        return self._url

    def __eq__(self, other: object) -> bool:  # identity: one pool per object
        return self is other

    __hash__ = object.__hash__

    def table(self, name: str) -> str:
        """``"schema"."name"`` (``name`` must already be validated)."""
        return f'"{self.schema}"."{name}"'

    def fail(self, what: str, exc: BaseException) -> StorageError:
        return StorageError(f"{what} failed on PostgreSQL database {self.url} (schema {self.schema}): {exc}")

    async def _connect(self) -> None:
        pool: asyncpg.Pool | None = None
        try:
            pool = await asyncpg.create_pool(
                self.dsn, min_size=self.min_size, max_size=self.max_size, timeout=self.timeout
            )
            async with pool.acquire() as conn, conn.transaction():
                # Concurrent CREATE … IF NOT EXISTS of one name can fail: one creator at a time.
                await self.lock_schema(conn)
                await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                await conn.execute(
                    f"CREATE TABLE IF NOT EXISTS {self.table('meta')} (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
                )
            control = await asyncpg.create_pool(
                self.dsn, min_size=0, max_size=CONTROL_CONNECTIONS, timeout=self.timeout
            )
        except DB_ERRORS as exc:
            if pool is not None:
                with contextlib.suppress(*DB_ERRORS):
                    await pool.close()
            raise self.fail("connecting", exc) from exc
        self._pool, self._control = pool, control

    async def _disconnect(self) -> None:
        pool, control, self._pool, self._control = self._pool, self._control, None, None
        assert pool is not None and control is not None
        try:
            try:
                await control.close()
            finally:
                await pool.close()  # closed even when the control pool's close failed
        except DB_ERRORS as exc:
            raise self.fail("closing", exc) from exc

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    @contextlib.asynccontextmanager
    async def connection(self, what: str, *, control: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection outside an explicit transaction; errors become StorageError.

        ``control``: from the control pool (the leases'), which the runs never use."""
        pool = self._control if control else self._pool
        if pool is None:
            raise StorageError(f"PostgreSQL database {self.url} is not open")
        try:
            async with pool.acquire() as conn:
                yield conn
        except DB_ERRORS as exc:
            raise self.fail(what, exc) from exc

    @contextlib.asynccontextmanager
    async def transaction(self, what: str, *, control: bool = False) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection inside one transaction, committed when the block exits cleanly."""
        async with self.connection(what, control=control) as conn, conn.transaction():
            yield conn

    async def atomic(self, what: str, *steps: Step[asyncpg.Connection]) -> list[object]:
        return await settle(self._atomic(what, steps))

    async def _atomic(self, what: str, steps: Sequence[Step[asyncpg.Connection]]) -> list[object]:
        async with self.transaction(what) as conn:
            results: list[object] = []
            for step in steps:
                result = step(conn)
                # The steps here are coroutine functions on the connection; await what they return.
                results.append(await result if inspect.isawaitable(result) else result)
            return results

    async def lock_schema(self, conn: asyncpg.Connection) -> None:
        """Inside a transaction: wait for, then hold until its end, this schema's advisory lock.

        The transaction is ended by the server once idle :attr:`lock_idle_timeout` seconds between
        statements, so a process frozen inside it does not hold the lock as long as it is frozen.
        """
        await conn.execute(
            "SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
            str(max(1, int(self.lock_idle_timeout * 1000))),
        )
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", f"shopsync:{self.schema}")

    async def migrate(
        self, conn: asyncpg.Connection, key: str, migrations: Sequence[Migration[asyncpg.Connection]]
    ) -> int:
        """Inside a transaction: run the steps of ``migrations`` past the version ``key`` records.

        Under the schema's advisory lock, so of several processes opening together one migrates
        and the others then find the version current. Returns the version reached. A version newer
        than the last step is refused (:class:`~shopsync.errors.StorageError`); the caller's
        transaction then rolls back, so a failing step leaves the schema at its old version.
        """
        await self.lock_schema(conn)
        meta = self.table("meta")
        value = await conn.fetchval(f"SELECT value FROM {meta} WHERE key = $1", key)
        found = int(value) if value is not None else None
        where = f"PostgreSQL database {self.url} (schema {self.schema})"
        steps = pending_migrations(migrations, found, key=key, where=where)
        for step in steps:
            if isinstance(step.apply, str):
                await conn.execute(step.apply.format(schema=self.schema))
            else:
                result = step.apply(conn)
                if inspect.isawaitable(result):
                    await result
        if not steps:
            return int(found or 0)
        version = steps[-1].version
        await conn.execute(
            f"INSERT INTO {meta} (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            key,
            str(version),
        )
        log.info(
            "%s: %s migrated from %s to %s (%s)",
            where, key, found or 0, version, "; ".join(s.description for s in steps),
        )  # fmt: skip
        return version

    async def ensure_schema_version(
        self,
        conn: asyncpg.Connection,
        key: str,
        current: int,
        create: Callable[[asyncpg.Connection], Awaitable[None]],
    ) -> None:
        """Inside a transaction: create the schema part ``key`` if missing, refuse a newer one."""
        await self.lock_schema(conn)  # one creator at a time (two processes starting together)
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


def _upsert_sql(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    return upsert_sql(table, columns, key, [f"${i}" for i in range(1, len(columns) + 1)])


class PostgresStateStore(SqlStateStore[PostgresDatabase, asyncpg.Connection]):
    """The :class:`~shopsync.state.store.StateStore` in a PostgreSQL schema."""

    _UNFINISHED = "NOT finished"

    def __init__(self, database: PostgresDatabase, sink: Sink | None = None) -> None:
        super().__init__(database, sink)
        t = database.table
        self._save_stream_sql = _upsert_sql(t("stream_state"), STREAM_COLUMNS, ("shop", "resource"))
        self._save_bulk_sql = _upsert_sql(t("bulk_operations"), BULK_COLUMNS, ("shop", "id"))

    @staticmethod
    def _mark(n: int) -> str:
        return f"${n}"

    async def _open_schema(self) -> None:
        async with self.database.transaction("creating or migrating the state tables") as conn:
            await self.database.migrate(conn, STATE_SCHEMA_KEY, MIGRATIONS)

    async def _select_streams(self, where: str, params: list[str], *, what: str) -> list[StreamState]:
        sql = (
            f"SELECT {', '.join(STREAM_COLUMNS)} FROM {self.database.table('stream_state')}{where}"
            ' ORDER BY shop COLLATE "C", resource COLLATE "C"'
        )
        async with self.database.connection(what) as conn:
            rows = await conn.fetch(sql, *params)
        return [StreamState(**dict(r)) for r in rows]

    async def _select_bulk(self, where: str, params: list[str], *, what: str) -> list[BulkOperationRecord]:
        sql = (
            f"SELECT {', '.join(BULK_COLUMNS)} FROM {self.database.table('bulk_operations')}{where}"
            ' ORDER BY created_at COLLATE "C" NULLS FIRST, id COLLATE "C", shop COLLATE "C"'
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

    async def _check_lease_in(self, conn: asyncpg.Connection, fence: Fence, shop: str, epoch: int) -> None:
        # FOR KEY SHARE: a claim (which locks this row FOR UPDATE first) by another daemon waits
        # until this write commits, so no write ever lands after a takeover that it did not see;
        # the owner's own renewals (plain UPDATEs of expires_at) do not wait, so a long write
        # cannot make its own lease expire.
        if fence.idle_timeout is not None:
            # A daemon paused inside this transaction must not hold the lease row (and so every
            # claim of the shop) for as long as it is paused: the server aborts it when idle.
            await conn.execute(
                "SELECT set_config('idle_in_transaction_session_timeout', $1, true)",
                str(max(1, int(fence.idle_timeout * 1000))),
            )
        row = await conn.fetchrow(
            f"SELECT {LEASE_COLUMNS}, extract(epoch FROM clock_timestamp())::float8 AS now"
            f" FROM {self.database.table('leases')} WHERE shop = $1 FOR KEY SHARE",
            shop,
        )
        check_lease(fence, shop, epoch, lease_of(row) if row is not None else None, row["now"] if row else 0.0)

    async def _save_bulk_in(self, conn: asyncpg.Connection, rec: BulkOperationRecord) -> None:
        await conn.execute(self._save_bulk_sql, *(getattr(rec, c) for c in BULK_COLUMNS))
