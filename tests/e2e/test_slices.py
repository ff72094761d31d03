"""A backfill cut into time slices of balanced counts, exported by concurrent bulk operations (issue 9).

Each slice is its own state row and bulk operation; the stream's watermark moves only over the
finished prefix, so a kill -9 after some slices finished loses nothing and the rerun exports only
what had not finished (re-attaching operations that were still running).
"""

from __future__ import annotations

import sqlite3

from shopsync.crashpoints import ENV_VAR
from shopsync.engine.slices import MIN_SLICE_RECORDS
from shopsync.simulator.server import run_simulator

from .conftest import assert_matches_truth, sim_config, sync_subprocess, token_env, write_config

ORDERS = 20_000
ORDERS_ONLY = {"sim": {"resources": ["orders"]}}


def _orders_ops(db):
    """(id, window_start, window_end, status) of the orders operations, in the order started."""
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT id, window_start, window_end, status FROM bulk_operations WHERE resource = 'orders' ORDER BY created_at, id"
        ).fetchall()
    finally:
        con.close()


def _slice_rows(db):
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT resource, watermark, window_start, window_end FROM stream_state WHERE resource LIKE 'orders@slice%'"
            " ORDER BY resource"
        ).fetchall()
    finally:
        con.close()


async def test_a_backfill_in_five_concurrent_slices_survives_kill_9_after_two(tmp_path):
    assert ORDERS // MIN_SLICE_RECORDS >= 5
    # Paced export (the simulator's objects per second), so the slices overlap as on Shopify.
    cfg = sim_config(data={"orders": ORDERS, "big_orders": 0, "tie_group_size": 100}, bulk_objects_per_second=2_000.0)
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys=ORDERS_ONLY)
        killed = await sync_subprocess(config, token_env(shop), extra_env={ENV_VAR: "after_slice:2"})
        assert killed.returncode == -9, killed.stderr[-2000:]
        first = _orders_ops(tmp_path / "state.db")
        # Five slices, each its own operation, all of them running at once at Shopify.
        assert len(first) == 5, first
        assert shop.counters.as_dict()["bulk_max_concurrent"] == 5
        bounds = sorted((op[1] or "", op[2]) for op in first)
        assert bounds[0][0] == ""  # the first slice is from the beginning
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False)), bounds  # contiguous
        done_before = [r for r in _slice_rows(tmp_path / "state.db") if r[2] is None]
        assert len(done_before) >= 2, _slice_rows(tmp_path / "state.db")

        rerun = await sync_subprocess(config, token_env(shop))
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
        after = _orders_ops(tmp_path / "state.db")
        # No finished slice was exported again: every later operation is of an unfinished slice.
        done_ends = {r[1] for r in done_before}  # a finished slice's row keeps its end as watermark
        assert not any(op[2] in done_ends for op in after[len(first):]), after
        assert len(after) - len(first) <= 5 - len(done_before), after
