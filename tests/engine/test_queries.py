"""Resource files (header, fragment) and the documents built from them."""

from __future__ import annotations

from pathlib import Path

import pytest
from graphql import FieldNode, parse, visit
from graphql.language import Visitor

from shopsync.errors import ConfigError, QueryDocumentError, QueryTooCostlyError
from shopsync.queries import builder as b
from shopsync.queries import load_resources, minimal_scopes, packaged_dir
from shopsync.queries.header import HEADER_KEYS, ResourceHeader, parse_header
from shopsync.shopify.schema import parse_and_validate

PACKAGED = {
    "collections", "customers", "inventory_items", "inventory_levels", "locations", "orders", "products",
    "gift_cards", "shopify_payments_balance_transactions", "shopify_payments_disputes", "shopify_payments_payouts",
    "product_metafields", "shop_metafields", "order_metafields", "customer_metafields", "collection_metafields",
    "collection_memberships", "draft_orders", "abandoned_checkouts", "fulfillment_orders", "markets",
    "product_media", "order_fulfillments", "order_returns", "order_risks",
    "order_transactions", "order_refunds", "order_shipping_discounts", "order_fulfillment_lines", "order_return_lines",
    "product_variants", "variant_metafields", "shop", "discount_nodes",
}  # fmt: skip


@pytest.fixture(scope="module")
def resources():
    return load_resources()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / f"{name}.graphql"
    path.write_text(text)
    return path


def load_error(tmp_path: Path, name: str, text: str) -> str:
    write(tmp_path, name, text)
    with pytest.raises(QueryDocumentError) as info:
        load_resources(tmp_path)
    return str(info.value)


def field_names(document: str) -> list[str]:
    names: list[str] = []

    class V(Visitor):
        def enter_field(self, node: FieldNode, *_):
            names.append(node.name.value)

    visit(parse(document), V())
    return names


DEPTH2 = """# shopsync:resource
# root: products
# sort: UPDATED_AT
# filter: updated_at
fragment P on Product {
  id
  updatedAt
  variants(first: 5) {
    nodes {
      id
      metafields(first: 3) { nodes { id key value } }
    }
  }
}
"""


# -- the packaged resources -----------------------------------------------------------------


def test_packaged_resources_load_with_their_headers(resources):
    assert set(resources) == PACKAGED
    orders = resources["orders"]
    assert (orders.root_field, orders.sort_key, orders.incremental) == ("orders", "UPDATED_AT", True)
    assert (orders.count_field, orders.deletion_subject, orders.node_type) == ("ordersCount", "ORDER", "Order")
    assert orders.path.parent == packaged_dir()
    (line_items,) = orders.nested
    assert (line_items.field, line_items.path, line_items.page_size, line_items.depth) == ("lineItems", ("lineItems",), 25, 1)
    assert (line_items.parent_type, line_items.node_type, line_items.node_types) == ("Order", "LineItem", ("LineItem",))
    assert orders.has_nested and not resources["collections"].has_nested
    levels = resources["inventory_levels"]
    assert (levels.parent_field, levels.parent_node_type, levels.root_field) == ("locations", "Location", "inventoryLevels")
    assert levels.root_args == "includeInactive: true, includeLegacy: true"
    assert resources["locations"].incremental is False


def test_required_scopes_come_from_the_schema(resources):
    assert {"read_orders", "read_all_orders"} <= set(resources["orders"].required_scopes)
    assert resources["products"].required_scopes == ("read_products",)
    # Location accepts read_locations OR read_inventory; InventoryLevel needs read_inventory, so
    # read_inventory alone covers both.
    assert "read_inventory" in resources["inventory_levels"].required_scopes
    assert "read_all_orders" not in resources["customers"].required_scopes


def test_minimal_scopes_prefers_the_scope_covering_most_requirements():
    reqs = [("read_locations", "read_inventory"), ("read_inventory",), ("read_orders", "read_marketplace_orders")]
    assert minimal_scopes(reqs) == ("read_inventory", "read_orders")
    assert minimal_scopes([]) == ()


