"""Normalising API nodes into records, draining nested connections, canonical bytes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from pathlib import Path

import pytest

from shopsync.engine.records import (
    PendingDrain,
    append_drained,
    gid_type,
    next_page,
    normalize_node,
    record_id,
    record_updated_at,
    serialize,
)
from shopsync.errors import IntegrityError
from shopsync.queries import load_resources

DEPTH2 = """# shopsync:resource
# root: products
# filter: updated_at
fragment P on Product {
  id
  updatedAt
  variants(first: 2) {
    nodes {
      id
      metafields(first: 2) { nodes { id key } }
    }
  }
}
"""


@pytest.fixture(scope="module")
def orders():
    return load_resources()["orders"]


@pytest.fixture(scope="module")
def deep(tmp_path_factory):
    d: Path = tmp_path_factory.mktemp("q")
    (d / "deep.graphql").write_text(DEPTH2)
    return load_resources(d)["deep"]


def edges(nodes, *, more=False, cursor="c1"):
    return {
        "edges": [{"cursor": f"x{i}", "node": n} for i, n in enumerate(nodes)],
        "pageInfo": {"hasNextPage": more, "endCursor": cursor if more else None},
    }


def test_connections_become_lists_and_paging_fields_disappear(orders):
    node = {
        "id": "gid://shopify/Order/1",
        "updatedAt": "2026-01-01T00:00:00Z",
        "totalPriceSet": {"shopMoney": {"amount": "1.00"}},
        "lineItems": edges([{"id": "gid://shopify/LineItem/1"}, {"id": "gid://shopify/LineItem/2"}]),
    }
    before = copy.deepcopy(node)
    record, pending = normalize_node(node, orders)
    assert record["lineItems"] == [{"id": "gid://shopify/LineItem/1"}, {"id": "gid://shopify/LineItem/2"}]
    assert record["totalPriceSet"] == {"shopMoney": {"amount": "1.00"}}
    assert pending == []
    assert node == before  # the input is not modified
    assert b"pageInfo" not in serialize(record) and b"cursor" not in serialize(record)


def test_nodes_form_missing_and_null_connections(orders):
    record, _ = normalize_node({"id": "gid://shopify/Order/1", "lineItems": {"nodes": [{"id": "L1"}]}}, orders)
    assert record["lineItems"] == [{"id": "L1"}]
    assert normalize_node({"id": "gid://shopify/Order/1"}, orders)[0]["lineItems"] == []
    assert normalize_node({"id": "gid://shopify/Order/1", "lineItems": None}, orders)[0]["lineItems"] == []


def test_a_connection_with_more_pages_is_pending(orders):
    record, pending = normalize_node(
        {"id": "gid://shopify/Order/7", "lineItems": edges([{"id": "L1"}], more=True, cursor="abc")}, orders
    )
    assert pending == [PendingDrain(parent_id="gid://shopify/Order/7", nested=orders.nested[0], after="abc", record_path=("lineItems",))]
    assert pending[0].variables(100) == {"id": "gid://shopify/Order/7", "first": 100, "after": "abc"}
    with pytest.raises(IntegrityError, match="endCursor"):
        normalize_node({"id": "O", "lineItems": {"edges": [], "pageInfo": {"hasNextPage": True, "endCursor": None}}}, orders)


def test_depth_two_pending_points_into_the_child(deep):
    node = {
        "id": "gid://shopify/Product/1",
        "variants": {
            "nodes": [
                {"id": "V1", "metafields": {"nodes": [{"id": "M1", "key": "a"}], "pageInfo": {"hasNextPage": False}}},
                {"id": "V2", "metafields": {"nodes": [{"id": "M2", "key": "b"}], "pageInfo": {"hasNextPage": True, "endCursor": "m"}}},
            ],
            "pageInfo": {"hasNextPage": True, "endCursor": "v"},
        },
    }
    record, pending = normalize_node(node, deep)
    assert record["variants"][1] == {"id": "V2", "metafields": [{"id": "M2", "key": "b"}]}
    assert [(d.parent_id, d.record_path, d.after, d.nested.depth) for d in pending] == [
        ("gid://shopify/Product/1", ("variants",), "v", 1),
        ("V2", ("variants", 1, "metafields"), "m", 2),
    ]


def test_append_drained_merges_and_reports_new_depth_two_drains(deep):
    record = {"id": "P", "variants": [{"id": "V1", "metafields": []}, {"id": "V2", "metafields": []}]}
    drain = PendingDrain(parent_id="P", nested=deep.nested[0], after="v", record_path=("variants",))
    page = {
        "edges": [
            {"node": {"id": "V3", "metafields": {"nodes": [], "pageInfo": {"hasNextPage": False}}}},
            {"node": {"id": "V4", "metafields": {"nodes": [{"id": "M9"}], "pageInfo": {"hasNextPage": True, "endCursor": "q"}}}},
        ],
        "pageInfo": {"hasNextPage": True, "endCursor": "v2"},
    }
    more = append_drained(record, drain, page)
    assert [v["id"] for v in record["variants"]] == ["V1", "V2", "V3", "V4"]
    assert record["variants"][3]["metafields"] == [{"id": "M9"}]
    assert [(d.parent_id, d.record_path, d.after) for d in more] == [("V4", ("variants", 3, "metafields"), "q")]
    assert next_page(drain, page) == PendingDrain(parent_id="P", nested=drain.nested, after="v2", record_path=("variants",))
    assert next_page(drain, {"nodes": [], "pageInfo": {"hasNextPage": False}}) is None
    # a plain list of already normalised nodes is accepted too
    assert append_drained(record, more[0], [{"id": "M10"}]) == []
    assert record["variants"][3]["metafields"] == [{"id": "M9"}, {"id": "M10"}]


def test_draining_a_big_record_page_by_page_rebuilds_it_completely(deep):
    """A fake API pages every connection 2 at a time; normalise + drains give the whole record."""
    full = {
        "id": "gid://shopify/Product/1",
        "updatedAt": "2026-01-01T00:00:00Z",
        "variants": [
            {"id": f"gid://shopify/ProductVariant/{v}", "metafields": [{"id": f"gid://shopify/Metafield/{v}{m}", "key": str(m)} for m in range(v % 4)]}
            for v in range(7)
        ],
    }

    def page_of(items, after, size=2):
        start = int(after or 0)
        chunk = items[start : start + size]
        more = start + size < len(items)
        return {"nodes": chunk, "pageInfo": {"hasNextPage": more, "endCursor": str(start + size) if more else None}}

    def api_node(variant):
        return {"id": variant["id"], "metafields": page_of(variant["metafields"], None)}

    first = dict(full, variants=page_of([api_node(v) for v in full["variants"]], None))
    record, pending = normalize_node(first, deep)
    requests = 0
    while pending:
        drain = pending.pop(0)
        while drain is not None:
            requests += 1
            if drain.nested.depth == 1:
                page = page_of([api_node(v) for v in full["variants"]], drain.after)
            else:
                owner = next(v for v in full["variants"] if v["id"] == drain.parent_id)
                page = page_of(owner["metafields"], drain.after)
            pending.extend(append_drained(record, drain, page))
            drain = next_page(drain, page)
    assert record == full
    assert serialize(record) == serialize(full)
    assert requests > 3


def test_serialize_is_canonical():
    a = {"id": "gid://shopify/Order/1", "b": [1, {"y": 1, "x": 2}], "a": None}
    b = {"a": None, "b": [1, {"x": 2, "y": 1}], "id": "gid://shopify/Order/1"}
    assert serialize(a) == serialize(b) == b'{"a":null,"b":[1,{"x":2,"y":1}],"id":"gid://shopify/Order/1"}'


def test_id_updated_at_and_gid_type():
    assert record_id({"id": "gid://shopify/Order/1"}) == "gid://shopify/Order/1"
    with pytest.raises(IntegrityError):
        record_id({"name": "#1001"})
    assert record_updated_at({"updatedAt": "2026-01-02T03:04:05Z"}) == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert record_updated_at({"id": "x"}) is None
    assert gid_type("gid://shopify/LineItem/12") == "LineItem"
    assert gid_type("gid://shopify/InventoryLevel/1?inventory_item_id=2") == "InventoryLevel"
    assert gid_type("12") is None


@pytest.fixture(scope="module")
def refunds():
    return load_resources()["order_refunds"]


def test_a_connection_inside_a_list_is_drained_under_each_element(refunds):
    """order_refunds: each refund's refundLineItems and transactions are its own drains (under
    the refund's id), pointing into that refund in the record; the input is not modified."""
    node = {
        "id": "gid://shopify/Order/1",
        "updatedAt": "2026-01-01T00:00:00Z",
        "refunds": [
            {"id": "gid://shopify/Refund/1", "refundLineItems": {"nodes": [{"id": "a"}], "pageInfo": {"hasNextPage": False, "endCursor": None}},
             "transactions": {"nodes": [], "pageInfo": {"hasNextPage": False, "endCursor": None}}},
            {"id": "gid://shopify/Refund/2", "refundLineItems": {"nodes": [{"id": "b"}], "pageInfo": {"hasNextPage": True, "endCursor": "c1"}},
             "transactions": None},
        ],
    }  # fmt: skip
    before = copy.deepcopy(node)
    record, pending = normalize_node(node, refunds)
    assert node == before
    assert [r["refundLineItems"] for r in record["refunds"]] == [[{"id": "a"}], [{"id": "b"}]]
    assert [r["transactions"] for r in record["refunds"]] == [[], []]
    (drain,) = pending
    assert (drain.parent_id, drain.after, drain.record_path) == ("gid://shopify/Refund/2", "c1", ("refunds", 1, "refundLineItems"))
    append_drained(record, drain, {"nodes": [{"id": "c"}], "pageInfo": {"hasNextPage": False, "endCursor": None}})
    assert record["refunds"][1]["refundLineItems"] == [{"id": "b"}, {"id": "c"}]
    assert record["refunds"][0]["refundLineItems"] == [{"id": "a"}]


