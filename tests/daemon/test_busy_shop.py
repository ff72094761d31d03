"""A busy Standard-plan shop kept fresh: the path follows the cost budget, not a fixed count (issue 9).

About 30 order changes a (simulated) second for a simulated minute on a 100 points/s bucket: page by
page at ~46 points an order the daemon would fall minutes behind; an export copies the same window
in seconds. The planner must see that from what it measured and switch during the burst, and the
sink must be exact within two scheduled runs after the burst ends.
"""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from shopsync.simulator.config import MutatorConfig
from shopsync.simulator.server import run_simulator
from shopsync.timeutil import format_ts, from_epoch
from tests.support.daemon import (
    DaemonRecorder,
    assert_matches_truth,
    small_shop,
    stream_states,
    token_env,
    write_config,
)

pytestmark = pytest.mark.usefixtures("quiet_logs")

TIME_SCALE = 10.0  # the simulated shop's clock runs ten times as fast as the wall's
EVERY = 15.0 / TIME_SCALE  # "every 15 s" in simulated time
BURST = 60.0 / TIME_SCALE  # a simulated minute
#: ~30 changes a simulated second: one created order for two updated (update_ratio 2).
BURST_ORDERS_PER_DAY = 10 * 86_400


async def test_a_burst_on_a_standard_shop_flips_the_path_to_bulk_and_is_caught_up_in_two_runs(
    tmp_path, start_daemon, caplog
):
    caplog.set_level(logging.INFO, logger="shopsync.engine.path_choice")
    mutator = MutatorConfig(orders_per_day=BURST_ORDERS_PER_DAY, update_ratio=2.0, delete_ratio=0.0, burst_every=0.0)
    # Exports wait 20 simulated seconds in CREATED, as Shopify's do: a quiet window is paged.
    # The store's data ends ten minutes ago, so the quiet runs before the burst find nothing new.
    config_ = small_shop(
        "busy", seed=5, mutator=mutator, time_scale=TIME_SCALE, plan="standard", bulk_start_delay=20.0,
        data={"anchor": float(int(time.time()) - 600)},
    )  # fmt: skip
    async with run_simulator(config_) as server:
        shop = server.shop()
        assert shop.mutator is not None
        shop.mutator.pause()
        config = write_config(
            tmp_path / "shopsync.toml", [shop], daemon={"every": f"{EVERY}s"},
            sync={"safety_margin": "1s"}, shop_keys={"busy": {"resources": ["orders"]}},
        )  # fmt: skip
        record = DaemonRecorder()
        await start_daemon(config, token_env(shop), hooks=record)
        key = ("busy", "orders")
        async with asyncio.timeout(60):  # the backfill and two quiet incremental runs
            await record.wait_until(lambda: record.successes.get(key, 0) >= 3)
        quiet = [r.getMessage() for r in caplog.records if ": path " in r.getMessage()]
        assert any("path paginated (estimate)" in m for m in quiet), quiet  # before the burst: pages
        caplog.clear()

        shop.mutator.resume()
        await asyncio.sleep(BURST)  # the burst's length: wall time by definition, not a wait for anything
        shop.mutator.pause()
        ended = time.time()
        runs_at_end = record.successes.get(key, 0)
        changes = shop.mutator.counters.created + shop.mutator.counters.updated
        assert changes > 20 * BURST * TIME_SCALE, shop.mutator.counters  # ~30 a simulated second

        # Everything changed during the burst carries an updatedAt <= this second.
        needed = format_ts(from_epoch(ended + 1))

        def caught_up() -> bool:
            row = stream_states(tmp_path / "state.db").get(key)
            return row is not None and row["watermark"] is not None and row["watermark"] >= needed

        async with asyncio.timeout(60):
            await record.wait_until(caught_up)
        runs_after = record.successes.get(key, 0) - runs_at_end
        # The run in flight when the burst ended, then at most two scheduled runs.
        assert runs_after <= 3, runs_after
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])

        # The decision flipped to an export during the burst (logged at INFO as it changed).
        decisions = [r.getMessage() for r in caplog.records if ": path " in r.getMessage()]
        assert any("path bulk (estimate)" in m or "path bulk (hand_over)" in m for m in decisions), decisions