def test_loading_twice_validates_once(resources):
    again = load_resources()
    assert all(again[name] is resources[name] for name in PACKAGED)


# -- user files --------------------------------------------------------------------------------


def test_user_file_overrides_and_extends(tmp_path):
    write(tmp_path, "orders", "# shopsync:resource\n# root: orders\n# filter: updated_at\nfragment O on Order { id updatedAt name }\n")
    write(tmp_path, "products_deep", DEPTH2)
    resources = load_resources(tmp_path)
    assert resources["orders"].path == tmp_path / "orders.graphql"
    assert resources["orders"].nested == () and resources["orders"].sort_key is None
    deep = resources["products_deep"]
    (variants,) = deep.nested
    (metafields,) = variants.children
    assert metafields.path == ("variants", "metafields") and metafields.depth == 2
    assert metafields.parent_type == "ProductVariant" and metafields.node_type == "Metafield"
    assert [nc.path for nc in deep.all_nested()] == [("variants",), ("variants", "metafields")]


def test_a_bad_field_is_reported_with_the_file_line(tmp_path):
    text = (
        "# shopsync:resource\n# root: orders\n# filter: updated_at\n"
        "fragment O on Order {\n  id\n  updatedAt\n  lineItems(first: 5) {\n    nodes {\n      id\n      nme\n    }\n  }\n}\n"
    )
    message = load_error(tmp_path, "orders", text)
    assert f"{tmp_path / 'orders.graphql'}:10:" in message
    assert "nme" in message and "LineItem" in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fragment O on Order { id }\n", "must start with a '# shopsync:resource' line"),
        ("# shopsync:resource\n# root: orders\n# filter: updated_at\n# srot: UPDATED_AT\nfragment O on Order { id updatedAt }\n", ":4: unknown header key 'srot'"),
        ("# shopsync:resource\n# filter: updated_at\nfragment O on Order { id updatedAt }\n", "header key 'root' is missing"),
        ("# shopsync:resource\n# root: order\n# filter: none\nfragment O on Order { id }\n", ":2: root: 'order' is not a connection field of QueryRoot"),
        ("# shopsync:resource\n# root: orders\n# filter: sometimes\nfragment O on Order { id }\n", ":3: filter: 'sometimes' must be one of"),
        ("# shopsync:resource\n# root: orders\n# sort: NEWEST\n# filter: none\nfragment O on Order { id }\n", ":3: sort: 'NEWEST' is not a value of OrderSortKeys"),
        ("# shopsync:resource\n# root: inventoryItems\n# sort: UPDATED_AT\n# filter: none\nfragment I on InventoryItem { id }\n", "sort: inventoryItems takes no sortKey argument"),
        ("# shopsync:resource\n# root: orders\n# filter: none\n# count: orderCount\nfragment O on Order { id }\n", ":4: count: 'orderCount' is not a Count field"),
        ("# shopsync:resource\n# root: orders\n# filter: none\n# deletions: ORDERS\nfragment O on Order { id }\n", ":4: deletions: 'ORDERS' is not an EventSubjectType"),
        ("# shopsync:resource\n# root: orders\n# root_args: includeClosed: true\n# filter: none\nfragment O on Order { id }\n", ":3: root_args: orders takes no argument 'includeClosed'"),
        ("# shopsync:resource\n# root: orders\n# root_args: first: 5\n# filter: none\nfragment O on Order { id }\n", "root_args: first is set by shopsync"),
        ("# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Product { id }\n", "fragment O is on Product, but orders returns Order nodes"),
        ("# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order { name }\n", "must select id"),
        ("# shopsync:resource\n# root: orders\n# filter: updated_at\nfragment O on Order { id }\n", "must select updatedAt"),
        ("# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order { id lineItems { nodes { id } } }\n", "lineItems: a nested connection needs first: N"),
        ("# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order { id lineItems(first: 5) { nodes { name } } }\n", "lineItems: the nested nodes must select id"),
        ("# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order { id lineItems(first: 500) { nodes { id } } }\n", "first: 500 must be between 1 and 250"),
        ("# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order { id items: lineItems(first: 5) { nodes { id } } }\n", "aliases are not supported"),
        ("# shopsync:resource\n# root: customers\n# filter: none\nfragment C on Customer { id lastOrder { id lineItems(first: 2) { nodes { id } } } }\n", "cannot be paged under a plain object"),
        ("# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order { id ...X }\n", "fragment spread ...X"),
        ("# shopsync:resource\n# root: shop\n# filter: updated_at\nfragment S on Shop { id updatedAt }\n", ":3: filter: shop is a single object, read whole: use filter: none"),
        ("# shopsync:resource\n# root: shop\n# sort: ID\n# filter: none\nfragment S on Shop { id }\n", ":3: sort: shop is a single object (not a connection)"),
        ("# shopsync:resource\n# root: shop\n# filter: none\nfragment S on Shop { id metafields(first: 5) { nodes { id } } }\n", "metafields: the record of a single-object root (shop) cannot hold a connection"),
    ],
)
def test_header_and_fragment_problems_are_named(tmp_path, text, expected):
    message = load_error(tmp_path, "bad", text)
    assert str(tmp_path / "bad.graphql") in message
    assert expected in message


