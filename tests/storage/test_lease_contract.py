"""The LeaseStore contract and the fencing of writes, run against PostgreSQL and the in-memory store.

PostgreSQL's clock cannot be moved, so leases there are given a short ttl and a test waits (with a
bound) until the database's own ``now()`` has passed them; the in-memory database's clock is moved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from shopsync.errors import LeaseLostError
from shopsync.state import BulkOperationRecord, Record, StreamState
from shopsync.state.leases import LeaseStore
from shopsync.state.memory import MemoryDatabase, MemorySink, MemoryStateStore
from shopsync.state.open import Storage, lease_store, open_storage
from shopsync.state.postgres import DB_ERRORS
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


async def test_confirm_before_a_shopify_call_checks_the_database_and_extends_only_a_live_lease(backend: Backend) -> None:
    a, b = backend.leases("a", 0), backend.leases("b", 1)
    lease = await a.claim("acme", SHORT)
    assert lease is not None
    # Read only: the lease as it is, not extended.
    seen = await a.confirm("acme", lease.epoch, extend=None, what="a run")
    assert (seen.owner, seen.epoch, seen.expires_at) == ("a", lease.epoch, lease.expires_at)
    # A mutation's check extends it to a whole lease time from the database's now, same epoch.
    extended = await a.confirm("acme", lease.epoch, extend=LONG, what="a mutation")
    assert extended.epoch == lease.epoch and extended.expires_at >= lease.expires_at + LONG - SHORT - 1
    (row,) = await b.list_leases()
    assert row.expires_at == extended.expires_at
    # Another epoch than the one held, or another daemon: refused, and nothing extended.
    for store, epoch, owner in ((a, lease.epoch + 1, "a"), (b, lease.epoch, "b")):
        with pytest.raises(LeaseLostError) as caught:
            await store.confirm("acme", epoch, extend=LONG, what="a mutation")
        assert caught.value.reason == "shopify_call" and caught.value.shop == "acme"
        assert f"a mutation for shop acme by daemon {owner} refused before calling Shopify" in str(caught.value)
    # A shop without a lease row.
    with pytest.raises(LeaseLostError, match="no lease row") as missing:
        await a.confirm("globex", 1, extend=None, what="a run")
    assert missing.value.reason == "shopify_call"


async def test_confirm_refuses_an_expired_lease_and_one_taken_over(backend: Backend) -> None:
    a, b = backend.leases("a", 0), backend.leases("b", 1)
    lease = await a.claim("acme", SHORT)
    assert lease is not None
    await backend.expire(a, "acme")
    # Expired but nobody took it: refused all the same, and not brought back by the extension.
    with pytest.raises(LeaseLostError, match="expired") as caught:
        await a.confirm("acme", lease.epoch, extend=LONG, what="a mutation")
    assert caught.value.reason == "shopify_call"
    (row,) = await a.list_leases()
    assert row.expires_at == lease.expires_at
    taken = await b.claim("acme", LONG)
    assert taken is not None
    with pytest.raises(LeaseLostError, match=f"the lease moved on to b at epoch {taken.epoch}"):
        await a.confirm("acme", lease.epoch, extend=LONG, what="a mutation")
    assert (await b.confirm("acme", taken.epoch, extend=None, what="a run")).owner == "b"


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


async def test_a_renewal_does_not_wait_for_the_owners_own_write_in_flight(pg_url: str) -> None:
    """A write holds the lease row against claims only: the owner's renewal (and its confirmation
    before a Shopify call) goes through while the write is open, so a long write never lets its
    own lease run out; another daemon's claim still waits."""
    a_storage, b_storage = await open_storage(pg_url), await open_storage(pg_url)
    try:
        a, b = lease_store(a_storage, "a"), lease_store(b_storage, "b")
        assert a is not None and b is not None
        lease = await a.claim("acme", LONG)
        assert lease is not None
        a.fence.hold("acme", lease.epoch)
        store = a_storage.state
        db = store.database  # type: ignore[attr-defined]
        async with db.transaction("a fenced write held open") as conn:
            await store._check_lease_in(conn, a.fence, "acme", lease.epoch)  # type: ignore[attr-defined]
            renewed = await asyncio.wait_for(a.renew({"acme": lease.epoch}, LONG), 5)
            assert renewed["acme"].epoch == lease.epoch and renewed["acme"].expires_at >= lease.expires_at
            confirmed = await asyncio.wait_for(a.confirm("acme", lease.epoch, extend=LONG, what="a test"), 5)
            assert confirmed.owner == "a"
            assert await b.claim("acme", LONG) is None  # live, and held by the write: not b's
    finally:
        await a_storage.close()
        await b_storage.close()


