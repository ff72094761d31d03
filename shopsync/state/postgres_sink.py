"""PostgreSQL sink: one table per resource (same rules as the SQLite sink), in one schema.

Table ``"<schema>"."<resource>"``::

    shop        TEXT NOT NULL
    id          TEXT NOT NULL          -- the GID
    updated_at  TIMESTAMPTZ            -- the record's updatedAt (NULL if it has none)
    data        JSONB                  -- the record; NULL only for a bare tombstone
    synced_at   TIMESTAMPTZ NOT NULL
    deleted_at  TIMESTAMPTZ
    PRIMARY KEY (shop, id), index <resource>_shop_updated_at on (shop, updated_at)

``data`` is JSONB so it can be queried and indexed; PostgreSQL normalises its text (key order,
spacing), so :meth:`PostgresSink.read_latest` re-serialises it with sorted keys.

A batch is written with one ``INSERT … SELECT FROM unnest(…) ON CONFLICT …`` per resource. A
statement may not touch a row twice, so duplicates of an id inside one batch are first reduced to
the version a sequential write would leave (newest ``updated_at``, the later one on a tie); the
dropped ones count as ``skipped``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import orjson

from shopsync.state.models import Deletion, Record, RecordTexts, SinkRow, SinkStats, WriteResult
from shopsync.state.postgres import PostgresDatabase
from shopsync.state.sink import replaces, validate_resource_name
from shopsync.state.table import (
    TableSink,
    by_resource,
    delete_conflict,
    record_columns,
    upsert_conflict,
    write_result,
)
from shopsync.state.view_sync import postgres_views
from shopsync.timeutil import format_ts, from_epoch, parse_optional_ts

SINK_SCHEMA_VERSION = 1


def _text(value: datetime | None) -> str | None:
    """A ``TIMESTAMPTZ`` read back as shopsync's timestamp text (None stays None)."""
    return None if value is None else format_ts(value)


def _reduce(records: Sequence[Record]) -> Sequence[Record]:
    """Per (shop, id) the version sequential newer-or-equal upserts would leave."""
    if isinstance(records, RecordTexts) and len(set(records.ids)) == len(records):
        return records  # one shop, every id once (a reassembled file's batch): nothing to settle
    best: dict[tuple[str, str], Record] = {}
    for r in records:
        cur = best.get((r.shop, r.id))
        if cur is None or replaces(r.updated_at, cur.updated_at):
            best[(r.shop, r.id)] = r
    return list(best.values())


def _reduce_deletions(deletions: Sequence[Deletion]) -> list[Deletion]:
    first: dict[tuple[str, str], Deletion] = {}
    for d in deletions:
        first.setdefault((d.shop, d.id), d)  # a second deletion of a deleted row changes nothing
    return list(first.values())


