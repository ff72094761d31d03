"""The PostgreSQL :class:`~shopsync.state.leases.LeaseStore`: ``leases`` and ``daemons`` tables
(state schema version 3), in the state store's database. The lease cycle (heartbeat, renewals,
claims, releases) runs on the database's control pool, never on the runs' connections: runs all
waiting (on another daemon's lock, a slow write) must not stop this daemon renewing its leases or
claiming a dead daemon's shops. A run's check (:meth:`PostgresLeaseStore.confirm`) is the run's
own work and takes a run's connection.

Every time is PostgreSQL's ``clock_timestamp()``. A claim locks the shop's row ``FOR UPDATE``, then
is one ``INSERT … ON CONFLICT DO UPDATE … WHERE`` statement: the lock serialises claimers, and it
waits for the writes holding the row ``FOR KEY SHARE`` (the fencing check of
:class:`~shopsync.state.postgres.PostgresStateStore`) to end; a release does the same. Renewals and
confirmations are plain UPDATEs of non-key columns, which take no lock that conflicts with
``FOR KEY SHARE``: a daemon's own writes in flight never hold up its renewals.

A write of a daemon frozen mid-statement (SIGSTOP, a stalled host) holds that row for as long as it
is frozen, and no server timeout ends it: ``idle_in_transaction_session_timeout`` counts only
between statements, and a cancel is ignored while the server waits for the client's next message.
So once the lease has expired, the claimer ends the sessions that hold the row
(``pg_terminate_backend``): their transactions roll back, nothing of them lands, and the claim goes
through. Those sessions began under a lease that is over, so their writes are the ones fencing
exists to refuse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable, Mapping

import asyncpg

from shopsync.errors import StorageError
from shopsync.state.leases import Fence, Lease, Member, Membership, check_call
from shopsync.state.postgres import LEASE_COLUMNS, PostgresDatabase, PostgresStateStore, lease_of

log = logging.getLogger(__name__)

#: How many times, at most, a claim blocked on an expired lease looks for the sessions holding it.
HOLDER_PROBES = 10


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
        async with self._db.transaction(f"heartbeat of daemon {self._owner}", control=True) as conn:
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
        async with self._db.connection(f"removing the heartbeat of daemon {self._owner}", control=True) as conn:
            await conn.execute(f"DELETE FROM {self._daemons} WHERE id = $1", self._owner)

    async def claim(self, shop: str, ttl: float) -> Lease | None:
        wait_ms = max(1, int(ttl * 1000 / 20))
        for attempt in range(2):
            try:
                row = await self._claim_waiting(shop, ttl, wait_ms)
            except StorageError as exc:
                if not isinstance(exc.__cause__, asyncpg.LockNotAvailableError):
                    raise
                # A write of the shop holds its row. If the lease is over, the write is a stale
                # owner's (a paused daemon's): end it and claim once more; else try next cycle.
                if attempt or not await self._end_stale_holders(shop, wait_ms):
                    return None
                continue
            return lease_of(row) if row is not None else None
        return None  # not reached: the second attempt returns or raises

    async def _claim_waiting(self, shop: str, ttl: float, wait_ms: int) -> asyncpg.Record | None:
        async with self._db.transaction(f"claiming the lease of shop {shop}", control=True) as conn:
            await conn.execute(f"SET LOCAL lock_timeout = {wait_ms}")
            # FOR UPDATE, the one lock a write's FOR KEY SHARE holds up (the upsert's own lock
            # would not): the claim waits for every write of the shop in flight.
            await conn.execute(f"SELECT 1 FROM {self._leases} WHERE shop = $1 FOR UPDATE", shop)
            return await self._claim_in(conn, shop, ttl)

    async def _end_stale_holders(self, shop: str, wait_ms: int) -> bool:
        """Terminates the sessions holding ``shop``'s lease row if its lease is held by another
        daemon and expired by the database's clock; whether any was ended."""
        what = f"ending stale writes of shop {shop}"
        async with self._db.connection(what, control=True) as probe:
            row = await probe.fetchrow(
                f"SELECT owner, epoch, expires_at <= clock_timestamp() AS expired FROM {self._leases} WHERE shop = $1",
                shop,
            )
            if row is None or not row["expired"] or row["owner"] in (None, self._owner):
                return False
            # Who holds a row lock shows only to a session waiting for it: wait on a second
            # connection and ask the server who blocks that wait.
            async with self._db.transaction(what, control=True) as waiter:
                await waiter.execute(f"SET LOCAL lock_timeout = {wait_ms * HOLDER_PROBES}")
                waiting = asyncio.ensure_future(
                    waiter.fetchval(f"SELECT 1 FROM {self._leases} WHERE shop = $1 FOR UPDATE", shop)
                )
                ended = 0
                try:
                    for _ in range(HOLDER_PROBES):
                        done, _ = await asyncio.wait({waiting}, timeout=wait_ms / 1000 / 4)
                        if done:
                            break  # the row came free (or the wait timed out) on its own
                        holders = await probe.fetch(
                            "SELECT pid, application_name, xact_start, state FROM pg_stat_activity"
                            " WHERE pid = ANY(pg_blocking_pids($1))",
                            waiter.get_server_pid(),
                        )
                        for h in holders:
                            if await probe.fetchval("SELECT pg_terminate_backend($1)", h["pid"]):
                                ended += 1
                                log.warning(
                                    "shop %s: ended database session %s (application %r, %s since %s) that held the"
                                    " lease row after daemon %s's lease at epoch %s expired; its writes are rolled back",
                                    shop, h["pid"], h["application_name"], h["state"], h["xact_start"],
                                    row["owner"], row["epoch"], extra={"shop": shop},
                                )  # fmt: skip
                        if holders:
                            break
                finally:
                    with contextlib.suppress(asyncpg.LockNotAvailableError):
                        await waiting
        return ended > 0

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
        async with self._db.connection(f"renewing the leases of daemon {self._owner}", control=True) as conn:
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
        async with self._db.transaction(f"releasing {len(names)} leases of daemon {self._owner}", control=True) as conn:
            # FOR UPDATE first, like a claim: the release waits for this daemon's writes in flight,
            # so none of them lands after it (a released shop is nobody's).
            await conn.execute(
                f"SELECT 1 FROM {self._leases} WHERE owner = $1 AND shop = ANY($2::text[]) FOR UPDATE", self._owner, names
            )
            await conn.execute(
                f"UPDATE {self._leases} SET owner = NULL, expires_at = clock_timestamp(), renewed_at = clock_timestamp()"
                " WHERE owner = $1 AND shop = ANY($2::text[])",
                self._owner,
                names,
            )

    async def list_leases(self) -> list[Lease]:
        async with self._db.connection("listing leases", control=True) as conn:
            rows = await conn.fetch(f'SELECT {LEASE_COLUMNS} FROM {self._leases} ORDER BY shop COLLATE "C"')
        return [lease_of(r) for r in rows]

    async def confirm(self, shop: str, epoch: int, *, extend: float | None, what: str) -> Lease:
        async with self._db.connection(f"checking the lease of shop {shop} before {what}") as conn:
            if extend is not None:
                # One statement: extended only if still ours at this epoch and unexpired now.
                row = await conn.fetchrow(
                    f"UPDATE {self._leases} SET renewed_at = clock_timestamp(),"
                    " expires_at = greatest(expires_at, clock_timestamp() + make_interval(secs => $4))"
                    " WHERE shop = $1 AND owner = $2 AND epoch = $3 AND expires_at > clock_timestamp()"
                    f" RETURNING {LEASE_COLUMNS}, extract(epoch FROM clock_timestamp())::float8 AS now",
                    shop,
                    self._owner,
                    epoch,
                    extend,
                )
                if row is not None:
                    return lease_of(row)
            # Read (or, when the extension found nothing, read why).
            row = await conn.fetchrow(
                f"SELECT {LEASE_COLUMNS}, extract(epoch FROM clock_timestamp())::float8 AS now"
                f" FROM (SELECT 1) AS one LEFT JOIN {self._leases} ON shop = $1",
                shop,
            )
        assert row is not None  # the LEFT JOIN always yields one row
        lease = lease_of(row) if row["shop"] is not None else None
        check_call(self._owner, shop, epoch, lease, row["now"], what)
        assert lease is not None
        return lease
