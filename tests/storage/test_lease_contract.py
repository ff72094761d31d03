"""The LeaseStore contract and the fencing of writes, run against PostgreSQL and the in-memory store.

PostgreSQL's clock cannot be moved, so leases there are given a short ttl and a test waits (with a
bound) until the database's own ``now()`` has passed them; the in-memory database's clock is moved.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import pytest

from shopsync.errors import LeaseLostError
from shopsync.state import BulkOperationRecord, Record, StreamState
from shopsync.state.leases import LeaseStore
from shopsync.state.memory import MemoryDatabase, MemorySink, MemoryStateStore
from shopsync.state.open import Storage, lease_store, open_storage
from tests.support import FakeClock

#: A lease "long enough": nothing in a test outlives it by accident.
LONG = 60.0
#: A lease a test lets expire.
SHORT = 0.3


def _rec(i: int, shop: str = "acme") -> Record:
    gid = f"gid://shopify/Order/{i}"
    ts = "2026-01-01T00:00:00Z"
    return Record(shop=shop, resource="orders", id=gid, updated_at=ts, data={"id": gid, "updatedAt": ts})


@dataclass
class Backend:
    """Two daemons' storages on one database and a way to let time pass in that database."""

    storages: list[Storage]
    #: Wait until ``seconds`` have passed on the database's clock (PostgreSQL: polled, bounded).
    let_pass: Callable[[LeaseStore, float], Awaitable[None]]

    async def expire(self, store: LeaseStore, shop: str) -> None:
        await self.let_pass(store, SHORT + 0.01)

    def leases(self, owner: str, i: int = 0) -> LeaseStore:
        store = lease_store(self.storages[i], owner)
        assert store is not None
        return store