# -- the shared header parser (the loader's and the simulator's) -------------------------------


def test_parse_header_reads_keys_values_and_lines():
    text = "\n# shopsync:resource\n# root: locations.inventoryLevels\n#root_args:  includeInactive: true  \n# filter: none\n# sort:\n#\n# prose: not a key\nfragment L on InventoryLevel { id }\n"
    header = parse_header(text, "levels.graphql")
    assert isinstance(header, ResourceHeader) and header.origin == "levels.graphql"
    assert dict(header.values) == {"root": "locations.inventoryLevels", "root_args": "includeInactive: true", "filter": "none", "sort": ""}
    assert dict(header.lines) == {"root": 3, "root_args": 4, "filter": 5, "sort": 6}
    assert header.end_line == 7  # the bare '#' ends the header, so the prose after it is not a key
    assert header.value("root_args") == "includeInactive: true" and header.line("filter") == 5
    assert header.value("sort") is None and "sort" in header  # given empty
    assert header.value("count") is None and header.line("count") is None and "count" not in header
    with pytest.raises(TypeError):
        header.values["root"] = "orders"  # type: ignore[index]


def test_parse_header_accepts_every_packaged_file(resources):
    for resource in resources.values():
        header = parse_header(resource.fragment_source, resource.origin)
        assert dict(header.lines) == dict(resource.header_lines)
        assert set(header.values) <= set(HEADER_KEYS)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("fragment O on Order { id }\n", "shop.graphql:1: the file must start with a '# shopsync:resource' line"),
        ("\n\n# root: orders\n", "shop.graphql:3: the file must start with a '# shopsync:resource' line"),
        ("", "shop.graphql: the file must start with a '# shopsync:resource' line"),
        ("# shopsync:resource\n# root: orders\n# filter: none\n# srot: ID\n", "shop.graphql:4: unknown header key 'srot'"),
        ("# shopsync:resource\n# root: orders\n# root: products\n# filter: none\n", "shop.graphql:3: header key 'root' given twice (first on line 2)"),
        ("# shopsync:resource\n# root: orders\nfragment O on Order { id }\n", "shop.graphql: header key 'filter' is missing"),
    ],
)
def test_parse_header_errors_name_the_file_and_line(text, expected):
    with pytest.raises(QueryDocumentError) as info:
        parse_header(text, "shop.graphql")
    assert str(info.value).startswith(expected)
    assert isinstance(info.value, ConfigError)


