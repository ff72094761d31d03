"""Reconciliation documents: every id with its ``updatedAt``, and records re-read by id.

:func:`ids_resource` is the resource with an ids-only fragment (``id updatedAt``, no nested
connection, no sort key: listings by id never move a record while the walk goes on, and do not
read Shopify's lagging search index), so the ordinary builders (:func:`~.paginated.page_query`,
:func:`~.paginated.parent_ids_query`, :func:`~.bulk.bulk_query`) make its listings. :func:`nodes_query`
re-reads records by id with the resource's own fragment, shaped as a page's nodes (nested
connections carry ``pageInfo`` so long lists are drained like a page's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache

from graphql import FragmentDefinitionNode, parse

from shopsync.queries.builder.assembly import (
    finish_document,
    nested_by_path,
    nested_sizes_key,
    parse_skeleton,
    rewrite_selections,
)
from shopsync.queries.model import Resource
from shopsync.shopify.schema import load_schema

#: Ids asked for in one ``nodes(ids:)`` request at most (Shopify caps input arrays at 250).
MAX_NODE_IDS = 250


@lru_cache(maxsize=64)
def ids_resource(resource: Resource) -> Resource:
    """``resource`` reduced to ``id`` and ``updatedAt`` (same name, root, filter and header; ``id``
    alone for a type without ``updatedAt``)."""
    node_type = load_schema().get_type(resource.node_type)
    # Some records have no updatedAt (balance transactions, payouts): their listing is ids only.
    stamp = "\n  updatedAt" if "updatedAt" in getattr(node_type, "fields", {}) else ""
    text = f"fragment {resource.fragment_name} on {resource.node_type} {{\n  id{stamp}\n}}\n"
    fragment = parse(text).definitions[0]
    assert isinstance(fragment, FragmentDefinitionNode)
    # fragment_source takes part in equality (the builders' caches), fragment_ast does not.
    return replace(resource, fragment_source=text, fragment_ast=fragment, nested=(), sort_key=None, exportable=True)


def nodes_query(resource: Resource, nested_first: Mapping[tuple[str, ...], int] | None = None) -> str:
    """``query Nodes($ids: [ID!]!)``: the records ``$ids`` with the resource's full fragment.

    A record that no longer exists comes back as ``null``. The cost is that of a page of
    ``len(ids)`` records, so callers size the batches with the page planner.
    """
    return _nodes_query(resource, nested_sizes_key(resource, nested_first))


@lru_cache(maxsize=128)
def _nodes_query(resource: Resource, sizes_key: tuple) -> str:
    frag = resource.fragment_ast
    assert frag is not None
    frag = replace(
        frag, selection_set=rewrite_selections(frag.selection_set, (), "page", dict(sizes_key), nested_by_path(resource))
    )
    text = (
        "query Nodes($ids: [ID!]!) {\n"
        f"  nodes(ids: $ids) {{ ... on {resource.node_type} {{ ...{resource.fragment_name} }} }}\n}}"
    )
    skeleton = parse_skeleton(text, resource, "nodes")
    document = replace(skeleton, definitions=(*skeleton.definitions, frag))
    return finish_document(document, resource, "nodes")


@lru_cache(maxsize=1)
def exists_query() -> str:
    """``query Exists($ids: [ID!]!)``: the ids of ``$ids`` that still exist (``null`` for the rest).

    ``id`` is asked of the ``Node`` interface itself, not under ``... on <type>``: an id resolves
    to the type it names, which is not always the resource's (a discount listed as a
    ``DiscountNode`` has the id of a ``DiscountCodeNode`` or a ``DiscountAutomaticNode``), and a
    fragment on another type would answer ``{}`` for a record that exists."""
    text = "query Exists($ids: [ID!]!) {\n  nodes(ids: $ids) { id }\n}"
    return finish_document(parse(text), None, "exists")


__all__ = ["MAX_NODE_IDS", "exists_query", "ids_resource", "nodes_query"]
