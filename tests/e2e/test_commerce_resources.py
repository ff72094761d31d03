"""Draft orders, abandoned checkouts, fulfillment orders and markets (issue 14) synced end to end
against the simulator by both paths: byte-identical records equal to the shop's truth."""

from __future__ import annotations

import re
from decimal import Decimal

from shopsync.queries import packaged_dir
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
        # The shop is one object, read whole every run: there is no listing to compare.
        assert results.pop("shop").skipped == "a single object: nothing to list"
        problems = {r: x.summary() for r, x in results.items() if not x.ok or x.skipped or x.reread or x.deleted}
        assert not problems, problems
        listed = {r: x.listed for r, x in results.items()}
        synced = {r: len(sink_rows(tmp_path / "state.db", r, shop.name)) for r in results}
        assert listed == synced and all(listed.values()), listed


async def test_order_fulfillments_returns_and_risks_by_both_paths(tmp_path):
    from tests.support.sinks import ORDER_DETAIL_RESOURCES

    cfg = sim_config(data={"orders": 300, "customers": 60, "tie_group_size": 50})
    async with run_simulator(cfg) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, ("orders", *ORDER_DETAIL_RESOURCES))
        assert all({s.path for s in run.report.streams} == {path} for path, run in runs.items())
        results = {path: run.rows for path, run in runs.items()}
        for resource in ORDER_DETAIL_RESOURCES:
            assert not diff_records(results["bulk"][resource], results["paginated"][resource]), resource
        orders, fulfilments, returns, risks = (results["paginated"][r] for r in ("orders", *ORDER_DETAIL_RESOURCES))
        assert set(fulfilments) == set(returns) == set(risks) == set(orders) and len(orders) == 300
        assert not diff_records(shop.truth("order_risks"), risks)
        # Shopify's own assessment on every order (no provider), a fraud app's on some; the
        # recommendation follows the highest level.
        summaries = [r["risk"] for r in risks.values()]
        assert all(s["assessments"][0]["provider"] is None for s in summaries)
        assert any(len(s["assessments"]) == 2 and s["assessments"][1]["provider"]["title"] for s in summaries)
        worst = {"LOW": "ACCEPT", "MEDIUM": "INVESTIGATE", "HIGH": "CANCEL"}
        order = ("LOW", "MEDIUM", "HIGH")
        assert all(s["recommendation"] == worst[max((a["riskLevel"] for a in s["assessments"]), key=order.index)]
                   for s in summaries)  # fmt: skip
        assert {a["riskLevel"] for s in summaries for a in s["assessments"]} == set(order)
        assert any(not a["facts"] for s in summaries for a in s["assessments"])  # a list may be empty
        shipped = [o for o in orders.values() if o["displayFulfillmentStatus"] == "FULFILLED" and not o["cancelledAt"]]
        assert shipped and all(len(fulfilments[o["id"]]["fulfillments"]) == 1 for o in shipped)
        assert all(f["trackingInfo"][0]["number"] for o in shipped for f in fulfilments[o["id"]]["fulfillments"])
        assert all(not fulfilments[o["id"]]["fulfillments"] for o in orders.values() if o["displayFulfillmentStatus"] == "UNFULFILLED")
        assert all(len(returns[i]["returns"]) == len(o["refunds"]) for i, o in orders.items())
        assert any(returns[i]["returns"] for i in orders)


PAGE_ONLY = ("order_refunds", "order_shipping_discounts")


async def sync_with_pages_of_one(tmp_path, shop, names) -> dict[str, dict]:
    """Sync ``names`` once with every nested ``first`` set to 1 (a drain for every further node):
    the sink's rows per resource."""
    queries = tmp_path / "queries"
    queries.mkdir()
    for name in names:
        text = (packaged_dir() / f"{name}.graphql").read_text()
        (queries / f"{name}.graphql").write_text(re.sub(r"\(first: \d+\)", "(first: 1)", text))
    d = tmp_path / "one"
    d.mkdir()
    config = write_config(d / "shopsync.toml", [shop], extra_shop_keys={shop.name: {"resources": list(names)}})
    config.write_text(f'queries_dir = "{queries}"\n' + config.read_text())
    report = await sync_once(config, token_env(shop))
    assert report.ok, report.failures()
    return {name: sink_rows(d / "state.db", name, shop.name) for name in names}