def test_two_nested_connections_with_one_node_type_are_refused(tmp_path):
    message = load_error(
        tmp_path,
        "orders",
        "# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order {\n  id\n"
        "  lineItems(first: 5) { nodes { id } }\n  nonFulfillableLineItems(first: 5) { nodes { id } }\n}\n",
    )
    assert "both hold LineItem nodes" in message and ":7" in message
    assert isinstance(QueryDocumentError(message), ConfigError)


def test_bulk_nesting_limit_counts_the_parent_level(tmp_path):
    deep = (
        "fragment V on ProductVariant {\n  id\n"
        "  sellingPlanGroups(first: 2) { nodes { id sellingPlans(first: 2) { nodes { id } } } }\n}\n"
    )
    # Under products directly: variants' groups' plans would be 2 levels below the record: fine.
    write(tmp_path, "variant_plans", "# shopsync:resource\n# root: products.variants\n# filter: none\n" + deep.replace(
        "sellingPlans(first: 2) { nodes { id } }", ""))
    assert load_resources(tmp_path)["variant_plans"].parent_field == "products"
    # With the parent level, two nested levels make three: over Shopify's bulk limit of two.
    message = load_error(tmp_path, "variant_plans", "# shopsync:resource\n# root: products.variants\n# filter: none\n" + deep)
    assert "nest connections 3 levels deep; Shopify allows at most 2" in message


def test_bulk_connection_count_limit(tmp_path):
    fields = "\n".join(
        f"  {f}(first: 2) {{ nodes {{ id }} }}"
        for f in ("lineItems", "fulfillmentOrders", "returns", "metafields", "events")
    )
    message = load_error(tmp_path, "orders", f"# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order {{\n  id\n{fields}\n}}\n")
    assert "6 connections; Shopify allows at most 5" in message


# -- built documents ---------------------------------------------------------------------------


def test_page_query_shape(resources):
    orders = resources["orders"]
    doc = b.page_query(orders, 10, {("lineItems",): 7})
    parse_and_validate(doc, origin="test")
    assert doc.startswith("query Page($first: Int!, $after: String, $query: String)")
    assert "orders(first: $first, after: $after, query: $query, sortKey: UPDATED_AT)" in doc
    assert "lineItems(first: 7)" in doc
    assert field_names(doc).count("pageInfo") == 2  # root and the nested connection
    assert "cursor" in field_names(doc)
    assert b.page_query(orders) != doc and "lineItems(first: 25)" in b.page_query(orders)
    with pytest.raises(ValueError):
        b.page_query(orders, 251)
    with pytest.raises(ValueError):
        b.page_query(orders, 10, {("refunds",): 3})


def test_parent_child_page_and_parent_queries(resources):
    levels = resources["inventory_levels"]
    doc = b.page_query(levels, 50)
    assert doc.startswith("query Page($parentId: ID!, $first: Int!, $after: String, $query: String)")
    assert "node(id: $parentId)" in doc and "... on Location" in doc
    assert "inventoryLevels(first: $first, after: $after, query: $query)" in doc
    parents = b.parent_ids_query(levels)
    assert parents.startswith("query Parents($first: Int!, $after: String)")
    assert "includeInactive: true" in parents and "includeLegacy: true" in parents
    with pytest.raises(ValueError):
        b.parent_ids_query(resources["orders"])
    assert b.page_variables(50, after="c", search="s", parent_id="gid://shopify/Location/1") == {
        "first": 50, "after": "c", "query": "s", "parentId": "gid://shopify/Location/1"
    }


def test_drain_query_depth_1_and_2(tmp_path):
    write(tmp_path, "deep", DEPTH2)
    deep = load_resources(tmp_path)["deep"]
    variants = deep.nested[0]
    doc = b.drain_query(deep, variants, 100, {("variants", "metafields"): 4})
    assert doc.startswith("query Drain($id: ID!, $first: Int!, $after: String)")
    assert "... on Product" in doc and "variants(first: $first, after: $after)" in doc
    assert "metafields(first: 4)" in doc
    assert field_names(doc).count("pageInfo") == 2  # the drained connection and its children's
    child_doc = b.drain_query(deep, variants.children[0])
    assert "... on ProductVariant" in child_doc and "metafields(first: $first, after: $after)" in child_doc
    assert "variants" not in field_names(child_doc)


