"""Roots below QueryRoot (``object.connection``), the header's ``every``, and what they build (issue 14)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shopsync.errors import QueryDocumentError
from shopsync.queries import builder as b
from shopsync.queries import load_resources
from shopsync.queries.builder.reconcile import ids_resource, nodes_query
from shopsync.shopify.schema import parse_and_validate
from tests.support.sinks import FINANCE_RESOURCES

PAYOUTS = """# shopsync:resource
# root: shopifyPaymentsAccount.payouts
# filter: none
# every: 2h
fragment P on ShopifyPaymentsPayout { id status net { amount currencyCode } }
"""


@pytest.fixture(scope="module")
def resources():
    return load_resources()


def load_error(tmp_path: Path, name: str, text: str) -> str:
    (tmp_path / f"{name}.graphql").write_text(text)
    with pytest.raises(QueryDocumentError) as info:
        load_resources(tmp_path)
    return str(info.value)


def test_object_connection_root_is_parsed(tmp_path):
    (tmp_path / "my_payouts.graphql").write_text(PAYOUTS)
    res = load_resources(tmp_path)["my_payouts"]
    assert (res.root_path, res.root_object_type, res.root_field) == (("shopifyPaymentsAccount",), "ShopifyPaymentsAccount", "payouts")
    assert res.parent_field is None and res.node_type == "ShopifyPaymentsPayout"
    assert res.page_path == ("shopifyPaymentsAccount", "payouts")
    assert res.every == timedelta(hours=2) and not res.incremental


def test_object_root_documents_nest_the_connection_under_the_object(resources):
    res = resources["shopify_payments_balance_transactions"]
    page = b.page_query(res, 50)
    assert page.startswith("query Page($first: Int!, $after: String, $query: String) {\n  shopifyPaymentsAccount {\n    balanceTransactions(")
    assert "sortKey: ID" in page
    bulk = b.bulk_query(res, None)
    assert bulk.startswith("{\n  shopifyPaymentsAccount {\n    balanceTransactions(sortKey: ID) {\n      edges {")
    for doc in (page, bulk, nodes_query(res), b.page_query(ids_resource(res), 250)):
        parse_and_validate(doc, origin="test")


def test_ids_listing_of_a_type_without_updated_at_selects_the_id_alone(resources):
    ids = b.page_query(ids_resource(resources["shopify_payments_payouts"]), 250)
    assert "fragment PayoutRecord on ShopifyPaymentsPayout {\n  id\n}" in ids
    gift_ids = b.page_query(ids_resource(resources["gift_cards"]), 250)
    assert "fragment GiftCardRecord on GiftCard {\n  id\n  updatedAt\n}" in gift_ids


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("# root: shop.name\n# filter: none", ":2: root: Shop.name is not a connection field"),
        ("# root: shopifyPaymentsAccount.nope\n# filter: none", ":2: root: ShopifyPaymentsAccount.nope is not a connection field"),
        ("# root: nothing.payouts\n# filter: none", ":2: root: 'nothing' is neither a connection field nor an object field of QueryRoot"),
        ("# root: shopifyPaymentsAccount.payouts\n# filter: updated_at", ":3: filter: updated_at: the schema lists no updated_at search filter for shopifyPaymentsAccount.payouts"),
        ("# root: shop.metafields\n# filter: updated_at", ":3: filter: updated_at needs a query argument, which metafields does not take"),
        ("# root: shopifyPaymentsAccount.payouts\n# filter: none\n# every: soon", ":4: every: 'soon' is not a duration"),
        ("# root: shopifyPaymentsAccount.payouts\n# filter: none\n# every: 0s", ":4: every: '0s' must be longer than 0"),
        ("# root: a.b.c\n# filter: none", ":2: root: 'a.b.c' must be 'field', 'parent.child' or 'object.connection'"),
    ],
)
def test_bad_object_roots_name_the_file_and_line(tmp_path, header, expected):
    text = f"# shopsync:resource\n{header}\nfragment P on ShopifyPaymentsPayout {{ id }}\n"
    message = load_error(tmp_path, "bad", text)
    assert f"{tmp_path / 'bad.graphql'}{expected}" in message, message


def test_finance_resources_ship_read_whole_on_their_own_schedule(resources):
    expected = {
        "gift_cards": ("giftCards", (), timedelta(hours=1), ("read_customers", "read_gift_cards", "read_orders")),
        "shopify_payments_balance_transactions": (
            "balanceTransactions", ("shopifyPaymentsAccount",), timedelta(hours=6), ("read_shopify_payments",),
        ),
        "shopify_payments_payouts": ("payouts", ("shopifyPaymentsAccount",), timedelta(hours=6), ("read_shopify_payments",)),
        "shopify_payments_disputes": (
            "disputes", ("shopifyPaymentsAccount",), timedelta(hours=6),
            ("read_orders", "read_shopify_payments", "read_shopify_payments_disputes"),
        ),
    }  # fmt: skip
    assert set(expected) == set(FINANCE_RESOURCES)
    for name, (field, path, every, scopes) in expected.items():
        res = resources[name]
        assert (res.root_field, res.root_path, res.every, res.required_scopes) == (field, path, every, scopes), name
        assert not res.incremental, name


def test_discount_nodes_ship_read_whole_with_their_codes_drained_through_the_union(resources):
    res = resources["discount_nodes"]
    assert (res.root_field, res.every, res.required_scopes, res.incremental, res.exportable) == (
        "discountNodes", timedelta(hours=1), ("read_discounts",), False, False)
    kinds = ("codeBasic", "codeBxgy", "codeFreeShipping", "codeApp")
    assert [(nc.path, nc.within, nc.lookup, nc.parent_type, nc.page_size) for nc in res.all_nested()] == [
        (("discount", f"{k}Codes"), ("discount",), "discountNode", "Discount" + k[0].upper() + k[1:], 10) for k in kinds
    ]
    page = b.page_query(res, 50)
    assert "... on DiscountCodeApp {" in page and "codeAppCodes: codes(first: 10) {\n" in page
    drain = b.drain_query(res, res.nested_at(("discount", "codeBxgyCodes")), b.DRAIN_PAGE)
    # node(id:) of a discount's id answers a DiscountCodeNode on Shopify: the drain asks the node's own lookup.
    assert drain.startswith(
        "query Drain($id: ID!, $first: Int!, $after: String) {\n  discountNode(id: $id) {\n    discount {\n"
        "      ... on DiscountCodeBxgy {\n        codeBxgyCodes: codes(first: $first, after: $after) {\n          pageInfo {"
    )
    for doc in (page, drain):
        parse_and_validate(doc, origin="test")


CODES_IN_DISCOUNT = """# shopsync:resource
# root: discountNodes
# filter: none
{bulk}fragment D on DiscountNode {{ id discount {{ ... on DiscountCodeBasic {{ {codes} }} }} }}
"""


@pytest.mark.parametrize(
    ("bulk", "codes", "expected"),
    [
        # Exportable: bulk queries refuse DiscountRedeemCode (not a Node), and a union object is no node to page under.
        ("", "codes(first: 5) { nodes { id } }", ":4: DiscountCodeBasic.codes: a connection must be selected directly on a record"),
        ("# bulk: no\n", "codes { nodes { id } }", ":5: codes: a nested connection needs first: N"),
    ],
)
def test_connections_in_an_object_of_the_record_need_bulk_no(tmp_path, bulk, codes, expected):
    message = load_error(tmp_path, "codes", CODES_IN_DISCOUNT.format(bulk=bulk, codes=codes))
    assert f"{tmp_path / 'codes.graphql'}{expected}" in message, message


def test_a_record_level_connection_still_takes_no_alias(tmp_path):
    text = "# shopsync:resource\n# root: orders\n# filter: none\n# bulk: no\nfragment O on Order { id items: lineItems(first: 5) { nodes { id } } }\n"
    assert "aliases are not supported on connection fields" in load_error(tmp_path, "aliased", text)
