"""Ownership of shops among daemons: the pure decisions (rendezvous, share, plan) and the loop on
the in-memory lease store (same rules as PostgreSQL's, tests/storage/test_lease_contract.py)."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from shopsync.daemon.ownership import Ownership, assign, plan, score, share, unowned_seconds
from shopsync.daemon.status import build_status
from shopsync.errors import LeaseLostError
from shopsync.observability.metrics import Metrics
from shopsync.state.leases import Lease, Member, Membership
from shopsync.state.memory import MemoryDatabase, MemoryLeaseStore, MemoryStateStore
from shopsync.state.models import StreamState
from tests.support import FakeClock

SHOPS = [f"shop{i:03d}" for i in range(30)]


def _membership(now: float, daemons: list[str], leases: list[Lease] = ()) -> Membership:  # type: ignore[assignment]
    members = tuple(Member(daemon=d, started_at=0.0, heartbeat_at=now, expires_at=now + 30) for d in sorted(daemons))
    return Membership(now=now, members=members, leases=tuple(leases))


# -- pure ---------------------------------------------------------------------------------------


def test_share_is_the_ceiling_of_shops_over_daemons() -> None:
    assert [share(30, n) for n in (1, 2, 3, 4, 7)] == [30, 15, 10, 8, 5]
    assert share(0, 3) == 0 and share(5, 0) == 5


def test_assign_is_balanced_deterministic_and_moves_little_when_a_daemon_joins() -> None:
    three = assign(SHOPS, ["a", "b", "c"])
    assert set(three) == set(SHOPS)
    assert sorted(Counter(three.values()).values()) == [10, 10, 10]
    assert assign(reversed(SHOPS), ["c", "a", "b"]) == three  # order of inputs does not matter
    four = assign(SHOPS, ["a", "b", "c", "d"])
    assert max(Counter(four.values()).values()) <= share(30, 4)
    moved = [s for s in SHOPS if four[s] != three[s]]
    # Rendezvous: the shops that move are mostly those the newcomer takes.
    assert sum(1 for s in moved if four[s] == "d") >= len(moved) - 4
    # Unbounded, each shop goes to its highest score.
    preferred = {s: max("abc", key=lambda d: score(d, s)) for s in SHOPS}
    assert sum(three[s] == preferred[s] for s in SHOPS) >= 20


def test_alone_a_daemon_claims_every_free_shop() -> None:
    decided = plan("a", _membership(100.0, ["a"]), SHOPS, [], lease=30)
    assert sorted(decided.claim) == SHOPS and decided.release == ()


def test_a_daemon_releases_the_shops_a_newcomer_is_preferred_for_and_claims_only_free_ones() -> None:
    now = 100.0
    held = [Lease(shop=s, owner="a", epoch=1, expires_at=now + 30, renewed_at=now) for s in SHOPS]
    decided = plan("a", _membership(now, ["a", "b"]), SHOPS, SHOPS, lease=30)
    target = assign(SHOPS, ["a", "b"])
    assert set(decided.release) == {s for s in SHOPS if target[s] == "b"}
    assert decided.claim == ()
    # b waits for a to let go: a's live leases are not claimable.
    waiting = plan("b", _membership(now, ["a", "b"], held), SHOPS, [], lease=30)
    assert waiting.claim == ()
    released = [x if target[x.shop] == "a" else Lease(shop=x.shop, owner=None, epoch=1, expires_at=now, renewed_at=now) for x in held]
    taking = plan("b", _membership(now + 1, ["a", "b"], released), SHOPS, [], lease=30)
    assert set(taking.claim) == {s for s in SHOPS if target[s] == "b"}


def test_orphans_are_taken_after_a_lease_time_within_share_plus_one() -> None:
    now = 1000.0
    # Shops targeted to c (a member that does not take them) expired long ago.
    target = assign(SHOPS, ["a", "b", "c"])
    leases = [
        Lease(shop=s, owner=target[s], epoch=1, expires_at=now + 30 if target[s] != "c" else now - 31, renewed_at=now)
        for s in SHOPS
    ]
    mine = [s for s in SHOPS if target[s] == "a"]
    decided = plan("a", _membership(now, ["a", "b", "c"], leases), SHOPS, mine, lease=30)
    assert len(decided.claim) == 1  # share + 1 = 11, it holds 10
    assert target[decided.claim[0]] == "c"
    # Expired for less than a lease time: not yet an orphan.
    fresh = [Lease(shop=x.shop, owner=x.owner, epoch=1, expires_at=now - 5 if target[x.shop] == "c" else x.expires_at, renewed_at=now) for x in leases]
    assert plan("a", _membership(now, ["a", "b", "c"], fresh), SHOPS, mine, lease=30).claim == ()


def test_shops_no_longer_configured_are_released() -> None:
    decided = plan("a", _membership(1.0, ["a"]), SHOPS[:5], SHOPS[:6], lease=30)
    assert decided.release == (SHOPS[5],)


def test_unowned_seconds() -> None:
    rows = [
        Lease(shop="a", owner="d1", epoch=1, expires_at=110.0, renewed_at=100.0),
        Lease(shop="b", owner=None, epoch=2, expires_at=40.0, renewed_at=40.0),
        Lease(shop="c", owner="d2", epoch=1, expires_at=70.0, renewed_at=40.0),
    ]
    assert unowned_seconds(rows, ["a", "b", "c", "d"], 100.0) == {"a": 0.0, "b": 60.0, "c": 30.0, "d": 0.0}


def test_status_shows_each_shops_lease() -> None:
    lease = {"owner": "d2", "epoch": 4, "expires_at": "2026-11-26T00:00:30Z"}
    doc = build_status(states=[], now=0.0, shops=[("acme", ["orders"]), ("globex", ["orders"])], leases={"acme": lease})
    assert doc["shops"][0]["lease"] == lease and doc["shops"][1]["lease"] is None
    assert "lease" not in build_status(states=[], now=0.0, shops=[("acme", ["orders"])])["shops"][0]


# -- the loop on the in-memory store --------------------------------------------------------------


class Fleet:
    def __init__(self, n: int, shops: list[str]) -> None:
        self.clock = FakeClock(10_000.0)
        self.db = MemoryDatabase(clock=self.clock)
        self.stopped: dict[str, list[str]] = {}
        self.gained: dict[str, list[str]] = {}
        self.daemons: dict[str, Ownership] = {}
        for i in range(n):
            self.add(f"d{i + 1}", shops)

    def add(self, name: str, shops: list[str]) -> Ownership:
        store = MemoryStateStore(self.db)
        self.stopped[name], self.gained[name] = [], []

        async def on_lost(shop: str, spare: object, name: str = name) -> None:
            self.stopped[name].append(shop)

        o = Ownership(
            MemoryLeaseStore(store, name),
            shops=lambda: shops,
            lease=30.0,
            renew=10.0,
            on_gained=self.gained[name].append,
            on_lost=on_lost,
            metrics=Metrics(CollectorRegistry(), clock=self.clock),
        )
        o.store = store  # type: ignore[attr-defined]
        self.daemons[name] = o
        return o

    async def rounds(self, n: int, names: list[str] | None = None) -> None:
        for _ in range(n):
            for name in names or list(self.daemons):
                await self.daemons[name].cycle()
            self.clock.advance(10.0)

    def held(self) -> dict[str, set[str]]:
        return {n: set(o.fence.held()) for n, o in self.daemons.items()}


def _exclusive(held: dict[str, set[str]]) -> None:
    seen: Counter[str] = Counter(s for shops in held.values() for s in shops)
    assert all(n == 1 for n in seen.values()), seen


async def test_three_daemons_converge_to_an_even_split_holding_each_shop_once() -> None:
    fleet = Fleet(3, SHOPS)
    for _ in range(4):
        await fleet.rounds(1)
        _exclusive(fleet.held())
    held = fleet.held()
    assert sorted(len(s) for s in held.values()) == [10, 10, 10]
    assert set().union(*held.values()) == set(SHOPS)
    m = fleet.daemons["d1"]._metrics
    assert m is not None and m.registry.get_sample_value("shopsync_leases_held") == len(held["d1"])


async def test_a_dead_daemons_shops_are_taken_after_the_lease_and_a_clean_stop_hands_over_at_once() -> None:
    fleet = Fleet(3, SHOPS)
    await fleet.rounds(4)
    dead = fleet.held()["d3"]
    # d3 stops beating (killed): within the lease plus one renewal its shops are the others'.
    await fleet.rounds(1, ["d1", "d2"])
    assert not (dead & (fleet.held()["d1"] | fleet.held()["d2"]))  # its leases still live
    await fleet.rounds(3, ["d1", "d2"])
    survivors = fleet.held()
    survivors.pop("d3")
    _exclusive(survivors)
    assert set().union(*survivors.values()) == set(SHOPS)
    assert sorted(len(s) for s in survivors.values()) == [15, 15]
    epochs = {x.shop: x.epoch for x in fleet.db.leases.values()}
    assert all(epochs[s] >= 2 for s in dead)  # taken over: new epochs
    # A clean stop releases at once: the other claims on its very next cycle, no lease wait.
    await fleet.daemons["d2"].close()
    assert fleet.daemons["d2"].fence.held() == {}
    assert all(fleet.db.leases[s].owner != "d2" for s in SHOPS)
    await fleet.daemons["d1"].cycle()
    assert set(fleet.daemons["d1"].fence.held()) == set(SHOPS)


async def test_a_refused_write_stops_the_shop_and_later_cycles_do_not_resurrect_the_old_epoch() -> None:
    fleet = Fleet(1, ["acme"])
    await fleet.rounds(1)
    d1 = fleet.daemons["d1"]
    store = d1.store  # type: ignore[attr-defined]
    await store.open()
    await store.save_stream(StreamState(shop="acme", resource="orders"))
    # Paused past its lease; another daemon took the shop meanwhile.
    fleet.clock.advance(31.0)
    other = fleet.add("d2", ["acme"])
    await other.cycle()
    assert other.holds("acme")
    with pytest.raises(LeaseLostError) as caught:
        await store.save_stream(StreamState(shop="acme", resource="orders", watermark="2026-01-01T00:00:00Z"))
    assert caught.value.reason == "epoch"
    await d1.lost(caught.value)
    assert not d1.holds("acme")
    await asyncio.gather(*d1._stopping)
    assert fleet.stopped["d1"] == ["acme"]
    m = d1._metrics
    assert m is not None
    assert m.registry.get_sample_value("shopsync_writes_refused_total", {"reason": "epoch"}) == 1
    assert m.registry.get_sample_value("shopsync_leases_lost_total", {"reason": "epoch"}) == 1
    await d1.cycle()  # the shop stays the other's (its lease is live)
    assert not d1.holds("acme") and other.holds("acme")
    assert (await store.get_stream("acme", "orders")).watermark is None


async def test_shopify_calls_are_fenced_a_mutation_by_the_database_a_query_by_the_fence() -> None:
    fleet = Fleet(1, ["acme"])
    await fleet.rounds(1)
    d1 = fleet.daemons["d1"]
    epoch = d1.fence.epoch("acme")
    assert epoch is not None
    # Held: a mutation's check extends the lease to a whole lease time from the database's now.
    fleet.clock.advance(15.0)  # 5 s of the lease left
    await d1.before_call("acme", True)
    assert fleet.db.leases["acme"].expires_at == fleet.clock() + d1.lease
    await d1.before_call("acme", False)
    await d1.confirm_run("acme")
    # Taken over behind its back (as while it was paused): its fence still says it holds the
    # shop, so a query goes out (its next write is refused), but neither a mutation nor a run.
    fleet.db.leases["acme"] = Lease(shop="acme", owner="d2", epoch=epoch + 1, expires_at=fleet.clock() + 30, renewed_at=fleet.clock())
    await d1.before_call("acme", False)
    for call in (d1.before_call("acme", True), d1.confirm_run("acme")):
        with pytest.raises(LeaseLostError, match="the lease moved on to d2") as caught:
            await call
        assert caught.value.reason == "shopify_call"
    assert fleet.db.leases["acme"].owner == "d2" and fleet.db.leases["acme"].epoch == epoch + 1
    # Handed to the loop like a refused write: counted by reason, the shop stopped and dropped.
    await d1.lost(caught.value)
    await asyncio.gather(*d1._stopping)
    assert not d1.holds("acme") and fleet.stopped["d1"] == ["acme"]
    m = d1._metrics
    assert m is not None
    assert m.registry.get_sample_value("shopsync_writes_refused_total", {"reason": "shopify_call"}) == 1
    assert m.registry.get_sample_value("shopsync_leases_lost_total", {"reason": "shopify_call"}) == 1
    # From now on nothing at all goes to the shop, checked before any I/O.
    with pytest.raises(LeaseLostError, match="no longer holds its lease"):
        await d1.before_call("acme", False)