def test_bulk_query_has_no_paging(resources):
    orders = resources["orders"]
    doc = b.bulk_query(orders, "updated_at:>='2026-01-01T00:00:00Z' AND tag:\"vip\"")
    names = field_names(doc)
    assert "pageInfo" not in names and "cursor" not in names
    assert "first:" not in doc.replace("transactions(first: 10)", "").replace("refunds(first: 10)", "")
    root = parse(doc).definitions[0].selection_set.selections[0]
    args = {a.name.value: a.value for a in root.arguments}
    assert args["query"].value == "updated_at:>='2026-01-01T00:00:00Z' AND tag:\"vip\""  # escaped, round-trips
    assert args["sortKey"].value == "UPDATED_AT" and set(args) == {"query", "sortKey"}
    assert "lineItems {" in doc and "...OrderRecord" not in doc  # fragment fields inlined
    assert "query:" not in b.bulk_query(orders, None)


def test_parent_child_bulk_query(resources):
    doc = b.bulk_query(resources["inventory_levels"], "updated_at:>='2026-01-01T00:00:00Z'")
    compact = " ".join(doc.split())
    assert compact.startswith(
        "{ locations(includeInactive: true, includeLegacy: true) { edges { node { id inventoryLevels(query: "
    )


def test_a_window_s_bulk_query_is_the_document_built_and_validated_for_its_search(resources):
    """Each window's search goes into a query validated once per resource: the document is the
    one built and validated for that very search (only the printer's line breaks may differ),
    also for a search that needs escaping."""
    from graphql import print_ast

    from shopsync.queries.builder.bulk import _built_bulk_query

    def same(text: str) -> str:
        return print_ast(parse(text))

    searches = ["updated_at:>='2026-01-01T00:00:00Z' AND updated_at:<='2026-01-01T00:10:00Z'", 'tag:"a\\\\b" \u00e9']
    for resource in resources.values():
        if not resource.exportable or resource.singular or not resource.incremental:
            continue  # no search: read whole
        for search in searches:
            assert same(b.bulk_query(resource, search)) == same(_built_bulk_query(resource, search)), resource.name


def test_static_documents():
    assert "groupObjects: false" in b.bulk_mutation()
    assert b.bulk_mutation().startswith("mutation RunBulk($query: String!)")
    for name in ("objectCount", "rootObjectCount", "partialDataUrl", "errorCode", "url"):
        assert name in field_names(b.bulk_status_query())
    assert "bulkOperationCancel" in b.bulk_cancel_mutation()
    deleted = b.deletions_query()
    assert "sortKey: CREATED_AT" in deleted and "... on BasicEvent" in deleted


def test_count_query(resources):
    doc = b.count_query(resources["orders"])
    assert "ordersCount(query: $query, limit: null)" in doc
    assert b.count_query(resources["inventory_items"]) is None


def test_search_strings():
    from datetime import UTC, datetime

    a = datetime(2026, 1, 1, tzinfo=UTC)
    z = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    assert b.window_search(a, z) == "updated_at:>='2026-01-01T00:00:00Z' AND updated_at:<='2026-01-02T03:04:05Z'"
    assert b.window_search(None, z) == "updated_at:<='2026-01-02T03:04:05Z'"
    assert b.deletion_search("ORDER", a) == "action:destroy AND subject_type:ORDER AND created_at:>='2026-01-01T00:00:00Z'"
    assert b.deletion_search("PRODUCT", None, z) == "action:destroy AND subject_type:PRODUCT AND created_at:<='2026-01-02T03:04:05Z'"


