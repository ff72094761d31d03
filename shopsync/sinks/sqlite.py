"""SQLite sink: one table per resource, rows upserted newer-wins, optionally in the state's transaction.

Table ``<resource>`` (for example ``orders``)::

    shop        TEXT NOT NULL   -- the shop's name in the configuration
    id          TEXT NOT NULL   -- the record's GID
    updated_at  TEXT            -- the record's updatedAt, 2026-11-25T23:18:05Z (NULL if it has none)
    data        TEXT            -- the record's JSON (sorted keys); NULL only for a bare tombstone
    synced_at   TEXT NOT NULL   -- when shopsync last wrote the row
    deleted_at  TEXT            -- set when Shopify reported the record deleted; data is kept
    PRIMARY KEY (shop, id), index <resource>_shop_updated_at on (shop, updated_at)

A record replaces the stored row only if its ``updated_at`` is newer than or equal to the stored
one, so replaying an old page never overwrites newer data. A deletion marks the row (inserting a
tombstone if the record was never seen) unless the stored version is newer than the deletion; a
record version strictly newer than the deletion clears the mark.
"""

from __future__ import annotations

import functools
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from shopsync.sinks.base import validate_resource_name
from shopsync.state.models import Deletion, Record, SinkRow, SinkStats, WriteResult
from shopsync.state.sqlite import SqliteDatabase
from shopsync.timeutil import format_ts, from_epoch

SINK_SCHEMA_VERSION = 1


def quote_ident(name: str) -> str:
    """``name`` as a quoted SQL identifier, after checking it is a valid resource name."""
    validate_resource_name(name)
    return f'"{name}"'


@dataclass(frozen=True, slots=True)
class _TableSql:
    create: tuple[str, ...]
    upsert: str
    delete: str
    select: str
    stats: str


@functools.cache
def _table_sql(resource: str) -> _TableSql:
    t = quote_ident(resource)
    index = f'"{resource}_shop_updated_at"'
    return _TableSql(
        create=(
            f"CREATE TABLE IF NOT EXISTS {t} ("
            " shop TEXT NOT NULL, id TEXT NOT NULL, updated_at TEXT, data TEXT,"
            " synced_at TEXT NOT NULL, deleted_at TEXT, PRIMARY KEY (shop, id))",
            f"CREATE INDEX IF NOT EXISTS {index} ON {t} (shop, updated_at)",
        ),
        # Newer-or-equal wins; NULL updated_at (resources without one) always replaces. deleted_at
        # survives a replay of the pre-deletion version and is cleared only by a strictly newer one.
        upsert=(
            f"INSERT INTO {t} (shop, id, updated_at, data, synced_at, deleted_at) VALUES (?, ?, ?, ?, ?, NULL)"
            f" ON CONFLICT (shop, id) DO UPDATE SET"
            f" updated_at = excluded.updated_at, data = excluded.data, synced_at = excluded.synced_at,"
            f" deleted_at = CASE WHEN {t}.deleted_at IS NOT NULL AND excluded.updated_at IS NOT NULL"
            f" AND excluded.updated_at > {t}.deleted_at THEN NULL ELSE {t}.deleted_at END"
            f" WHERE excluded.updated_at IS NULL OR {t}.updated_at IS NULL"
            f" OR excluded.updated_at >= {t}.updated_at"
        ),
        delete=(
            f"INSERT INTO {t} (shop, id, updated_at, data, synced_at, deleted_at) VALUES (?, ?, NULL, NULL, ?, ?)"
            f" ON CONFLICT (shop, id) DO UPDATE SET deleted_at = excluded.deleted_at, synced_at = excluded.synced_at"
            f" WHERE {t}.deleted_at IS NULL AND ({t}.updated_at IS NULL OR excluded.deleted_at >= {t}.updated_at)"
        ),
        select=f"SELECT id, updated_at, data, deleted_at FROM {t} WHERE shop = ?",
        stats=f"SELECT count(*), count(deleted_at), max(updated_at) FROM {t} WHERE shop = ?",
    )


def _resources(records: Iterable[Record], deletions: Iterable[Deletion]) -> set[str]:
    return {r.resource for r in records} | {d.resource for d in deletions}


