"""The pinned schema file, and every document shopsync ships validating against it."""

from __future__ import annotations

import hashlib
import re
from importlib import resources as pkg

import pytest
from graphql import FieldNode, get_named_type, parse
from graphql.language import Visitor, visit
from graphql.utilities import TypeInfo, TypeInfoVisitor

from shopsync import API_VERSION
from shopsync.queries import builder as b
from shopsync.queries import load_resources
from shopsync.shopify.cost import MAX_QUERY_COST, is_connection_type
from shopsync.shopify.schema import SCHEMA_SHA256, load_schema, parse_and_validate, schema_path

RESOURCES = load_resources()
#: The resources read through a connection (all but the single objects, root: shop).
PAGED = sorted(n for n, r in RESOURCES.items() if not r.singular)


def test_pinned_schema_checksum_matches_source_md():
    source_md = (pkg.files("shopsync.shopify.schema") / "SOURCE.md").read_text()
    (recorded,) = re.findall(r"sha256: `([0-9a-f]{64})`", source_md)
    actual = hashlib.sha256(schema_path(API_VERSION).read_bytes()).hexdigest()
    assert actual == recorded == SCHEMA_SHA256[API_VERSION]
    assert f"admin_{API_VERSION}.json.gz" in source_md


def shipped_documents():
    """(label, document) for every document the builders make for every packaged resource."""
    docs = [
        ("bulk mutation", b.bulk_mutation()),
        ("bulk status", b.bulk_status_query()),
        ("bulk cancel", b.bulk_cancel_mutation()),
        ("recent bulk operations", b.recent_bulk_operations_query()),
        ("deletions", b.deletions_query()),
    ]
    for name, r in RESOURCES.items():
        if r.singular:  # one object (root: shop): its one query is all it sends
            docs.append((f"{name} object", b.object_query(r)))
            continue
        size = b.plan_page_size(r)
        docs.append((f"{name} page", b.page_query(r)))
        docs.append((f"{name} planned page", b.page_query(r, size.first, size.nested_first)))
        if r.has_nested:
            ones = {nc.path: 1 for nc in r.all_nested()}
            docs.append((f"{name} page nested=1", b.page_query(r, 1, ones)))
        if r.parent_field:
            docs.append((f"{name} parents", b.parent_ids_query(r)))
        for nc in r.all_nested():
            docs.append((f"{name} drain {'.'.join(nc.path)}", b.drain_query(r, nc, b.drain_first(r, nc))))
        if not r.exportable:  # bulk: no — read page by page only
            continue
        docs.append((f"{name} bulk", b.bulk_query(r, None)))
        if r.incremental:  # only updated_at windows are exported (a whole read pages its records)
            docs.append((f"{name} bulk window", b.bulk_query(r, "updated_at:>='2026-01-01T00:00:00Z' AND updated_at:<='2026-02-01T00:00:00Z'")))
        if r.count_field:
            docs.append((f"{name} count", b.count_query(r)))
    return docs


DOCS = shipped_documents()


@pytest.mark.parametrize(("label", "document"), DOCS, ids=[d[0] for d in DOCS])
def test_every_shipped_document_validates(label, document):
    parse_and_validate(document, origin=label)


def connection_depths(document: str) -> list[int]:
    """For each connection field in ``document``, how many connections enclose it."""
    schema = load_schema()
    type_info = TypeInfo(schema)
    depths: list[int] = []
    stack: list[bool] = []

    class V(Visitor):
        def enter_field(self, node: FieldNode, *_):
            field_def = type_info.get_field_def()
            is_conn = field_def is not None and is_connection_type(get_named_type(field_def.type))
            if is_conn:
                depths.append(sum(stack))
            stack.append(is_conn)

        def leave_field(self, *_):
            stack.pop()

    visit(parse(document), TypeInfoVisitor(type_info, V()))
    return depths


@pytest.mark.parametrize("name", sorted(n for n, r in RESOURCES.items() if r.exportable and not r.singular))
def test_bulk_queries_keep_shopifys_bulk_rules(name):
    r = RESOURCES[name]
    doc = b.bulk_query(r, "updated_at:>='2026-01-01T00:00:00Z'" if r.incremental else None)
    depths = connection_depths(doc)
    assert 1 <= len(depths) <= 5  # at least one, at most five connections
    assert max(depths) <= 2  # at most two levels of nesting below the top connection
    top = parse(doc).definitions[0].selection_set.selections
    assert [f.name.value for f in top] not in (["node"], ["nodes"])  # no top-level node(s)


@pytest.mark.parametrize("name", PAGED)
def test_planned_pages_and_drains_fit_the_cost_cap(name):
    r = RESOURCES[name]
    size = b.plan_page_size(r)
    doc = b.page_query(r, size.first, size.nested_first)
    assert b.requested_cost_of(doc, {"first": size.first}) <= MAX_QUERY_COST
    for nc in r.all_nested():
        first = b.drain_first(r, nc)
        drain = b.drain_query(r, nc, first)
        assert b.requested_cost_of(drain, {"first": first}) <= MAX_QUERY_COST


PAGE_ONLY = sorted(n for n, r in RESOURCES.items() if not r.exportable)


@pytest.mark.parametrize("name", PAGE_ONLY)
def test_page_only_resources_would_break_the_bulk_rules(name):
    """A ``bulk: no`` resource has no bulk query, and needs that header: the bulk query its
    fragment would give breaks Shopify's rules (a connection whose nodes do not implement Node),
    as the simulator's copy of those rules says."""
    from shopsync.queries.builder.bulk import _bulk_query
    from shopsync.simulator.bulk_query import check_bulk_query

    r = RESOURCES[name]
    with pytest.raises(ValueError, match="page by page only"):
        b.bulk_query(r, None)
    _doc, problems = check_bulk_query(load_schema(), _bulk_query(r, None))
    # Returns' line items are a third level of connections; fulfillments' line items hang from a
    # list's elements, which shopsync's bulk reassembly does not join (Shopify's rules are silent
    # on it: no refusal to expect); the rest do not implement Node.
    why = {"order_return_lines": "nesting depth", "order_fulfillment_lines": None}.get(name, "implementing Node")
    assert why is None or any(why in p for p in problems), problems


def test_the_page_only_resources():
    assert PAGE_ONLY == [
        "discount_nodes", "order_fulfillment_lines", "order_refunds", "order_return_lines", "order_shipping_discounts",
    ]  # fmt: skip