@pytest.fixture(params=["memory", "postgresql"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock(1_000_000.0)
        db = MemoryDatabase(clock=clock)
        storages = []
        for _ in range(2):
            sink = MemorySink(db)
            state = MemoryStateStore(db, sink)
            await state.open()
            await sink.open()
            storages.append(Storage(state=state, sink=sink, shared_transaction=True))

        async def advance(store: LeaseStore, seconds: float) -> None:
            clock.advance(seconds)

        yield Backend(storages, advance)
        return
    url = request.getfixturevalue("pg_url")
    storages = [await open_storage(url), await open_storage(url)]

    async def wait_expired(store: LeaseStore, seconds: float) -> None:
        deadline = time.monotonic() + 5
        start = (await store.list_leases(), await _db_now(storages[0]))[1]
        while await _db_now(storages[0]) < start + seconds:
            assert time.monotonic() < deadline, f"{seconds}s did not pass on the database's clock within 5 s"
            await asyncio.sleep(0.02)  # polling the database's clock, bounded above

    try:
        yield Backend(storages, wait_expired)
    finally:
        for s in storages:
            await s.close()


async def test_claim_is_exclusive_and_renewal_keeps_the_epoch(backend: Backend) -> None:
    a, b = backend.leases("a", 0), backend.leases("b", 1)
    first = await a.claim("acme", LONG)
    assert first is not None and first.owner == "a" and first.epoch == 1
    assert first.expires_at > first.renewed_at
    assert await b.claim("acme", LONG) is None
    again = await a.claim("acme", LONG)
    assert again is not None and again.epoch == 1
    renewed = await a.renew({"acme": 1}, LONG)
    assert set(renewed) == {"acme"} and renewed["acme"].epoch == 1
    assert renewed["acme"].expires_at >= first.expires_at
    assert await a.renew({"acme": 2}, LONG) == {}  # not the epoch it holds
    assert await b.renew({"acme": 1}, LONG) == {}  # not its lease
    assert [(x.shop, x.owner, x.epoch) for x in await b.list_leases()] == [("acme", "a", 1)]


async def test_takeover_bumps_the_epoch_and_fences_the_old_owner(backend: Backend) -> None:
    a, b = backend.leases("a", 0), backend.leases("b", 1)
    lease = await a.claim("acme", LONG)
    assert lease is not None
    a.fence.hold("acme", lease.epoch)
    state_a, state_b = backend.storages[0].state, backend.storages[1].state
    before = StreamState(shop="acme", resource="orders", watermark="2026-01-01T00:00:00Z")
    await state_a.commit(before, [_rec(1)])
    shortened = await a.claim("acme", SHORT)  # its own live lease: the same epoch, a new expiry
    assert shortened is not None and shortened.epoch == lease.epoch
    await backend.expire(a, "acme")
    taken = await b.claim("acme", LONG)
    assert taken is not None and taken.owner == "b" and taken.epoch == lease.epoch + 1
    b.fence.hold("acme", taken.epoch)
    assert await a.renew({"acme": lease.epoch}, LONG) == {}
    late = StreamState(shop="acme", resource="orders", watermark="2026-06-01T00:00:00Z")
    for write in (
        lambda: state_a.commit(late, [_rec(2)]),
        lambda: state_a.commit(late),
        lambda: state_a.save_stream(late),
        lambda: state_a.save_bulk_operation(BulkOperationRecord(id="gid://shopify/BulkOperation/9", shop="acme", resource="orders")),
    ):
        with pytest.raises(LeaseLostError) as caught:
            await write()
        assert caught.value.shop == "acme" and caught.value.reason == "epoch"
        assert "acme" in str(caught.value) and "epoch" in str(caught.value)
    # Nothing of the refused writes is there; the new owner writes.
    assert await state_b.get_stream("acme", "orders") == before
    assert set(await backend.storages[1].sink.read_latest("acme", "orders")) == {_rec(1).id}
    assert await state_b.list_bulk_operations(shop="acme") == []
    await state_b.commit(late, [_rec(3)])
    assert await state_b.get_stream("acme", "orders") == late


async def test_an_expired_lease_refuses_writes_until_claimed_again(backend: Backend) -> None:
    a = backend.leases("a", 0)
    lease = await a.claim("acme", SHORT)
    assert lease is not None
    a.fence.hold("acme", lease.epoch)
    await backend.expire(a, "acme")
    state = StreamState(shop="acme", resource="orders", watermark="2026-02-01T00:00:00Z")
    with pytest.raises(LeaseLostError) as caught:
        await backend.storages[0].state.commit(state, [_rec(1)])
    assert caught.value.reason == "expired"
    assert await backend.storages[0].state.get_stream("acme", "orders") is None
    again = await a.claim("acme", LONG)
    assert again is not None and again.epoch == lease.epoch + 1  # lapsed: a new epoch
    a.fence.hold("acme", again.epoch)
    await backend.storages[0].state.commit(state, [_rec(1)])
    assert await backend.storages[0].state.get_stream("acme", "orders") == state


async def test_writes_for_a_shop_not_held_are_refused_before_touching_anything(backend: Backend) -> None:
    a = backend.leases("a", 0)
    held = await a.claim("north", LONG)
    assert held is not None
    a.fence.hold("north", held.epoch)
    store = backend.storages[0].state
    with pytest.raises(LeaseLostError) as caught:
        await store.commit(StreamState(shop="south", resource="orders"), [_rec(1, "south")])
    assert caught.value.reason == "not_held" and caught.value.shop == "south"
    assert await backend.storages[0].sink.read_latest("south", "orders") == {}
    await store.commit(StreamState(shop="north", resource="orders"), [_rec(1, "north")])
    assert set(await backend.storages[0].sink.read_latest("north", "orders")) == {_rec(1).id}


async def test_release_frees_the_shop_at_once_and_fences_the_releaser(backend: Backend) -> None:
    a, b = backend.leases("a", 0), backend.leases("b", 1)
    lease = await a.claim("acme", LONG)
    assert lease is not None
    a.fence.hold("acme", lease.epoch)
    await a.release(["acme"])
    (row,) = await a.list_leases()
    assert row.owner is None
    taken = await b.claim("acme", LONG)
    assert taken is not None and taken.epoch == lease.epoch + 1
    with pytest.raises(LeaseLostError) as caught:
        await backend.storages[0].state.save_stream(StreamState(shop="acme", resource="orders"))
    assert caught.value.reason == "epoch"


async def test_membership_lists_live_daemons_and_forgets_those_that_left(backend: Backend) -> None:
    a, b = backend.leases("a", 0), backend.leases("b", 1)
    await a.heartbeat(LONG)
    seen = await b.heartbeat(LONG)
    assert seen.alive == ("a", "b")
    assert all(m.expires_at > seen.now >= m.started_at for m in seen.members)
    await a.leave()
    assert (await b.heartbeat(LONG)).alive == ("b",)
    await a.heartbeat(SHORT)
    assert (await b.heartbeat(LONG)).alive == ("a", "b")
    await backend.let_pass(b, SHORT + 0.01)
    assert (await b.heartbeat(LONG)).alive == ("b",)  # a stopped beating: no longer a member


async def _db_now(storage: Storage) -> float:
    db = storage.state.database  # type: ignore[attr-defined]
    async with db.connection("reading the clock") as conn:
        return float(await conn.fetchval("SELECT extract(epoch FROM clock_timestamp())::float8"))


async def test_concurrent_claims_of_one_shop_give_it_to_exactly_one(pg_url: str) -> None:
    storages = [await open_storage(pg_url) for _ in range(4)]
    try:
        stores = [lease_store(s, f"d{i}") for i, s in enumerate(storages)]
        results = await asyncio.gather(*(s.claim("acme", LONG) for s in stores if s is not None))
        winners = [r for r in results if r is not None]
        assert len(winners) == 1 and winners[0].epoch == 1
    finally:
        for s in storages:
            await s.close()


async def test_a_claim_waits_for_a_fenced_write_in_flight(pg_url: str) -> None:
    """The write's lease check holds the row until it commits: a takeover cannot slip in between."""
    a_storage, b_storage = await open_storage(pg_url), await open_storage(pg_url)
    try:
        a, b = lease_store(a_storage, "a"), lease_store(b_storage, "b")
        assert a is not None and b is not None
        lease = await a.claim("acme", SHORT)
        assert lease is not None
        a.fence.hold("acme", lease.epoch)
        store = a_storage.state
        assert hasattr(store, "database")
        db = store.database
        async with db.transaction("a fenced write held open") as conn:
            await store._check_lease_in(conn, a.fence, "acme", lease.epoch)  # type: ignore[attr-defined]
            claim = asyncio.create_task(b.claim("acme", LONG))
            done, _ = await asyncio.wait([claim], timeout=SHORT + 0.5)
            assert not done, "the claim did not wait for the write holding the lease row"
        taken = await asyncio.wait_for(claim, 5)
        assert taken is not None and taken.epoch == lease.epoch + 1
    finally:
        await a_storage.close()
        await b_storage.close()


async def test_a_claim_blocked_by_a_stuck_write_gives_up_and_the_database_aborts_the_idle_write(pg_url: str) -> None:
    """A daemon paused inside a fenced write holds the shop's lease row: a claim waits only
    ttl / 20 for it (so the claimer's renewals never stall behind it), and the server aborts the
    idle transaction after the fence's idle timeout, freeing the shop."""
    a_storage, b_storage = await open_storage(pg_url), await open_storage(pg_url)
    try:
        a, b = lease_store(a_storage, "a"), lease_store(b_storage, "b")
        assert a is not None and b is not None
        lease = await a.claim("acme", SHORT)
        assert lease is not None
        a.fence.hold("acme", lease.epoch)
        a.fence.idle_timeout = 1.0
        store = a_storage.state
        db = store.database  # type: ignore[attr-defined]
        async with db.connection("a write that stops half-way") as conn:
            tx = conn.transaction()
            await tx.start()
            await store._check_lease_in(conn, a.fence, "acme", lease.epoch)  # type: ignore[attr-defined]
            # The "paused" writer does nothing more. Past the lease, b's claim gives up quickly.
            await asyncio.sleep(SHORT)  # let the lease expire (the claim must then be blocked only by the lock)
            started = time.monotonic()
            assert await b.claim("acme", 2.0) is None
            assert time.monotonic() - started < 1.0
            # The server aborts the idle transaction after 1 s; then the claim goes through.
            deadline = time.monotonic() + 10
            while (taken := await b.claim("acme", 2.0)) is None:
                assert time.monotonic() < deadline, "the idle write transaction was not aborted"
                await asyncio.sleep(0.1)
            assert taken.owner == "b" and taken.epoch == lease.epoch + 1
            with pytest.raises((asyncpg.PostgresError, asyncpg.InterfaceError)):
                await conn.execute("SELECT 1")  # the session was terminated
    finally:
        await a_storage.close()
        await b_storage.close()
