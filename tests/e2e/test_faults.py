"""Every fault the simulated shop can inject: one sync still copies the shop exactly."""

from __future__ import annotations

import sqlite3

import pytest

from shopsync.simulator.server import run_simulator

from .conftest import assert_matches_truth, sim_config, sync_once, token_env, write_config

# (switches, fault counter that must have moved, path): request-level faults hit both paths' requests.
REQUEST_FAULTS = [
    ({"http_500": 0.15}, "http_500"),
    ({"http_502": 0.15}, "http_502"),
    ({"http_503": 0.15}, "http_503"),
    ({"http_504": 0.15}, "http_504"),
    ({"http_429": 0.15, "retry_after": 0.05}, "http_429"),
    ({"drop_connection": 0.15}, "drop_connection"),
    ({"slow": 0.2, "slow_seconds": 0.3}, "slow"),
    ({"truncated_body": 0.15}, "truncated_body"),
    ({"malformed_body": 0.15}, "malformed_body"),
]


def _bulk_ops(db, resource):
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT id, status, error_code, window_start, window_end FROM bulk_operations WHERE resource = ? ORDER BY created_at, id",
            (resource,),
        ).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("path", ["paginated", "bulk"])
@pytest.mark.parametrize(("switches", "counter"), REQUEST_FAULTS, ids=[c for _, c in REQUEST_FAULTS])
async def test_request_faults_are_survived_exactly(tmp_path, switches, counter, path):
    cfg = sim_config(data={"orders": 400, "customers": 100, "big_orders": 1, "tie_groups": 1, "tie_group_size": 120})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        shop.faults.set(seed=3, **switches)
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": path, "max_attempts": 12})
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        counters = shop.counters.as_dict()
        assert counters["faults"].get(counter, 0) > 0, "the fault never fired"
        if path == "bulk":
            # A start whose answer was lost is looked up, not resent: one operation per bulk stream.
            bulk_streams = sum(1 for s in report.streams if s.path == "bulk")
            assert counters["bulk_operations"].get("CREATED", 0) == bulk_streams, counters
        shop.faults.reset()
        assert_matches_truth(shop, tmp_path / "state.db")


async def test_bulk_failure_with_partial_data_exports_its_window_again(tmp_path):
    """A failed operation's partial file does not say what part of the window it covered: root
    rows need not follow the sort key (shopify-api-facts §3), so "its records up to the last 250
    by updatedAt" (the old rule, resuming after them) lost records whenever the file was in
    another order. Now the failed window is exported again from its start, halved — the first
    half, then the rest — and for orders (line items: a nested connection) nothing of the cut file
    is written, since any order in it may lack children that lay past the cut."""
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        shop.faults.set(bulk_fail="INTERNAL_SERVER_ERROR", bulk_fail_after=0.7, bulk_fail_count=1)
        config = write_config(
            tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys={"sim": {"resources": ["orders"]}}
        )
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        ops = _bulk_ops(tmp_path / "state.db", "orders")
        assert [op[1:3] for op in ops] == [("FAILED", "INTERNAL_SERVER_ERROR"), ("COMPLETED", None), ("COMPLETED", None)], ops
        # The second operation starts where the failed one started, on the first half of its
        # window; the third covers the rest, up to the failed window's end.
        assert ops[0][3] is None and ops[1][3] is None and ops[1][4] < ops[0][4], ops
        assert ops[2][3] == ops[1][4] and ops[2][4] == ops[0][4], ops
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])


async def test_bulk_timeout_splits_the_window(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(
            tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys={"sim": {"resources": ["orders"]}}
        )
        shop.faults.set(bulk_fail="TIMEOUT", bulk_fail_after=0.3, bulk_fail_count=1)
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        ops = _bulk_ops(tmp_path / "state.db", "orders")
        assert ops[0][1:3] == ("FAILED", "TIMEOUT"), ops
        # The next operation covers only the first half of the timed-out window, then the rest follows.
        assert ops[1][4] < ops[0][4] and len(ops) == 3, ops
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])


async def test_cut_downloads_are_resumed_with_range_requests(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        shop.faults.set(download_cut=1.0, download_cut_at=0.4, download_cut_count=3)
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"})
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        counters = shop.counters.as_dict()
        assert counters["downloads_cut"] == 3, counters
        # Each operation's file is fetched once (plus one ranged request per cut), never from scratch.
        assert sum(1 for s in report.streams if s.path == "bulk") + 3 == counters["downloads"], counters
        assert_matches_truth(shop, tmp_path / "state.db")