class PostgresSink(TableSink[PostgresDatabase, asyncpg.Connection]):
    """The :class:`~shopsync.state.sink.Sink` writing one table per resource in PostgreSQL."""

    async def _open_schema(self) -> None:
        async with self.database.transaction("checking the sink schema") as conn:
            await self.database.ensure_schema_version(
                conn, "sink_schema_version", SINK_SCHEMA_VERSION, _nothing
            )

    async def _create_table(self, conn: asyncpg.Connection, resource: str) -> None:
        t = self.database.table(validate_resource_name(resource))
        index = self.database.table(f"{resource}_shop_updated_at")
        # Looked up first, without a lock: CREATE INDEX IF NOT EXISTS takes a SHARE lock on the
        # table even when the index exists, which stops every other daemon's writes to it until
        # this transaction ends — for as long as this daemon is paused inside it.
        if await conn.fetchval("SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL", t, index):
            return
        await conn.execute(
            f"CREATE TABLE IF NOT EXISTS {t} (shop TEXT NOT NULL, id TEXT NOT NULL, updated_at TIMESTAMPTZ,"
            " data JSONB, synced_at TIMESTAMPTZ NOT NULL, deleted_at TIMESTAMPTZ, PRIMARY KEY (shop, id))"
        )
        await conn.execute(
            f'CREATE INDEX IF NOT EXISTS "{resource}_shop_updated_at" ON {t} (shop, updated_at)'
        )

    async def _create_tables(self, names: list[str], *, what: str) -> None:
        async with self.database.transaction(what) as conn:
            # Serialise creators: concurrent CREATE TABLE IF NOT EXISTS can still collide.
            await self.database.lock_schema(conn)
            for name in names:
                await self._create_table(conn, name)
                # Analyst views (state/view_sync.py).
                await postgres_views(conn, self.database.schema, name, self.view_resources)

    async def write_in(
        self, conn: asyncpg.Connection, records: Sequence[Record], deletions: Sequence[Deletion]
    ) -> WriteResult:
        """Write the batch with ``conn`` inside the caller's open transaction."""
        synced_at = from_epoch(self.clock())
        written = deleted = 0
        for resource, recs, dels in by_resource(records, deletions):
            t = self.database.table(validate_resource_name(resource))
            if resource not in self._tables:
                await self._create_table(conn, resource)
            if recs:
                shops, ids, updated, texts = record_columns(_reduce(recs))
                # The JSON goes as bytea, orjson's bytes untouched: decoding
                # each record to str first cost a second copy of the batch
                # (~40 MB of peak RSS on a 100k-order ingest) for nothing.
                rows = await conn.fetch(
                    f"INSERT INTO {t} AS t (shop, id, updated_at, data, synced_at, deleted_at)"
                    " SELECT s.shop, s.id, s.updated_at, convert_from(s.data, 'UTF8')::jsonb, $5, NULL"
                    " FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::bytea[]) AS s(shop, id, updated_at, data)"
                    + upsert_conflict("t")
                    + " RETURNING 1",
                    shops,
                    ids,
                    [parse_optional_ts(u) for u in updated],
                    texts,
                    synced_at,
                )
                written += len(rows)
            if dels:
                dels = _reduce_deletions(dels)
                rows = await conn.fetch(
                    f"INSERT INTO {t} AS t (shop, id, updated_at, data, synced_at, deleted_at)"
                    " SELECT s.shop, s.id, NULL, NULL, $4, s.deleted_at"
                    " FROM unnest($1::text[], $2::text[], $3::timestamptz[]) AS s(shop, id, deleted_at)"
                    + delete_conflict("t")
                    + " RETURNING 1",
                    [d.shop for d in dels],
                    [d.id for d in dels],
                    [parse_optional_ts(d.deleted_at) for d in dels],
                    synced_at,
                )
                deleted += len(rows)
        return write_result(records, deletions, written, deleted)

    async def _table_exists(self, conn: asyncpg.Connection, resource: str) -> bool:
        return bool(await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", self.database.table(resource)))

    async def read_latest(self, shop: str, resource: str) -> dict[str, SinkRow]:
        t = self.database.table(validate_resource_name(resource))
        async with self.database.connection(f"reading table {resource} for {shop}") as conn:
            if not await self._table_exists(conn, resource):
                return {}
            rows = await conn.fetch(
                f"SELECT id, updated_at, data::text, deleted_at FROM {t} WHERE shop = $1", shop
            )
        return {
            r["id"]: SinkRow(
                id=r["id"],
                updated_at=_text(r["updated_at"]),
                data=None
                if r["data"] is None
                else orjson.dumps(orjson.loads(r["data"]), option=orjson.OPT_SORT_KEYS),
                deleted_at=_text(r["deleted_at"]),
            )
            for r in rows
        }

    async def read_index(self, shop: str, resource: str) -> dict[str, SinkRow]:
        t = self.database.table(validate_resource_name(resource))
        async with self.database.connection(f"reading the ids of table {resource} for {shop}") as conn:
            if not await self._table_exists(conn, resource):
                return {}
            rows = await conn.fetch(f"SELECT id, updated_at, deleted_at FROM {t} WHERE shop = $1", shop)
        return {
            r["id"]: SinkRow(id=r["id"], updated_at=_text(r["updated_at"]), data=None, deleted_at=_text(r["deleted_at"]))
            for r in rows
        }

    async def purge(self, shop: str, resource: str, ids: Sequence[str]) -> int:
        t = self.database.table(validate_resource_name(resource))
        async with self.database.transaction(f"removing {len(ids)} rows of {resource} for {shop}") as conn:
            if not ids or not await self._table_exists(conn, resource):
                return 0
            status = await conn.execute(f"DELETE FROM {t} WHERE shop = $1 AND id = ANY($2::text[])", shop, list(ids))
        return int(status.split()[-1])

    async def stats(self, shop: str, resource: str) -> SinkStats:
        t = self.database.table(validate_resource_name(resource))
        async with self.database.connection(f"counting table {resource} for {shop}") as conn:
            if not await self._table_exists(conn, resource):
                return SinkStats(records=0, deleted=0)
            row = await conn.fetchrow(
                f"SELECT count(*) AS n, count(deleted_at) AS d, max(updated_at) AS m FROM {t} WHERE shop = $1",
                shop,
            )
        return SinkStats(records=row["n"], deleted=row["d"], newest_updated_at=_text(row["m"]))


async def _nothing(conn: asyncpg.Connection) -> None:
    """The sink's tables are created per resource on first use; version 1 has nothing else."""
