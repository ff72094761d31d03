"""Failed bulk exports recovered without assuming anything about the order of their files (issue 9).

Shopify does not promise that a bulk file's root rows follow the ``sortKey``, and inventory items
have no sort key at all (shopify-api-facts §3, §10). A failed operation's partial file therefore
proves nothing about which part of the window it covered: shopsync writes the records of it that
are provably complete and exports the window again (halved), reading a part whose count is under
``bulk_threshold`` paginated, and fails loudly after a bounded number of failed operations.
"""

from __future__ import annotations

import logging
import sqlite3

import pytest

from shopsync.engine import failed_exports
from shopsync.simulator.server import run_simulator

from .conftest import assert_matches_truth, sim_config, sync_once, token_env, write_config

ORDERS = {"sim": {"resources": ["orders"]}}
INVENTORY = {"sim": {"resources": ["inventory_items"]}}


def _bulk_ops(db, resource):
    """(id, status, error_code, window_start, window_end, records_written) in the order started."""
    con = sqlite3.connect(db)
    try:
        return con.execute(
            "SELECT id, status, error_code, window_start, window_end, records_written FROM bulk_operations"
            " WHERE resource = ? ORDER BY created_at, id",
            (resource,),
        ).fetchall()
    finally:
        con.close()


def _watermark(db, resource):
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT watermark FROM stream_state WHERE resource = ?", (resource,)).fetchone()
        return row[0] if row else None
    finally:
        con.close()


def _rereads(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if "after failed export" in r.getMessage()]


@pytest.mark.parametrize("failures", [1, 2, 3])
async def test_shuffled_export_failing_with_partial_data_is_copied_exactly(tmp_path, caplog, failures):
    """Roots in shuffled blocks of 50, the first ``failures`` operations failing at 50 % with a
    partial file. Orders have line items (a nested connection): in a cut, ungrouped file any of
    them may lack children, so nothing of the partial file is written and every part of the
    window is exported (or, under ``bulk_threshold``, paginated) again."""
    caplog.set_level(logging.INFO, logger="shopsync")
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        shop.faults.set(bulk_order="shuffled_blocks", bulk_fail="INTERNAL_SERVER_ERROR", bulk_fail_after=0.5,
                        bulk_fail_count=failures)
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"bulk_threshold": 200}, extra_shop_keys=ORDERS)
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])
        ops = _bulk_ops(tmp_path / "state.db", "orders")
        failed = [op for op in ops if op[1] == "FAILED"]
        assert [op[2] for op in failed] == ["INTERNAL_SERVER_ERROR"] * failures, ops
        assert all(op[5] == 0 for op in failed), "records of a cut file with nested connections were trusted"
        # Every failure was followed by a re-read of the part it covered, said in the log.
        rereads = _rereads(caplog)
        assert len(rereads) == failures, rereads
        assert all("re-read" in m for m in rereads), rereads
        # Each re-export after a failure starts where the failed one started, on a smaller window.
        for op in failed:
            following = ops[ops.index(op) + 1 :]
            if following and following[0][3] == op[3]:
                assert following[0][4] < op[4], ops
        assert report.streams[0].watermark == _watermark(tmp_path / "state.db", "orders")


@pytest.mark.parametrize("failures", [1, 2, 3])
async def test_unsorted_inventory_export_failing_with_partial_data_is_copied_exactly(tmp_path, caplog, failures):
    """Inventory items have no sort key (their export is in id order, their ``updatedAt`` in no
    order at all) and no nested connection: every line of a partial file is a whole record and is
    written, and the window is exported again all the same."""
    caplog.set_level(logging.INFO, logger="shopsync")
    async with run_simulator(sim_config(data={"products": 300})) as server:
        shop = server.shop()
        assert len(shop.truth("inventory_items")) > 500
        shop.faults.set(bulk_order="shuffled_blocks", bulk_fail="INTERNAL_SERVER_ERROR", bulk_fail_after=0.5,
                        bulk_fail_count=failures)
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys=INVENTORY)
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        assert_matches_truth(shop, tmp_path / "state.db", resources=["inventory_items"])
        ops = _bulk_ops(tmp_path / "state.db", "inventory_items")
        failed = [op for op in ops if op[1] == "FAILED"]
        assert len(failed) == failures, ops
        # The first failed operation's partial file (half of the whole shop) was written.
        assert failed[0][5] > 0, ops
        assert len(_rereads(caplog)) == failures


async def test_shuffled_export_read_paginated_once_small_enough(tmp_path, caplog):
    """Every export fails; once one has, each part Shopify counts under ``bulk_threshold`` is read
    paginated, so the window is still copied exactly, after one failed operation only."""
    caplog.set_level(logging.INFO, logger="shopsync")
    async with run_simulator(sim_config(data={"orders": 400, "tie_group_size": 100})) as server:
        shop = server.shop()
        shop.faults.set(bulk_order="shuffled_blocks", bulk_fail="INTERNAL_SERVER_ERROR", bulk_fail_after=0.5)
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"bulk_threshold": 1000}, extra_shop_keys=ORDERS)
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        ops = _bulk_ops(tmp_path / "state.db", "orders")
        assert [op[1] for op in ops] == ["FAILED"], ops
        assert any("paginated" in m for m in _rereads(caplog)), _rereads(caplog)
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])


@pytest.mark.parametrize(("resource", "keys"), [("orders", ORDERS), ("inventory_items", INVENTORY)])
async def test_an_export_failing_every_time_fails_loudly_after_bounded_operations(tmp_path, resource, keys):
    """Forced to bulk, every operation failing: the stream stops after
    ``MAX_FAILED_EXPORTS`` failed operations at one start, naming shop, resource, window and the
    failures, and the watermark does not move."""
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        shop.faults.set(bulk_order="shuffled_blocks", bulk_fail="INTERNAL_SERVER_ERROR", bulk_fail_after=0.5)
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys=keys)
        report = await sync_once(config, token_env(shop))
        assert not report.ok
        (result,) = report.streams
        assert result.error is not None
        for part in ("shop sim", f"resource {resource}", "window", "INTERNAL_SERVER_ERROR", "watermark did not move"):
            assert part in result.error, result.error
        ops = _bulk_ops(tmp_path / "state.db", resource)
        assert len(ops) == failed_exports.MAX_FAILED_EXPORTS, ops
        assert shop.counters.as_dict()["bulk_operations"]["CREATED"] == failed_exports.MAX_FAILED_EXPORTS
        assert all(op[0] in result.error for op in ops), result.error
        assert _watermark(tmp_path / "state.db", resource) is None
        # The bound is per run: once Shopify exports again, the next run finishes the window,
        # going on from the smallest failed part the ledger names.
        shop.faults.reset()
        again = await sync_once(config, token_env(shop))
        assert again.ok, again.failures()
        assert_matches_truth(shop, tmp_path / "state.db", resources=[resource])
        after = _bulk_ops(tmp_path / "state.db", resource)[len(ops) :]
        assert after[0][3] == ops[-1][3] and after[0][4] < ops[-1][4], after
