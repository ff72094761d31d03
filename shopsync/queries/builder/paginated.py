"""Paginated documents: one page of records, the parents of a ``parent.child`` resource, a drain.

Values that change between requests (cursors, search strings, ids, the outer page size) are
variables; only the nested page sizes are written into the text. Builders are cached, so each
distinct document is validated once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from typing import Any

from graphql import (
    ArgumentNode,
    FieldNode,
    InlineFragmentNode,
    SelectionSetNode,
)

from shopsync.queries.builder.assembly import (
    check_first,
    finish_document,
    name_node,
    nested_by_path,
    nested_sizes_key,
    node_selection,
    parse_skeleton,
    response_key,
    rewrite_connection,
    rewrite_selections,
    root_call,
    root_connection_args,
    splice,
    under_root_path,
    variable_node,
)
from shopsync.queries.model import NestedConnection, Resource


def page_query(
    resource: Resource,
    first: int | None = None,
    nested_first: Mapping[tuple[str, ...], int] | None = None,
) -> str:
    """One page of records: ``query Page($first: Int!, $after: String, $query: String)``.

    ``first`` is the page size the caller will send as ``$first`` (a variable, so it is only
    range-checked here: one document serves every page size). Every nested connection gets
    ``pageInfo { hasNextPage endCursor }`` and ``first`` from ``nested_first`` (keyed by
    :attr:`NestedConnection.path`) or the fragment's default. For a ``parent.child`` resource the
    records are paged under one parent: the document also takes ``$parentId: ID!``. Variables:
    :func:`page_variables`.
    """
    check_first(first)
    if resource.singular:
        raise ValueError(f"{resource.name} is a single object, not paged (use object_query)")
    return _page_query(resource, nested_sizes_key(resource, nested_first))


def page_variables(
    first: int, *, after: str | None = None, search: str | None = None, parent_id: str | None = None
) -> dict[str, Any]:
    """The variables of :func:`page_query` (``parent_id`` only for ``parent.child`` resources)."""
    variables: dict[str, Any] = {"first": first, "after": after, "query": search}
    if parent_id is not None:
        variables["parentId"] = parent_id
    return variables


@lru_cache(maxsize=256)
def _page_query(resource: Resource, sizes_key: tuple) -> str:
    sizes = dict(sizes_key)
    nested = nested_by_path(resource)
    frag = resource.fragment_ast
    assert frag is not None
    frag = replace(frag, selection_set=rewrite_selections(frag.selection_set, (), "page", sizes, nested))
    connection = (
        "{ pageInfo { hasNextPage endCursor } edges { cursor node { ..." + resource.fragment_name + " } } }"
    )
    # A connection without a search argument (only possible with filter: none) gets no $query.
    searchable = "query" in root_connection_args(resource)
    args = ["first: $first", "after: $after"] + (["query: $query"] if searchable else [])
    query_var = ", $query: String" if searchable else ""
    if resource.parent_field:
        call = root_call(resource, field_name=resource.root_field, args=args, with_sort=True, with_root_args=False)
        text = (
            f"query Page($parentId: ID!, $first: Int!, $after: String{query_var}) {{\n"
            f"  node(id: $parentId) {{ ... on {resource.parent_node_type} {{ {call} {connection} }} }}\n}}"
        )
    else:
        call = root_call(resource, field_name=resource.root_field, args=args, with_sort=True, with_root_args=True)
        body = under_root_path(resource, f"{call} {connection}")
        text = f"query Page($first: Int!, $after: String{query_var}) {{\n  {body}\n}}"
    skeleton = parse_skeleton(text, resource, "page")
    document = replace(skeleton, definitions=(*skeleton.definitions, frag))
    return finish_document(document, resource, "page")


@lru_cache(maxsize=64)
def parent_ids_query(resource: Resource) -> str:
    """``query Parents($first: Int!, $after: String)``: the parent ids of a ``parent.child`` resource."""
    if not resource.parent_field:
        raise ValueError(f"{resource.name} is not paged under parents")
    args = ["first: $first", "after: $after"] + ([resource.root_args] if resource.root_args else [])
    text = (
        "query Parents($first: Int!, $after: String) {\n"
        f"  {resource.parent_field}({', '.join(args)}) {{ pageInfo {{ hasNextPage endCursor }} edges {{ node {{ id }} }} }}\n}}"
    )
    return finish_document(parse_skeleton(text, resource, "parents"), resource, "parents")


#: The largest drain page: a query of at most about 900 points, which leaves a Standard plan's
#: bucket room for other queries; :func:`~shopsync.queries.builder.page_size.drain_first` takes
#: fewer where the drained nodes are heavier (an order's line items).
DRAIN_PAGE = 90


def drain_query(
    resource: Resource,
    nested: NestedConnection,
    first: int | None = None,
    nested_first: Mapping[tuple[str, ...], int] | None = None,
) -> str:
    """The rest of one nested connection: ``query Drain($id: ID!, $first: Int!, $after: String)``.

    ``$id`` is the node owning the connection (the record, or for depth 2 the child), asked of
    ``node(id:)``, or for a connection in one object of the record (:attr:`NestedConnection.within`)
    of the record's own lookup field (``discountNode(id:) { discount { … } }``); ``first``
    (sent as ``$first``) is only range-checked. The drained nodes' own nested connections
    (depth 2) carry ``pageInfo`` and their page size from ``nested_first``, so
    :func:`shopsync.engine.records.append_drained` can queue their drains.
    """
    check_first(first)
    if resource.nested_at(nested.path) != nested:
        raise ValueError(f"{nested.path} is not a nested connection of {resource.name}")
    return _drain_query(resource, nested.path, nested_sizes_key(resource, nested_first))


@lru_cache(maxsize=256)
def _drain_query(resource: Resource, path: tuple[str, ...], sizes_key: tuple) -> str:
    nc = resource.nested_at(path)
    sizes = dict(sizes_key)
    nested = nested_by_path(resource)
    original = _fragment_field(resource, path)
    paging = (
        ArgumentNode(name=name_node("first"), value=variable_node("first")),
        ArgumentNode(name=name_node("after"), value=variable_node("after")),
    )
    conn = rewrite_connection(original, nc, "page", sizes, nested, paging=paging)
    owner = f"node(id: $id) {{ ... on {nc.parent_type} {{ __shopsync_connection }} }}"
    if nc.lookup:  # in one object of the record, looked up by the record's id
        (within,) = nc.within
        owner = f"{nc.lookup}(id: $id) {{ {within} {{ ... on {nc.parent_type} {{ __shopsync_connection }} }} }}"
    text = f"query Drain($id: ID!, $first: Int!, $after: String) {{\n  {owner}\n}}"
    document = splice(parse_skeleton(text, resource, "drain"), "__shopsync_connection", conn)
    return finish_document(document, resource, "drain")


def _fragment_field(resource: Resource, path: tuple[str, ...]) -> FieldNode:
    """The fragment's FieldNode of the nested connection at ``path``."""
    frag = resource.fragment_ast
    assert frag is not None
    nested = nested_by_path(resource)
    selection_set = frag.selection_set
    node: FieldNode | None = None
    for i, name in enumerate(path):
        node = _find_in(selection_set, name)
        if node is None:
            raise KeyError(path)
        if i < len(path) - 1:
            # A connection's nodes, or the elements of the list a connection hangs from (through).
            selection_set = node_selection(node) if path[: i + 1] in nested else node.selection_set  # type: ignore[assignment]
    assert node is not None
    return node


def _find_in(selection_set: SelectionSetNode, name: str) -> FieldNode | None:
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode) and response_key(sel) == name:
            return sel
        if isinstance(sel, InlineFragmentNode):
            found = _find_in(sel.selection_set, name)
            if found is not None:
                return found
    return None



__all__ = ["DRAIN_PAGE", "drain_query", "page_query", "page_variables", "parent_ids_query"]
