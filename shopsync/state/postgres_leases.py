"""The PostgreSQL :class:`~shopsync.state.leases.LeaseStore`: ``leases`` and ``daemons`` tables
(state schema version 3), on the state store's own connection pool.

Every time is PostgreSQL's ``clock_timestamp()``. A claim is one ``INSERT … ON CONFLICT DO UPDATE … WHERE``
statement: the row lock it takes serialises claimers, and it waits for writes holding the row
``FOR SHARE`` (the fencing check of :class:`~shopsync.state.postgres.PostgresStateStore`) to end.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

from shopsync.errors import StorageError
from shopsync.state.leases import Fence, Lease, Member, Membership
from shopsync.state.postgres import LEASE_COLUMNS, PostgresDatabase, PostgresStateStore, lease_of


class PostgresLeaseStore:
    """Leases and heartbeats of daemon ``owner`` in ``store``'s database; installs its fence there."""

    def __init__(self, store: PostgresStateStore, owner: str) -> None:
        self._db: PostgresDatabase = store.database
        self._fence = Fence(owner)
        store.fence = self._fence
        self._owner = owner
        t = self._db.table
        self._leases, self._daemons = t("leases"), t("daemons")

    @property
    def fence(self) -> Fence:
        return self._fence

    async def heartbeat(self, ttl: float) -> Membership:
        async with self._db.transaction(f"heartbeat of daemon {self._owner}") as conn:
            await conn.execute(
                f"INSERT INTO {self._daemons} (id, started_at, heartbeat_at, expires_at)"
                " VALUES ($1, clock_timestamp(), clock_timestamp(), clock_timestamp() + make_interval(secs => $2))"
                " ON CONFLICT (id) DO UPDATE SET heartbeat_at = clock_timestamp(), expires_at = excluded.expires_at",
                self._owner,
                ttl,
            )
            now = await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8")
            members = await conn.fetch(
                "SELECT id, extract(epoch FROM started_at)::float8 AS s, extract(epoch FROM heartbeat_at)::float8 AS h,"
                f" extract(epoch FROM expires_at)::float8 AS e FROM {self._daemons}"
                ' WHERE expires_at > clock_timestamp() ORDER BY id COLLATE "C"'
            )
            leases = await conn.fetch(f'SELECT {LEASE_COLUMNS} FROM {self._leases} ORDER BY shop COLLATE "C"')
        return Membership(
            now=now,
            members=tuple(
                Member(daemon=r["id"], started_at=r["s"], heartbeat_at=r["h"], expires_at=r["e"])
                for r in members
            ),
            leases=tuple(lease_of(r) for r in leases),
        )

    async def leave(self) -> None:
        async with self._db.connection(f"removing the heartbeat of daemon {self._owner}") as conn:
            await conn.execute(f"DELETE FROM {self._daemons} WHERE id = $1", self._owner)

    async def claim(self, shop: str, ttl: float) -> Lease | None:
        try:
            async with self._db.transaction(f"claiming the lease of shop {shop}") as conn:
                await conn.execute(f"SET LOCAL lock_timeout = {max(1, int(ttl * 1000 / 20))}")
                row = await self._claim_in(conn, shop, ttl)
        except StorageError as exc:
            if isinstance(exc.__cause__, asyncpg.LockNotAvailableError):
                return None  # a write of the shop holds its row (perhaps a paused daemon's): next cycle
            raise
        return lease_of(row) if row is not None else None

    async def _claim_in(self, conn: asyncpg.Connection, shop: str, ttl: float) -> asyncpg.Record | None:
        row: asyncpg.Record | None = await conn.fetchrow(
            f"INSERT INTO {self._leases} AS l (shop, owner, epoch, expires_at, renewed_at, acquired_at)"
            " VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3), clock_timestamp(), clock_timestamp())"
            " ON CONFLICT (shop) DO UPDATE SET owner = excluded.owner,"
            "  epoch = CASE WHEN l.owner = excluded.owner AND l.expires_at > clock_timestamp() THEN l.epoch ELSE l.epoch + 1 END,"
            "  acquired_at = CASE WHEN l.owner = excluded.owner AND l.expires_at > clock_timestamp() THEN l.acquired_at ELSE clock_timestamp() END,"
            "  expires_at = excluded.expires_at, renewed_at = clock_timestamp()"
            " WHERE l.owner IS NULL OR l.expires_at <= clock_timestamp() OR l.owner = excluded.owner"
            f" RETURNING {LEASE_COLUMNS}",
            shop,
            self._owner,
            ttl,
        )
        return row

    async def renew(self, held: Mapping[str, int], ttl: float) -> dict[str, Lease]:
        if not held:
            return {}
        async with self._db.connection(f"renewing the leases of daemon {self._owner}") as conn:
            rows = await conn.fetch(
                f"UPDATE {self._leases} AS l SET expires_at = clock_timestamp() + make_interval(secs => $4), renewed_at = clock_timestamp()"
                " FROM unnest($2::text[], $3::bigint[]) AS h(shop, epoch)"
                " WHERE l.shop = h.shop AND l.epoch = h.epoch AND l.owner = $1 AND l.expires_at > clock_timestamp()"
                " RETURNING l.shop, l.owner, l.epoch, extract(epoch FROM l.expires_at)::float8 AS expires_at,"
                " extract(epoch FROM l.renewed_at)::float8 AS renewed_at",
                self._owner,
                list(held),
                list(held.values()),
                ttl,
            )
        return {r["shop"]: lease_of(r) for r in rows}

    async def release(self, shops: Iterable[str]) -> None:
        names = list(shops)
        if not names:
            return
        async with self._db.connection(f"releasing {len(names)} leases of daemon {self._owner}") as conn:
            await conn.execute(
                f"UPDATE {self._leases} SET owner = NULL, expires_at = clock_timestamp(), renewed_at = clock_timestamp()"
                " WHERE owner = $1 AND shop = ANY($2::text[])",
                self._owner,
                names,
            )

    async def list_leases(self) -> list[Lease]:
        async with self._db.connection("listing leases") as conn:
            rows = await conn.fetch(f'SELECT {LEASE_COLUMNS} FROM {self._leases} ORDER BY shop COLLATE "C"')
        return [lease_of(r) for r in rows]
