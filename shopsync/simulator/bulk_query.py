"""Shopify's rules for bulk queries, checked before an operation is created (pure).

``bulkOperationRunQuery`` refuses, with ``userErrors``, a query that does not parse or validate,
uses variables, has a top-level ``node``/``nodes``, no connection or more than
:data:`MAX_CONNECTIONS`, nests connections deeper than :data:`MAX_CONNECTION_DEPTH`, or selects a
nested connection under a node without its ``id`` (shopify-api-facts §3).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_object_type,
    parse,
    validate,
)

from shopsync.shopify.cost import is_connection_type

__all__ = ["MAX_CONNECTIONS", "MAX_CONNECTION_DEPTH", "check_bulk_query"]

MAX_CONNECTIONS = 5
MAX_CONNECTION_DEPTH = 2  # "a maximum nesting depth of two levels" (root connection + one nested)


class _Walker:
    """Collects the connections of a bulk query and the rule violations found on the way."""

    def __init__(self, schema: GraphQLSchema, document: DocumentNode) -> None:
        self.schema = schema
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.node_iface = schema.get_type("Node")
        self.connections: list[tuple[str, int]] = []  # (path, depth)
        self.problems: list[str] = []

    def fields(self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None) -> Iterator[FieldNode]:
        if selection_set is None:
            return
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                yield sel
            elif isinstance(sel, InlineFragmentNode):
                yield from self.fields(parent, sel.selection_set)
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is not None:
                    yield from self.fields(parent, frag.selection_set)

    def walk(self, parent: Any, selection_set: SelectionSetNode | None, path: str, depth: int) -> bool:
        """Walk one object's selection; returns whether a connection lies below it."""
        has_conn = False
        for node in self.fields(parent, selection_set):
            name = node.name.value
            if name.startswith("__"):
                continue
            types = self.schema.get_possible_types(parent) if is_abstract_type(parent) else [parent]
            field_def = next((t.fields[name] for t in types if name in t.fields), None)
            if field_def is None:
                continue  # schema validation already rejected it
            named = get_named_type(field_def.type)
            sub_path = f"{path}.{name}" if path else name
            if is_connection_type(named):
                has_conn = True
                self.connection(named, node, sub_path, depth + 1)
            elif is_object_type(named) or is_abstract_type(named):
                has_conn |= self.walk(named, node.selection_set, sub_path, depth)
        return has_conn

    def _all_nodes(self, node_type: Any) -> bool:
        """An interface or union whose every member implements Node (``Product.media``: MediaImage,
        Video, …). Shopify exports such connections: Airbyte's source-shopify ``ProductImage``
        bulk query reads ``products { media { … on MediaImage } }``."""
        if self.node_iface is None or not is_abstract_type(node_type):
            return False
        members = self.schema.get_possible_types(node_type)
        return bool(members) and all(self.schema.is_sub_type(self.node_iface, m) for m in members)  # type: ignore[arg-type]

    def connection(self, conn_type: Any, node: FieldNode, path: str, depth: int) -> None:
        self.connections.append((path, depth))
        if depth > MAX_CONNECTION_DEPTH:
            self.problems.append(
                f"Bulk queries cannot contain connections with a nesting depth greater than {MAX_CONNECTION_DEPTH}: {path}."
            )
        node_type = get_named_type(conn_type.fields["nodes"].type) if "nodes" in conn_type.fields else None
        if node_type is None or (
            self.node_iface is not None
            and node_type is not self.node_iface
            and not self.schema.is_sub_type(self.node_iface, node_type)  # type: ignore[arg-type]
            and not self._all_nodes(node_type)
        ):
            self.problems.append(f"The connection {path} does not return nodes implementing Node; bulk queries need Node connections.")
            return
        # The node selections: `nodes { … }` and `edges { node { … } }`.
        node_selections: list[SelectionSetNode | None] = []
        for sub in self.fields(conn_type, node.selection_set):
            if sub.name.value == "nodes":
                node_selections.append(sub.selection_set)
            elif sub.name.value == "edges":
                edge_type = get_named_type(conn_type.fields["edges"].type)
                for e in self.fields(edge_type, sub.selection_set):
                    if e.name.value == "node":
                        node_selections.append(e.selection_set)
        for sel in node_selections:
            nested = self.walk(node_type, sel, path, depth)
            if nested and not any(f.name.value == "id" for f in self.fields(node_type, sel)):
                self.problems.append(
                    f"The parent 'node' field for a nested connection must select the 'id' field. Connection fields without 'id': {path}."
                )


def check_bulk_query(schema: GraphQLSchema, query: str) -> tuple[DocumentNode | None, list[str]]:
    """Parse, validate and check ``query`` against Shopify's bulk rules.

    Returns the document and an empty list, or ``None`` and the messages for ``userErrors``.
    """
    try:
        document = parse(query)
    except GraphQLError as exc:
        return None, [f"Invalid bulk query: {exc.message}"]
    errors = validate(schema, document)
    if errors:
        return None, [f"Invalid bulk query: {e.message}" for e in errors]
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if len(ops) != 1 or ops[0].operation != OperationType.QUERY:
        return None, ["Invalid bulk query: a bulk query must contain exactly one query operation."]
    op = ops[0]
    if op.variable_definitions:
        return None, ["Invalid bulk query: bulk queries cannot use variables."]
    walker = _Walker(schema, document)
    root = schema.query_type
    problems: list[str] = []
    for top in walker.fields(root, op.selection_set):  # type: ignore[arg-type]
        if top.name.value in ("node", "nodes"):
            problems.append(f"Bulk queries cannot contain a top level `{top.name.value}` field.")
    walker.walk(root, op.selection_set, "", 0)
    problems.extend(walker.problems)
    if not walker.connections:
        problems.append("Bulk queries must contain at least one connection.")
    elif len(walker.connections) > MAX_CONNECTIONS:
        problems.append(f"Bulk queries cannot contain more than {MAX_CONNECTIONS} connections.")
    return (None, problems) if problems else (document, [])
