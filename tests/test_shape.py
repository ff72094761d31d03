"""The pure answer-shape checks (shopsync.shopify.shape): each hostile shape named by its path."""

from __future__ import annotations

import pytest

from shopsync.shopify.shape import (
    Nested,
    PageShape,
    bulk_list_problem,
    bulk_operation_problem,
    bulk_start_problem,
    check_page,
    connection_at,
    count_problem,
    page_nodes,
    stall_problem,
)

ORDERS = PageShape(path=("orders",), nested=(Nested("lineItems", (Nested("discounts"),)),))
UNDER_NODE = PageShape(path=("node", "inventoryLevels"), vanishing=True)
INFO = {"hasNextPage": True, "endCursor": "c2"}


def conn(nodes, info=None, form="edges"):
    info = info if info is not None else {"hasNextPage": False, "endCursor": "c9"}
    if form == "edges":
        return {"pageInfo": info, "edges": [{"cursor": "x", "node": n} for n in nodes]}
    return {"pageInfo": info, "nodes": nodes}


def order(i=1, items=()):
    return {"id": f"gid://shopify/Order/{i}", "lineItems": conn([{"id": f"L{k}", "discounts": conn([], form="nodes")} for k in items])}


def test_a_good_page_passes_in_either_form():
    for form in ("edges", "nodes"):
        data = {"orders": conn([order(1, [1, 2]), order(2)], form=form)}
        assert check_page(data, ORDERS) is None
        assert [n["id"] for n in page_nodes(connection_at(data, ORDERS))] == ["gid://shopify/Order/1", "gid://shopify/Order/2"]


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({}, "data.orders missing"),
        ({"orders": None}, "data.orders is null, not a connection object"),
        ({"orders": "[object Object]"}, "data.orders is a string ('[object Object]'), not a connection object"),
        ({"orders": {"edges": []}}, "data.orders.pageInfo missing"),
        ({"orders": {"pageInfo": None, "edges": []}}, "data.orders.pageInfo is null, not an object"),
        ({"orders": {"pageInfo": {"endCursor": None}, "edges": []}}, "data.orders.pageInfo.hasNextPage missing"),
        ({"orders": {"pageInfo": {"hasNextPage": "yes", "endCursor": None}, "edges": []}}, "data.orders.pageInfo.hasNextPage is a string ('yes'), not a boolean"),
        ({"orders": {"pageInfo": {"hasNextPage": False}, "edges": []}}, "data.orders.pageInfo.endCursor missing"),
        ({"orders": {"pageInfo": {"hasNextPage": False, "endCursor": 7}, "edges": []}}, "data.orders.pageInfo.endCursor is a number (7), not a string"),
        ({"orders": {"pageInfo": INFO}}, "data.orders: neither edges nor nodes"),
        ({"orders": {"pageInfo": INFO, "edges": "[object Object]"}}, "data.orders.edges is a string ('[object Object]'), not a list"),
        ({"orders": {"pageInfo": INFO, "nodes": {"a": 1}}}, "data.orders.nodes is an object, not a list"),
        ({"orders": {"pageInfo": INFO, "edges": [3]}}, "data.orders.edges[0] is a number (3), not an object"),
        ({"orders": {"pageInfo": INFO, "edges": [{"cursor": "c"}]}}, "data.orders.edges[0].node missing"),
        ({"orders": {"pageInfo": INFO, "nodes": [None]}}, "data.orders.nodes[0] is null, not an object"),
        ({"orders": conn([{"lineItems": None}])}, "data.orders.edges[0].node.id missing"),
        ({"orders": conn([{"id": 5, "lineItems": None}])}, "data.orders.edges[0].node.id is a number (5), not an id"),
        ({"orders": conn([order(1), {"id": "gid://shopify/Order/2"}])}, "data.orders.edges[1].node.lineItems missing"),
        ({"orders": conn([{"id": "o", "lineItems": {"edges": []}}])}, "data.orders.edges[0].node.lineItems.pageInfo missing"),
        (
            {"orders": conn([{"id": "o", "lineItems": conn([{"id": "L", "discounts": "none"}])}])},
            "data.orders.edges[0].node.lineItems.edges[0].node.discounts is a string ('none'), not a connection object",
        ),
    ],
)
def test_every_wrong_shape_is_named_by_its_path(data, problem):
    assert check_page(data, ORDERS) == problem