async def _until_expired(storage: Storage, expires_at: float) -> None:
    deadline = time.monotonic() + 5
    while await _db_now(storage) <= expires_at:
        assert time.monotonic() < deadline, "the lease did not expire on the database's clock within 5 s"
        await asyncio.sleep(0.02)  # polling the database's clock, bounded above


async def test_a_claim_ends_the_session_of_an_expired_owner_frozen_inside_a_write(pg_url: str) -> None:
    """A daemon frozen inside a fenced write holds the shop's lease row, and no server timeout
    ends a statement waiting for its client. While the lease is live a claim gives up after
    ttl / 20 and the write is left alone; once it has expired, the claimer ends that session:
    its transaction rolls back (nothing of it lands) and the claim goes through."""
    a_storage, b_storage = await open_storage(pg_url), await open_storage(pg_url)
    try:
        a, b = lease_store(a_storage, "a"), lease_store(b_storage, "b")
        assert a is not None and b is not None
        lease = await a.claim("acme", 1.0)
        assert lease is not None
        a.fence.hold("acme", lease.epoch)
        store = a_storage.state
        db = store.database  # type: ignore[attr-defined]
        frozen = StreamState(shop="acme", resource="orders", watermark="2026-03-01T00:00:00Z")
        async with db.connection("a write that stops half-way") as conn:
            tx = conn.transaction()
            await tx.start()
            await store._check_lease_in(conn, a.fence, "acme", lease.epoch)  # type: ignore[attr-defined]
            await store._save_state_in(conn, frozen, None)  # type: ignore[attr-defined]
            # Live lease: the claim gives up quickly, and the write's session is untouched.
            started = time.monotonic()
            assert await b.claim("acme", 2.0) is None
            assert time.monotonic() - started < 1.0
            assert await conn.fetchval("SELECT 1") == 1
            await _until_expired(b_storage, lease.expires_at)
            taken = await b.claim("acme", 2.0)
            assert taken is not None and taken.owner == "b" and taken.epoch == lease.epoch + 1
            # The session was terminated: the server's error, or (when the termination arrives
            # as the query is sent) asyncpg's refusal of a connection left mid-exchange.
            with pytest.raises((*DB_ERRORS, ConnectionError)):
                await conn.execute("SELECT 1")
        assert await b_storage.state.get_stream("acme", "orders") is None  # rolled back
    finally:
        await a_storage.close()
        await b_storage.close()


async def test_the_lease_cycle_goes_on_with_every_run_connection_taken(pg_url: str) -> None:
    """A daemon whose runs hold all their connections (all waiting on another daemon's lock, say)
    still beats, claims, renews and releases: the cycle has connections of its own."""
    storage = await open_storage(pg_url)
    try:
        leases = lease_store(storage, "a")
        assert leases is not None
        db = storage.state.database  # type: ignore[attr-defined]
        async with contextlib.AsyncExitStack() as runs:
            for i in range(db.max_size):
                await runs.enter_async_context(db.connection(f"run {i}"))

            async def cycle() -> None:
                assert [m.daemon for m in (await leases.heartbeat(LONG)).members] == ["a"]
                got = await leases.claim("acme", LONG)
                assert got is not None and got.owner == "a"
                assert set(await leases.renew({"acme": got.epoch}, LONG)) == {"acme"}
                await leases.release(["acme"])
                assert [(x.shop, x.owner) for x in await leases.list_leases()] == [("acme", None)]
                await leases.leave()

            await asyncio.wait_for(cycle(), 10)
    finally:
        await storage.close()
