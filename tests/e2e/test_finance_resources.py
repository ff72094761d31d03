"""The resources of issue 14 (gift cards, Shopify Payments balance transactions, payouts,
disputes; product and shop metafields) synced end to end against the simulator: equal to its
truth by both paths, a shop without Shopify Payments, and a missing scope parking only its own
stream."""

from __future__ import annotations

import pytest

from shopsync.daemon.parking import Parking
from shopsync.errors import ShopUnavailableError
from shopsync.simulator.server import run_simulator
from tests.support.sinks import FINANCE_RESOURCES, METAFIELD_RESOURCES

from .conftest import (
    assert_matches_truth,
    sim_config,
    sink_rows,
    sync_by_each_path,
    sync_once,
    token_env,
    write_config,
)


async def test_finance_resources_equal_the_shop(tmp_path):
    cfg = sim_config(data={"balance_transactions": 300, "payouts": 40, "disputes": 7, "gift_cards": 260})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": list(FINANCE_RESOURCES)}})
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        assert_matches_truth(shop, tmp_path / "state.db", FINANCE_RESOURCES)
        counts = {r: len(sink_rows(tmp_path / "state.db", r, shop.name)) for r in FINANCE_RESOURCES}
        # More than one page (250) of transactions and of gift cards: the cursor walk under the account is exercised.
        assert counts == {"gift_cards": 260, "shopify_payments_balance_transactions": 300,
                          "shopify_payments_payouts": 40, "shopify_payments_disputes": 7}
        assert {s.path for s in report.streams} == {"paginated"}  # read whole: never a bulk export
        tx = sink_rows(tmp_path / "state.db", "shopify_payments_balance_transactions", shop.name)
        assert any(t["associatedOrder"] for t in tx.values()) and any(t["associatedOrder"] is None for t in tx.values())


async def test_a_shop_without_shopify_payments_reads_as_no_payments_records(tmp_path):
    async with run_simulator(sim_config(data={"shopify_payments": False})) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": list(FINANCE_RESOURCES)}})
        report = await sync_once(config, token_env(shop))
        assert report.ok, report.failures()
        records = {s.resource: s.records for s in report.streams}
        assert records == {"gift_cards": 6, "shopify_payments_balance_transactions": 0,
                           "shopify_payments_payouts": 0, "shopify_payments_disputes": 0}


@pytest.mark.parametrize(
    ("scope", "resource"),
    [
        ("read_shopify_payments_disputes", "shopify_payments_disputes"),
        ("read_gift_cards", "gift_cards"),
        ("read_markets", "markets"),
        ("read_draft_orders", "draft_orders"),
    ],
)
async def test_a_missing_scope_parks_only_its_resource_naming_the_scope(tmp_path, scope, resource):
    resources = [*FINANCE_RESOURCES, "markets", "draft_orders", "collection_memberships"]
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        shop.set_scopes(s for s in shop.config.scopes if s != scope)
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": resources}})
        report = await sync_once(config, token_env(shop))
        failed = {s.resource: s for s in report.failures()}
        assert set(failed) == {resource}
        result = failed[resource]
        assert scope in (result.error or "")
        assert isinstance(result.exception, ShopUnavailableError) and result.exception.resource_only
        parking = Parking(base=300, maximum=3600)
        parked = parking.failed((shop.name, resource), result.exception, now=1000.0)
        assert parked is not None and not parked.whole_shop
        assert scope in parked.park.reason
        others = [r for r in resources if r != resource]
        assert all(parking.active((shop.name, r), 1000.0) is None for r in others)
        assert all(sink_rows(tmp_path / "state.db", r, shop.name) for r in others)


async def test_reconciling_records_without_updated_at_finds_nothing_after_a_clean_sync(tmp_path):
    """Balance transactions, payouts and disputes have no updatedAt: their ids-only listing selects
    the id alone, and a reconciliation right after a sync lists every record and finds nothing."""
    from tests.e2e.test_reconcile import reconcile_once

    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": list(FINANCE_RESOURCES)}})
        assert (await sync_once(config, token_env(shop))).ok
        results = await reconcile_once(config, token_env(shop))
        assert {r: (x.ok, x.error, x.skipped, x.listed, x.reread, x.deleted) for r, x in results.items()} == {
            "gift_cards": (True, None, None, 6, 0, 0),
            "shopify_payments_balance_transactions": (True, None, None, 12, 0, 0),
            "shopify_payments_payouts": (True, None, None, 4, 0, 0),
            "shopify_payments_disputes": (True, None, None, 2, 0, 0),
        }


async def test_metafields_of_every_owner_equal_the_shop_by_both_paths(tmp_path):
    per_owner = {"product_metafields": 5, "shop_metafields": 4, "collection_metafields": 3,
                 "customer_metafields": 2, "order_metafields": 1}
    cfg = sim_config(data={"orders": 300, "customers": 60, "products": 12, "tie_group_size": 50, **per_owner})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, METAFIELD_RESOURCES)
        assert all({s.path for s in run.report.streams if s.resource == "order_metafields"} == {path} for path, run in runs.items())
        results = {path: run.rows for path, run in runs.items()}
        assert results["bulk"] == results["paginated"]
        got = results["paginated"]
        products = got["product_metafields"]
        assert len(products) == 12 * 5 and len(got["shop_metafields"]) == 4
        # Each product metafield names its product; every product has its five.
        owners = [m["owner"]["id"] for m in products.values()]
        assert len(set(owners)) == 12 and all(owners.count(o) == 5 for o in set(owners))
        assert {m["ownerType"] for m in got["shop_metafields"].values()} == {"SHOP"}
        # Owner-keyed records: one per order/customer/collection/product, each with its own list.
        assert len(got["order_metafields"]) == 300 and all(len(o["metafields"]) == 1 for o in got["order_metafields"].values())
        assert len(got["customer_metafields"]) == 60 and all(len(c["metafields"]) == 2 for c in got["customer_metafields"].values())
        assert all(len(c["metafields"]) == 3 for c in got["collection_metafields"].values())
        ids = [m["id"] for r in ("order_metafields", "customer_metafields") for o in got[r].values() for m in o["metafields"]]
        assert len(ids) == len(set(ids)) == 300 + 120  # every metafield belongs to one owner


async def test_collection_memberships_list_each_collections_products_by_both_paths(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, ("collections", "collection_memberships"))
        results = {path: run.rows["collection_memberships"] for path, run in runs.items()}
        assert results["bulk"] == results["paginated"]
        collections = sink_rows(tmp_path / "paginated" / "state.db", "collections", shop.name)
        assert set(results["paginated"]) == set(collections) and len(collections) == 8
        # The lists agree with each collection's productsCount, and hold real products.
        products = set(shop.store.truth_ids("Product"))
        for cid, record in results["paginated"].items():
            ids = [p["id"] for p in record["products"]]
            assert len(ids) == collections[cid]["productsCount"]["count"] and set(ids) <= products
        assert sum(len(r["products"]) for r in results["paginated"].values()) > 0
