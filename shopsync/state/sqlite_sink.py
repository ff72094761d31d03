"""SQLite sink: one table per resource, rows upserted newer-wins, optionally in the state's transaction.

Table ``<resource>`` (for example ``orders``)::

    shop        TEXT NOT NULL   -- the shop's name in the configuration
    id          TEXT NOT NULL   -- the record's GID
    updated_at  TEXT            -- the record's updatedAt, 2026-11-25T23:18:05Z (NULL if it has none)
    data        TEXT            -- the record's JSON (sorted keys); NULL only for a bare tombstone
    synced_at   TEXT NOT NULL   -- when shopsync last wrote the row
    deleted_at  TEXT            -- set when Shopify reported the record deleted; data is kept
    PRIMARY KEY (shop, id), index <resource>_shop_updated_at on (shop, updated_at)

Rows follow the newer-wins rules of :mod:`shopsync.state.table`: a record replaces the stored row
only if its ``updated_at`` is newer than or equal to the stored one, so replaying an old page never
overwrites newer data; a deletion marks the row (inserting a tombstone if the record was never seen)
unless the stored version is newer than the deletion; a record version strictly newer than the
deletion clears the mark.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from shopsync.state.models import Deletion, Record, SinkRow, SinkStats, WriteResult
from shopsync.state.sink import validate_resource_name
from shopsync.state.sqlite import SqliteDatabase
from shopsync.state.table import (
    TableSink,
    by_resource,
    delete_conflict,
    record_columns,
    upsert_conflict,
    write_result,
)
from shopsync.state.view_sync import sqlite_views
from shopsync.timeutil import epoch_to_ts

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
        upsert=(
            # The JSON is bound as the bytes orjson made and stored as TEXT (the file is UTF-8):
            # no decoding into a Python str on the way.
            f"INSERT INTO {t} (shop, id, updated_at, data, synced_at, deleted_at) VALUES (?, ?, ?, CAST(? AS TEXT), ?, NULL)"
            + upsert_conflict(t)
        ),
        delete=(
            f"INSERT INTO {t} (shop, id, updated_at, data, synced_at, deleted_at) VALUES (?, ?, NULL, NULL, ?, ?)"
            + delete_conflict(t)
        ),
        select=f"SELECT id, updated_at, data, deleted_at FROM {t} WHERE shop = ?",
        stats=f"SELECT count(*), count(deleted_at), max(updated_at) FROM {t} WHERE shop = ?",
    )


def upsert_rows(records: Sequence[Record], synced_at: str) -> Iterator[tuple[str, str, str | None, bytes, str]]:
    """The upsert's parameters for ``records``, zipped from their columns in C: no Python loop
    per record beside SQLite's own (:func:`~shopsync.state.table.record_columns`)."""
    shops, ids, updated, texts = record_columns(records)
    return zip(shops, ids, updated, texts, itertools.repeat(synced_at, len(ids)), strict=True)


class SqliteSink(TableSink[SqliteDatabase, sqlite3.Connection]):
    """The :class:`~shopsync.state.sink.Sink` writing one table per resource in a SQLite file.

    ``database`` may be the state store's :class:`SqliteDatabase` (then the state store writes
    through :meth:`write_in` inside its own transaction) or a separate file.
    ``clock`` gives ``synced_at`` (epoch seconds).
    """

    async def _open_schema(self) -> None:
        await self.database.transaction(self._check_schema, what="checking the sink schema")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        self.database.ensure_schema_version(conn, "sink_schema_version", SINK_SCHEMA_VERSION, lambda: None)

    async def _create_tables(self, names: list[str], *, what: str) -> None:
        def create(conn: sqlite3.Connection) -> None:
            for name in names:
                for statement in _table_sql(name).create:
                    conn.execute(statement)
                sqlite_views(conn, name, self.view_resources)  # analyst views (state/view_sync.py)

        await self.database.transaction(create, what=what)

    def write_in(
        self, conn: sqlite3.Connection, records: Sequence[Record], deletions: Sequence[Deletion]
    ) -> WriteResult:
        """Write the batch with ``conn`` inside the caller's open transaction (on the database thread).

        Tables missing from the cache (no :meth:`prepare` call) are created in that transaction.
        """
        synced_at = epoch_to_ts(self.clock())
        written = deleted = 0
        for resource, recs, dels in by_resource(records, deletions):
            sql = _table_sql(resource)
            if resource not in self._tables:
                for statement in sql.create:
                    conn.execute(statement)
            if recs:
                # executemany sums changed rows; an upsert whose WHERE fails changes none.
                written += conn.executemany(sql.upsert, upsert_rows(recs, synced_at)).rowcount
            if dels:
                tombstones = [(d.shop, d.id, synced_at, d.deleted_at) for d in dels]
                deleted += conn.executemany(sql.delete, tombstones).rowcount
        return write_result(records, deletions, written, deleted)

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

    async def read_index(self, shop: str, resource: str) -> dict[str, SinkRow]:
        table = quote_ident(validate_resource_name(resource))

        def read(conn: sqlite3.Connection) -> dict[str, SinkRow]:
            if not self._table_exists(conn, resource):
                return {}
            query = f"SELECT id, updated_at, deleted_at FROM {table} WHERE shop = ?"
            return {
                row[0]: SinkRow(id=row[0], updated_at=row[1], data=None, deleted_at=row[2])
                for row in conn.execute(query, (shop,))
            }

        return await self.database.run(read, what=f"reading the ids of table {resource} for {shop}")

    async def purge(self, shop: str, resource: str, ids: Sequence[str]) -> int:
        table = quote_ident(validate_resource_name(resource))

        def remove(conn: sqlite3.Connection) -> int:
            if not ids or not self._table_exists(conn, resource):
                return 0
            query = f"DELETE FROM {table} WHERE shop = ? AND id = ?"
            return conn.executemany(query, [(shop, id) for id in ids]).rowcount

        return await self.database.transaction(remove, what=f"removing {len(ids)} rows of {resource} for {shop}")

    async def stats(self, shop: str, resource: str) -> SinkStats:
        sql = _table_sql(resource)

        def read(conn: sqlite3.Connection) -> SinkStats:
            if not self._table_exists(conn, resource):
                return SinkStats(records=0, deleted=0)
            count, deleted, newest = conn.execute(sql.stats, (shop,)).fetchone()
            return SinkStats(records=count, deleted=deleted, newest_updated_at=newest)

        return await self.database.run(read, what=f"counting table {resource} for {shop}")