async def test_order_transactions_refunds_shipping_and_discounts_by_both_paths(tmp_path):
    """Orders' transactions, refunds (with their line items and transactions) and shipping and
    discount lines: byte-identical whichever path was asked for, equal to the shop. The two
    ``bulk: no`` resources are paged even when bulk is forced (Shopify would refuse their bulk
    query); read again with nested pages of one node, every list is drained to the same end."""
    from tests.support.sinks import ORDER_MONEY_RESOURCES

    cfg = sim_config(data={"orders": 300, "customers": 60, "tie_group_size": 50, "big_orders": 2})
    resources = ("orders", *ORDER_MONEY_RESOURCES)
    async with run_simulator(cfg) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, resources)
        for path, run in runs.items():
            got = {s.resource: s.path for s in run.report.streams}
            assert got == {"orders": path, "order_transactions": path, **dict.fromkeys(PAGE_ONLY, "paginated")}, got
        results = {path: run.rows for path, run in runs.items()}
        for resource in resources:
            assert not diff_records(results["bulk"][resource], results["paginated"][resource]), resource
        orders, txs, refunds, lines = (results["paginated"][r] for r in resources)
        assert set(txs) == set(refunds) == set(lines) == set(orders) and len(orders) == 300
        assert all([t["id"] for t in txs[i]["transactions"]] == [t["id"] for t in o["transactions"]] for i, o in orders.items())
        assert all([r["id"] for r in refunds[i]["refunds"]] == [r["id"] for r in o["refunds"]] for i, o in orders.items())
        refund_lists = [r for o in refunds.values() for r in o["refunds"]]
        assert refund_lists and all(r["refundLineItems"] and [t["kind"] for t in r["transactions"]] == ["REFUND"] for r in refund_lists)
        assert {t["parentTransaction"]["id"] for r in refund_lists for t in r["transactions"]} <= {
            t["id"] for o in orders.values() for t in o["transactions"]
        }
        assert any(o["discountApplications"] for o in lines.values()) and any(o["shippingLines"] for o in lines.values())
        # The big orders' discount applications are more than a page (5): drained.
        assert max(len(o["discountApplications"]) for o in lines.values()) > 5
        # Each discounted line item's allocation: its units' whole discount, from the order's
        # application of that index (the two resources agree); full-price items have none.
        allocated = 0
        for i, o in orders.items():
            indexes = []
            for li in o["lineItems"]:
                unit = Decimal(li["originalUnitPriceSet"]["shopMoney"]["amount"]) - Decimal(li["discountedUnitPriceSet"]["shopMoney"]["amount"])
                allocations = li["discountAllocations"]
                assert len(allocations) == (1 if unit > 0 else 0), li
                for a in allocations:
                    assert Decimal(a["allocatedAmountSet"]["shopMoney"]["amount"]) == unit * li["quantity"]
                    indexes.append(a["discountApplication"]["index"])
                    allocated += 1
            assert indexes == [d["index"] for d in lines[i]["discountApplications"]], i
        assert allocated > 50

        # Nested pages of one node: many drains under each order and each refund, same records.
        one = await sync_with_pages_of_one(tmp_path, shop, PAGE_ONLY)
        for name in PAGE_ONLY:
            assert not diff_records(one[name], results["paginated"][name]), name
        assert any(len(r["refundLineItems"]) > 1 for r in refund_lists)


async def test_reconciliation_rereads_a_refunded_order_with_its_refund_lines_drained(tmp_path):
    """An update of a refunded order hidden from search: reconciliation re-reads it by id, and
    the refund's line items (one per page here) are drained under the refund as on a page."""
    from tests.e2e.test_reconcile import reconcile_once
    from tests.support import OffsetClock

    clock = OffsetClock()
    async with run_simulator(sim_config(data={"orders": 300, "tie_group_size": 50}), clock=clock) as server:
        shop = server.shop()
        queries = tmp_path / "queries"
        queries.mkdir()
        text = (packaged_dir() / "order_refunds.graphql").read_text()
        (queries / "order_refunds.graphql").write_text(re.sub(r"\(first: \d+\)", "(first: 1)", text))
        config = write_config(tmp_path / "shopsync.toml", [shop], sync={"path": "paginated"},
                              extra_shop_keys={shop.name: {"resources": ["order_refunds"]}})  # fmt: skip
        config.write_text(f'queries_dir = "{queries}"\n' + config.read_text())
        assert (await sync_once(config, token_env(shop), clock=clock)).ok
        truth = shop.truth("order_refunds")
        order = next(i for i, o in truth.items() if any(len(r["refundLineItems"]) > 1 for r in o["refunds"]))
        new = shop.store.update(order, hidden=True)
        clock.advance(10)  # past the safety margin and the index lag
        assert (await sync_once(config, token_env(shop), clock=clock)).ok
        stale = sink_rows(tmp_path / "state.db", "order_refunds", shop.name)[order]
        assert stale is not None and stale["updatedAt"] != new["updatedAt"]
        results = await reconcile_once(config, token_env(shop), clock=clock)
        assert results["order_refunds"].findings.drift == [order], results["order_refunds"]
        repaired = sink_rows(tmp_path / "state.db", "order_refunds", shop.name)[order]
        assert repaired == shop.truth("order_refunds")[order] and repaired["updatedAt"] == new["updatedAt"]
        assert any(len(r["refundLineItems"]) > 1 for r in repaired["refunds"])


