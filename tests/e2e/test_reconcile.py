"""Reconciliation against the simulated shop: deletions without events, hidden updates, no false findings."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path

from prometheus_client import CollectorRegistry

from shopsync.commands.main import main
from shopsync.engine.engine import SyncEngine
from shopsync.engine.reconcile import Reconciler, ReconcileResult
from shopsync.observability.metrics import Metrics
from shopsync.settings import load_settings
from shopsync.simulator.config import MutatorConfig
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.open import open_storage
from tests.support import stream_states

from .conftest import TOKEN_ENV, OffsetClock, sim_config, sink_rows, sync_once, token_env, write_config

INVENTORY = ["inventory_items", "inventory_levels", "locations"]
#: Small shops: paginated backfills take about a second, and keep these tests off the bulk path.
PAGINATED = {"path": "paginated"}
#: Fewer orders (still a 400-line-item one, drained on re-read) for the tests that sync orders.
SMALL = {"orders": 300, "tie_group_size": 50}


async def reconcile_once(
    config: Path, env: dict[str, str], *, clock=time.time, metrics: Metrics | None = None
) -> dict[str, ReconcileResult]:
    """Reconcile every configured stream once, in this process; results by resource."""
    settings = load_settings(config, env={**os.environ, **env})
    storage = await open_storage(settings)
    try:
        async with SyncEngine(settings, storage.state, work_dir=settings.work_dir, clock=clock) as engine:
            reconciler = Reconciler(engine, storage.sink, metrics=metrics)
            out = {}
            for shop in settings.shops:
                for name in shop.resources:
                    out[name] = await reconciler.reconcile_stream(shop, settings.resources[name])
            return out
    finally:
        await storage.close()


def _delete_inventory(shop: SimulatedShop) -> tuple[str, str, str]:
    """Delete one location (its levels go with it), one inventory item (and its levels) and one
    more level: none of them has a destroy event. Returns their ids."""
    store = shop.store
    location = store.gid_of("Location", 2)
    item = store.gid_of("InventoryItem", 0)
    levels = store.truth_ids("InventoryLevel")
    store.delete(location)
    store.delete(item)
    level = next(g for g in store.truth_ids("InventoryLevel") if g in levels)
    store.delete(level)
    return location, item, level


async def test_inventory_and_locations_deleted_in_the_shop_are_marked_deleted_by_one_reconciliation(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync=PAGINATED, extra_shop_keys={shop.name: {"resources": INVENTORY}})
        assert (await sync_once(config, token_env(shop))).ok
        before = {r: set(sink_rows(tmp_path / "state.db", r, shop.name)) for r in INVENTORY}
        location, item, level = _delete_inventory(shop)
        # The normal sync cannot see these deletions: no events, and the records are simply gone.
        assert (await sync_once(config, token_env(shop))).ok
        assert not sink_rows(tmp_path / "state.db", "locations", shop.name, deleted=True)

        results = await reconcile_once(config, token_env(shop))

        assert all(r.ok for r in results.values()), results
        for resource, type_name in (("locations", "Location"), ("inventory_items", "InventoryItem"), ("inventory_levels", "InventoryLevel")):
            gone = before[resource] - set(shop.store.truth_ids(type_name))
            assert gone, resource
            assert set(results[resource].findings.deleted) == gone, resource
            assert set(sink_rows(tmp_path / "state.db", resource, shop.name, deleted=True)) == gone, resource
            assert set(sink_rows(tmp_path / "state.db", resource, shop.name)) == set(shop.store.truth_ids(type_name))
            assert not results[resource].findings.missing and not results[resource].findings.drift
        assert location in results["locations"].findings.deleted
        assert item in results["inventory_items"].findings.deleted
        assert level in results["inventory_levels"].findings.deleted
        # A second reconciliation finds nothing more: the marks are there.
        again = await reconcile_once(config, token_env(shop))
        assert all(r.findings.empty for r in again.values()), again


async def test_delete_rows_removes_the_rows_instead_of_marking_them(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync=PAGINATED, extra_shop_keys={shop.name: {"resources": INVENTORY}})
        with config.open("a", encoding="utf-8") as f:
            f.write("\n[reconcile]\ndelete_rows = true\n")
        assert (await sync_once(config, token_env(shop))).ok
        location, item, level = _delete_inventory(shop)

        results = await reconcile_once(config, token_env(shop))

        assert results["locations"].removed == 1 and results["locations"].findings.deleted == [location]
        for resource, type_name in (("locations", "Location"), ("inventory_items", "InventoryItem"), ("inventory_levels", "InventoryLevel")):
            assert not sink_rows(tmp_path / "state.db", resource, shop.name, deleted=True), resource
            assert set(sink_rows(tmp_path / "state.db", resource, shop.name, deleted=None)) == set(shop.store.truth_ids(type_name))
        assert item not in sink_rows(tmp_path / "state.db", "inventory_items", shop.name, deleted=None)
        assert level not in sink_rows(tmp_path / "state.db", "inventory_levels", shop.name, deleted=None)


async def test_an_update_hidden_from_search_is_repaired_by_reconciliation(tmp_path, caplog):
    clock = OffsetClock()
    async with run_simulator(sim_config(data=SMALL), clock=clock) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync=PAGINATED, extra_shop_keys={shop.name: {"resources": ["orders", "products"]}})
        assert (await sync_once(config, token_env(shop), clock=clock)).ok
        order = shop.store.gid_of("Order", 17)
        product = shop.store.gid_of("Product", 3)
        new_order = shop.store.update(order, hidden=True)
        new_product = shop.store.update(product, hidden=True)
        clock.advance(10)  # past the safety margin and the index lag
        assert (await sync_once(config, token_env(shop), clock=clock)).ok
        # The incremental sync did not see them: the search index still has the old updatedAt.
        stale = sink_rows(tmp_path / "state.db", "orders", shop.name)[order]
        assert stale is not None and stale["updatedAt"] != new_order["updatedAt"]

        metrics = Metrics(CollectorRegistry(), process_metrics=False)
        with caplog.at_level(logging.WARNING, logger="shopsync.engine.reconcile"):
            results = await reconcile_once(config, token_env(shop), clock=clock, metrics=metrics)

        assert results["orders"].findings.drift == [order], results["orders"]
        assert results["products"].findings.drift == [product], results["products"]
        assert not results["orders"].findings.deleted and not results["orders"].findings.missing
        repaired = sink_rows(tmp_path / "state.db", "orders", shop.name)[order]
        assert repaired is not None and repaired["updatedAt"] == new_order["updatedAt"]
        assert repaired == shop.truth("orders")[order]
        repaired_product = sink_rows(tmp_path / "state.db", "products", shop.name)[product]
        assert repaired_product is not None and repaired_product["updatedAt"] == new_product["updatedAt"]
        value = metrics.registry.get_sample_value("shopsync_reconcile_drift_total", {"shop": shop.name, "resource": "orders"})
        assert value == 1
        lines = [r.getMessage() for r in caplog.records if "reconcile drift" in r.getMessage()]
        assert any(order in line and "sim/orders" in line for line in lines), lines
        # The outcome is stored for `shopsync status`.
        row = stream_states(tmp_path / "state.db")[(shop.name, "orders@reconcile")]
        assert '"drift":1' in row["cursor"]


async def test_reconcile_after_a_clean_sync_finds_nothing_while_the_shop_changes(tmp_path):
    """No false findings: records created or updated after the sync's promise (its watermark),
    while the mutator keeps changing the shop during the reconciliation itself, are neither
    deleted nor counted as drift; nothing the sink promises is missing."""
    clock = OffsetClock()
    mutator = MutatorConfig(orders_per_day=400_000, update_ratio=3.0, delete_ratio=0.0)
    async with run_simulator(sim_config(data=SMALL, mutator=mutator), clock=clock) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync=PAGINATED)
        assert (await sync_once(config, token_env(shop), clock=clock)).ok
        assert shop.mutator is not None
        await _until(lambda: shop.mutator.counters.updated > 20 and shop.mutator.counters.created > 5)
        # No clock advance: every change since the sync is inside the safety margin or after it.
        results = await reconcile_once(config, token_env(shop), clock=clock)
        assert all(r.ok for r in results.values()), results
        for name, result in results.items():
            assert result.findings.empty, (name, result.findings)
            assert result.listed > 0, name
        assert shop.mutator.counters.created > 5


async def test_the_reconcile_command_prints_its_findings(tmp_path, monkeypatch):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], sync=PAGINATED, extra_shop_keys={shop.name: {"resources": INVENTORY}})
        assert (await sync_once(config, token_env(shop))).ok
        location, _item, _level = _delete_inventory(shop)

        code, out, err = await _cli("reconcile", "--config", str(config), "--shop", shop.name, "--resource", "locations", env=token_env(shop))

        assert code == 0, err
        assert f"{shop.name}/locations:" in out and "1 deleted" in out and location in out, out
        assert "inventory_levels" not in out
        assert location in sink_rows(tmp_path / "state.db", "locations", shop.name, deleted=True)
        status_code, status_out, _ = await _cli("status", "--config", str(config), env=token_env(shop))
        assert status_code == 0
        assert "0 missing, 0 drifted, 1 deleted" in status_out, status_out
        # A configuration mistake exits 2 before anything is opened.
        monkeypatch.setenv(TOKEN_ENV, shop.token)
        assert main(["reconcile", "--config", str(config), "--resource", "nope"]) == 2
        assert main(["reconcile", "--config", str(tmp_path / "missing.toml")]) == 2


async def _cli(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run ``shopsync …`` in a child process while this loop keeps serving the simulator."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "shopsync", *args,
        env={**os.environ, **env}, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def _until(predicate, *, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


async def test_the_reconcile_command_exits_1_when_a_reconciliation_fails(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(
            tmp_path / "shopsync.toml", [shop], sync={**PAGINATED, "max_attempts": 2},
            extra_shop_keys={shop.name: {"resources": ["locations"]}},
        )  # fmt: skip
        assert (await sync_once(config, token_env(shop))).ok
        shop.faults.set(http_503=1.0)  # every request fails from now on
        code, _out, err = await _cli("reconcile", "--config", str(config), env=token_env(shop))
    assert code == 1, err
    assert f"{shop.name}/locations: reconcile FAILED" in err
    row = stream_states(tmp_path / "state.db")[(shop.name, "locations@reconcile")]
    assert row["last_error"] and "503" in row["last_error"]
