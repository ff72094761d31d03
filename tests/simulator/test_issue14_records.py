"""The simulator's records of issue 14: Shopify Payments under its account, gift cards, metafields
per owner, collection membership, draft orders, abandoned checkouts, fulfillment orders, markets,
discount nodes with their redeem codes."""

from __future__ import annotations

import pytest

from shopsync.simulator.collection_fields import collection_members
from tests.simulator.test_executor import make, ok, run


def test_the_payments_account_lists_its_records_by_id_across_pages():
    _store, ex, _ = make(orders=50, balance_transactions=7)
    page = ok(ex, "{ shopifyPaymentsAccount { balanceTransactions(first: 4, sortKey: ID) { pageInfo { hasNextPage endCursor } nodes { id } } } }")
    conn = page["shopifyPaymentsAccount"]["balanceTransactions"]
    assert len(conn["nodes"]) == 4 and conn["pageInfo"]["hasNextPage"]
    rest = ok(ex, "query($a: String) { shopifyPaymentsAccount { balanceTransactions(first: 4, after: $a) { pageInfo { hasNextPage } nodes { id } } } }",
              {"a": conn["pageInfo"]["endCursor"]})["shopifyPaymentsAccount"]["balanceTransactions"]
    ids = [n["id"] for n in conn["nodes"] + rest["nodes"]]
    assert len(ids) == 7 == len(set(ids)) and ids == sorted(ids, key=lambda g: int(g.rsplit("/", 1)[1]))
    assert not rest["pageInfo"]["hasNextPage"]


def test_a_shop_without_shopify_payments_answers_a_null_account():
    _store, ex, _ = make(orders=50, shopify_payments=False)
    assert ok(ex, "{ shopifyPaymentsAccount { payouts(first: 5) { nodes { id } } } }") == {"shopifyPaymentsAccount": None}


def test_unmodelled_sort_keys_of_payments_connections_are_refused():
    _store, ex, _ = make(orders=50)
    result = run(ex, "{ shopifyPaymentsAccount { payouts(first: 5, sortKey: ISSUED_AT) { nodes { id } } } }")
    assert result.errors and result.errors[0]["extensions"]["code"] == "NOT_MODELLED"
    assert "ShopifyPaymentsAccount.payouts" in result.errors[0]["message"]


def test_metafields_are_the_owners_own_and_filtered_by_namespace():
    _store, ex, _ = make(orders=20, products=4, product_metafields=3, shop_metafields=2, order_metafields=2)
    data = ok(ex, """{ products(first: 4) { nodes { id metafields(first: 10) { nodes { id namespace key } } } }
                       shop { metafields(first: 10) { nodes { id } } }
                       orders(first: 3) { nodes { id metafields(first: 10, namespace: "custom") { nodes { id namespace } } } } }""")
    per_product = [[m["id"] for m in p["metafields"]["nodes"]] for p in data["products"]["nodes"]]
    assert [len(m) for m in per_product] == [3, 3, 3, 3]
    every = [m for ms in per_product for m in ms] + [m["id"] for m in data["shop"]["metafields"]["nodes"]]
    assert len(every) == len(set(every)) == 14  # no metafield has two owners
    assert all(m["namespace"] == "custom" for o in data["orders"]["nodes"] for m in o["metafields"]["nodes"])
    assert all(len(o["metafields"]["nodes"]) == 2 for o in data["orders"]["nodes"])  # both "custom" (k = 0, 1)


def test_an_order_created_later_has_no_metafields():
    store, ex, _ = make(orders=10, order_metafields=2)
    created = store.create_order()
    data = ok(ex, "query($id: ID!) { node(id: $id) { ... on Order { metafields(first: 5) { nodes { id } } } } }", {"id": created["id"]})
    assert data["node"]["metafields"]["nodes"] == []


def test_collection_membership_is_the_collections_products_count_of_live_products():
    store, ex, _ = make(orders=10, products=30, collections=4)
    data = ok(ex, "{ collections(first: 4) { nodes { id productsCount { count } products(first: 250) { nodes { id } } } } }")
    for c in data["collections"]["nodes"]:
        ids = [p["id"] for p in c["products"]["nodes"]]
        assert len(ids) == c["productsCount"]["count"] and ids == sorted(ids)
    victim = next(c for c in data["collections"]["nodes"] if c["products"]["nodes"])
    gone = victim["products"]["nodes"][0]["id"]
    store.delete(gone)
    again = ok(ex, "query($id: ID!) { node(id: $id) { ... on Collection { products(first: 250) { nodes { id } } } } }", {"id": victim["id"]})
    assert gone not in [p["id"] for p in again["node"]["products"]["nodes"]]
    assert collection_members(7, 0, 5, 30) == collection_members(7, 0, 5, 30) != collection_members(8, 0, 5, 30)


