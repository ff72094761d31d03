"""shopsync.shopify.cost: Shopify's requested and actual cost rules on worked examples."""

from __future__ import annotations

import pytest
from graphql import parse
from hypothesis import given, settings
from hypothesis import strategies as st

from shopsync.shopify.cost import CostError, actual_cost, requested_cost
from shopsync.shopify.schema import load_schema

SCHEMA = load_schema()


def cost(text: str, variables=None) -> int:
    return requested_cost(SCHEMA, parse(text), variables)


def test_752_microsoft_connector_orders_page():
    # 2 + 250 × (node 1 + totalPriceSet 1 + shopMoney 1)
    assert cost("{ orders(first: 250) { edges { node { id totalPriceSet { shopMoney { amount } } } } } }") == 752


def test_602_with_a_four_point_node():
    doc = "{ orders(first: 150) { edges { node { id customer { id } totalPriceSet { shopMoney { amount } } } } } }"
    assert cost(doc) == 602


def test_first_from_a_variable_and_nodes_form():
    doc = "query Q($n: Int!) { orders(first: $n) { nodes { id totalPriceSet { shopMoney { amount } } } } }"
    assert cost(doc, {"n": 250}) == 752
    assert cost(doc, {"n": 1}) == 5


def test_nested_connections_multiply_through_their_parent():
    # 2 + 10 × (1 + (2 + 5 × (1 + variant 1)))
    doc = "{ orders(first: 10) { edges { node { id lineItems(first: 5) { edges { node { id variant { id } } } } } } } }"
    assert cost(doc) == 2 + 10 * (1 + 2 + 5 * 2)


def test_scalars_and_enums_are_free_lists_of_objects_cost_one_object():
    assert cost("{ orders(first: 3) { edges { node { id name displayFinancialStatus } } } }") == 2 + 3 * 1
    # transactions is a list of OrderTransaction: costed as one object (+ amountSet + shopMoney)
    doc = "{ orders(first: 2) { edges { node { transactions(first: 10) { id amountSet { shopMoney { amount } } } } } } }"
    assert cost(doc) == 2 + 2 * (1 + 3)


def test_interface_costs_its_most_expensive_possible_selection():
    doc = """{ node(id: "gid://shopify/Order/1") {
        ... on Order { customer { id } totalPriceSet { shopMoney { amount } } }
        ... on Product { title }
    } }"""
    assert cost(doc) == 1 + 3  # node object + Order's 3 (Product's 0 is cheaper)


def test_mutations_cost_ten_each():
    assert cost('mutation { bulkOperationCancel(id: "gid://shopify/BulkOperation/1") { bulkOperation { id } } }') == 10
    two = """mutation {
        a: bulkOperationCancel(id: "gid://shopify/BulkOperation/1") { bulkOperation { id } }
        b: bulkOperationCancel(id: "gid://shopify/BulkOperation/2") { bulkOperation { id } }
    }"""
    assert cost(two) == 20


def test_a_connection_without_first_cannot_be_costed():
    with pytest.raises(CostError, match="first or last"):
        cost("{ orders { edges { node { id } } } }")


NESTED = "{ orders(first: 4) { edges { node { id customer { id } lineItems(first: 3) { edges { node { id variant { id } } } } } } } }"


def order(line_items: int, customer: bool) -> dict:
    return {
        "id": "gid://shopify/Order/1",
        "customer": {"id": "gid://shopify/Customer/1"} if customer else None,
        "lineItems": {"edges": [{"node": {"id": f"gid://shopify/LineItem/{i}", "variant": {"id": "v"}}} for i in range(line_items)]},
    }


def test_actual_equals_requested_when_every_connection_comes_back_full():
    data = {"orders": {"edges": [{"node": order(3, True)} for _ in range(4)]}}
    assert actual_cost(SCHEMA, parse(NESTED), data) == cost(NESTED) == 2 + 4 * (1 + 1 + 2 + 3 * 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.booleans()), max_size=4))
def test_actual_never_exceeds_requested(orders):
    data = {"orders": {"edges": [{"node": order(n, c)} for n, c in orders]}}
    actual = actual_cost(SCHEMA, parse(NESTED), data)
    assert actual <= cost(NESTED)
    if len(orders) < 4:
        assert actual < cost(NESTED)


# -- abstract values: the actual cost of what came back, as the type it came back as -----------
DRAIN = """query($id: ID!) { node(id: $id) {
    ... on Order { lineItems(first: 250) { edges { node { id variant { id } } } } }
    ... on Product { title }
} }"""


def drained(line_items: int) -> dict:
    return {"node": {"lineItems": {"edges": [{"node": {"id": f"l{i}", "variant": {"id": "v"}}} for i in range(line_items)]}}}


def test_a_node_drain_costs_what_came_back_when_the_executor_names_its_type():
    doc, variables = parse(DRAIN), {"id": "gid://shopify/Order/1"}
    requested = requested_cost(SCHEMA, doc, variables)
    assert requested == 1 + 2 + 250 * 2  # static worst case unchanged: Order's branch, full page
    # No __typename selected: the executor's runtime type at the response path decides.
    assert actual_cost(SCHEMA, doc, drained(3), variables, runtime_types={("node",): "Order"}) == 1 + 2 + 3 * 2
    # A Product came back: Order's lineItems do not apply; only the node object is charged.
    assert actual_cost(SCHEMA, doc, {"node": {"title": "t"}}, variables, runtime_types={("node",): "Product"}) == 1
    # Nothing says what type it was: the static worst case, never an undercharge.
    assert actual_cost(SCHEMA, doc, drained(3), variables) == requested


def test_typename_selected_names_the_type_and_paths_reach_list_items():
    doc = parse("""{ nodes(ids: ["gid://shopify/Order/1", "gid://shopify/Product/2"]) {
        ... on Order { lineItems(first: 100) { nodes { id } } }
        ... on Product { variants(first: 100) { nodes { id } } }
    } }""")
    assert requested_cost(SCHEMA, doc) == 1 + 2 + 100
    data = {"nodes": [{"lineItems": {"nodes": [{"id": "a"}] * 4}}, {"variants": {"nodes": [{"id": "b"}] * 9}}]}
    types = {("nodes", 0): "Order", ("nodes", 1): "Product"}
    # A list of objects costs as one object: the most expensive item (the product, 9 variants).
    assert actual_cost(SCHEMA, doc, data, runtime_types=types) == 1 + 2 + 9
    # Without the product's type, that item is charged its worst case (the full 100).
    assert actual_cost(SCHEMA, doc, data, runtime_types={("nodes", 0): "Order"}) == 1 + 2 + 100
    with_typename = {"node": {"__typename": "Order", **drained(5)["node"]}}
    typed_doc = parse(DRAIN.replace("node(id: $id) {", "node(id: $id) { __typename"))
    assert actual_cost(SCHEMA, typed_doc, with_typename, {"id": "x"}) == 1 + 2 + 5 * 2
