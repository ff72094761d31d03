"""Live changes made by the simulator's mutator: rates, determinism, bursts, deletions, pause."""

from __future__ import annotations

import asyncio
from collections import Counter

from shopsync.simulator.config import DataConfig, MutatorConfig
from shopsync.simulator.data import fmt_ts
from shopsync.simulator.mutator import Mutator
from shopsync.simulator.search import parse_search
from shopsync.simulator.store import ShopStore
from tests.support import FakeClock

START = 1_790_000_000.0


def make(config: MutatorConfig, *, seed: int = 4, time_scale: float = 1.0, orders: int = 2_000) -> tuple[ShopStore, Mutator, FakeClock]:
    clock = FakeClock(START)
    store = ShopStore(DataConfig(seed=11, orders=orders, anchor=START - 60), clock=clock, index_lag=1.0)
    return store, Mutator(store, config, time_scale=time_scale, seed=seed, clock=clock), clock


def run_for(mutator: Mutator, clock: FakeClock, seconds: int, step: float = 1.0) -> None:
    t = 0.0
    mutator.step()
    while t < seconds:
        clock.now += step
        t += step
        mutator.step()


def snapshot(store: ShopStore) -> dict[str, list[tuple[str, str | None]]]:
    out = {}
    for t in ("Order", "Product", "Customer", "InventoryLevel", "Collection", "BasicEvent"):
        out[t] = [(rec["id"], rec.get("updatedAt") or rec.get("createdAt")) for _k, _i, rec in store.scan(t)]
    return out


BUSY = MutatorConfig(orders_per_day=86_400.0, update_ratio=2.0, delete_ratio=0.1, burst_every=30.0, burst_size=40)


def test_rates_follow_the_config_and_time_scale() -> None:
    # 8640/day × time scale 10 = one order per real second.
    store, m, clock = make(MutatorConfig(orders_per_day=8_640.0, update_ratio=2.0, delete_ratio=0.25), time_scale=10.0)
    before = store.live_count("Order")
    run_for(m, clock, 100, step=0.7)
    c = m.counters
    assert 99 <= c.created <= 101
    assert abs(c.updated - 2 * c.created) <= 1 and abs(c.deleted - c.created / 4) <= 1
    orders_deleted = sum(1 for _k, _i, e in store.scan("BasicEvent") if e["subjectType"] == "ORDER")
    assert store.live_count("Order") == before + c.created - orders_deleted
    assert store.live_count("BasicEvent") == c.deleted


def test_same_seed_same_changes_different_seed_different() -> None:
    a_store, a, a_clock = make(BUSY, seed=4)
    b_store, b, b_clock = make(BUSY, seed=4)
    c_store, c, c_clock = make(BUSY, seed=5)
    for m, clock in ((a, a_clock), (b, b_clock), (c, c_clock)):
        run_for(m, clock, 90)
    assert a.counters == b.counters
    assert snapshot(a_store) == snapshot(b_store)
    assert a_store.get(a_store.gid_of("Order", 2_000)) == b_store.get(b_store.gid_of("Order", 2_000))
    assert snapshot(a_store) != snapshot(c_store)


def test_bursts_share_one_updated_at_second() -> None:
    store, m, clock = make(MutatorConfig(orders_per_day=864.0, update_ratio=0.0, delete_ratio=0.0, burst_every=60.0, burst_size=300))
    run_for(m, clock, 61)
    assert m.counters.bursts == 1 and m.counters.burst_updates == 300
    clock.now += 5  # past the index lag
    window = parse_search(f"updated_at:>='{fmt_ts(START)}'")
    seconds = Counter(rec["updatedAt"] for _k, _i, rec in store.scan("Order", sort="updated", query=window, view="index"))
    second, n = seconds.most_common(1)[0]
    assert n >= 300 and second == fmt_ts(START + 60)


def test_bursts_are_scaled_and_a_late_step_does_not_storm() -> None:
    _, m, clock = make(MutatorConfig(orders_per_day=864.0, burst_every=600.0, burst_size=5), time_scale=10.0)
    m.step()
    clock.now += 600  # ten bursts due at once (every 60 real seconds)
    did = m.step()
    assert did.bursts == 3 and m.counters.burst_updates == 15


def test_deletions_record_destroy_events() -> None:
    store, m, clock = make(MutatorConfig(orders_per_day=86_400.0, update_ratio=0.0, delete_ratio=1.0))
    run_for(m, clock, 20)
    events = [e for _k, _i, e in store.scan("BasicEvent")]
    assert len(events) == m.counters.deleted >= 19
    assert all(e["action"] == "destroy" and store.get(e["subjectId"]) is None for e in events)
    assert {e["subjectType"] for e in events} <= {"ORDER", "PRODUCT", "CUSTOMER", "COLLECTION"}


def test_off_and_paused_make_no_changes() -> None:
    store, m, clock = make(MutatorConfig(orders_per_day=0.0, burst_every=1.0))
    run_for(m, clock, 30)
    assert (m.counters.created, m.counters.updated, m.counters.bursts) == (0, 0, 0)

    store, m, clock = make(MutatorConfig(orders_per_day=86_400.0))
    m.step()
    m.pause()
    clock.now += 50
    m.step()
    assert m.counters.created == 0
    m.resume()
    clock.now += 50
    m.step()  # restarts the rate clock: nothing caught up for the paused time
    clock.now += 10
    m.step()
    assert m.counters.created == 10


async def test_run_steps_until_stopped() -> None:
    store, m, clock = make(MutatorConfig(orders_per_day=86_400.0 * 100))
    stop = asyncio.Event()
    steps: list[int] = []

    def on_step(did) -> None:  # noqa: ANN001 - MutatorCounters
        steps.append(did.created)
        clock.now += 1
        if len(steps) >= 4:
            stop.set()

    counters = await asyncio.wait_for(m.run(stop, interval=0.001, on_step=on_step), timeout=10)
    assert len(steps) == 4 and counters.steps == 4
    assert counters.created == sum(steps) == 300