async def test_fulfilled_and_returned_line_items_by_both_paths(tmp_path):
    """What each fulfillment shipped and each return took back: the same records whichever path
    was asked for (both are page by page only), equal to the shop; quantities add up to the
    fulfillment's and the return's totals and name the order's own line items. Read again with
    nested pages of one node, every list is drained to the same end under the fulfillment's and
    the return's id."""
    from tests.support.sinks import ORDER_LINES_RESOURCES

    cfg = sim_config(data={"orders": 300, "customers": 60, "tie_group_size": 50})
    resources = ("orders", "order_fulfillments", *ORDER_LINES_RESOURCES)
    async with run_simulator(cfg) as server:
        shop = server.shop()
        runs = await sync_by_each_path(tmp_path, shop, resources)
        for path, run in runs.items():
            got = {s.resource: s.path for s in run.report.streams}
            assert got == {"orders": path, "order_fulfillments": path, **dict.fromkeys(ORDER_LINES_RESOURCES, "paginated")}, got
        results = {path: run.rows for path, run in runs.items()}
        for resource in ORDER_LINES_RESOURCES:
            assert not diff_records(results["bulk"][resource], results["paginated"][resource]), resource
            assert not diff_records(shop.truth(resource), results["paginated"][resource]), resource
        orders, fulfilments, shipped, returned = (results["paginated"][r] for r in resources)
        assert set(shipped) == set(returned) == set(orders) and len(orders) == 300

        for i, o in orders.items():
            items = {li["id"]: li for li in o["lineItems"]}
            # The same fulfillments as order_fulfillments, each one's lines adding up to its total.
            assert [f["id"] for f in shipped[i]["fulfillments"]] == [f["id"] for f in fulfilments[i]["fulfillments"]]
            for f, whole in zip(shipped[i]["fulfillments"], fulfilments[i]["fulfillments"], strict=True):
                lines = f["fulfillmentLineItems"]
                assert sum(li["quantity"] for li in lines) == whole["totalQuantity"] > 0
                assert all(li["quantity"] <= items[li["lineItem"]["id"]]["quantity"] for li in lines)
                assert all(li["lineItem"]["sku"] == items[li["lineItem"]["id"]]["sku"] for li in lines)
            # One return per refund, its lines the refund's line items, processed and refunded.
            assert len(returned[i]["returns"]) == len(o["refunds"])
            for r in returned[i]["returns"]:
                lines = r["returnLineItems"]
                assert lines and sum(li["quantity"] for li in lines) == r["totalQuantity"]
                assert all(li["kind"] == "ReturnLineItem" and li["refundedQuantity"] == li["processedQuantity"] == li["quantity"] for li in lines)
                assert all(li["fulfillmentLineItem"]["lineItem"]["id"] in items and li["returnReasonDefinition"]["name"] for li in lines)
        assert sum(len(f["fulfillmentLineItems"]) > 1 for s in shipped.values() for f in s["fulfillments"]) > 10
        assert any(len(r["returnLineItems"]) > 1 for s in returned.values() for r in s["returns"])

        # Nested pages of one node: drains under each order, fulfillment and return.
        one = await sync_with_pages_of_one(tmp_path, shop, ORDER_LINES_RESOURCES)
        for name in ORDER_LINES_RESOURCES:
            assert not diff_records(one[name], results["paginated"][name]), name
