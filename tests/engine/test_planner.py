"""The path planner's arithmetic, the fair bulk slots and the balanced slice cuts (pure logic)."""

from __future__ import annotations

import asyncio
import bisect
import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsync.engine import planner
from shopsync.engine.planner import Budget, ExportModel, PageModel
from shopsync.engine.slices import TOLERANCE, balanced_cuts
from shopsync.engine.slots import BulkSlots

STANDARD = Budget(restore_rate=100.0, available=0.0, free_bulk_slots=5)


def est(records: int, *, pages: PageModel | None = None, exports: ExportModel | None = None, budget: Budget = STANDARD,
        prior_ppr: float = 46.0) -> planner.Estimate:
    return planner.estimate(
        records, pages=pages or PageModel(), prior_points_per_record=prior_ppr, page_size=20,
        exports=exports or ExportModel(), resource="orders", prior_objects_per_root=4.0, budget=budget,
    )


def test_the_issue_s_busy_window_goes_bulk_and_a_small_one_stays_paginated():
    # 1,700 orders at ~46 points on a Standard bucket: 13 minutes paginated, under a minute exported.
    busy = est(1_700)
    assert busy.paginated == pytest.approx(1_700 * 46 / 100)
    assert busy.bulk < 60 < busy.paginated
    assert planner.decide(busy, previous=None, count=1_700).path == "bulk"
    small = est(30)
    assert planner.decide(small, previous=None, count=30).path == "paginated"


def test_measured_page_costs_replace_the_prior():
    pages = PageModel()
    for _ in range(50):
        pages.add_page(records=250, points=250.0, seconds=0.2)  # one point a record
    cheap = est(1_700, pages=pages)
    assert pages.points_per_record == pytest.approx(1.0)
    assert cheap.paginated < est(1_700).paginated / 10
    assert cheap.faster() == "paginated"


def test_the_restore_rate_is_shared_with_the_shop_s_other_paginated_streams():
    alone = est(500)
    shared = est(500, budget=Budget(restore_rate=100.0, available=0.0, others=(math.inf,) * 3, free_bulk_slots=5))
    assert shared.paginated == pytest.approx(4 * alone.paginated)
    full_bucket = est(500, budget=Budget(restore_rate=100.0, available=1000.0, free_bulk_slots=5))
    assert full_bucket.paginated == pytest.approx((500 * 46 - 1000) / 100)


def test_a_stream_paging_an_almost_empty_window_takes_only_what_it_wants_of_the_rate():
    # Six other streams of the shop are reading pages, each wanting 50 points more: they are done
    # long before this window's 23,000 points, so it waits for 300 of theirs, not 6 × 23,000.
    few = est(500, budget=Budget(restore_rate=100.0, available=0.0, others=(50.0,) * 6, free_bulk_slots=5))
    assert few.paginated == pytest.approx((500 * 46 + 6 * 50) / 100)
    # One that wants more than this window waits as one of equals.
    big = est(500, budget=Budget(restore_rate=100.0, available=0.0, others=(1e9,), free_bulk_slots=5))
    assert big.paginated == pytest.approx(2 * 500 * 46 / 100)


def test_an_export_must_save_enough_seconds_to_be_started():
    # Bulk a little faster for 8 records: paged, since an export costs more than its wall time.
    small = planner.Estimate(records=8, paginated=1.6, bulk=0.8)
    decision = planner.decide(small, previous=None, count=8)
    assert (decision.path, decision.reason) == ("paginated", "small_saving")
    assert planner.decide(small, previous="bulk", count=8).path == "paginated"
    worth = planner.Estimate(records=200, paginated=0.8 + planner.MIN_EXPORT_SAVING + 1, bulk=0.8)
    assert planner.decide(worth, previous=None, count=200).path == "bulk"


def test_a_window_s_last_page_does_not_make_pages_look_small():
    pages = PageModel()
    pages.add_page(records=20, points=920.0, seconds=0.5)  # full: more pages followed
    for _ in range(10):
        pages.add_page(records=3, points=138.0, seconds=0.5, full=False)  # small windows' last pages
    assert pages.records_per_page == pytest.approx(20)
    assert pages.points_per_record == pytest.approx(46)