# -- page sizing ---------------------------------------------------------------------------------


def cost(resource, size: b.PageSize) -> int:
    return b.requested_cost_of(b.page_query(resource, size.first, size.nested_first), {"first": size.first})


def test_plan_uses_the_fragment_default_and_fills_the_cap(resources):
    orders = resources["orders"]
    size = b.plan_page_size(orders)
    assert size.nested_first == {("lineItems",): 25}
    assert cost(orders, size) <= 1000
    assert cost(orders, b.PageSize(size.first + 1, size.nested_first)) > 1000  # as large as fits


def test_plan_follows_observed_child_counts(resources):
    orders = resources["orders"]
    size = b.plan_page_size(orders, child_counts={("lineItems",): 7.2})
    assert size.nested_first == {("lineItems",): 8}  # rounded up to a step
    assert size.first > b.plan_page_size(orders).first
    assert cost(orders, size) <= 1000 < cost(orders, b.PageSize(size.first + 1, size.nested_first))
    assert b.plan_page_size(orders, child_counts={("lineItems",): 0}).nested_first == {("lineItems",): 1}


def test_plan_respects_a_small_bucket_and_shrinks_nested(resources):
    orders = resources["orders"]
    small = b.plan_page_size(orders, bucket_size=400)
    assert cost(orders, small) <= 400
    tiny = b.plan_page_size(orders, max_cost=100)
    assert tiny.first >= 1 and tiny.nested_first[("lineItems",)] < 25
    assert cost(orders, tiny) <= 100
    with pytest.raises(QueryTooCostlyError):
        b.plan_page_size(orders, max_cost=10)
    assert b.plan_page_size(resources["collections"]).first == 250  # cheap records: Shopify's cap


def test_round_page_size():
    assert [b.round_page_size(x) for x in (0, 1, 1.01, 7, 7.5, 26, 249, 900)] == [1, 1, 2, 8, 8, 30, 250, 250]


def test_shrink_halves_first_then_nested():
    size = b.PageSize(5, {("lineItems",): 25})
    steps = []
    while True:
        smaller = b.shrink(size)
        if smaller == size:
            break
        steps.append((smaller.first, smaller.nested_first[("lineItems",)]))
        size = smaller
    assert steps == [(2, 25), (1, 25), (1, 12), (1, 6), (1, 3), (1, 1)]


def test_drain_page_size_fits(resources):
    orders = resources["orders"]
    n = b.drain_page_size(orders, orders.nested[0])
    doc = b.drain_query(orders, orders.nested[0], n)
    assert b.requested_cost_of(doc, {"first": n}) <= 1000 < b.requested_cost_of(doc, {"first": n + 1})
    # What the engine drains with: the fixed page where it fits, else the largest that does.
    assert b.drain_first(orders, orders.nested[0]) == min(b.DRAIN_PAGE, n)
    light = resources["products"]
    assert b.drain_first(light, light.nested[0]) == b.DRAIN_PAGE


def test_a_fragment_too_heavy_for_one_query_is_refused_at_load(tmp_path):
    # Nested sizes of 250 × 250 cost far over 1000 points, but they halve until one record fits,
    # so this loads; a record of 1100 objects cannot fit even alone, so that file is refused.
    heavy = (
        "# shopsync:resource\n# root: products\n# filter: none\nfragment P on Product {\n  id\n"
        "  variants(first: 250) { nodes { id sellingPlanGroups(first: 250) { nodes { id } } } }\n}\n"
    )
    write(tmp_path, "heavy", heavy)
    size = b.plan_page_size(load_resources(tmp_path)["heavy"])
    assert size.nested_first[("variants",)] < 250 and size.nested_first[("variants", "sellingPlanGroups")] < 250
    message = load_error(
        tmp_path,
        "heavier",
        "# shopsync:resource\n# root: orders\n# filter: none\nfragment O on Order {\n  id\n"
        + "".join(f"  f{i}: customer {{ id }}\n" for i in range(1100))
        + "}\n",
    )
    assert "over the limit of 1000" in message and "heavier.graphql" in message


