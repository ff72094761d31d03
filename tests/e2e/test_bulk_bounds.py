"""The bulk path's loops are bounded even when Shopify's answers never let them end."""

from __future__ import annotations

import asyncio

from shopsync.engine import bulk
from shopsync.errors import QueryError
from shopsync.simulator.server import run_simulator
from shopsync.state.models import BulkOperationRecord

from .conftest import assert_matches_truth, sim_config, sync_once, token_env, write_config

ORDERS_ONLY = {"sim": {"resources": ["orders"]}}
#: Turns a loop that does not end into a failure.
DEADLINE = 60.0


async def test_operations_cancelled_every_time_fail_the_stream_after_a_bound(tmp_path, monkeypatch) -> None:
    waited: list[str] = []
    real_wait = bulk._wait

    async def always_cancelled(ctx, op: BulkOperationRecord) -> BulkOperationRecord:
        op = await real_wait(ctx, op)
        waited.append(op.id)
        return op.with_status("CANCELED", now=op.updated_at or "2026-01-01T00:00:00Z")

    monkeypatch.setattr(bulk, "_wait", always_cancelled)
    async with run_simulator(sim_config(data={"orders": 50})) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys=ORDERS_ONLY)
        async with asyncio.timeout(DEADLINE):  # without the bound this would never end
            report = await sync_once(config, token_env(shop))
        [failure] = report.failures()
        assert isinstance(failure.exception, QueryError)
        assert "ended CANCELED" in str(failure.exception) and "watermark did not move" in str(failure.exception)
        assert len(waited) == bulk.MAX_RESTARTS + 1
        # Once Shopify behaves, the next run copies the shop.
        monkeypatch.setattr(bulk, "_wait", real_wait)
        assert (await sync_once(config, token_env(shop))).ok
        assert_matches_truth(shop, tmp_path / "state.db", resources=["orders"])


async def test_an_operation_that_never_finishes_is_given_up(tmp_path, monkeypatch) -> None:
    # Any age is past the bound: the first poll of a RUNNING operation gives up on it.
    monkeypatch.setattr(bulk, "MAX_OPERATION_SECONDS", -1.0)
    # About one object a second: still running at the first poll.
    async with run_simulator(sim_config(data={"orders": 200}, bulk_objects_per_second=0.02)) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "bulk"}, extra_shop_keys=ORDERS_ONLY)
        async with asyncio.timeout(DEADLINE):  # the export alone would take minutes
            report = await sync_once(config, token_env(shop))
        [failure] = report.failures()
        assert isinstance(failure.exception, QueryError)
        assert "still RUNNING" in str(failure.exception) or "still CREATED" in str(failure.exception)
        assert "Shopify stops every operation after 10" in str(failure.exception)