@pytest.mark.parametrize("include", [True, False])
def test_closed_fulfillment_orders_are_listed_only_with_include_closed(include):
    _store, ex, _ = make(orders=200, fulfillment_orders=20)
    arg = "true" if include else "false"
    nodes = ok(ex, f"{{ fulfillmentOrders(first: 50, includeClosed: {arg}) {{ nodes {{ id status }} }} }}")["fulfillmentOrders"]["nodes"]
    statuses = {n["status"] for n in nodes}
    if include:
        assert len(nodes) == 20 and "CLOSED" in statuses
    else:
        assert 0 < len(nodes) < 20 and "CLOSED" not in statuses


def test_draft_orders_and_checkouts_are_searchable_by_updated_at():
    store, ex, _ = make(orders=50, draft_orders=30, abandoned_checkouts=30)
    for root in ("draftOrders", "abandonedCheckouts"):
        every = ok(ex, f"{{ {root}(first: 250) {{ nodes {{ id updatedAt }} }} }}")[root]["nodes"]
        pivot = sorted(n["updatedAt"] for n in every)[len(every) // 2]
        later = ok(ex, f"{{ {root}(first: 250, query: \"updated_at:>='{pivot}'\") {{ nodes {{ id updatedAt }} }} }}")[root]["nodes"]
        assert later and all(n["updatedAt"] >= pivot for n in later)
        assert {n["id"] for n in later} == {n["id"] for n in every if n["updatedAt"] >= pivot}


ORDER_DETAIL = """{ orders(first: 250) { nodes {
  id displayFinancialStatus totalTaxSet { shopMoney { amount } } totalShippingPriceSet { shopMoney { amount } }
  taxLines { rate priceSet { shopMoney { amount } } }
  lineItems(first: 50) { nodes { id taxable quantity originalUnitPriceSet { shopMoney { amount } }
                                 discountedUnitPriceSet { shopMoney { amount } } taxLines { priceSet { shopMoney { amount } } } } }
  shippingLines(first: 5) { nodes { id originalPriceSet { shopMoney { amount } } } }
  discountApplications(first: 50) { nodes { __typename index value { __typename ... on PricingPercentageValue { percentage } } } }
  transactions { id kind parentTransaction { id kind } }
  refunds { id createdAt processedAt totalRefundedSet { shopMoney { amount } }
            refundLineItems(first: 50) { nodes { id quantity lineItem { id quantity } } }
            transactions(first: 5) { nodes { id kind } } }
} } }"""


def _cents(bag: dict) -> int:
    return round(float(bag["shopMoney"]["amount"]) * 100)


def test_an_orders_derived_details_agree_with_the_order():
    """Tax, shipping and discount lines, refund line items and transaction parents are derived
    from the stored order (nothing drawn), so they agree with its totals and its other lists."""
    _store, ex, _ = make(orders=250, products=20)
    orders = ok(ex, ORDER_DETAIL)["orders"]["nodes"]
    assert len(orders) == 250
    for o in orders:
        assert sum(_cents(t["priceSet"]) for t in o["taxLines"]) == _cents(o["totalTaxSet"])
        items = o["lineItems"]["nodes"]
        assert all(not li["taxLines"] for li in items if not li["taxable"])
        discounted = [li for li in items if _cents(li["discountedUnitPriceSet"]) < _cents(li["originalUnitPriceSet"])]
        apps = o["discountApplications"]["nodes"]
        if len(items) < 50:  # a big order's 400 line items are more than this page
            assert [a["index"] for a in apps] == list(range(len(discounted)))
        assert all(a["value"]["percentage"] > 0 for a in apps if a["__typename"] == "DiscountCodeApplication")
        shipping = o["shippingLines"]["nodes"]
        assert sum(_cents(s["originalPriceSet"]) for s in shipping) == _cents(o["totalShippingPriceSet"])
        by_id = {t["id"]: t for t in o["transactions"]}
        for t in o["transactions"]:
            parent = t["parentTransaction"]
            want = {"CAPTURE": {"AUTHORIZATION"}, "VOID": {"AUTHORIZATION"}, "REFUND": {"SALE", "CAPTURE"}}.get(t["kind"])
            assert (parent is None) == (want is None) and (parent is None or (by_id[parent["id"]]["kind"] in want))
        for r in o["refunds"]:
            assert r["processedAt"] == r["createdAt"]
            assert [t["kind"] for t in r["transactions"]["nodes"]] == ["REFUND"]
            lines = r["refundLineItems"]["nodes"]
            if o["displayFinancialStatus"] == "REFUNDED":
                assert [(x["lineItem"]["id"], x["quantity"]) for x in lines] == [(li["id"], li["quantity"]) for li in items]
            else:
                assert [(x["lineItem"]["id"], x["quantity"]) for x in lines] == [(items[0]["id"], 1)]
    assert any(o["refunds"] for o in orders) and any(o["discountApplications"]["nodes"] for o in orders)
    assert any(o["taxLines"] for o in orders) and any(o["shippingLines"]["nodes"] for o in orders)
    assert ok(ex, ORDER_DETAIL) == {"orders": {"nodes": orders}}  # deterministic


def test_a_refunds_line_items_page_under_the_refund():
    _store, ex, _ = make(orders=250, products=20)
    refunds = [r for o in ok(ex, "{ orders(first: 250) { nodes { displayFinancialStatus lineItems(first: 50) { nodes { id } } refunds { id } } } }")["orders"]["nodes"]
               if o["displayFinancialStatus"] == "REFUNDED" and len(o["lineItems"]["nodes"]) > 1 for r in o["refunds"]]  # fmt: skip
    assert refunds
    doc = """query($id: ID!, $after: String) { node(id: $id) { ... on Refund {
               refundLineItems(first: 1, after: $after) { pageInfo { hasNextPage endCursor } nodes { id } } } } }"""
    seen, after = [], None
    while True:
        conn = ok(ex, doc, {"id": refunds[0]["id"], "after": after})["node"]["refundLineItems"]
        seen += [n["id"] for n in conn["nodes"]]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    whole = ok(ex, "query($id: ID!) { node(id: $id) { ... on Refund { refundLineItems(first: 50) { nodes { id } } } } }", {"id": refunds[0]["id"]})
    assert len(seen) > 1 and seen == [n["id"] for n in whole["node"]["refundLineItems"]["nodes"]]


_DISCOUNT = """id discount { __typename
  ... on DiscountCodeBasic { title updatedAt codesCount { count } }
  ... on DiscountAutomaticBxgy { title updatedAt summary } }"""


def test_discount_nodes_answer_alike_in_pages_and_in_a_bulk_file():
    from shopsync.shopify.schema import parse_and_validate

    store, ex, _ = make(orders=10, discount_nodes=30)
    page_query = "query($a: String) { discountNodes(first: 7, after: $a) { pageInfo { hasNextPage endCursor } nodes { " + _DISCOUNT + " } } }"
    paged, after = [], None
    while True:
        page = ok(ex, page_query, {"a": after})["discountNodes"]
        paged += page["nodes"]
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    bulk = "{ discountNodes(sortKey: ID) { edges { node { " + _DISCOUNT + " } } } }"
    rows = list(ex.bulk_rows(parse_and_validate(bulk, origin="t"), group_objects=False))
    assert rows == paged and len(paged) == 30
    kinds = [n["discount"]["__typename"] for n in paged]
    assert kinds[:8] == ["DiscountCodeBasic", "DiscountCodeBxgy", "DiscountCodeFreeShipping", "DiscountCodeApp",
                         "DiscountAutomaticBasic", "DiscountAutomaticBxgy", "DiscountAutomaticFreeShipping", "DiscountAutomaticApp"]
    # Members outside the inline fragments answer no fields; the ones inside answer what they store.
    assert paged[1]["discount"] == {"__typename": "DiscountCodeBxgy"}
    assert set(paged[5]["discount"]) == {"__typename", "title", "updatedAt", "summary"}
    assert paged[0]["discount"]["codesCount"] == {"count": 120} == {"count": len(store.get(paged[0]["id"])["discount"]["codes"])}


def test_a_discounts_codes_page_with_their_own_cursors_and_an_update_moves_its_updated_at():
    store, ex, clock = make(orders=10, discount_nodes=9, big_discount_codes=130)
    gid = store.gid_of("DiscountNode", 0)
    query = """query($id: ID!, $a: String) { discountNode(id: $id) { discount { ... on DiscountCodeBasic {
      codes(first: 50, after: $a) { pageInfo { hasNextPage endCursor } nodes { id code asyncUsageCount } } } } } }"""
    codes, after = [], None
    while True:
        conn = ok(ex, query, {"id": gid, "a": after})["discountNode"]["discount"]["codes"]
        codes += conn["nodes"]
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(codes) == 130 == len({c["id"] for c in codes}) and codes == [{k: c[k] for k in ("id", "code", "asyncUsageCount")} for c in store.get(gid)["discount"]["codes"]]
    # The automatic discount of node 4 has no codes; an update moves the discount's updatedAt, not the node's.
    before = store.get(gid)["discount"]
    after_update = store.update(gid, at=clock() + 60)
    assert "updatedAt" not in after_update and after_update["discount"]["updatedAt"] > before["updatedAt"]
    assert after_update["discount"]["asyncUsageCount"] > before["asyncUsageCount"]
    assert "codes" not in store.get(store.gid_of("DiscountNode", 4))["discount"]
