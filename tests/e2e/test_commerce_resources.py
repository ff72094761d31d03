"""Draft orders, abandoned checkouts, fulfillment orders and markets (issue 14) synced end to end
against the simulator by both paths: byte-identical records equal to the shop's truth."""

from __future__ import annotations

from shopsync.simulator.server import run_simulator
from tests.support.sinks import COMMERCE_RESOURCES

from .conftest import (
    diff_records,
    sim_config,
    sink_rows,
    sync_by_each_path,
    sync_once,
    token_env,
    write_config,
)

INCREMENTAL = ("draft_orders", "abandoned_checkouts", "fulfillment_orders")


async def test_commerce_resources_by_both_paths_equal_the_shop(tmp_path):
    cfg = sim_config(data={"draft_orders": 40, "abandoned_checkouts": 30, "fulfillment_orders": 12, "markets": 7})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, COMMERCE_RESOURCES)
        for path, run in runs.items():
            assert all(run.paths[r] == path for r in INCREMENTAL), run.paths
            assert run.paths["markets"] == "paginated"  # read whole
        results = {path: run.rows for path, run in runs.items()}
        for resource in COMMERCE_RESOURCES:
            assert not diff_records(results["bulk"][resource], results["paginated"][resource]), resource
        got = results["paginated"]
        assert [len(got[r]) for r in COMMERCE_RESOURCES] == [40, 30, 12, 7]
        fos = got["fulfillment_orders"].values()
        # Closed fulfillment orders are included (includeClosed: true), and the big order's one
        # lists its 400 line items: more than a page (50), drained to the end.
        assert {f["status"] for f in fos} >= {"CLOSED", "OPEN"}
        assert max(len(f["lineItems"]) for f in fos) == 400
        orders = shop.truth("orders")
        for fo in fos:
            order = orders[fo["orderId"]]
            assert [li["lineItem"]["id"] for li in fo["lineItems"]] == [li["id"] for li in order["lineItems"]]
        assert all(m["regions"] and all(r["code"] for r in m["regions"]) for m in got["markets"].values())


async def test_product_media_of_images_and_videos_by_both_paths(tmp_path):
    async with run_simulator(sim_config()) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, ("product_media",))
        assert all({s.path for s in run.report.streams} == {path} for path, run in runs.items())
        results = {path: run.rows["product_media"] for path, run in runs.items()}
        assert not diff_records(results["bulk"], results["paginated"])
        media = [m for p in results["paginated"].values() for m in p["media"]]
        assert len(results["paginated"]) == 60 and media
        assert {m["mediaContentType"] for m in media} == {"IMAGE", "VIDEO"}
        assert all(m["image"]["url"] for m in media if m["mediaContentType"] == "IMAGE")
        assert all(m["filename"] and "image" not in m for m in media if m["mediaContentType"] == "VIDEO")


async def test_reconciling_every_new_resource_after_a_clean_sync_finds_nothing(tmp_path):
    """The ids-only listings of every resource issue 14 added (per product for product
    metafields, by id alone for markets and payouts) list exactly what was synced."""
    from tests.e2e.test_reconcile import reconcile_once
    from tests.support.sinks import ISSUE14_RESOURCES

    cfg = sim_config(data={"orders": 300, "customers": 60, "products": 12, "tie_group_size": 50, "order_metafields": 1})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": list(ISSUE14_RESOURCES)}})
        assert (await sync_once(config, token_env(shop))).ok
        results = await reconcile_once(config, token_env(shop))
        assert set(results) == set(ISSUE14_RESOURCES)
        problems = {r: x.summary() for r, x in results.items() if not x.ok or x.skipped or x.reread or x.deleted}
        assert not problems, problems
        listed = {r: x.listed for r, x in results.items()}
        synced = {r: len(sink_rows(tmp_path / "state.db", r, shop.name)) for r in ISSUE14_RESOURCES}
        assert listed == synced and all(listed.values()), listed


async def test_order_fulfillments_and_returns_by_both_paths(tmp_path):
    from tests.support.sinks import ORDER_DETAIL_RESOURCES

    cfg = sim_config(data={"orders": 300, "customers": 60, "tie_group_size": 50})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, ("orders", *ORDER_DETAIL_RESOURCES))
        assert all({s.path for s in run.report.streams} == {path} for path, run in runs.items())
        results = {path: run.rows for path, run in runs.items()}
        for resource in ORDER_DETAIL_RESOURCES:
            assert not diff_records(results["bulk"][resource], results["paginated"][resource]), resource
        orders, fulfilments, returns = (results["paginated"][r] for r in ("orders", *ORDER_DETAIL_RESOURCES))
        assert set(fulfilments) == set(returns) == set(orders) and len(orders) == 300
        shipped = [o for o in orders.values() if o["displayFulfillmentStatus"] == "FULFILLED" and not o["cancelledAt"]]
        assert shipped and all(len(fulfilments[o["id"]]["fulfillments"]) == 1 for o in shipped)
        assert all(f["trackingInfo"][0]["number"] for o in shipped for f in fulfilments[o["id"]]["fulfillments"])
        assert all(not fulfilments[o["id"]]["fulfillments"] for o in orders.values() if o["displayFulfillmentStatus"] == "UNFULFILLED")
        assert all(len(returns[i]["returns"]) == len(o["refunds"]) for i, o in orders.items())
        assert any(returns[i]["returns"] for i in orders)
