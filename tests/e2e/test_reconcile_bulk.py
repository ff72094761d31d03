"""Reconciliation of large resources lists their ids through one bulk export (issue 13)."""

from __future__ import annotations

from shopsync.simulator.server import SimulatedShop, run_simulator

from .conftest import OffsetClock, sim_config, sink_rows, sync_once, token_env, write_config
from .test_reconcile import PAGINATED, SMALL, reconcile_once

RESOURCES = ["orders", "inventory_levels", "locations"]


def id_exports(shop: SimulatedShop) -> dict[int, str]:
    """The bulk operations whose query selects only ids (and updatedAt): number → query."""
    return {
        n: op.query
        for n, op in shop.bulk.operations.items()
        if "updatedAt" in op.query and "lineItems" not in op.query and "quantities" not in op.query
    }


async def test_a_bulk_listing_finds_drift_and_deletions_like_the_pages(tmp_path):
    clock = OffsetClock()
    async with run_simulator(sim_config(data=SMALL), clock=clock) as server:
        shop = server.shop()
        path = tmp_path / "shopsync.toml"
        keys = {shop.name: {"resources": RESOURCES}}
        config = write_config(path, [shop], sync=PAGINATED, extra_shop_keys=keys)
        assert (await sync_once(config, token_env(shop), clock=clock)).ok
        assert not shop.bulk.operations  # the sync itself paged
        order = shop.store.gid_of("Order", 17)
        new_order = shop.store.update(order, hidden=True)
        location = shop.store.gid_of("Location", 1)
        levels_before = set(shop.store.truth_ids("InventoryLevel"))
        shop.store.delete(location)  # no event; its levels go with it
        gone_levels = levels_before - set(shop.store.truth_ids("InventoryLevel"))
        assert gone_levels
        clock.advance(10)
        assert (await sync_once(config, token_env(shop), clock=clock)).ok

        write_config(path, [shop], sync={"path": "bulk"}, extra_shop_keys=keys)
        results = await reconcile_once(config, token_env(shop), clock=clock)

        assert all(r.ok for r in results.values()), results
        exports = id_exports(shop)
        assert len(exports) == 3 and len(shop.bulk.operations) == 3, exports
        assert results["orders"].findings.drift == [order] and not results["orders"].findings.deleted
        assert results["locations"].findings.deleted == [location]
        assert set(results["inventory_levels"].findings.deleted) == gone_levels
        for r in RESOURCES:
            assert not results[r].findings.missing, r
        assert results["orders"].listed == len(shop.truth("orders"))
        assert results["inventory_levels"].listed == len(shop.store.truth_ids("InventoryLevel"))
        repaired = sink_rows(tmp_path / "state.db", "orders", shop.name)[order]
        assert repaired is not None and repaired["updatedAt"] == new_order["updatedAt"]
        # No bulk file is left behind in the work directory.
        assert not [p for p in (tmp_path / "work").rglob("*.jsonl") if "reconcile" in p.parts]

        # Listed by pages now, the same shop shows nothing left to repair.
        write_config(path, [shop], sync=PAGINATED, extra_shop_keys=keys)
        again = await reconcile_once(config, token_env(shop), clock=clock)
        assert all(r.ok and r.findings.empty for r in again.values()), again
        assert len(shop.bulk.operations) == 3


async def test_auto_exports_only_resources_above_the_threshold(tmp_path):
    async with run_simulator(sim_config(data=SMALL)) as server:
        shop = server.shop()
        path = tmp_path / "shopsync.toml"
        keys = {shop.name: {"resources": ["orders", "locations"]}}
        config = write_config(path, [shop], sync=PAGINATED, extra_shop_keys=keys)
        assert (await sync_once(config, token_env(shop))).ok
        orders, locations = len(shop.truth("orders")), len(shop.truth("locations"))
        assert locations < 100 < orders

        write_config(path, [shop], sync={"bulk_threshold": 100}, extra_shop_keys=keys)
        results = await reconcile_once(config, token_env(shop))

        assert all(r.ok and r.findings.empty for r in results.values()), results
        (query,) = id_exports(shop).values()
        assert "orders" in query and "locations" not in query
        assert results["orders"].listed == orders and results["locations"].listed == locations
