"""CostBudget: waits, refunds, resync, priorities, cancellation, accounting — on a fake clock."""

from __future__ import annotations

import asyncio
import random

import pytest

from shopsync.client.budget import PRIORITY_STEP, CostBudget
from shopsync.shopify.answers import throttle_figures
from tests.support import AutoTime


class ManualTime:
    """A clock that only moves when the test calls :meth:`advance`; sleepers wake at their deadline."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._timers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._timers.append((self.now + seconds, fut))
        await fut

    async def advance(self, seconds: float) -> None:
        await settle()  # time moves only once every task is idle (sleepers registered at `now`)
        self.now += seconds
        for deadline, fut in list(self._timers):
            if deadline <= self.now + 1e-9 and not fut.done():
                fut.set_result(None)
        self._timers = [(d, f) for d, f in self._timers if not f.done()]
        await settle()


async def settle(rounds: int = 50) -> None:
    """Let every ready task run until nothing changes (yields, never waits on time)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


async def until(predicate, rounds: int = 200) -> None:
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition not reached")


def status(current: float, maximum: float = 1000.0, rate: float = 50.0) -> dict:
    return {"maximumAvailable": maximum, "currentlyAvailable": current, "restoreRate": rate}


# -- waiting --------------------------------------------------------------------------------------
async def test_reserve_is_immediate_when_the_bucket_holds_the_points():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(300)
    assert t.sleeps == []
    assert r.waited == 0
    assert budget.available() == pytest.approx(700)


async def test_reserve_waits_exactly_the_computed_time():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(1000)
    start = t.now
    r = await budget.reserve(100)
    assert t.sleeps == [pytest.approx(2.0)]  # 100 points at 50/s, computed, not polled
    assert r.granted_at == pytest.approx(start + 2.0)
    assert r.waited == pytest.approx(2.0)
    assert budget.available() == pytest.approx(0.0)


async def test_partial_refill_wait_is_the_deficit_over_the_rate():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(900)  # 100 left
    t.now += 1.0  # refill to 150
    await budget.reserve(400)
    assert t.sleeps == [pytest.approx((400 - 150) / 50)]


async def test_a_reservation_larger_than_the_bucket_waits_for_a_full_bucket():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(1000)
    await budget.reserve(1200)
    assert t.sleeps == [pytest.approx(20.0)]  # until full, not forever
    assert budget.available() == pytest.approx(-200)


async def test_invalid_points_are_refused():
    budget = CostBudget()
    with pytest.raises(ValueError):
        await budget.reserve(-1)
    with pytest.raises(ValueError):
        await budget.reserve(float("nan"))


# -- settle: refunds ----------------------------------------------------------------------------------
async def test_settle_refunds_requested_minus_actual():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(752)
    budget.settle(r, requested=752, actual=46, throttle_status=None)
    assert budget.available() == pytest.approx(1000 - 46)
    snap = budget.snapshot()
    assert (snap.points_requested, snap.points_spent, snap.requests) == (752, 46, 1)


async def test_settle_corrects_the_estimate_by_the_servers_requested_cost():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(500)  # our estimate
    budget.settle(r, requested=752, actual=100, throttle_status=None)
    # charged 752 up front, refunded 652: net 100 spent
    assert budget.available() == pytest.approx(900)
    r = await budget.reserve(300)
    budget.settle(r, requested=25, actual=25, throttle_status=None)  # the server costs it lower
    assert budget.available() == pytest.approx(875)


async def test_settle_without_figures_assumes_the_estimate_was_spent():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(200)
    budget.settle(r, requested=None, actual=None, throttle_status=None)
    assert budget.available() == pytest.approx(800)
    r = await budget.reserve(100)
    budget.settle(r, requested=150, actual=None, throttle_status=None)  # actual missing: requested spent
    assert budget.available() == pytest.approx(650)
    assert budget.snapshot().points_spent == pytest.approx(350)


