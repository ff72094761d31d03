"""The daemon reconciles each stream when due, inside the stream's run, and shows the findings."""

from __future__ import annotations

import asyncio

from prometheus_client import CollectorRegistry

from shopsync.simulator.server import run_simulator
from tests.support import small_shop
from tests.support.daemon import DaemonRecorder, get_json, token_env, write_config


async def test_a_location_deleted_in_the_shop_is_marked_by_the_daemons_reconciliation(tmp_path, start_daemon):
    async with run_simulator(small_shop("alpha", data={"orders": 20, "big_orders": 0, "tie_groups": 0})) as server:
        alpha = server.shop()
        config = write_config(
            tmp_path / "shopsync.toml", [alpha], sync={"path": "paginated"},
            shop_keys={"alpha": {"resources": ["locations"], "reconcile_every": "1s"}},
        )  # fmt: skip
        record = DaemonRecorder()
        registry = CollectorRegistry()
        daemon = await start_daemon(config, token_env(alpha), hooks=record, registry=registry)
        key = ("alpha", "locations")
        async with asyncio.timeout(30):
            await record.wait_until(lambda: record.successes.get(key, 0) >= 1)
        location = alpha.store.gid_of("Location", 1)
        alpha.store.delete(location)
        done = record.successes[key]
        async with asyncio.timeout(30):
            # The first run only started the reconciliation clock; a later run (a second after it)
            # reconciles after its sync, before the run is reported finished.
            while True:
                await record.wait_until(lambda seen=done: record.successes.get(key, 0) > seen)
                done = record.successes[key]
                _code, status = await get_json(daemon.http_url + "/status")
                row = status["shops"][0]["resources"][0]
                if row["reconcile"] is not None:
                    break
        assert row["reconcile"]["deleted"] == 1 and row["reconcile"]["missing"] == 0 and row["reconcile"]["drift"] == 0
        assert registry.get_sample_value("shopsync_reconcile_deleted_total", {"shop": "alpha", "resource": "locations"}) == 1
        assert registry.get_sample_value(
            "shopsync_reconcile_runs_total", {"shop": "alpha", "resource": "locations", "outcome": "ok"}
        ) >= 1