def test_an_order_without_refunds_has_nothing_to_drain(refunds):
    record, pending = normalize_node({"id": "gid://shopify/Order/1", "refunds": []}, refunds)
    assert record == {"id": "gid://shopify/Order/1", "refunds": []} and pending == []
    with pytest.raises(IntegrityError, match="refunds: expected a list"):
        normalize_node({"id": "gid://shopify/Order/1", "refunds": {"id": "x"}}, refunds)


@pytest.fixture(scope="module")
def discounts():
    return load_resources()["discount_nodes"]


def test_a_connection_in_an_object_of_the_record_is_drained_under_the_record(discounts):
    """discount_nodes: a code discount's codes live in the node's discount object (the Discount
    union) and are drained under the node's id, into that object; an automatic discount has no
    codes key at all (not an empty list); the input is not modified."""
    more = {"hasNextPage": True, "endCursor": "k1"}
    code = {"id": "gid://shopify/DiscountNode/1",
            "discount": {"__typename": "DiscountCodeBasic", "title": "A",
                         "codeBasicCodes": {"nodes": [{"id": "gid://shopify/DiscountRedeemCode/1"}], "pageInfo": more}}}
    automatic = {"id": "gid://shopify/DiscountNode/2", "discount": {"__typename": "DiscountAutomaticBasic", "title": "B"}}
    before = copy.deepcopy(code)
    record, pending = normalize_node(code, discounts)
    assert code == before
    (drain,) = pending
    assert (drain.parent_id, drain.after, drain.record_path) == ("gid://shopify/DiscountNode/1", "k1", ("discount", "codeBasicCodes"))
    assert drain.nested.lookup == "discountNode"
    append_drained(record, drain, {"nodes": [{"id": "gid://shopify/DiscountRedeemCode/2"}], "pageInfo": {"hasNextPage": False, "endCursor": None}})
    assert [c["id"] for c in record["discount"]["codeBasicCodes"]] == ["gid://shopify/DiscountRedeemCode/1", "gid://shopify/DiscountRedeemCode/2"]
    assert normalize_node(automatic, discounts) == (automatic, [])
    assert normalize_node({"id": "gid://shopify/DiscountNode/3", "discount": None}, discounts)[1] == []


def test_the_page_planner_sees_the_length_of_a_list_in_an_object_of_the_record(discounts):
    """The codes' lengths feed the planner's child counts like a record-level list's would."""
    from shopsync.engine.paginated import _depth_one_list

    codes = discounts.nested_at(("discount", "codeBasicCodes"))
    assert _depth_one_list({"id": "D", "discount": {"codeBasicCodes": [{"id": "C"}] * 3}}, codes) == [{"id": "C"}] * 3
    assert _depth_one_list({"id": "D", "discount": {"__typename": "DiscountAutomaticBasic"}}, codes) is None
    assert _depth_one_list({"id": "D", "discount": None}, codes) is None