async def test_settling_twice_or_after_cancel_changes_nothing():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(200)
    budget.settle(r, requested=200, actual=10, throttle_status=None)
    budget.settle(r, requested=200, actual=0, throttle_status=None)
    budget.cancel(r)
    assert budget.available() == pytest.approx(990)
    assert budget.snapshot().requests == 1


# -- resync -------------------------------------------------------------------------------------------
async def test_resync_adopts_the_servers_bucket():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(100)
    budget.settle(r, requested=100, actual=40, throttle_status=status(1960, maximum=2000, rate=100))
    assert (budget.capacity, budget.restore_rate) == (2000, 100)
    assert budget.available() == pytest.approx(1960)
    t.now += 0.5
    assert budget.available() == pytest.approx(2000)  # refills at the server's rate, capped


async def test_resync_subtracts_only_reservations_made_after_the_answered_one():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=2000, restore_rate=100)
    r0 = await budget.reserve(300)  # sent before r1: already charged in the server's figure
    r1 = await budget.reserve(200)
    r2 = await budget.reserve(150)  # sent after r1: not yet seen by the server
    budget.settle(r1, requested=200, actual=50, throttle_status=status(1400, maximum=2000, rate=100))
    assert budget.available() == pytest.approx(1400 - 150)
    # r2's own answer now carries the newest figure; r0 is still in flight but older.
    budget.settle(r2, requested=150, actual=150, throttle_status=status(1300, maximum=2000, rate=100))
    assert budget.available() == pytest.approx(1300)
    assert budget.in_flight() == 1 and r0.seq < r1.seq < r2.seq


async def test_stale_answers_refund_but_do_not_resync():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=2000, restore_rate=100)
    r1 = await budget.reserve(400)
    r2 = await budget.reserve(400)
    budget.settle(r2, requested=400, actual=400, throttle_status=status(1000, maximum=2000, rate=100))
    assert budget.available() == pytest.approx(1000)
    # r1 answered later with an older, higher figure: only its refund applies.
    budget.settle(r1, requested=400, actual=100, throttle_status=status(1900, maximum=2000, rate=100))
    assert budget.available() == pytest.approx(1300)


@pytest.mark.parametrize(
    "bad",
    [
        None,
        {},
        {"maximumAvailable": 1000.0, "currentlyAvailable": 10},  # no restoreRate
        {"maximumAvailable": "x", "currentlyAvailable": 10, "restoreRate": 50},
        {"maximumAvailable": 1000.0, "currentlyAvailable": 10, "restoreRate": 0},
        "not a mapping",
    ],
)
async def test_missing_or_malformed_throttle_status_keeps_the_model(bad):
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    r = await budget.reserve(300)
    budget.settle(r, requested=300, actual=100, throttle_status=bad)
    assert throttle_figures(bad) is None
    assert (budget.capacity, budget.restore_rate) == (1000, 50)
    assert budget.available() == pytest.approx(900)


def test_throttle_figures_accepts_integers_and_floats():
    assert throttle_figures({"maximumAvailable": 1000.0, "currentlyAvailable": 954, "restoreRate": 50.0}) == (
        1000.0,
        954.0,
        50.0,
    )


# -- throttled, cancel, abandon ------------------------------------------------------------------------
async def test_throttled_gives_back_resyncs_and_holds_the_next_reservation():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    r = await budget.reserve(752)
    wait = budget.on_throttled(r, 752, status(666))
    assert wait == pytest.approx((752 - 666) / 50)
    assert budget.available() == pytest.approx(666)
    # Even a reservation the model could hold waits out the deficit.
    await budget.reserve(10)
    assert t.sleeps == [pytest.approx(1.72)]
    snap = budget.snapshot()
    assert (snap.throttled, snap.requests, snap.points_spent) == (1, 0, 0)


async def test_throttled_without_status_assumes_an_empty_bucket():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    r = await budget.reserve(500)
    assert budget.on_throttled(r, 500, None) == pytest.approx(10.0)
    await budget.reserve(500)
    assert t.sleeps == [pytest.approx(10.0)]


