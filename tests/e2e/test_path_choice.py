"""Each window's path from the shop's measured costs, and a paged window handing its rest to an export (issue 9)."""

from __future__ import annotations

import logging
import os
import sqlite3

import pytest

from shopsync.engine import paginated
from shopsync.engine.engine import SyncEngine
from shopsync.engine.planner import ExportModel, PageModel
from shopsync.observability.events import NullObserver
from shopsync.settings import load_settings
from shopsync.simulator.server import run_simulator
from shopsync.state.open import open_storage
from tests.support import OffsetClock

from .conftest import assert_matches_truth, sim_config, sink_rows, token_env, write_config

ORDERS_ONLY = {"sim": {"resources": ["orders"]}}


def _ops(db):
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT window_start, window_end, root_object_count FROM bulk_operations WHERE resource = 'orders'"
            " ORDER BY created_at, id"
        ).fetchall()
    finally:
        con.close()


class DrainAfter(NullObserver):
    """Once ``after`` records were written, ``drain()`` runs (other streams start eating the budget)."""

    def __init__(self, after: int) -> None:
        self.after, self.written, self.drain = after, 0, lambda: None

    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        self.written += count
        if self.written >= self.after:
            self.drain, drain = (lambda: None), self.drain
            drain()


async def test_a_paged_window_hands_its_rest_to_an_export_when_the_budget_drains(tmp_path, caplog, monkeypatch):
    """A 3,000-record window starts paginated (this shop's exports were slow, its pages cheap
    enough); after about 1,000 records twenty other streams of the shop start reading pages, the
    rate left to this one drops twenty-onefold, and the rest goes to one bulk operation from the
    last written record's second on: the copy is exact and the export lists only the rest."""
    # One cursor chain: on a loaded machine the measured round trips make the window latency-bound
    # and its rest is cut into chains on the first page, before the budget drains
    # (tests/e2e/test_paged_chains.py covers that); the subject here is one chain's hand-over.
    monkeypatch.setattr(paginated, "MAX_CHAINS", 1)
    caplog.set_level(logging.INFO, logger="shopsync.engine")
    clock = OffsetClock()
    observer = DrainAfter(1_000)
    async with run_simulator(sim_config(data={"orders": 3_000, "big_orders": 0}, plan="standard"), clock=clock) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys=ORDERS_ONLY)
        settings = load_settings(config, env={**os.environ, **token_env(shop)})
        storage = await open_storage(settings)
        try:
            async with SyncEngine(settings, storage.state, work_dir=settings.work_dir, clock=clock,
                                  observer=observer) as engine:
                assert (await engine.run_once()).ok  # the backfill, by bulk
                backfill_ops = len(_ops(tmp_path / "state.db"))
                now = clock()
                for i in range(3_000):  # updated over the last 7.5 seconds, a few hundred a second
                    shop.store.update(shop.store.gid_of("Order", i), at=now - 8 + i * 0.0025)
                clock.advance(10)  # past the safety margin and the index lag
                runtime = engine.existing_runtime("sim")
                assert runtime is not None
                # What earlier runs would have taught it: slow exports, pages at their real cost.
                runtime.exports = ExportModel()
                for objects in (1_000, 10_000):
                    runtime.exports.add_export("orders", objects, objects // 4, 110.0 + objects / 2_000)
                runtime.pages["orders"] = PageModel(points_per_record=30.0, seconds_per_page=0.05, records_per_page=50)
                observer.written = 0
                observer.drain = lambda: runtime.paginating.update({"products": 20})
                report = await engine.run_once()
        finally:
            await storage.close()
    assert report.ok, report.failures()
    decisions = [r.getMessage() for r in caplog.records if ": path " in r.getMessage()]
    assert any("path paginated (estimate)" in m for m in decisions), decisions
    assert any("path bulk (hand_over)" in m for m in decisions), decisions
    assert report.streams[0].path == "paginated+bulk", report.streams
    ops = _ops(tmp_path / "state.db")[backfill_ops:]
    assert len(ops) == 1, ops
    ((start, _end, roots),) = ops
    handed = [r.getMessage() for r in caplog.records if "handing the rest" in r.getMessage()]
    assert len(handed) == 1 and f"window, {start} .." in handed[0], (handed, ops)
    # The export listed only the rest: not the ~1,000 records written page by page before it, but
    # for those of the boundary second (400 updates a second here), which it reads again.
    assert 0 < roots <= 3_000 - 1_000 + 400, ops
    assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
    assert len(sink_rows(tmp_path / "state.db", "orders", "sim")) == 3_000


async def _incremental_counts(tmp_path, monkeypatch, first_answer) -> tuple[list[bool], int]:
    """Backfill 300 orders, update 40, run again: which count answers the incremental run asked
    for (True: exact) and how many count guard mismatches it saw. ``first_answer`` may change the
    first (the path choice's) count answer of that run."""
    calls: list[bool] = []
    real = paginated.count_with_precision

    async def counting(ctx, search):
        counted = await real(ctx, search)
        if counted is not None and ctx.resource.name == "orders" and ctx.priority == 0:
            if not calls:
                counted = first_answer(*counted)
            calls.append(counted[1])
        return counted

    monkeypatch.setattr(paginated, "count_with_precision", counting)
    # One cursor chain: on a loaded machine slow round trips cut the window into chains, and
    # balancing those costs counts of their own.
    monkeypatch.setattr(paginated, "MAX_CHAINS", 1)
    mismatches = []

    class Guards(NullObserver):
        def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
            mismatches.append(kind)

    clock = OffsetClock()
    async with run_simulator(sim_config(data={"orders": 300, "big_orders": 0}), clock=clock) as server:
        shop = server.shop()
        # Paged by a threshold: the estimates of a shop with no page costs seen yet would export.
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"bulk_threshold": 1_000},
                              extra_shop_keys=ORDERS_ONLY)  # fmt: skip
        settings = load_settings(config, env={**os.environ, **token_env(shop)})
        storage = await open_storage(settings)
        try:
            async with SyncEngine(settings, storage.state, work_dir=settings.work_dir, clock=clock,
                                  observer=Guards()) as engine:
                assert (await engine.run_once()).ok  # the backfill, by bulk: no count asked
                assert calls == []
                now = clock()
                for i in range(40):
                    shop.store.update(shop.store.gid_of("Order", i), at=now - 5 + i * 0.01)
                clock.advance(10)  # past the safety margin and the index lag
                report = await engine.run_once()
        finally:
            await storage.close()
    assert report.ok, report.failures()
    assert report.streams[0].path == "paginated", report.streams
    assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
    return calls, len(mismatches)


async def test_a_window_read_to_its_exact_count_is_not_counted_again(tmp_path, monkeypatch):
    """The path choice's EXACT count bounds the window (it only loses records once its end is
    past): a read that delivered as many needs no second count."""
    calls, mismatches = await _incremental_counts(tmp_path, monkeypatch, lambda n, exact: (n, exact))
    assert calls == [True] and mismatches == 0


@pytest.mark.parametrize(
    ("first_answer", "asked"),
    [(lambda n, exact: (n + 1, exact), [True, True]), (lambda n, exact: (n, False), [False, True])],
    ids=["read_short_of_the_count", "counted_at_least"],
)
async def test_a_window_read_short_of_its_count_or_counted_at_least_is_counted_again(
    tmp_path, monkeypatch, first_answer, asked
):
    """Fewer records read than counted before (records moved on during the read; here a count one
    too high), or a count that is only a lower bound (AT_LEAST): the guard counts again after the
    read, and passes on the real count."""
    calls, mismatches = await _incremental_counts(tmp_path, monkeypatch, first_answer)
    assert calls == asked and mismatches == 0