# -- bulk: no (page-by-page-only resources) ----------------------------------------------------

NON_NODE = """# shopsync:resource
# root: orders
# filter: updated_at
{bulk}#
fragment O on Order {{
  id
  updatedAt
  shippingLines(first: 5) {{ nodes {{ title }} }}
}}
"""


def test_a_connection_of_non_node_nodes_needs_bulk_no(tmp_path):
    message = load_error(tmp_path, "ships", NON_NODE.format(bulk=""))
    assert "ships.graphql:8" in message and "ShippingLine does not implement Node" in message
    assert "'bulk: no'" in message
    write(tmp_path, "ships", NON_NODE.format(bulk="# bulk: no\n"))
    res = load_resources(tmp_path)["ships"]
    # Read page by page only: no bulk query, and no id needed where nothing is drained under it.
    assert not res.exportable and res.nested[0].path == ("shippingLines",)
    with pytest.raises(ValueError, match="page by page only"):
        b.bulk_query(res, None)


def test_bulk_takes_yes_or_no(tmp_path):
    assert "bulk: 'maybe' must be one of yes, no" in load_error(tmp_path, "ships", NON_NODE.format(bulk="# bulk: maybe\n"))


REFUNDS = """# shopsync:resource
# root: orders
# filter: updated_at
{bulk}#
fragment O on Order {{
  id
  updatedAt
  refunds {{
    {id}
    refundLineItems(first: 3) {{ nodes {{ id quantity }} }}
  }}
}}
"""


def test_a_connection_inside_a_list_of_nodes_is_drained_under_each_element(tmp_path):
    # Exported in bulk it could not be joined (bulk children join to connection nodes only).
    assert "cannot be paged under a plain object" in load_error(tmp_path, "refs", REFUNDS.format(bulk="", id="id"))
    # Each element must select its id: the drains page under it.
    assert "cannot be paged under a plain object" in load_error(
        tmp_path, "refs", REFUNDS.format(bulk="# bulk: no\n", id="note")
    )
    write(tmp_path, "refs", REFUNDS.format(bulk="# bulk: no\n", id="id"))
    res = load_resources(tmp_path)["refs"]
    (nc,) = res.nested
    assert (nc.path, nc.through, nc.parent_type, nc.depth) == (("refunds", "refundLineItems"), ("refunds",), "Refund", 1)
    page = b.page_query(res, 10, {("refunds", "refundLineItems"): 7})
    assert parse_and_validate(page, origin="page")
    assert "refundLineItems(first: 7)" in " ".join(page.split()) and "pageInfo" in page
    drain = " ".join(b.drain_query(res, nc, b.DRAIN_PAGE).split())
    assert "node(id: $id) { ... on Refund { refundLineItems(first: $first, after: $after)" in drain


def test_the_order_resources_page_only_and_their_scopes(resources):
    for name in ("order_refunds", "order_shipping_discounts"):
        assert not resources[name].exportable, name
    for name in ("orders", "order_transactions", "order_fulfillments"):
        assert resources[name].exportable, name
    for name in ("order_transactions", "order_refunds", "order_shipping_discounts"):
        assert resources[name].required_scopes == ("read_all_orders", "read_orders"), name


def test_the_existence_check_asks_the_node_interface_for_ids_whatever_their_type():
    """A discount listed as a DiscountNode has the id of a DiscountCodeNode or a
    DiscountAutomaticNode: ``... on DiscountNode`` would answer ``{}`` for one that exists."""
    from shopsync.queries.builder.reconcile import exists_query

    document = parse_and_validate(exists_query(), origin="test")
    nodes = document.definitions[0].selection_set.selections[0]
    assert nodes.name.value == "nodes"
    assert [s.name.value for s in nodes.selection_set.selections] == ["id"]  # no inline fragment
