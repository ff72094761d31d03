"""Bulk documents: the query a bulk operation runs, and the mutations and queries that drive it.

The bulk query's search string is written into the text (the whole query travels as one
variable of ``bulkOperationRunQuery``).
"""

from __future__ import annotations

from functools import lru_cache

from graphql import (
    FieldNode,
)

from shopsync.queries.builder.assembly import (
    finish_document,
    graphql_string,
    name_node,
    nested_by_path,
    parse_skeleton,
    rewrite_selections,
    root_call,
    splice,
    static_document,
    under_root_path,
)
from shopsync.queries.model import Resource


def bulk_query(resource: Resource, search: str | None) -> str:
    """The query string for ``bulkOperationRunQuery``: the root connection filtered by ``search``.

    The fragment's fields are inlined, nested connections keep only ``edges { node { … } }`` (no
    ``first``, no ``pageInfo``: Shopify ignores them in bulk queries). For a ``parent.child``
    resource the parents are listed with their id and the records under them. A resource read
    page by page only (``bulk: no``) has none: :class:`ValueError`.
    """
    if not resource.exportable:
        raise ValueError(f"{resource.name} is read page by page only (bulk: no in {resource.path}); it has no bulk query")
    if resource.singular:
        raise ValueError(f"{resource.name} is a single object: a bulk query needs a connection (use object_query)")
    return _bulk_query(resource, search)


#: The search a resource's bulk query is built and validated with once; each window's own search
#: then replaces its literal. Every window's query differs only in that string argument, whose
#: value cannot make a document invalid, and a daemon starts thousands of exports an hour: built
#: and validated per window, the query was 5 % of a 200-shop daemon's CPU while it caught up.
_SEARCH_PLACEHOLDER = "__shopsync_window_search__"


def _bulk_query(resource: Resource, search: str | None) -> str:
    if search is None:
        return _built_bulk_query(resource, None)
    template = _built_bulk_query(resource, _SEARCH_PLACEHOLDER)
    literal = graphql_string(_SEARCH_PLACEHOLDER)
    assert template.count(literal) == 1, f"{resource.path}: the bulk query's search literal is not unique"
    return template.replace(literal, graphql_string(search))


@lru_cache(maxsize=256)
def _built_bulk_query(resource: Resource, search: str | None) -> str:
    nested = nested_by_path(resource)
    frag = resource.fragment_ast
    assert frag is not None
    node = FieldNode(
        name=name_node("node"),
        alias=None,
        arguments=(),
        directives=(),
        selection_set=rewrite_selections(frag.selection_set, (), "bulk", {}, nested),
    )
    search_args = [f"query: {graphql_string(search)}"] if search is not None else []
    if resource.parent_field:
        child = root_call(resource, field_name=resource.root_field, args=search_args, with_sort=True, with_root_args=False)
        parent = root_call(resource, field_name=resource.parent_field, args=[], with_sort=False, with_root_args=True)
        text = f"{{\n  {parent} {{ edges {{ node {{ id {child} {{ edges {{ __shopsync_node }} }} }} }} }}\n}}"
    else:
        root = root_call(resource, field_name=resource.root_field, args=search_args, with_sort=True, with_root_args=True)
        text = f"{{\n  {under_root_path(resource, root + ' { edges { __shopsync_node } }')}\n}}"
    document = splice(parse_skeleton(text, resource, "bulk"), "__shopsync_node", node)
    return finish_document(document, resource, "bulk")


_BULK_MUTATION = """mutation RunBulk($query: String!) {
  bulkOperationRunQuery(query: $query, groupObjects: false) {
    bulkOperation { id status }
    userErrors { field message code }
  }
}"""

_BULK_STATUS = """query BulkStatus($id: ID!) {
  bulkOperation(id: $id) {
    id status errorCode createdAt completedAt objectCount rootObjectCount fileSize url partialDataUrl query
  }
}"""

_RECENT_BULK = """query RecentBulk {
  bulkOperations(first: 10) {
    nodes { id status errorCode createdAt query }
  }
}"""

_BULK_CANCEL = """mutation CancelBulk($id: ID!) {
  bulkOperationCancel(id: $id) {
    bulkOperation { id status }
    userErrors { field message }
  }
}"""


def bulk_mutation() -> str:
    """``mutation RunBulk($query: String!)``: start a bulk query, ungrouped (``groupObjects: false``)."""
    return static_document(_BULK_MUTATION, "bulk mutation")


def bulk_status_query() -> str:
    """``query BulkStatus($id: ID!)``: everything the engine needs about one bulk operation."""
    return static_document(_BULK_STATUS, "bulk status")


def recent_bulk_operations_query() -> str:
    """``query RecentBulk``: the shop's ten newest bulk operations (Shopify lists newest first)
    with their query text, to find out whether a start whose answer was lost did start one."""
    return static_document(_RECENT_BULK, "recent bulk operations")


def bulk_cancel_mutation() -> str:
    """``mutation CancelBulk($id: ID!)``: cancel a bulk operation."""
    return static_document(_BULK_CANCEL, "bulk cancel")



__all__ = ["bulk_cancel_mutation", "bulk_mutation", "bulk_query", "bulk_status_query", "recent_bulk_operations_query"]