async def test_cancel_gives_the_points_back_and_counts_nothing():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(600)
    budget.cancel(r)
    assert budget.available() == pytest.approx(1000)
    assert budget.in_flight() == 0
    snap = budget.snapshot()
    assert (snap.requests, snap.points_spent) == (0, 0)


async def test_abandon_keeps_the_points_taken_but_counts_nothing_spent():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep)
    r = await budget.reserve(600)
    budget.abandon(r)
    assert budget.available() == pytest.approx(400)
    assert budget.in_flight() == 0
    assert budget.snapshot().points_spent == 0


# -- queueing: priority, FIFO, early wake, cancellation ----------------------------------------------------
async def test_waiters_are_served_by_priority_then_fifo():
    t = ManualTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(1000)
    order: list[tuple[str, float]] = []

    async def want(name: str, points: float, priority: int) -> None:
        await budget.reserve(points, priority=priority)
        order.append((name, t.now))

    tasks = [asyncio.create_task(want("backfill", 500, 1))]
    await until(lambda: budget.waiting() == 1)
    tasks.append(asyncio.create_task(want("incr-a", 500, 0)))
    tasks.append(asyncio.create_task(want("incr-b", 100, 0)))
    await until(lambda: budget.waiting() == 3)
    await t.advance(10)  # 500 points: incr-a (priority 0 preempted the earlier backfill)
    await t.advance(2)  # 100 points: incr-b
    await t.advance(10)  # 500 points: backfill
    await asyncio.gather(*tasks)
    assert order == [("incr-a", 10), ("incr-b", 12), ("backfill", 22)]


async def test_a_backfill_is_not_starved_by_incremental_work_that_keeps_the_bucket_empty():
    """A busy shop: a priority-0 request is always waiting (each one asks as soon as the last was
    granted). Strict priorities would never serve the backfill; by due time it goes once it has
    waited PRIORITY_STEP longer than the incremental request it then overtakes."""
    t = ManualTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(1000)
    granted: list[tuple[str, float]] = []
    stop = asyncio.Event()

    async def incremental() -> None:
        while not stop.is_set():
            await budget.reserve(50, priority=0)
            granted.append(("incremental", t.now))

    async def backfill() -> None:
        await budget.reserve(50, priority=1)
        granted.append(("backfill", t.now))

    feeder = asyncio.create_task(incremental())
    await until(lambda: budget.waiting() == 1)
    filler = asyncio.create_task(backfill())
    await until(lambda: budget.waiting() == 2)
    for _ in range(4):
        await t.advance(1)  # 50 points a second: one request a second
    stop.set()
    for _ in range(2):
        await t.advance(1)  # the last incremental request, and the backfill if it still waits
    await asyncio.wait_for(asyncio.gather(feeder, filler), timeout=5)
    # t=1: the incremental request due at 0; t=2: the backfill (due at 1, before the one that
    # arrived at 1); then the incremental ones again.
    assert granted[:3] == [("incremental", 1), ("backfill", 2), ("incremental", 3)]
    assert PRIORITY_STEP == 1.0  # the figures above assume it


async def test_a_large_reservation_is_not_starved_by_small_ones():
    t = ManualTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(1000)
    order: list[str] = []

    async def want(name: str, points: float) -> None:
        await budget.reserve(points)
        order.append(name)

    tasks = [asyncio.create_task(want("big", 800))]
    await until(lambda: budget.waiting() == 1)
    tasks += [asyncio.create_task(want(f"small{i}", 10)) for i in range(5)]
    await until(lambda: budget.waiting() == 6)
    await t.advance(1)  # 50 points: enough for the smalls, but the big one is first in line
    assert order == []
    await t.advance(15)
    assert order[0] == "big"
    await t.advance(1)
    await asyncio.gather(*tasks)
    assert order == ["big"] + [f"small{i}" for i in range(5)]


async def test_a_refund_wakes_the_head_before_its_computed_time():
    t = ManualTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    r0 = await budget.reserve(1000)
    waiter = asyncio.create_task(budget.reserve(500))
    await until(lambda: t.sleeps == [10.0])
    budget.settle(r0, requested=1000, actual=200, throttle_status=None)  # 800 back
    r = await asyncio.wait_for(waiter, timeout=5)
    assert r.granted_at == 0.0 and r.waited == 0.0  # no time passed


