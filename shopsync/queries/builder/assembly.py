"""The shared machinery of the document builders: AST pieces, splicing, rewriting, validation.

Documents are assembled as graphql-core ASTs that reuse the fragment file's own nodes, so a
validation error inside the fragment carries the resource file's line (:func:`finish_document`).
A builder writes a small skeleton document around a placeholder field, parses it
(:func:`parse_skeleton`) and splices the rewritten fragment selections in (:func:`splice`,
:func:`rewrite_selections`). These helpers are internal to :mod:`shopsync.queries.builder`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from functools import cache
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    FieldNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    NameNode,
    SelectionNode,
    SelectionSetNode,
    Source,
    StringValueNode,
    VariableNode,
    parse,
    print_ast,
    validate,
)

from shopsync.errors import QueryDocumentError
from shopsync.queries.model import MAX_PAGE_SIZE, NestedConnection, Resource
from shopsync.shopify.schema import format_graphql_error, load_schema, parse_and_validate

#: The paging arguments a builder sets itself (a nested connection's own are dropped).
PAGING_ARGS = ("first", "last", "after", "before")


def name_node(value: str) -> NameNode:
    return NameNode(value=value)


def field_node(name: str, selections: tuple = (), arguments: tuple = ()) -> FieldNode:
    return FieldNode(
        name=name_node(name),
        alias=None,
        arguments=arguments,
        directives=(),
        selection_set=SelectionSetNode(selections=tuple(selections)) if selections else None,
    )


def page_info() -> FieldNode:
    return field_node("pageInfo", (field_node("hasNextPage"), field_node("endCursor")))


def int_arg(name: str, value: int) -> ArgumentNode:
    return ArgumentNode(name=name_node(name), value=IntValueNode(value=str(value)))


def graphql_string(value: str) -> str:
    """``value`` as a GraphQL string literal (escaped by graphql-core's printer)."""
    return print_ast(StringValueNode(value=value, block=False))


# --------------------------------------------------------------------------------------------
# validation with the fragment file's line numbers


def finish_document(document: DocumentNode, resource: Resource | None, kind: str) -> str:
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


def parse_skeleton(text: str, resource: Resource, kind: str) -> DocumentNode:
    try:
        return parse(Source(text, f"{resource.path} (built {kind} document)"))
    except GraphQLError as exc:  # a bad root_args slipped through: name the file
        raise QueryDocumentError(f"{resource.path}: cannot build the {kind} document: {exc}") from exc


def find_placeholder(node, name: str):
    """The FieldNode called ``name`` in a skeleton (depth first)."""
    sel_set = getattr(node, "selection_set", None)
    for sel in sel_set.selections if sel_set else ():
        if isinstance(sel, FieldNode) and sel.name.value == name:
            return sel
        found = find_placeholder(sel, name)
        if found is not None:
            return found
    return None


def replace_field(node, target: FieldNode, new: FieldNode):
    """A copy of ``node`` with ``target`` (by identity) replaced by ``new``."""
    if node is target:
        return new
    sel_set = getattr(node, "selection_set", None)
    if sel_set is None:
        return node
    return replace(node, selection_set=replace(sel_set, selections=tuple(replace_field(s, target, new) for s in sel_set.selections)))


def splice(skeleton: DocumentNode, placeholder: str, new: FieldNode) -> DocumentNode:
    op = skeleton.definitions[0]
    target = find_placeholder(op, placeholder)
    assert target is not None, placeholder
    return replace(skeleton, definitions=(replace_field(op, target, new), *skeleton.definitions[1:]))


# --------------------------------------------------------------------------------------------
# rewriting the fragment's selections


def nested_by_path(resource: Resource) -> dict[tuple[str, ...], NestedConnection]:
    return {nc.path: nc for nc in resource.all_nested()}


def node_selection(conn_field: FieldNode) -> SelectionSetNode:
    """The node selection of a connection field written as ``edges { node }`` or ``nodes``."""
    for sub in conn_field.selection_set.selections:  # type: ignore[union-attr]
        if isinstance(sub, FieldNode) and sub.name.value == "nodes":
            return sub.selection_set  # type: ignore[return-value]
        if isinstance(sub, FieldNode) and sub.name.value == "edges":
            for inner in sub.selection_set.selections:  # type: ignore[union-attr]
                if isinstance(inner, FieldNode) and inner.name.value == "node":
                    return inner.selection_set  # type: ignore[return-value]
    raise AssertionError("validated at load: a nested connection selects its nodes")


def rewrite_selections(
    selection_set: SelectionSetNode,
    prefix: tuple[str, ...],
    mode: str,
    sizes: Mapping[tuple[str, ...], int],
    nested: Mapping[tuple[str, ...], NestedConnection],
) -> SelectionSetNode:
    """Rewrite every nested connection below ``prefix`` for ``mode`` ("page" or "bulk")."""
    out: list[SelectionNode] = []
    for sel in selection_set.selections:
        if isinstance(sel, InlineFragmentNode):
            out.append(replace(sel, selection_set=rewrite_selections(sel.selection_set, prefix, mode, sizes, nested)))
        elif isinstance(sel, FieldNode) and prefix + (response_key(sel),) in nested:
            nc = nested[prefix + (response_key(sel),)]
            out.append(rewrite_connection(sel, nc, mode, sizes, nested))
        elif isinstance(sel, FieldNode) and sel.selection_set is not None and _leads_through(prefix + (response_key(sel),), nested):
            # A list of nodes whose elements hold nested connections (Order.refunds[].refundLineItems),
            # or the one object of the record that holds some (DiscountNode.discount).
            inner = rewrite_selections(sel.selection_set, prefix + (response_key(sel),), mode, sizes, nested)
            out.append(replace(sel, selection_set=inner))
        else:
            out.append(sel)
    return replace(selection_set, selections=tuple(out))


def response_key(sel: FieldNode) -> str:
    """The key of ``sel`` in a response: its alias, else its name."""
    return sel.alias.value if sel.alias is not None else sel.name.value


def _leads_through(path: tuple[str, ...], nested: Mapping[tuple[str, ...], NestedConnection]) -> bool:
    """Whether ``path`` is the list or the object a nested connection hangs from
    (:attr:`NestedConnection.through`, :attr:`NestedConnection.within`)."""
    return any((nc.through or nc.within) and p[:-1] == path for p, nc in nested.items())


def rewrite_connection(
    sel: FieldNode,
    nc: NestedConnection,
    mode: str,
    sizes: Mapping[tuple[str, ...], int],
    nested: Mapping[tuple[str, ...], NestedConnection],
    *,
    paging: tuple[ArgumentNode, ...] | None = None,
) -> FieldNode:
    args = tuple(a for a in sel.arguments or () if a.name.value not in PAGING_ARGS)
    if paging is not None:
        args = paging + args
    elif mode == "page":
        args = (int_arg("first", sizes.get(nc.path, nc.page_size)),) + args
    inner = rewrite_selections(node_selection(sel), nc.path, mode, sizes, nested)
    node = FieldNode(name=name_node("node"), alias=None, arguments=(), directives=(), selection_set=inner)
    edges = field_node("edges", (node,))
    selections = (edges,) if mode == "bulk" else (page_info(), edges)
    return replace(sel, arguments=args, selection_set=SelectionSetNode(selections=selections))


def nested_sizes_key(resource: Resource, nested_first: Mapping[tuple[str, ...], int] | None) -> tuple:
    known = nested_by_path(resource)
    sizes = {path: nc.page_size for path, nc in known.items()}
    for path, value in (nested_first or {}).items():
        path = tuple(path)
        if path not in known:
            raise ValueError(f"{resource.name} has no nested connection {'.'.join(path)}")
        if not isinstance(value, int) or not 1 <= value <= MAX_PAGE_SIZE:
            raise ValueError(f"nested page size for {'.'.join(path)} must be 1..{MAX_PAGE_SIZE}, not {value!r}")
        sizes[path] = value
    return tuple(sorted(sizes.items()))


def root_connection_args(resource: Resource) -> Mapping[str, Any]:
    """The arguments the records' connection field takes (QueryRoot's, or the parent type's)."""
    schema = load_schema()
    if resource.parent_field:
        owner = schema.get_type(resource.parent_node_type)  # type: ignore[arg-type]
    elif resource.root_object_type:
        owner = schema.get_type(resource.root_object_type)
    else:
        owner = schema.query_type
    return owner.fields[resource.root_field].args  # type: ignore[union-attr]


def root_call(resource: Resource, *, field_name: str, args: list[str], with_sort: bool, with_root_args: bool) -> str:
    parts = list(args)
    if with_sort and resource.sort_key:
        parts.append(f"sortKey: {resource.sort_key}")
    if with_root_args and resource.root_args:
        parts.append(resource.root_args)
    return f"{field_name}({', '.join(parts)})" if parts else field_name



def under_root_path(resource: Resource, call: str) -> str:
    """``call`` (the records' connection with its selection) inside the singular objects of an
    ``object.connection`` root: ``shopifyPaymentsAccount { balanceTransactions(…) { … } }``."""
    for name in reversed(resource.root_path):
        call = f"{name} {{ {call} }}"
    return call


def check_first(first: int | None) -> None:
    if first is not None and (isinstance(first, bool) or not isinstance(first, int) or not 1 <= first <= MAX_PAGE_SIZE):
        raise ValueError(f"first must be 1..{MAX_PAGE_SIZE}, not {first!r}")



@cache
def static_document(text: str, kind: str) -> str:
    parse_and_validate(text, origin=f"shopsync {kind} document")
    return text

def variable_node(name: str) -> VariableNode:
    return VariableNode(name=name_node(name))