def test_export_model_fits_overhead_and_rate_from_observed_operations():
    exports = ExportModel()
    for objects in (1_000, 5_000, 20_000, 50_000):
        exports.add_export("orders", objects, objects // 4, 5.0 + objects / 10_000)
    overhead, rate = exports.overhead_and_rate()
    assert overhead == pytest.approx(5.0, abs=0.01)
    assert rate == pytest.approx(10_000, rel=0.01)
    assert exports.objects_per_root["orders"] == pytest.approx(4.0, rel=0.01)
    # A shop whose exports are slow makes the bulk estimate slow.
    slow = ExportModel()
    for objects in (1_000, 5_000):
        slow.add_export("orders", objects, objects // 4, 60.0 + objects / 100)
    assert est(2_000, exports=slow).bulk > est(2_000, exports=exports).bulk * 5


def test_a_single_observed_export_keeps_the_prior_overhead():
    exports = ExportModel()
    exports.add_export("orders", 10_000, 2_500, 25.0)
    overhead, rate = exports.overhead_and_rate()
    assert overhead == planner.PRIOR_BULK_OVERHEAD
    assert rate == pytest.approx(10_000 / (25.0 - planner.PRIOR_BULK_OVERHEAD))


def test_hysteresis_keeps_the_previous_path_near_break_even():
    near = planner.Estimate(records=1_000, paginated=100.0, bulk=90.0)  # bulk 10 % faster
    assert planner.decide(near, previous="paginated", count=1_000).path == "paginated"
    assert planner.decide(near, previous="paginated", count=1_000).reason == "hysteresis"
    assert planner.decide(near, previous=None, count=1_000).path == "bulk"
    clear = planner.Estimate(records=1_000, paginated=100.0, bulk=50.0)
    assert planner.decide(clear, previous="paginated", count=1_000).path == "bulk"
    back = planner.Estimate(records=1_000, paginated=95.0, bulk=100.0)
    assert planner.decide(back, previous="bulk", count=1_000).path == "bulk"


def test_hand_over_only_for_a_clearly_faster_export_of_enough_records():
    assert planner.should_hand_over(planner.Estimate(records=5_000, paginated=600.0, bulk=60.0))
    assert not planner.should_hand_over(planner.Estimate(records=100, paginated=600.0, bulk=60.0))
    assert not planner.should_hand_over(planner.Estimate(records=5_000, paginated=70.0, bulk=60.0))


def test_no_free_slot_makes_bulk_slower():
    busy = est(1_000, budget=Budget(restore_rate=100.0, available=0.0, free_bulk_slots=0))
    assert busy.bulk == pytest.approx(est(1_000).bulk + planner.PRIOR_BULK_OVERHEAD)


# -- fair bulk slots ---------------------------------------------------------------------------


async def test_slots_go_to_incremental_work_first_then_to_the_resource_holding_fewest():
    slots = BulkSlots(2)
    order: list[str] = []
    gates: dict[str, asyncio.Event] = {}

    async def job(name: str, resource: str, priority: int) -> None:
        gates[name] = asyncio.Event()
        async with slots.hold(resource, priority):
            order.append(name)
            await gates[name].wait()

    tasks = [asyncio.create_task(job(f"orders{i}", "orders", 1)) for i in (1, 2)]
    await asyncio.sleep(0)
    assert slots.free == 0 and slots.held_by("orders") == 2
    tasks += [
        asyncio.create_task(job("orders3", "orders", 1)),  # a third backfill slice of orders
        asyncio.create_task(job("products", "products", 1)),  # another resource's backfill
        asyncio.create_task(job("customers", "customers", 0)),  # an incremental window
    ]
    await asyncio.sleep(0)
    assert order == ["orders1", "orders2"]
    gates["orders1"].set()  # a slot frees: the incremental window takes it
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order[2:] == ["customers"]
    gates["customers"].set()  # the next: products (holding none) before orders (holding one)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert order[3:] == ["products"]
    for gate in ("orders2", "products", "orders3"):
        gates[gate].set()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order[4:] == ["orders3"]
    assert slots.in_use == 0 and slots.peak == 2


async def test_a_cancelled_waiter_takes_no_slot():
    slots = BulkSlots(1)
    gate = asyncio.Event()

    async def hold() -> None:
        async with slots.hold("orders"):
            await gate.wait()

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiter.cancel()
    gate.set()
    await holder
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert slots.in_use == 0
    async with slots.hold("products"):
        assert slots.held_by("products") == 1


# -- balanced cuts -----------------------------------------------------------------------------

T0 = datetime(2024, 1, 1, tzinfo=UTC)


def counter(times: list[datetime]):
    ordered = sorted(times)
    calls: list[datetime] = []

    async def count_up_to(t: datetime) -> int:
        calls.append(t)
        return bisect.bisect_right(ordered, t)

    return count_up_to, calls


@settings(max_examples=40, deadline=None)
@given(
    seconds=st.lists(st.integers(min_value=0, max_value=86_400 * 400), min_size=50, max_size=3_000),
    parts=st.integers(min_value=2, max_value=5),
)
def test_cuts_balance_the_counts_wherever_the_records_are(seconds, parts):
    times = [T0 + timedelta(seconds=s) for s in seconds]
    count_up_to, calls = counter(times)
    hi = T0 + timedelta(seconds=86_400 * 400 + 1)
    cuts = asyncio.run(balanced_cuts(count_up_to, T0 - timedelta(seconds=1), hi, len(times), parts))
    assert cuts == sorted(set(cuts)) and all(T0 - timedelta(seconds=1) < c < hi for c in cuts)
    bounds = [0, *(bisect.bisect_right(sorted(times), c) for c in cuts), len(times)]
    sizes = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    ideal = len(times) / parts
    per_second = max(sorted(times).count(t) for t in set(times))
    # Each slice within the tolerance of its share, but for a second too dense to cut.
    assert all(size <= ideal * (1 + 2 * TOLERANCE) + per_second for size in sizes), (sizes, ideal)
    assert len(calls) <= 6 * 8 * (parts - 1)


async def test_a_window_of_one_dense_second_is_not_cut():
    times = [T0] * 1_000
    count_up_to, _ = counter(times)
    cuts = await balanced_cuts(count_up_to, T0 - timedelta(seconds=1), T0 + timedelta(seconds=1), 1_000, 5)
    assert len(cuts) <= 1


def test_an_empty_page_teaches_the_round_trip_but_not_the_cost_of_a_record():
    pages = PageModel()
    pages.add_page(records=0, points=2.0, seconds=0.01)
    assert pages.seconds_per_page == pytest.approx(0.01)
    assert pages.points_per_record is None and pages.records_per_page is None
    # The round trips of 44 records at the prior page size are then what was measured, not the
    # prior (on a bucket fast enough that round trips are the limit).
    fast = Budget(restore_rate=1e6, available=0.0, free_bulk_slots=5)
    assert est(44, pages=pages, budget=fast).paginated < est(44, budget=fast).paginated / 10


# -- cursor chains for a latency-bound paged window --------------------------------------------
def test_one_chain_while_a_page_costs_more_than_a_round_trip_restores():
    # 600 points a page (20 records × 30), 0.5 s a page: one chain spends 1,200 points/s.
    pages = PageModel(points_per_record=30.0, seconds_per_page=0.5, records_per_page=20)
    assert planner.page_chains(pages, 100.0, 100_000) == 1  # Standard: restore-bound
    assert planner.page_chains(pages, 1_200.0, 100_000) == 1  # exactly at the rate: still one
    # Nothing measured yet: one chain (the first pages measure).
    assert planner.page_chains(PageModel(), 1_000.0, 100_000) == 1


def test_latency_bound_chains_reach_the_restore_rate_plus_one_within_the_caps():
    pages = PageModel(points_per_record=30.0, seconds_per_page=0.5, records_per_page=20)
    # 0.5 s × 2,000 points/s = 1,000 allowed a round trip, 600 spent: ⌈1.67⌉ = 2 chains, + 1.
    assert planner.page_chains(pages, 2_000.0, 100_000) == 3
    assert planner.page_chains(pages, 1_000_000.0, 100_000) == planner.MAX_PAGE_CHAINS
    assert planner.page_chains(pages, 1_000_000.0, 100_000, max_chains=4) == 4
    # The rest fills only so many chains of MIN_PAGES_PER_CHAIN pages, 20 records a page.
    fill = 20 * planner.MIN_PAGES_PER_CHAIN
    assert planner.page_chains(pages, 2_000.0, 2 * fill + 10) == 2
    assert planner.page_chains(pages, 2_000.0, 2 * fill - 1) == 1


async def test_a_cut_is_not_put_on_a_dense_second_both_neighbours_would_read():
    # 100 records spread over 100 seconds, then 900 in one second: the last cuts of 4 would fall on
    # it, and each neighbour would read its 900 records (bounds are inclusive).
    times = [T0 + timedelta(seconds=s) for s in range(100)] + [T0 + timedelta(seconds=200)] * 900
    count_up_to, _ = counter(times)
    cuts = await balanced_cuts(count_up_to, T0 - timedelta(seconds=1), T0 + timedelta(seconds=300), 1_000, 4)
    assert cuts and T0 + timedelta(seconds=200) not in cuts
    # The dense second is read by exactly one slice: no cut on it, and one cut before it.
    assert max(cuts) < T0 + timedelta(seconds=200)
