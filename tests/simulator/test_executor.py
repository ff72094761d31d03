"""Executing documents against the simulated store: connections, lag, nodes, counts, events,
unmodelled fields, bulk rows and the materialized truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from graphql import parse

from shopsync.errors import QueryDocumentError
from shopsync.queries.header import parse_header
from shopsync.shopify.schema import parse_and_validate
from shopsync.simulator import scan
from shopsync.simulator.config import DataConfig
from shopsync.simulator.data import fmt_ts
from shopsync.simulator.executor import BulkQueryError, ExecResult, Executor
from shopsync.simulator.store import ShopStore
from tests.support import FakeClock

RESOURCES = Path(__file__).resolve().parents[2] / "shopsync" / "queries" / "resources"
START = 1_790_000_000.0
LAG = 2.0


def make(**kw: Any) -> tuple[ShopStore, Executor, FakeClock]:
    clock = FakeClock(START)
    kw.setdefault("anchor", START - 100)
    kw.setdefault("orders", 3_000)
    store = ShopStore(DataConfig(**kw), clock=clock, index_lag=LAG)
    return store, Executor(store), clock


def run(ex: Executor, src: str, variables: dict | None = None) -> ExecResult:
    return ex.execute(parse_and_validate(src, origin="test"), variables)


def ok(ex: Executor, src: str, variables: dict | None = None) -> dict:
    result = run(ex, src, variables)
    assert result.errors == [], result.errors
    assert result.data is not None
    return result.data


def numeric(gid: str) -> int:
    return int(gid.rsplit("/", 1)[1].split("?")[0])


def to_record(node: dict) -> dict:
    """A paged node in sink-record shape: connections → arrays of nodes."""
    out = {}
    for k, v in node.items():
        if isinstance(v, dict) and "edges" in v:
            v = [to_record(e["node"]) for e in v["edges"]]
        elif isinstance(v, dict) and "nodes" in v and "pageInfo" in v:
            v = [to_record(n) for n in v["nodes"]]
        out[k] = v
    return out


PAGE = """
query($after: String, $before: String, $first: Int, $last: Int, $q: String, $sort: OrderSortKeys, $rev: Boolean) {
  orders(first: $first, last: $last, after: $after, before: $before, query: $q, sortKey: $sort, reverse: $rev) {
    edges { cursor node { id updatedAt } }
    pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
  }
}"""


def drain(ex: Executor, variables: dict, *, backwards: bool = False) -> tuple[list[str], list[dict]]:
    ids: list[str] = []
    infos: list[dict] = []
    cursor = None
    while True:
        v = dict(variables, **({"last": 50, "before": cursor} if backwards else {"first": 50, "after": cursor}))
        conn = ok(ex, PAGE, v)["orders"]
        page = [e["node"]["id"] for e in conn["edges"]]
        ids.extend(reversed(page) if backwards else page)
        infos.append(conn["pageInfo"])
        more = conn["pageInfo"]["hasPreviousPage"] if backwards else conn["pageInfo"]["hasNextPage"]
        if not more:
            return ids, infos
        cursor = conn["pageInfo"]["startCursor"] if backwards else conn["pageInfo"]["endCursor"]


# -- connections --------------------------------------------------------------------------------------
@pytest.mark.parametrize("sort", ["UPDATED_AT", "ID"])
@pytest.mark.parametrize("reverse", [False, True])
def test_six_hundred_ties_page_exactly_once(sort: str, reverse: bool) -> None:
    store, ex, _ = make(orders=3_000, tie_groups=1, tie_group_size=600)
    first, size, second = store.data.tie_groups[0]
    expected = [store.gid_of("Order", i) for i in range(first, first + size)]
    q = f"updated_at:'{fmt_ts(second)}'"
    ids, infos = drain(ex, {"q": q, "sort": sort, "rev": reverse})
    assert len(ids) == 600 and len(set(ids)) == 600
    assert ids == (expected[::-1] if reverse else expected)  # ties broken by id
    assert len(infos) == 12
    assert infos[0]["hasPreviousPage"] is False and all(i["hasPreviousPage"] for i in infos[1:])
    # A window around the tie second (other records too) still holds each tie exactly once.
    window = f"updated_at:>='{fmt_ts(second - 3600)}' AND updated_at:<='{fmt_ts(second + 3600)}'"
    ids2, _ = drain(ex, {"q": window, "sort": sort, "rev": reverse})
    assert len(ids2) == len(set(ids2)) and set(expected) <= set(ids2)


def test_backwards_pagination_with_last_and_before() -> None:
    store, ex, _ = make(orders=2_000, tie_groups=1, tie_group_size=600)
    first, size, second = store.data.tie_groups[0]
    ids, infos = drain(ex, {"q": f"updated_at:'{fmt_ts(second)}'", "sort": "UPDATED_AT"}, backwards=True)
    assert ids == [store.gid_of("Order", i) for i in range(first, first + size)][::-1]
    assert infos[0]["hasNextPage"] is False and all(i["hasNextPage"] for i in infos[1:])


def test_default_order_sort_is_processed_at_and_updated_at_window_is_ordered() -> None:
    store, ex, _ = make(orders=500)
    nodes = ok(ex, "{ orders(first: 100) { nodes { id processedAt } } }")["orders"]["nodes"]
    assert [n["processedAt"] for n in nodes] == sorted(n["processedAt"] for n in nodes)
    q = "updated_at:>='2026-01-01T00:00:00Z'"
    got = ok(ex, PAGE, {"first": 250, "q": q, "sort": "UPDATED_AT"})["orders"]["edges"]
    keys = [(e["node"]["updatedAt"], numeric(e["node"]["id"])) for e in got]
    assert keys == sorted(keys) and all(k[0] >= "2026-01-01T00:00:00Z" for k in keys)


def test_page_size_and_argument_errors() -> None:
    _, ex, _ = make(orders=10)
    over = run(ex, "{ orders(first: 251) { nodes { id } } }")
    assert over.data == {"orders": None}
    assert "250" in over.errors[0]["message"] and over.errors[0]["path"] == ["orders"]
    none = run(ex, "{ products(sortKey: TITLE) { nodes { id } } }")
    assert none.errors[0]["message"] == "you must provide one of first or last"
    bad_sort = run(ex, "{ orders(first: 5, sortKey: TOTAL_PRICE) { nodes { id } } }")
    assert bad_sort.errors[0]["extensions"]["code"] == "NOT_MODELLED" and "TOTAL_PRICE" in bad_sort.errors[0]["message"]
    bad_cursor = run(ex, '{ orders(first: 5, after: "not-a-cursor") { nodes { id } } }')
    assert "Invalid cursor" in bad_cursor.errors[0]["message"]
    unquoted = run(ex, '{ orders(first: 5, query: "updated_at:>=2026-01-01") { nodes { id } } }')
    assert "must be quoted" in unquoted.errors[0]["message"] and "updated_at:>=2026-01-01" in unquoted.errors[0]["message"]
    nested = run(ex, '{ orders(first: 1) { nodes { lineItems(first: 300) { nodes { id } } } } }')
    assert nested.errors[0]["path"] == ["orders", "nodes", 0, "lineItems"]


def test_typename_only_when_requested_and_aliases_and_fragments() -> None:
    _, ex, _ = make(orders=20)
    plain = ok(ex, "{ orders(first: 2) { nodes { id totalPriceSet { shopMoney { amount } } } } }")
    node = plain["orders"]["nodes"][0]
    assert set(node) == {"id", "totalPriceSet"} and set(node["totalPriceSet"]["shopMoney"]) == {"amount"}
    src = """
    fragment F on Order { n: name ... on Order { __typename } }
    { o: orders(first: 1) { __typename nodes { ...F id money: totalPriceSet { __typename s: shopMoney { a: amount } } } } }
    """
    got = ok(ex, src)["o"]
    assert got["__typename"] == "OrderConnection"
    n = got["nodes"][0]
    assert n["__typename"] == "Order" and n["n"].startswith("#") and n["money"]["__typename"] == "MoneyBag"
    assert list(n["money"]["s"]) == ["a"]
    skipped = ok(ex, "query($s: Boolean!) { orders(first: 1) { nodes { id name @skip(if: $s) } } }", {"s": True})
    assert set(skipped["orders"]["nodes"][0]) == {"id"}


# -- index lag ------------------------------------------------------------------------------------------
def test_update_visible_by_id_at_once_but_in_windows_after_the_lag() -> None:
    store, ex, clock = make(orders=1_000)
    gid = store.gid_of("Order", 123)
    old = store.get(gid)["updatedAt"]
    now_s = fmt_ts(clock())
    new_window = {"first": 250, "q": f"updated_at:>='{now_s}'", "sort": "UPDATED_AT"}
    old_window = {"first": 250, "q": f"updated_at:>='{old}' AND updated_at:<='{old}'", "sort": "UPDATED_AT"}
    assert ok(ex, PAGE, new_window)["orders"]["edges"] == []

    store.update(gid)
    node = ok(ex, "query($id: ID!) { node(id: $id) { ... on Order { updatedAt } } }", {"id": gid})["node"]
    assert node["updatedAt"] == now_s  # by id: current at once
    assert ok(ex, PAGE, new_window)["orders"]["edges"] == []  # the index has not seen it yet
    stale = ok(ex, PAGE, old_window)["orders"]["edges"]
    hit = [e["node"] for e in stale if e["node"]["id"] == gid]
    assert hit == [{"id": gid, "updatedAt": now_s}]  # found under the old value, shown with the new one
    count = ok(ex, f'{{ ordersCount(query: "updated_at:>=\'{now_s}\'") {{ count }} }}')["ordersCount"]["count"]
    assert count == 0

    clock.advance(LAG - 0.5)
    assert ok(ex, PAGE, new_window)["orders"]["edges"] == []
    clock.advance(0.5)
    assert [e["node"]["id"] for e in ok(ex, PAGE, new_window)["orders"]["edges"]] == [gid]
    assert gid not in [e["node"]["id"] for e in ok(ex, PAGE, old_window)["orders"]["edges"]]


def test_created_order_is_live_at_once_and_searchable_after_the_lag() -> None:
    store, ex, clock = make(orders=200)
    rec = store.create_order(line_items=3)
    gid = rec["id"]
    newest = ok(ex, "{ orders(first: 1, sortKey: ID, reverse: true) { nodes { id } } }")
    assert newest["orders"]["nodes"] == [{"id": gid}]  # no query, ID sort: the live view
    by_query = {"first": 10, "q": f"id:>={numeric(gid)}", "sort": "ID"}
    assert ok(ex, PAGE, by_query)["orders"]["edges"] == []
    clock.advance(LAG)
    assert [e["node"]["id"] for e in ok(ex, PAGE, by_query)["orders"]["edges"]] == [gid]
    assert len(store.get(gid)["lineItems"]) == 3


# -- nodes ------------------------------------------------------------------------------------------------
DRAIN = """
query($id: ID!, $after: String) {
  node(id: $id) { ... on Order { id lineItems(first: 250, after: $after) {
    edges { cursor node { id quantity variant { id } } } pageInfo { hasNextPage endCursor } } } }
}"""


def test_drain_a_400_line_item_order_through_node() -> None:
    store, ex, _ = make(orders=500, big_orders=1, big_order_line_items=400)
    (idx,) = store.data.big_orders
    gid = store.gid_of("Order", idx)
    got: list[str] = []
    more: list[bool] = []
    after = None
    while True:
        conn = ok(ex, DRAIN, {"id": gid, "after": after})["node"]["lineItems"]
        got.extend(e["node"]["id"] for e in conn["edges"])
        more.append(conn["pageInfo"]["hasNextPage"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert more == [True, False]
    assert got == [li["id"] for li in store.get(gid)["lineItems"]] and len(set(got)) == 400


def test_nodes_by_ids_mixed_types_and_missing() -> None:
    store, ex, _ = make(orders=50)
    product = store.get(store.gid_of("Product", 2))
    ids = [
        store.gid_of("Order", 3),
        product["id"],
        store.gid_of("Customer", 4),
        "gid://shopify/Order/1",
        product["variants"][0]["id"],
        store.gid_of("InventoryLevel", 5),
    ]
    src = """query($ids: [ID!]!) { nodes(ids: $ids) { __typename id
      ... on Product { title } ... on Customer { displayName } ... on ProductVariant { sku product { id } }
      ... on InventoryLevel { quantities(names: ["available"]) { name quantity } } } }"""
    nodes = ok(ex, src, {"ids": ids})["nodes"]
    assert [n and n["__typename"] for n in nodes] == ["Order", "Product", "Customer", None, "ProductVariant", "InventoryLevel"]
    assert nodes[1]["title"] == product["title"] and nodes[4]["product"] == {"id": product["id"]}
    assert nodes[5]["quantities"][0]["name"] == "available"
    too_many = run(ex, src, {"ids": ids * 42})
    assert too_many.data == {"nodes": None} and "250" in too_many.errors[0]["message"]


def test_locations_flags_and_nested_inventory_levels() -> None:
    store, ex, clock = make(orders=20, locations=4, products=10)
    default = ok(ex, "{ locations(first: 10) { nodes { name isActive } } }")["locations"]["nodes"]
    everything = ok(ex, "{ locations(first: 10, includeInactive: true, includeLegacy: true) { nodes { id name } } }")
    assert len(default) == 2 and all(n["isActive"] for n in default)
    names = [n["name"] for n in everything["locations"]["nodes"]]
    assert len(names) == 4 and names == sorted(names)  # default sort: NAME
    loc = everything["locations"]["nodes"][0]["id"]
    src = """query($id: ID!, $q: String, $after: String) { location(id: $id) {
      inventoryLevels(first: 7, after: $after, query: $q) { nodes { id updatedAt } pageInfo { hasNextPage endCursor } } } }"""
    all_levels: list[str] = []
    after = None
    while True:
        conn = ok(ex, src, {"id": loc, "after": after})["location"]["inventoryLevels"]
        all_levels.extend(n["id"] for n in conn["nodes"])
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    assert len(all_levels) == store.data.count("InventoryItem") == len(set(all_levels))
    level = all_levels[3]
    now_s = fmt_ts(clock())
    store.update(level)
    window = {"id": loc, "q": f"updated_at:>='{now_s}'"}
    assert ok(ex, src, window)["location"]["inventoryLevels"]["nodes"] == []
    clock.advance(LAG)
    assert ok(ex, src, window)["location"]["inventoryLevels"]["nodes"] == [{"id": level, "updatedAt": now_s}]


# -- counts and events --------------------------------------------------------------------------------
def test_counts_with_limit() -> None:
    store, ex, _ = make(orders=10_050, customers=40)
    got = ok(ex, """{ a: ordersCount { count precision } b: ordersCount(limit: null) { count precision }
        c: ordersCount(limit: 20000) { count precision } d: ordersCount(limit: 7) { count precision }
        p: productsCount { count precision } k: customersCount { count precision } }""")
    assert got["a"] == {"count": 10_000, "precision": "AT_LEAST"}
    assert got["b"] == got["c"] == {"count": 10_050, "precision": "EXACT"}
    assert got["d"] == {"count": 7, "precision": "AT_LEAST"}
    assert got["p"] == {"count": 200, "precision": "EXACT"} and got["k"]["count"] == 40
    lo = fmt_ts(store.data.anchor - 30 * 86_400)
    q = f"updated_at:>='{lo}'"
    counted = ok(ex, "query($q: String) { ordersCount(query: $q, limit: null) { count } }", {"q": q})
    ids, _ = drain(ex, {"q": q, "sort": "UPDATED_AT"})
    assert counted["ordersCount"]["count"] == len(ids) > 0


def test_deletions_are_events_and_leave_listings() -> None:
    store, ex, clock = make(orders=300)
    order_gid = store.gid_of("Order", 10)
    product_gid = store.gid_of("Product", 1)
    before = ok(ex, "{ ordersCount { count } }")["ordersCount"]["count"]
    old_updated = store.get(order_gid)["updatedAt"]
    store.delete(order_gid)
    store.delete(product_gid)
    node = ok(ex, "query($id: ID!) { node(id: $id) { id } }", {"id": order_gid})
    assert node["node"] is None
    assert ok(ex, "{ ordersCount { count } }")["ordersCount"]["count"] == before - 1
    window = {"first": 250, "q": f"updated_at:'{old_updated}'", "sort": "UPDATED_AT"}
    assert order_gid not in [e["node"]["id"] for e in ok(ex, PAGE, window)["orders"]["edges"]]
    events_src = """query($q: String) { events(first: 10, query: $q) { nodes { __typename id action createdAt
        ... on BasicEvent { subjectType subjectId } } } }"""
    live = ok(ex, events_src)["events"]["nodes"]
    assert [(e["subjectType"], e["subjectId"]) for e in live] == [("ORDER", order_gid), ("PRODUCT", product_gid)]
    assert all(e["__typename"] == "BasicEvent" and e["action"] == "destroy" for e in live)
    assert live[0]["createdAt"] == fmt_ts(clock())
    orders_only = {"q": "action:destroy AND subject_type:ORDER"}
    assert ok(ex, events_src, orders_only)["events"]["nodes"] == []  # search index lag
    clock.advance(LAG)
    found = ok(ex, events_src, orders_only)["events"]["nodes"]
    assert [e["subjectId"] for e in found] == [order_gid]
    since = {"q": f"created_at:>='{fmt_ts(clock() - 60)}' AND subject_type:PRODUCT"}
    assert [e["subjectId"] for e in ok(ex, events_src, since)["events"]["nodes"]] == [product_gid]


# -- unmodelled fields and registration --------------------------------------------------------------
def test_unmodelled_field_is_an_error_naming_it() -> None:
    _, ex, _ = make(orders=5)
    result = run(ex, "{ orders(first: 1) { edges { node { id agreements(first: 1) { nodes { id } } } } } }")
    assert result.data is None
    (err,) = result.errors
    assert err["message"] == "Field 'Order.agreements' is not modelled by the shopsync simulator"
    assert err["extensions"]["code"] == "NOT_MODELLED"
    assert err["path"] == ["orders", "edges", "node", "agreements"] and err["locations"]
    root = run(ex, "{ pages(first: 1) { nodes { id } } }")
    assert root.errors[0]["message"] == "Field 'QueryRoot.pages' is not modelled by the shopsync simulator"


def test_misspelled_field_is_named_by_validation_and_by_the_executor() -> None:
    _, ex, _ = make(orders=5)
    src = "{ orders(first: 1) { nodes { id nmae } } }"
    with pytest.raises(QueryDocumentError, match="nmae"):
        parse_and_validate(src, origin="test")
    result = ex.execute(parse(src))  # an unvalidated document still gets a clear error
    assert result.data is None and "nmae" in result.errors[0]["message"]


def test_registered_resolvers_are_projected_and_missing_keys_named() -> None:
    _, ex, _ = make(orders=5)
    op = {"__typename": "BulkOperation", "id": "gid://shopify/BulkOperation/7", "status": "RUNNING", "objectCount": "12"}
    ex.register_node_resolver("BulkOperation", lambda args, ctx: op if args["id"] == op["id"] else None)
    ex.register_root_field("bulkOperation", lambda args, ctx: op if args["id"] == op["id"] else None)
    ex.register_mutation(
        "bulkOperationRunQuery",
        lambda args, ctx: {"bulkOperation": op, "userErrors": [{"field": ["query"], "message": args["query"], "code": None}]},
    )
    got = ok(ex, """{ node(id: "gid://shopify/BulkOperation/7") { __typename ... on BulkOperation { id status } }
        bulkOperation(id: "gid://shopify/BulkOperation/7") { status objectCount } }""")
    assert got == {
        "node": {"__typename": "BulkOperation", "id": op["id"], "status": "RUNNING"},
        "bulkOperation": {"status": "RUNNING", "objectCount": "12"},
    }
    mutated = ok(ex, 'mutation { bulkOperationRunQuery(query: "q") { bulkOperation { id } userErrors { message } } }')
    assert mutated["bulkOperationRunQuery"] == {"bulkOperation": {"id": op["id"]}, "userErrors": [{"message": "q"}]}
    missing = run(ex, '{ bulkOperation(id: "gid://shopify/BulkOperation/7") { status url } }')
    assert missing.data == {"bulkOperation": {"status": "RUNNING", "url": None}}
    assert missing.errors[0]["message"] == "Field 'BulkOperation.url' is not modelled by the shopsync simulator"
    assert missing.errors[0]["path"] == ["bulkOperation", "url"]


# -- bulk rows ----------------------------------------------------------------------------------------------
BULK = """{ orders(first: 5, query: "updated_at:>='2000-01-01T00:00:00Z'", sortKey: UPDATED_AT) { edges { node {
  id name totalPriceSet { shopMoney { amount } } customer { id }
  lineItems(first: 3) { edges { node { id quantity variant { id } } } } } } } }"""


def test_bulk_rows_ungrouped_children_after_parents_not_adjacent() -> None:
    store, ex, _ = make(orders=300, big_orders=2, big_order_line_items=120)
    rows = list(ex.bulk_rows(parse_and_validate(BULK, origin="t"), group_objects=False))
    roots = [r for r in rows if "__parentId" not in r]
    children = [r for r in rows if "__parentId" in r]
    assert len(roots) == 300  # `first` is ignored
    assert all("lineItems" not in r and r["totalPriceSet"]["shopMoney"]["amount"] for r in roots)
    assert len(children) == sum(len(store.get(r["id"])["lineItems"]) for r in roots)
    seen: set[str] = set()
    for r in rows:
        if "__parentId" in r:
            assert r["__parentId"] in seen  # a child only after its parent
            assert set(r) == {"id", "quantity", "variant", "__parentId"}
        else:
            seen.add(r["id"])
    adjacent = sum(1 for a, b in zip(rows, rows[1:], strict=False) if b.get("__parentId") == a["id"])
    assert adjacent < len(roots) // 2  # most parents are not followed by their first child
    by_parent: dict[str, list[str]] = {}
    for c in children:
        by_parent.setdefault(c["__parentId"], []).append(c["id"])
    assert all(ids == [li["id"] for li in store.get(p)["lineItems"]] for p, ids in by_parent.items())
    again = list(ex.bulk_rows(parse_and_validate(BULK, origin="t"), group_objects=False))
    assert again == rows  # deterministic given the seed


def test_bulk_rows_grouped_children_follow_their_parent() -> None:
    store, ex, _ = make(orders=100, big_orders=1, big_order_line_items=50)
    rows = list(ex.bulk_rows(parse_and_validate(BULK, origin="t"), group_objects=True))
    current = None
    for r in rows:
        if "__parentId" in r:
            assert r["__parentId"] == current
        else:
            current = r["id"]
    assert sum("__parentId" not in r for r in rows) == 100


def test_bulk_rows_two_levels_point_to_the_enclosing_row() -> None:
    store, ex, _ = make(orders=10, products=12, locations=3)
    src = """{ products { edges { node { id variants { edges { node { id inventoryItem { id
      inventoryLevels { edges { node { id location { id } } } } } } } } } } } }"""
    rows = list(ex.bulk_rows(parse_and_validate(src, origin="t"), group_objects=False))
    seen: dict[str, dict] = {}
    for r in rows:
        parent = r.get("__parentId")
        if parent is not None:
            assert parent in seen  # an earlier row, never an inline object's id
            kind = r["id"].split("/")[3]
            assert seen[parent]["id"].split("/")[3] == {"ProductVariant": "Product", "InventoryLevel": "ProductVariant"}[kind]
        seen[r["id"]] = r
    levels = [r for r in rows if "/InventoryLevel/" in r["id"]]
    assert len(levels) == store.data.count("InventoryItem") * 3
    assert all("inventoryLevels" not in r["inventoryItem"] for r in rows if "/ProductVariant/" in r["id"])


def test_truth_of_location_rooted_resources_honours_root_args() -> None:
    store, ex, _ = make(orders=10, products=8, locations=4)
    levels = list(ex.materialize_resource(RESOURCES / "inventory_levels.graphql"))
    assert len(levels) == store.data.count("InventoryItem") * 4  # includeInactive and includeLegacy
    assert {len(r["quantities"]) for r in levels} == {5}
    locations = list(ex.materialize_resource(RESOURCES / "locations.graphql"))
    assert len(locations) == 4 and not all(r["isActive"] for r in locations)
    narrow = list(ex.materialize("Location", "fragment L on Location { id }", where=None))
    assert len(narrow) == 4


def test_bulk_rows_refuses_what_it_cannot_run() -> None:
    _, ex, _ = make(orders=5)
    with pytest.raises(BulkQueryError, match="root connection"):
        ex.bulk_rows(parse_and_validate("{ shop { id } }", origin="t"), group_objects=False)
    with pytest.raises(BulkQueryError, match="Order.agreements"):
        ex.bulk_rows(parse_and_validate("{ orders { edges { node { agreements { edges { node { id } } } } } } }", origin="t"), group_objects=False)
    with pytest.raises(BulkQueryError, match="quoted"):
        ex.bulk_rows(parse_and_validate('{ orders(query: "updated_at:>2026-01-01") { edges { node { id } } } }', origin="t"), group_objects=False)


# -- truth ----------------------------------------------------------------------------------------------------
def test_materialize_equals_paging_and_draining() -> None:
    store, ex, _ = make(orders=400, big_orders=2, big_order_line_items=60)
    store.delete(store.gid_of("Order", 5))
    store.update(store.gid_of("Order", 6))
    text = (RESOURCES / "orders.graphql").read_text()
    page = text + """
    query($after: String) { orders(first: 50, after: $after, sortKey: ID) {
      edges { node { ...OrderRecord lineItems(first: 25) { pageInfo { hasNextPage endCursor } } } }
      pageInfo { hasNextPage endCursor } } }"""
    follow = text + """
    query($id: ID!, $after: String) { node(id: $id) { ... on Order { lineItems(first: 250, after: $after) {
      edges { node { ...LineItemFields } } pageInfo { hasNextPage endCursor } } } } }
    fragment LineItemFields on LineItem { id name title sku vendor quantity currentQuantity taxable requiresShipping
      variantTitle variant { id } product { id } originalUnitPriceSet { shopMoney { amount currencyCode } }
      discountedUnitPriceSet { shopMoney { amount currencyCode } }
      taxLines { title rate ratePercentage source priceSet { shopMoney { amount currencyCode } } }
      discountAllocations { allocatedAmountSet { shopMoney { amount currencyCode } }
        discountApplication { index allocationMethod targetType } } }"""
    follow_doc = parse_and_validate(follow.replace(text, ""), origin="follow")
    paged: dict[str, dict] = {}
    after = None
    while True:
        conn = ok(ex, page, {"after": after})["orders"]
        for edge in conn["edges"]:
            node = edge["node"]
            info = node["lineItems"].pop("pageInfo")
            rec = to_record(node)
            cursor = info["endCursor"]
            while info["hasNextPage"]:
                more = ex.execute(follow_doc, {"id": node["id"], "after": cursor}).data["node"]["lineItems"]
                rec["lineItems"].extend(to_record(e["node"]) for e in more["edges"])
                info = more["pageInfo"]
                cursor = info["endCursor"]
            paged[rec["id"]] = rec
        if not conn["pageInfo"]["hasNextPage"]:
            break
        after = conn["pageInfo"]["endCursor"]
    truth = {r["id"]: r for r in ex.materialize_resource(RESOURCES / "orders.graphql")}
    assert len(truth) == 399 and store.gid_of("Order", 5) not in truth
    assert max(len(r["lineItems"]) for r in truth.values()) == 60
    assert paged == truth


@pytest.mark.parametrize("path", sorted(RESOURCES.glob("*.graphql")), ids=lambda p: p.stem)
def test_every_resource_file_is_modelled(path: Path) -> None:
    store, ex, _ = make(orders=60)
    text = path.read_text()
    header = parse_header(text, str(path)).values
    frag = parse(text).definitions[0]
    name = frag.name.value  # type: ignore[attr-defined]
    root = header["root"]
    args = header.get("root_args", "")
    sort = f", sortKey: {header['sort']}" if header.get("sort") else ""
    object_root = "." in root and not str(ex.schema.query_type.fields[root.split(".")[0]].type).endswith("Connection!")
    singular = "." not in root and not str(ex.schema.query_type.fields[root].type).endswith("Connection!")
    if singular:  # a single object (shop): the record itself, no connection
        body = f"{root} {{ ...{name} }}"
    elif object_root:  # object.connection: the connection of a singular object (shopifyPaymentsAccount)
        parent, child = root.split(".")
        body = f"{parent} {{ {child}(first: 20{sort}) {{ nodes {{ ...{name} }} }} }}"
    elif "." in root:
        parent, child = root.split(".")
        body = f"{parent}(first: 5, {args}) {{ nodes {{ id {child}(first: 20) {{ nodes {{ ...{name} }} }} }} }}"
    else:
        body = f"{root}(first: 20{', ' + args if args else ''}{sort}) {{ nodes {{ ...{name} }} }}"
    data = ok(ex, text + "\nquery { " + body + " }")
    if singular:
        assert data[root]["id"]
    elif object_root:
        assert data[parent][child]["nodes"]
    else:
        assert data[root.split(".")[0]]["nodes"]
    truth = list(ex.materialize_resource(path))
    assert truth and all("id" in r for r in truth)
    assert not any("edges" in str(r.keys()) or "__parentId" in r for r in truth)


def test_a_window_page_on_a_large_store_does_not_scan(monkeypatch: pytest.MonkeyPatch) -> None:
    store, ex, _ = make(orders=200_000)
    text = (RESOURCES / "orders.graphql").read_text()
    src = text + """query($q: String) { orders(first: 250, query: $q, sortKey: UPDATED_AT) {
      edges { node { ...OrderRecord } } pageInfo { hasNextPage } } }"""
    doc = parse_and_validate(src, origin="t")
    q = f"updated_at:>='{fmt_ts(store.data.anchor - 86_400)}' AND updated_at:<='{fmt_ts(store.data.anchor)}'"
    # Count the records the scan looks at: a full scan would look at all 200,000.
    looked = 0
    hydrate = scan._Filter.hydrate

    def counting_hydrate(self: scan._Filter, idx: int) -> dict | None:
        nonlocal looked
        looked += 1
        return hydrate(self, idx)

    monkeypatch.setattr(scan._Filter, "hydrate", counting_hydrate)
    result = ex.execute(doc, {"q": q})
    assert result.errors == [] and len(result.data["orders"]["edges"]) == 250
    assert 250 <= looked < 5_000, looked
