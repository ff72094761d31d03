"""Every GraphQL document shopsync sends, built from a resource's fragment.

Documents are assembled as graphql-core ASTs that reuse the fragment file's own nodes, so a
validation error inside the fragment carries the resource file's line; the printed text is then
validated with :func:`shopsync.schema.parse_and_validate` (once per distinct document: builders are
cached). Values that change between requests (cursors, search strings, ids, the outer page size)
are variables; only our own integers (nested page sizes) and, for bulk queries, the search string
(the whole bulk query travels as one variable of the mutation) are written into the text.

Documents and their variables:

=========================  =====================================================================
``page_query``             ``first``, ``after``, ``query`` (+ ``parentId`` for ``parent.child``)
``parent_ids_query``       ``first``, ``after``
``drain_query``            ``id`` (the parent node), ``first``, ``after``
``bulk_mutation``          ``query`` (the text from ``bulk_query``)
``bulk_status_query``      ``id``
``bulk_cancel_mutation``   ``id``
``count_query``            ``query``
``deletions_query``        ``first``, ``after``, ``query`` (from ``deletion_search``)
=========================  =====================================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache, lru_cache
from types import MappingProxyType
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    NameNode,
    SelectionSetNode,
    Source,
    StringValueNode,
    VariableNode,
    parse,
    print_ast,
    validate,
)

from shopsync.cost import MAX_QUERY_COST, requested_cost
from shopsync.errors import QueryDocumentError, QueryTooCostlyError
from shopsync.queries import MAX_PAGE_SIZE, NestedConnection, Resource
from shopsync.schema import format_graphql_error, load_schema, parse_and_validate
from shopsync.timeutil import format_ts

_PAGING_ARGS = ("first", "last", "after", "before")
#: Nested page sizes are rounded up to one of these, so small shifts in the observed child
#: counts do not produce a new document (and a new validation) every time.
PAGE_SIZE_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250)


def _name(value: str) -> NameNode:
    return NameNode(value=value)


def _field(name: str, selections: tuple = (), arguments: tuple = ()) -> FieldNode:
    return FieldNode(
        name=_name(name),
        alias=None,
        arguments=arguments,
        directives=(),
        selection_set=SelectionSetNode(selections=tuple(selections)) if selections else None,
    )


def _page_info() -> FieldNode:
    return _field("pageInfo", (_field("hasNextPage"), _field("endCursor")))


def _int_arg(name: str, value: int) -> ArgumentNode:
    return ArgumentNode(name=_name(name), value=IntValueNode(value=str(value)))


def _graphql_string(value: str) -> str:
    """``value`` as a GraphQL string literal (escaped by graphql-core's printer)."""
    return print_ast(StringValueNode(value=value, block=False))


# --------------------------------------------------------------------------------------------
# validation with the fragment file's line numbers


def _finish(document: DocumentNode, resource: Resource | None, kind: str) -> str:
    text = print_ast(document)
    label = f"{resource.path} (built {kind} document)" if resource else f"shopsync {kind} document"
    try:
        parse_and_validate(text, origin=label)
    except QueryDocumentError as exc:
        # Validate the AST instead: its nodes still carry the resource file's locations.
        errors = validate(load_schema(), document)
        if errors:
            raise QueryDocumentError(
                "; ".join(format_graphql_error(e, e.source.name if e.source else label) for e in errors)
            ) from exc
        raise
    return text


def _skeleton(text: str, resource: Resource, kind: str) -> DocumentNode:
    try:
        return parse(Source(text, f"{resource.path} (built {kind} document)"))
    except GraphQLError as exc:  # a bad root_args slipped through: name the file
        raise QueryDocumentError(f"{resource.path}: cannot build the {kind} document: {exc}") from exc


def _find_placeholder(node, name: str):
    """The FieldNode called ``name`` in a skeleton (depth first)."""
    sel_set = getattr(node, "selection_set", None)
    for sel in sel_set.selections if sel_set else ():
        if isinstance(sel, FieldNode) and sel.name.value == name:
            return sel
        found = _find_placeholder(sel, name)
        if found is not None:
            return found
    return None


def _replace_field(node, target: FieldNode, new: FieldNode):
    """A copy of ``node`` with ``target`` (by identity) replaced by ``new``."""
    if node is target:
        return new
    sel_set = getattr(node, "selection_set", None)
    if sel_set is None:
        return node
    return replace(node, selection_set=replace(sel_set, selections=tuple(_replace_field(s, target, new) for s in sel_set.selections)))


def _splice(skeleton: DocumentNode, placeholder: str, new: FieldNode) -> DocumentNode:
    op = skeleton.definitions[0]
    target = _find_placeholder(op, placeholder)
    assert target is not None, placeholder
    return replace(skeleton, definitions=(_replace_field(op, target, new), *skeleton.definitions[1:]))


# --------------------------------------------------------------------------------------------
# rewriting the fragment's selections


def _nested_by_path(resource: Resource) -> dict[tuple[str, ...], NestedConnection]:
    return {nc.path: nc for nc in resource.all_nested()}


def _node_selection(conn_field: FieldNode) -> SelectionSetNode:
    """The node selection of a connection field written as ``edges { node }`` or ``nodes``."""
    for sub in conn_field.selection_set.selections:  # type: ignore[union-attr]
        if isinstance(sub, FieldNode) and sub.name.value == "nodes":
            return sub.selection_set  # type: ignore[return-value]
        if isinstance(sub, FieldNode) and sub.name.value == "edges":
            for inner in sub.selection_set.selections:  # type: ignore[union-attr]
                if isinstance(inner, FieldNode) and inner.name.value == "node":
                    return inner.selection_set  # type: ignore[return-value]
    raise AssertionError("validated at load: a nested connection selects its nodes")


def _rewrite(
    selection_set: SelectionSetNode,
    prefix: tuple[str, ...],
    mode: str,
    sizes: Mapping[tuple[str, ...], int],
    nested: Mapping[tuple[str, ...], NestedConnection],
) -> SelectionSetNode:
    """Rewrite every nested connection below ``prefix`` for ``mode`` ("page" or "bulk")."""
    out = []
    for sel in selection_set.selections:
        if isinstance(sel, InlineFragmentNode):
            out.append(replace(sel, selection_set=_rewrite(sel.selection_set, prefix, mode, sizes, nested)))
        elif isinstance(sel, FieldNode) and sel.alias is None and prefix + (sel.name.value,) in nested:
            nc = nested[prefix + (sel.name.value,)]
            out.append(_rewrite_connection(sel, nc, mode, sizes, nested))
        else:
            out.append(sel)
    return replace(selection_set, selections=tuple(out))


def _rewrite_connection(
    sel: FieldNode,
    nc: NestedConnection,
    mode: str,
    sizes: Mapping[tuple[str, ...], int],
    nested: Mapping[tuple[str, ...], NestedConnection],
    *,
    paging: tuple[ArgumentNode, ...] | None = None,
) -> FieldNode:
    args = tuple(a for a in sel.arguments or () if a.name.value not in _PAGING_ARGS)
    if paging is not None:
        args = paging + args
    elif mode == "page":
        args = (_int_arg("first", sizes.get(nc.path, nc.page_size)),) + args
    inner = _rewrite(_node_selection(sel), nc.path, mode, sizes, nested)
    node = FieldNode(name=_name("node"), alias=None, arguments=(), directives=(), selection_set=inner)
    edges = _field("edges", (node,))
    selections = (edges,) if mode == "bulk" else (_page_info(), edges)
    return replace(sel, arguments=args, selection_set=SelectionSetNode(selections=selections))


def _sizes_key(resource: Resource, nested_first: Mapping[tuple[str, ...], int] | None) -> tuple:
    known = _nested_by_path(resource)
    sizes = {path: nc.page_size for path, nc in known.items()}
    for path, value in (nested_first or {}).items():
        path = tuple(path)
        if path not in known:
            raise ValueError(f"{resource.name} has no nested connection {'.'.join(path)}")
        if not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
            raise ValueError(f"nested page size for {'.'.join(path)} must be 1..{MAX_PAGE_SIZE}, not {value!r}")
        sizes[path] = value
    return tuple(sorted(sizes.items()))


def _root_connection_args(resource: Resource) -> Mapping[str, Any]:
    """The arguments the records' connection field takes (QueryRoot's, or the parent type's)."""
    schema = load_schema()
    if resource.parent_field:
        owner = schema.get_type(resource.parent_node_type)  # type: ignore[arg-type]
    else:
        owner = schema.query_type
    return owner.fields[resource.root_field].args  # type: ignore[union-attr]


def _root_call(resource: Resource, *, field_name: str, args: list[str], with_sort: bool, with_root_args: bool) -> str:
    parts = list(args)
    if with_sort and resource.sort_key:
        parts.append(f"sortKey: {resource.sort_key}")
    if with_root_args and resource.root_args:
        parts.append(resource.root_args)
    return f"{field_name}({', '.join(parts)})" if parts else field_name


# --------------------------------------------------------------------------------------------
# paginated documents


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
    _check_first(first)
    return _page_query(resource, _sizes_key(resource, nested_first))


def _check_first(first: int | None) -> None:
    if first is not None and (isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE_SIZE):
        raise ValueError(f"first must be 1..{MAX_PAGE_SIZE}, not {first!r}")


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
    nested = _nested_by_path(resource)
    frag = resource.fragment_ast
    assert frag is not None
    frag = replace(frag, selection_set=_rewrite(frag.selection_set, (), "page", sizes, nested))
    connection = (
        "{ pageInfo { hasNextPage endCursor } edges { cursor node { ..." + resource.fragment_name + " } } }"
    )
    # A connection without a search argument (only possible with filter: none) gets no $query.
    searchable = "query" in _root_connection_args(resource)
    args = ["first: $first", "after: $after"] + (["query: $query"] if searchable else [])
    query_var = ", $query: String" if searchable else ""
    if resource.parent_field:
        call = _root_call(resource, field_name=resource.root_field, args=args, with_sort=True, with_root_args=False)
        text = (
            f"query Page($parentId: ID!, $first: Int!, $after: String{query_var}) {{\n"
            f"  node(id: $parentId) {{ ... on {resource.parent_node_type} {{ {call} {connection} }} }}\n}}"
        )
    else:
        call = _root_call(resource, field_name=resource.root_field, args=args, with_sort=True, with_root_args=True)
        text = f"query Page($first: Int!, $after: String{query_var}) {{\n  {call} {connection}\n}}"
    skeleton = _skeleton(text, resource, "page")
    document = replace(skeleton, definitions=(*skeleton.definitions, frag))
    return _finish(document, resource, "page")


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
    return _finish(_skeleton(text, resource, "parents"), resource, "parents")


#: A drain page size that fits every packaged resource (lineItems: 3 + 2 + 100 × 7 = 705 points);
#: :func:`drain_page_size` computes the largest that fits for any resource.
DRAIN_PAGE = 100


def drain_query(
    resource: Resource,
    nested: NestedConnection,
    first: int | None = None,
    nested_first: Mapping[tuple[str, ...], int] | None = None,
) -> str:
    """The rest of one nested connection: ``query Drain($id: ID!, $first: Int!, $after: String)``.

    ``$id`` is the node owning the connection (the record, or for depth 2 the child); ``first``
    (sent as ``$first``) is only range-checked. The drained nodes' own nested connections
    (depth 2) carry ``pageInfo`` and their page size from ``nested_first``, so
    :func:`shopsync.engine.records.append_drained` can queue their drains.
    """
    _check_first(first)
    if resource.nested_at(nested.path) != nested:
        raise ValueError(f"{nested.path} is not a nested connection of {resource.name}")
    return _drain_query(resource, nested.path, _sizes_key(resource, nested_first))


@lru_cache(maxsize=256)
def _drain_query(resource: Resource, path: tuple[str, ...], sizes_key: tuple) -> str:
    nc = resource.nested_at(path)
    sizes = dict(sizes_key)
    nested = _nested_by_path(resource)
    original = _fragment_field(resource, path)
    paging = (
        ArgumentNode(name=_name("first"), value=_variable("first")),
        ArgumentNode(name=_name("after"), value=_variable("after")),
    )
    conn = _rewrite_connection(original, nc, "page", sizes, nested, paging=paging)
    text = (
        "query Drain($id: ID!, $first: Int!, $after: String) {\n"
        f"  node(id: $id) {{ ... on {nc.parent_type} {{ __shopsync_connection }} }}\n}}"
    )
    document = _splice(_skeleton(text, resource, "drain"), "__shopsync_connection", conn)
    return _finish(document, resource, "drain")


def _variable(name: str) -> VariableNode:
    return VariableNode(name=_name(name))


def _fragment_field(resource: Resource, path: tuple[str, ...]) -> FieldNode:
    """The fragment's FieldNode of the nested connection at ``path``."""
    frag = resource.fragment_ast
    assert frag is not None
    selection_set = frag.selection_set
    node: FieldNode | None = None
    for i, name in enumerate(path):
        node = _find_in(selection_set, name)
        if node is None:
            raise KeyError(path)
        if i < len(path) - 1:
            selection_set = _node_selection(node)
    assert node is not None
    return node


def _find_in(selection_set: SelectionSetNode, name: str) -> FieldNode | None:
    for sel in selection_set.selections:
        if isinstance(sel, FieldNode) and sel.alias is None and sel.name.value == name:
            return sel
        if isinstance(sel, InlineFragmentNode):
            found = _find_in(sel.selection_set, name)
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------------------------
# bulk documents


def bulk_query(resource: Resource, search: str | None) -> str:
    """The query string for ``bulkOperationRunQuery``: the root connection filtered by ``search``.

    The fragment's fields are inlined, nested connections keep only ``edges { node { … } }`` (no
    ``first``, no ``pageInfo``: Shopify ignores them in bulk queries). For a ``parent.child``
    resource the parents are listed with their id and the records under them.
    """
    return _bulk_query(resource, search)


@lru_cache(maxsize=256)
def _bulk_query(resource: Resource, search: str | None) -> str:
    nested = _nested_by_path(resource)
    frag = resource.fragment_ast
    assert frag is not None
    node = FieldNode(
        name=_name("node"),
        alias=None,
        arguments=(),
        directives=(),
        selection_set=_rewrite(frag.selection_set, (), "bulk", {}, nested),
    )
    search_args = [f"query: {_graphql_string(search)}"] if search is not None else []
    if resource.parent_field:
        child = _root_call(resource, field_name=resource.root_field, args=search_args, with_sort=True, with_root_args=False)
        parent = _root_call(resource, field_name=resource.parent_field, args=[], with_sort=False, with_root_args=True)
        text = f"{{\n  {parent} {{ edges {{ node {{ id {child} {{ edges {{ __shopsync_node }} }} }} }} }}\n}}"
    else:
        root = _root_call(resource, field_name=resource.root_field, args=search_args, with_sort=True, with_root_args=True)
        text = f"{{\n  {root} {{ edges {{ __shopsync_node }} }}\n}}"
    document = _splice(_skeleton(text, resource, "bulk"), "__shopsync_node", node)
    return _finish(document, resource, "bulk")


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

_DELETIONS = """query Deleted($first: Int!, $after: String, $query: String) {
  events(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {
    pageInfo { hasNextPage endCursor }
    edges { node { ... on BasicEvent { id action createdAt subjectId subjectType } } }
  }
}"""


@cache
def _static(text: str, kind: str) -> str:
    parse_and_validate(text, origin=f"shopsync {kind} document")
    return text


def bulk_mutation() -> str:
    """``mutation RunBulk($query: String!)``: start a bulk query, ungrouped (``groupObjects: false``)."""
    return _static(_BULK_MUTATION, "bulk mutation")


def bulk_status_query() -> str:
    """``query BulkStatus($id: ID!)``: everything the engine needs about one bulk operation."""
    return _static(_BULK_STATUS, "bulk status")


def recent_bulk_operations_query() -> str:
    """``query RecentBulk``: the shop's ten newest bulk operations (Shopify lists newest first)
    with their query text, to find out whether a start whose answer was lost did start one."""
    return _static(_RECENT_BULK, "recent bulk operations")


def bulk_cancel_mutation() -> str:
    """``mutation CancelBulk($id: ID!)``: cancel a bulk operation."""
    return _static(_BULK_CANCEL, "bulk cancel")


# --------------------------------------------------------------------------------------------
# counts, deletions, search strings


def count_query(resource: Resource) -> str | None:
    """``query Count($query: String)`` on the resource's count field (no limit), or ``None``."""
    if resource.count_field is None:
        return None
    return _count_query(resource)


@lru_cache(maxsize=64)
def _count_query(resource: Resource) -> str:
    field_def = load_schema().query_type.fields[resource.count_field]  # type: ignore[union-attr,index]
    args = ["query: $query"] + (["limit: null"] if "limit" in field_def.args else [])
    text = f"query Count($query: String) {{\n  {resource.count_field}({', '.join(args)}) {{ count precision }}\n}}"
    return _finish(_skeleton(text, resource, "count"), resource, "count")


def deletions_query() -> str:
    """``query Deleted($first: Int!, $after: String, $query: String)`` over ``events``, oldest first."""
    return _static(_DELETIONS, "deletions")


def deletion_search(subject_type: str, since: datetime | None, until: datetime | None = None) -> str:
    """The ``events`` search for destroyed records of one subject type, created in ``[since, until]``."""
    search = f"action:destroy AND subject_type:{subject_type}"
    if since is not None:
        search += f" AND created_at:>='{format_ts(since)}'"
    if until is not None:
        search += f" AND created_at:<='{format_ts(until)}'"
    return search


def window_search(start: datetime | None, end: datetime) -> str:
    """``updated_at:>='A' AND updated_at:<='B'`` (inclusive; only the upper bound when no start)."""
    upper = f"updated_at:<='{format_ts(end)}'"
    if start is None:
        return upper
    return f"updated_at:>='{format_ts(start)}' AND {upper}"


# --------------------------------------------------------------------------------------------
# page sizing


@dataclass(frozen=True)
class PageSize:
    """``first`` for the root connection and the nested connections' page sizes (by path)."""

    first: int
    nested_first: Mapping[tuple[str, ...], int] = field(default_factory=dict, hash=False)


@lru_cache(maxsize=1024)
def _parsed(text: str) -> DocumentNode:
    return parse(text)


def requested_cost_of(document: str, variables: Mapping[str, Any] | None = None) -> int:
    """The static requested cost of a built ``document`` with ``variables`` (shopsync.cost rules)."""
    return requested_cost(load_schema(), _parsed(document), variables)


def round_page_size(observed: float) -> int:
    """The smallest of :data:`PAGE_SIZE_STEPS` that holds ``observed`` children (at least 1)."""
    need = max(1, math.ceil(observed))
    for step in PAGE_SIZE_STEPS:
        if step >= need:
            return step
    return MAX_PAGE_SIZE


def _cost_line(resource: Resource, sizes: dict[tuple[str, ...], int]) -> tuple[int, int]:
    """(a, b) with requested cost = a + b × first (the root connection is linear in ``first``)."""
    doc = page_query(resource, None, sizes)
    c1 = requested_cost_of(doc, {"first": 1})
    c2 = requested_cost_of(doc, {"first": 2})
    return c1 - (c2 - c1), c2 - c1


def plan_page_size(
    resource: Resource,
    *,
    child_counts: Mapping[tuple[str, ...], float] | None = None,
    max_cost: int = MAX_QUERY_COST,
    bucket_size: float | None = None,
) -> PageSize:
    """Page sizes whose requested cost stays ≤ ``max_cost`` (and ≤ ``bucket_size``).

    ``child_counts`` maps a nested connection's path to a high percentile (say p95) of the child
    counts seen so far. Each nested page size is that figure rounded up to a step, so nearly every
    record arrives whole and drains stay rare; without a figure the fragment's ``first`` is used.
    The outer ``first`` is then as large as fits (≤ 250): Shopify charges the *actual* cost, so a
    large requested cost only needs room in the bucket, while more records per request means fewer
    round trips. If even one record does not fit, the largest nested size is halved until it does;
    :class:`QueryTooCostlyError` if nothing fits.
    """
    limit = int(max_cost if bucket_size is None else min(max_cost, bucket_size))
    sizes: dict[tuple[str, ...], int] = {}
    for nc in resource.all_nested():
        seen = (child_counts or {}).get(nc.path)
        sizes[nc.path] = nc.page_size if seen is None else round_page_size(seen)
    while True:
        a, b = _cost_line(resource, sizes)
        if a + b <= limit:
            break
        shrinkable = [p for p, n in sizes.items() if n > 1]
        if not shrinkable:
            raise QueryTooCostlyError(
                f"{resource.path}: one record per page costs {a + b}, over the limit of {limit}",
                cost=a + b,
                max_cost=limit,
            )
        biggest = max(shrinkable, key=lambda p: sizes[p])
        sizes[biggest] = max(1, sizes[biggest] // 2)
    first = MAX_PAGE_SIZE if b <= 0 else max(1, min(MAX_PAGE_SIZE, (limit - a) // b))
    return PageSize(first=first, nested_first=MappingProxyType(sizes))


def drain_page_size(
    resource: Resource,
    nested: NestedConnection,
    *,
    nested_first: Mapping[tuple[str, ...], int] | None = None,
    max_cost: int = MAX_QUERY_COST,
    bucket_size: float | None = None,
) -> int:
    """The largest ``$first`` (≤ 250) for :func:`drain_query` whose requested cost fits."""
    limit = int(max_cost if bucket_size is None else min(max_cost, bucket_size))
    doc = drain_query(resource, nested, None, nested_first)
    c1 = requested_cost_of(doc, {"first": 1})
    b = requested_cost_of(doc, {"first": 2}) - c1
    a = c1 - b
    if c1 > limit:
        raise QueryTooCostlyError(
            f"{resource.path}: draining {nested.field} one node at a time costs {c1}, over {limit}",
            cost=c1,
            max_cost=limit,
        )
    return MAX_PAGE_SIZE if b <= 0 else max(1, min(MAX_PAGE_SIZE, (limit - a) // b))


def shrink(page_size: PageSize) -> PageSize:
    """After ``MAX_COST_EXCEEDED``: halve ``first``; at 1, halve the largest nested size.

    Returns ``page_size`` itself when everything is already 1 (nothing smaller exists: the caller
    compares and gives up).
    """
    if page_size.first > 1:
        return replace(page_size, first=page_size.first // 2)
    sizes = dict(page_size.nested_first)
    shrinkable = [p for p, n in sizes.items() if n > 1]
    if not shrinkable:
        return page_size
    biggest = max(shrinkable, key=lambda p: sizes[p])
    sizes[biggest] = max(1, sizes[biggest] // 2)
    return PageSize(first=1, nested_first=MappingProxyType(sizes))


__all__ = [
    "PAGE_SIZE_STEPS",
    "PageSize",
    "bulk_cancel_mutation",
    "bulk_mutation",
    "bulk_query",
    "bulk_status_query",
    "DRAIN_PAGE",
    "count_query",
    "deletion_search",
    "drain_page_size",
    "deletions_query",
    "drain_query",
    "page_query",
    "page_variables",
    "parent_ids_query",
    "plan_page_size",
    "requested_cost_of",
    "round_page_size",
    "shrink",
    "window_search",
]
