"""Syncing while the shop changes, then catching up exactly."""

from __future__ import annotations

import asyncio
from collections import Counter

import orjson

from shopsync.simulator.config import MutatorConfig
from shopsync.simulator.server import run_simulator
from shopsync.timeutil import parse_ts

from .conftest import (
    OffsetClock,
    assert_matches_truth,
    sim_config,
    sink_rows,
    sync_once,
    token_env,
    write_config,
)


async def test_sync_during_live_mutations_then_catch_up_exactly(tmp_path):
    """Creates, updates (with bursts sharing one updatedAt second) and deletes run during two syncs.

    The simulated search index lags 3 s behind changes while the safety margin is only 1 s, so an
    update can be hidden from a window that nominally covers it; the overlap re-reads it later.
    After the mutator stops and time passes the margin, one more sync must leave the sink exactly
    equal to the shop (deleted records marked deleted, everything else identical).
    """
    clock = OffsetClock()
    cfg = sim_config(
        time_scale=20.0,
        index_lag=60.0,  # simulated seconds: 3 s of real time at time_scale 20
        mutator=MutatorConfig(orders_per_day=200_000, update_ratio=3.0, delete_ratio=0.05, burst_every=1.0, burst_size=150),
    )
    async with run_simulator(cfg, clock=clock) as server:
        shop = server.shop()
        # Both incremental paths are used: the in-between run is paged (a threshold no window
        # reaches), the final catch-up window (hundreds of changes) is exported (threshold 0). How
        # many changes each window holds depends on the machine's speed, so no single threshold
        # between them would hold everywhere.
        def config_with(threshold: int):
            sync = {"safety_margin": "1s", "overlap": "30s", "bulk_threshold": threshold}
            return write_config(tmp_path / "shopsync.toml", [shop], sync=sync)

        config = config_with(1_000_000)
        first = await sync_once(config, token_env(shop), clock=clock)  # backfill while the shop changes
        assert first.ok, first.failures()
        clock.advance(3)  # a window of its own for the next run, however quick the backfill was
        second = await sync_once(config, token_env(shop), clock=clock)  # incremental, still changing
        assert second.ok, second.failures()
        counters = shop.mutator.counters
        assert counters.created > 0 and counters.updated > 0 and counters.deleted > 0, counters
        shop.mutator.pause()
        clock.advance(10)  # past the safety margin and the index lag: every change is now visible
        config = config_with(0)
        final = await sync_once(config, token_env(shop), clock=clock)
        assert final.ok, final.failures()
        assert {s.path for s in second.streams if s.resource == "orders"} == {"paginated"}
        assert {s.path for s in final.streams if s.resource == "orders"} == {"bulk"}
        assert_matches_truth(shop, tmp_path / "state.db")
        deleted = sink_rows(tmp_path / "state.db", "orders", shop.name, deleted=True)
        assert deleted, "the mutator deleted orders; the sink should mark some deleted"


async def test_records_changed_during_a_bulk_export_are_exported_twice_and_kept_once(tmp_path):
    """A bulk export is not a snapshot: orders updated (inside the window) after the export passed
    them are exported again, with their line items, further down the file. The file then holds
    more root lines than distinct orders; Shopify's rootObjectCount counts the lines. The engine
    keeps each order's newest copy with each line item once, and accepts the file: one operation
    for the window, not a re-export after a false count mismatch."""
    # 2,000 orders with their line items take a few seconds to export at this speed.
    cfg = sim_config(time_scale=1.0, bulk_objects_per_second=2_000.0, index_lag=0.0)
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"},
                              extra_shop_keys={shop.name: {"resources": ["orders"]}})  # fmt: skip
        sync = asyncio.create_task(sync_once(config, token_env(shop)))
        # Once a third of the file is written, move the first orders exported (the oldest) to the
        # window's newest second, ahead of the export.
        while not shop.bulk.operations or next(iter(shop.bulk.operations.values())).object_count < 2_500:
            assert not sync.done(), sync
            await asyncio.sleep(0.01)
        oldest = sorted(shop.truth("orders").values(), key=lambda r: (r["updatedAt"], r["id"]))[:25]
        newest = max(r["updatedAt"] for r in shop.truth("orders").values())
        for rec in oldest:
            shop.store.update(rec["id"], at=parse_ts(newest).timestamp())
        report = await sync
        assert report.ok, report.failures()
        [op] = shop.bulk.operations.values()
        roots = Counter(
            row["id"] for row in map(orjson.loads, op.path.read_bytes().splitlines()) if "__parentId" not in row
        )
        assert sorted(gid for gid, n in roots.items() if n == 2) == sorted(r["id"] for r in oldest)
        assert op.root_object_count == sum(roots.values()) == len(roots) + 25
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