def test_a_null_nested_connection_reads_as_empty_and_data_must_be_an_object():
    assert check_page({"orders": conn([{"id": "o", "lineItems": None}])}, ORDERS) is None
    assert check_page(None, ORDERS) == "data is null, not an object"
    assert check_page([], ORDERS) == "data is a list, not an object"


def test_under_a_node_a_vanished_parent_is_an_empty_page_but_a_missing_field_is_not():
    assert check_page({"node": None}, UNDER_NODE) is None
    assert connection_at({"node": None}, UNDER_NODE) is None
    assert check_page({}, UNDER_NODE) == "data.node missing"
    assert check_page({"node": {}}, UNDER_NODE) == "data.node.inventoryLevels missing"
    assert check_page({"node": "x"}, UNDER_NODE) == "data.node is a string ('x'), not an object"
    # Only the node may vanish: a page at the root never may.
    assert check_page({"orders": None}, PageShape(path=("orders",), vanishing=False)) is not None
    long = "x" * 100
    assert check_page({"orders": long}, ORDERS) == f"data.orders is a string ({'x' * 37 + '...'!r}), not a connection object"


@pytest.mark.parametrize(
    ("after", "info", "nodes", "seen", "problem"),
    [
        ("c1", {"hasNextPage": True, "endCursor": "c2"}, 5, (), None),
        ("c1", {"hasNextPage": False, "endCursor": "c1"}, 0, (), None),  # a last page never stalls
        (None, {"hasNextPage": False, "endCursor": None}, 0, (), None),
        ("c1", {"hasNextPage": True, "endCursor": "c1"}, 5, (), "endCursor 'c1' is the cursor the page was asked with"),
        ("c1", {"hasNextPage": True, "endCursor": None}, 5, (), "hasNextPage is true but endCursor is null"),
        ("c1", {"hasNextPage": True, "endCursor": "c2"}, 0, (), "an empty page with hasNextPage true"),
        ("c3", {"hasNextPage": True, "endCursor": "c2"}, 5, {"c2"}, "endCursor 'c2' was already returned by an earlier page"),
    ],
)
def test_stall_problem(after, info, nodes, seen, problem):
    assert stall_problem(after, info, nodes, seen) == problem


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        ({"ordersCount": {"count": 12, "precision": "EXACT"}}, None),
        ({"ordersCount": {"count": 0}}, None),
        ({}, "data.ordersCount missing"),
        ({"ordersCount": None}, "data.ordersCount is null, not an object"),
        ({"ordersCount": {}}, "data.ordersCount.count missing"),
        ({"ordersCount": {"count": "many"}}, "data.ordersCount.count is a string ('many'), not a count"),
        ({"ordersCount": {"count": True}}, "data.ordersCount.count is a boolean, not a count"),
        ({"ordersCount": {"count": -1}}, "data.ordersCount.count is a number (-1), not a count"),
        ({"ordersCount": {"count": 1.5}}, "data.ordersCount.count is a number (1.5), not a count"),
    ],
)
def test_count_problem(data, problem):
    assert count_problem(data, "ordersCount") == problem


