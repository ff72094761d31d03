"""The simulator's records of issue 14: Shopify Payments under its account, gift cards, metafields
per owner, collection membership, draft orders, abandoned checkouts, fulfillment orders, markets."""

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