async def test_cancelling_the_head_waiter_takes_nothing_and_passes_the_turn():
    t = ManualTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(1000)
    big = asyncio.create_task(budget.reserve(800))
    await until(lambda: budget.waiting() == 1)
    small = asyncio.create_task(budget.reserve(100))
    await until(lambda: budget.waiting() == 2)
    big.cancel()
    with pytest.raises(asyncio.CancelledError):
        await big
    assert budget.waiting() == 1
    await t.advance(2)
    r = await asyncio.wait_for(small, timeout=5)
    assert r.granted_at == 2.0
    assert budget.available() == pytest.approx(0.0)  # the cancelled 800 took nothing
    assert budget.in_flight() == 1 + 1  # the first reservation and the small one


async def test_cancelling_a_queued_waiter_leaves_no_hole():
    t = ManualTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    await budget.reserve(1000)
    first = asyncio.create_task(budget.reserve(100))
    await until(lambda: budget.waiting() == 1)
    middle = asyncio.create_task(budget.reserve(100))
    last = asyncio.create_task(budget.reserve(100))
    await until(lambda: budget.waiting() == 3)
    middle.cancel()
    await until(lambda: middle.done())
    await t.advance(2)
    assert first.done() and not last.done()
    await t.advance(2)
    assert last.done()
    assert last.result().granted_at == 4.0


async def test_concurrent_reservers_never_overdraw_the_model():
    t = AutoTime()
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    rng = random.Random(7)
    lowest: list[float] = []

    async def worker(n: int) -> None:
        for _ in range(20):
            r = await budget.reserve(rng.choice([10, 50, 200, 600, 1000]), priority=n % 2)
            lowest.append(budget.available())
            await asyncio.sleep(0)
            if rng.random() < 0.2:
                budget.cancel(r)
            else:
                budget.settle(r, requested=r.points, actual=r.points * rng.random(), throttle_status=None)

    await asyncio.gather(*(worker(n) for n in range(8)))
    assert len(lowest) == 160
    assert min(lowest) >= -1e-9
    assert budget.waiting() == 0 and budget.in_flight() == 0


# -- accounting --------------------------------------------------------------------------------------------
async def test_utilisation_uses_the_servers_bucket_and_integrates_rate_changes():
    t = AutoTime(start=0.0)
    budget = CostBudget(clock=t.clock, sleep=t.sleep)  # conservative 1000 / 50 until told
    r = await budget.reserve(500)
    t.now = 5.0
    budget.settle(r, requested=500, actual=500, throttle_status=status(1500, maximum=2000, rate=100))
    t.now = 10.0
    # allowance: the server's bucket 2000 + 100/s × 10 s = 3000
    assert budget.utilisation(10.0) == pytest.approx(500 / 3000)
    r = await budget.reserve(1000)
    budget.settle(r, requested=1000, actual=1000, throttle_status=status(1000, maximum=2000, rate=200))
    # the rate doubled at t=10: allowance at t=20 = 2000 + 100×10 + 200×10
    assert budget.utilisation(20.0) == pytest.approx(1500 / 5000)
    t.now = 20.0
    assert budget.utilisation() == pytest.approx(1500 / 5000)


async def test_snapshot_reports_every_figure():
    t = AutoTime(start=100.0)
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    r1 = await budget.reserve(1000)
    r2 = await budget.reserve(100)  # waits 2 s
    budget.settle(r1, requested=1000, actual=300, throttle_status=None)
    budget.on_throttled(r2, 100, None)
    snap = budget.snapshot()
    assert snap.capacity == 1000 and snap.restore_rate == 50
    assert snap.points_requested == 1000 and snap.points_spent == 300
    assert snap.requests == 1 and snap.throttled == 1
    assert snap.waited_seconds == pytest.approx(2.0)
    assert snap.started_at == 100.0
    assert snap.available == pytest.approx(budget.available())
    assert "CostBudget(" in repr(budget)