def test_bulk_operation_documents():
    op = {"id": "gid://shopify/BulkOperation/1", "status": "COMPLETED", "objectCount": "12", "rootObjectCount": 3, "fileSize": None, "url": "https://x"}
    assert bulk_operation_problem({"bulkOperation": op}) is None
    assert bulk_operation_problem({"bulkOperation": None}) is None  # unknown to Shopify: a real answer
    assert bulk_operation_problem({}) == "data.bulkOperation missing"
    assert bulk_operation_problem({"bulkOperation": {**op, "status": None}}) == "data.bulkOperation.status is null, not a status"
    assert bulk_operation_problem({"bulkOperation": {**op, "objectCount": "many"}}) == "data.bulkOperation.objectCount is a string ('many'), not a count"
    assert bulk_operation_problem({"bulkOperation": {**op, "url": 5}}) == "data.bulkOperation.url is a number (5), not a string"

    started = {"bulkOperationRunQuery": {"bulkOperation": {"id": "gid://shopify/BulkOperation/1", "status": "CREATED"}, "userErrors": []}}
    assert bulk_start_problem(started) is None
    assert bulk_start_problem({"bulkOperationRunQuery": {"bulkOperation": None, "userErrors": [{"code": "LIMIT_REACHED"}]}}) is None
    assert bulk_start_problem({}) == "data.bulkOperationRunQuery missing"
    assert bulk_start_problem({"bulkOperationRunQuery": {"bulkOperation": None}}) == "data.bulkOperationRunQuery.userErrors is null, not a list of objects"
    assert bulk_start_problem({"bulkOperationRunQuery": {"bulkOperation": {"status": "CREATED"}, "userErrors": []}}) == (
        "data.bulkOperationRunQuery.bulkOperation.id is null, not an id"
    )

    assert bulk_list_problem({"bulkOperations": {"nodes": [{"id": "gid://shopify/BulkOperation/1"}]}}) is None
    assert bulk_list_problem({"bulkOperations": {"nodes": "x"}}) == "data.bulkOperations.nodes is a string ('x'), not a list"
    assert bulk_list_problem({"bulkOperations": {"nodes": [{}]}}) == "data.bulkOperations.nodes[0].id is null, not an id"


REFUNDS = PageShape(path=("orders",), nested=(Nested("refundLineItems", through=("refunds",)),))


@pytest.mark.parametrize(
    ("refunds", "problem"),
    [
        ([{"id": "R1", "refundLineItems": conn([{"id": "L1"}], form="nodes")}], None),
        (None, None),  # no refunds: nothing to drain
        ([], None),
        ("many", "data.orders.edges[0].node.refunds is a string ('many'), not a list"),
        ([{"refundLineItems": conn([])}], "data.orders.edges[0].node.refunds[0].id missing"),
        ([{"id": "R1"}], "data.orders.edges[0].node.refunds[0].refundLineItems missing"),
        ([{"id": "R1", "refundLineItems": {"nodes": []}}], "data.orders.edges[0].node.refunds[0].refundLineItems.pageInfo missing"),
    ],
)
def test_a_connection_inside_a_list_is_checked_in_each_element(refunds, problem):
    node = {"id": "O1", "refunds": refunds}
    assert check_page({"orders": conn([node])}, REFUNDS) == problem


CODES = PageShape(path=("discountNodes",), nested=(Nested("codeBasicCodes", within=("discount",)),))


@pytest.mark.parametrize(
    ("node", "problem"),
    [
        ({"id": "D1", "discount": {"__typename": "DiscountCodeBasic", "codeBasicCodes": conn([{"id": "C1"}], form="nodes")}}, None),
        ({"id": "D1", "discount": {"__typename": "DiscountAutomaticBasic"}}, None),  # a member without codes
        ({"id": "D1", "discount": None}, None),
        ({"id": "D1"}, "data.discountNodes.edges[0].node.discount missing"),
        ({"id": "D1", "discount": "basic"}, "data.discountNodes.edges[0].node.discount is a string ('basic'), not an object"),
        ({"id": "D1", "discount": {"codeBasicCodes": {"nodes": []}}}, "data.discountNodes.edges[0].node.discount.codeBasicCodes.pageInfo missing"),
    ],
)
def test_a_connection_in_an_object_of_the_node_is_checked_where_a_member_holds_it(node, problem):
    assert check_page({"discountNodes": conn([node])}, CODES) == problem