class SqliteSink:
    """The :class:`~shopsync.sinks.base.Sink` writing one table per resource in a SQLite file.

    ``database`` may be the state store's :class:`SqliteDatabase` (then the state store writes
    through :meth:`write_in` inside its own transaction) or a separate file.
    ``clock`` gives ``synced_at`` (epoch seconds).
    """

    def __init__(self, database: SqliteDatabase, *, clock: Callable[[], float] = time.time) -> None:
        self.database = database
        self.clock = clock
        self._tables: set[str] = set()
        self._opened = False

    @property
    def url(self) -> str:
        return self.database.url

    def __repr__(self) -> str:
        return f"SqliteSink({str(self.database.path)!r})"

    async def open(self) -> None:
        if self._opened:
            return
        await self.database.open()
        try:
            await self.database.transaction(self._check_schema, what="checking the sink schema")
        except BaseException:
            await self.database.close()
            raise
        self._opened = True

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        self.database.ensure_schema_version(conn, "sink_schema_version", SINK_SCHEMA_VERSION, lambda: None)

    async def close(self) -> None:
        if self._opened:
            self._opened = False
            self._tables.clear()
            await self.database.close()

    async def prepare(self, records: Sequence[Record], deletions: Sequence[Deletion]) -> None:
        """Create the tables of the batch's resources that do not exist yet (own transaction)."""
        missing = sorted(_resources(records, deletions) - self._tables)
        if not missing:
            return
        for name in missing:
            validate_resource_name(name)

        def create(conn: sqlite3.Connection) -> None:
            for name in missing:
                for statement in _table_sql(name).create:
                    conn.execute(statement)

        await self.database.transaction(create, what=f"creating sink tables {', '.join(missing)}")
        self._tables.update(missing)

    def write_in(
        self, conn: sqlite3.Connection, records: Sequence[Record], deletions: Sequence[Deletion]
    ) -> WriteResult:
        """Write the batch with ``conn`` inside the caller's open transaction (on the database thread).

        Tables missing from the cache (no :meth:`prepare` call) are created in that transaction.
        """
        synced_at = format_ts(from_epoch(self.clock()))
        rows: dict[str, list[tuple[str, str, str | None, str, str]]] = defaultdict(list)
        for r in records:
            rows[r.resource].append((r.shop, r.id, r.updated_at, r.json_bytes().decode(), synced_at))
        dels: dict[str, list[tuple[str, str, str, str]]] = defaultdict(list)
        for d in deletions:
            dels[d.resource].append((d.shop, d.id, synced_at, d.deleted_at))
        written = deleted = 0
        for resource in sorted(rows.keys() | dels.keys()):
            sql = _table_sql(resource)
            if resource not in self._tables:
                for statement in sql.create:
                    conn.execute(statement)
            if rows.get(resource):
                # executemany sums changed rows; an upsert whose WHERE fails changes none.
                written += conn.executemany(sql.upsert, rows[resource]).rowcount
            if dels.get(resource):
                deleted += conn.executemany(sql.delete, dels[resource]).rowcount
        return WriteResult(
            written=written,
            skipped_older=(len(records) - written) + (len(deletions) - deleted),
            deleted=deleted,
        )

    async def write(self, records: Sequence[Record] = (), deletions: Sequence[Deletion] = ()) -> WriteResult:
        if not records and not deletions:
            return WriteResult()
        await self.prepare(records, deletions)
        return await self.database.transaction(
            lambda conn: self.write_in(conn, records, deletions),
            what=f"writing {len(records)} records and {len(deletions)} deletions",
        )

    def _table_exists(self, conn: sqlite3.Connection, resource: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (resource,)
        ).fetchone()
        return row is not None

    async def read_latest(self, shop: str, resource: str) -> dict[str, SinkRow]:
        sql = _table_sql(resource)

        def read(conn: sqlite3.Connection) -> dict[str, SinkRow]:
            if not self._table_exists(conn, resource):
                return {}
            return {
                row[0]: SinkRow(
                    id=row[0],
                    updated_at=row[1],
                    data=None if row[2] is None else row[2].encode(),
                    deleted_at=row[3],
                )
                for row in conn.execute(sql.select, (shop,))
            }

        return await self.database.run(read, what=f"reading table {resource} for {shop}")

    async def stats(self, shop: str, resource: str) -> SinkStats:
        sql = _table_sql(resource)

        def read(conn: sqlite3.Connection) -> SinkStats:
            if not self._table_exists(conn, resource):
                return SinkStats(records=0, deleted=0)
            count, deleted, newest = conn.execute(sql.stats, (shop,)).fetchone()
            return SinkStats(records=count, deleted=deleted, newest_updated_at=newest)

        return await self.database.run(read, what=f"counting table {resource} for {shop}")
