"""Shopify's query cost rules, computed statically (requested cost) and from a result (actual cost).

The rules (shopify-api-facts §1): a scalar or enum costs 0, an object 1, an interface or union the
most expensive of its possible types, a connection ``2 + first × (cost of one node)`` with nested
connections multiplying through their parent, and a mutation field 10. Lists of objects are
costed as one object. ``orders(first: 250) { edges { node { id totalPriceSet { shopMoney { amount } } } } }``
therefore requests ``2 + 250 × 3 = 752``.

The simulator charges with these functions; the engine uses them to size pages before it has
seen a server's own figure. Both are pure: no I/O, no clocks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLNamedType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_object_type,
    value_from_ast_untyped,
)

MUTATION_COST = 10
CONNECTION_BASE_COST = 2
MAX_QUERY_COST = 1000


class CostError(ValueError):
    """The document cannot be costed (for example a connection without ``first`` or ``last``)."""


def is_connection_type(t: GraphQLNamedType) -> bool:
    return is_object_type(t) and t.name.endswith("Connection") and "pageInfo" in t.fields


def _operation(document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode:
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if operation_name is not None:
        ops = [o for o in ops if o.name and o.name.value == operation_name]
    if len(ops) != 1:
        raise CostError("expected exactly one operation" + (f" named {operation_name}" if operation_name else ""))
    return ops[0]


def _root_type(schema: GraphQLSchema, operation: OperationDefinitionNode) -> GraphQLObjectType:
    root = schema.mutation_type if operation.operation == OperationType.MUTATION else schema.query_type
    if root is None:
        raise CostError(f"the schema has no {operation.operation.value} type")
    return root


#: A response path: the keys and list indexes leading to a value (a GraphQL error's ``path``).
Path = tuple[str | int, ...]


class _Coster:
    def __init__(
        self,
        schema: GraphQLSchema,
        document: DocumentNode,
        variables: Mapping[str, Any] | None,
        runtime_types: Mapping[Path, str] | None = None,
    ):
        self.schema = schema
        self.variables = dict(variables or {})
        self.runtime_types: Mapping[Path, str] = runtime_types or {}
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    # -- selection flattening -------------------------------------------------------------
    def fields_for(self, parent: GraphQLObjectType, selection_set: SelectionSetNode | None) -> list[FieldNode]:
        """The field nodes that apply to the concrete type ``parent`` (fragments expanded)."""
        out: list[FieldNode] = []
        if selection_set is None:
            return out
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode):
                out.append(sel)
            elif isinstance(sel, InlineFragmentNode):
                if sel.type_condition is None or self._applies(sel.type_condition.name.value, parent):
                    out.extend(self.fields_for(parent, sel.selection_set))
            elif isinstance(sel, FragmentSpreadNode):
                frag = self.fragments.get(sel.name.value)
                if frag is None:
                    raise CostError(f"unknown fragment {sel.name.value}")
                if self._applies(frag.type_condition.name.value, parent):
                    out.extend(self.fields_for(parent, frag.selection_set))
        return out

    def _applies(self, condition: str, parent: GraphQLObjectType) -> bool:
        if condition == parent.name:
            return True
        cond_type = self.schema.get_type(condition)
        if cond_type is not None and is_abstract_type(cond_type):
            return self.schema.is_sub_type(cond_type, parent)
        return False

    def arg(self, node: FieldNode, name: str) -> Any:
        for a in node.arguments or ():
            if a.name.value == name:
                return value_from_ast_untyped(a.value, self.variables)
        return None

    def concrete_types(self, t: GraphQLNamedType) -> list[GraphQLObjectType]:
        if is_abstract_type(t):
            return list(self.schema.get_possible_types(t))
        # Neither abstract nor a leaf (leaves cost 0 before this is asked): an object type.
        return [cast(GraphQLObjectType, t)]

    # -- static (requested) cost ------------------------------------------------------------
    def selection_cost(self, parent: GraphQLNamedType, selection_set: SelectionSetNode | None) -> int:
        """Cost of the children of one object of type ``parent`` (max over concrete types)."""
        best = 0
        for concrete in self.concrete_types(parent):
            total = 0
            for field in self.fields_for(concrete, selection_set):
                total += self.field_cost(concrete, field)
            best = max(best, total)
        return best

    def field_cost(self, parent: GraphQLObjectType, node: FieldNode) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0
        field_def = parent.fields.get(name)
        if field_def is None:
            raise CostError(f"{parent.name}.{name} is not in the schema")
        named = get_named_type(field_def.type)
        if is_leaf_type(named):
            return 0
        if is_connection_type(named):
            size = self.arg(node, "first")
            if size is None:
                size = self.arg(node, "last")
            if size is None:
                raise CostError(f"you must provide one of first or last on {parent.name}.{name}")
            return CONNECTION_BASE_COST + int(size) * self.node_cost(named, node)
        return 1 + self.selection_cost(named, node.selection_set)

    def node_cost(self, connection: GraphQLObjectType, node: FieldNode) -> int:
        """Cost of one node of a connection: its ``edges { node }`` and ``nodes`` selections."""
        node_type = get_named_type(connection.fields["nodes"].type) if "nodes" in connection.fields else None
        total = 0
        for sub in self.fields_for(connection, node.selection_set):
            if sub.name.value == "nodes" and node_type is not None:
                total += 1 + self.selection_cost(node_type, sub.selection_set)
            elif sub.name.value == "edges":
                edge_type = get_named_type(connection.fields["edges"].type)
                for edge_field in self.fields_for(edge_type, sub.selection_set):
                    if edge_field.name.value == "node":
                        inner = get_named_type(edge_type.fields["node"].type)
                        total += 1 + self.selection_cost(inner, edge_field.selection_set)
        return total

    # -- actual cost ------------------------------------------------------------------------
    # ``path`` is the response path of ``value`` (keys and list indexes, as in a GraphQL error's
    # ``path``): it is how a value of an abstract type is matched to the runtime type the executor
    # resolved it to when ``__typename`` was not selected.
    def actual_selection(
        self, parent: GraphQLNamedType, selection_set: SelectionSetNode | None, value: Mapping[str, Any], path: Path
    ) -> int:
        if is_abstract_type(parent):
            tn = value.get("__typename") or self.runtime_types.get(path)
            found = self.schema.get_type(tn) if isinstance(tn, str) else None
            if found is None or not is_object_type(found):
                # The concrete type is unknown: charge the static worst case.
                return self.selection_cost(parent, selection_set)
            concrete = found
        else:
            concrete = cast(GraphQLObjectType, parent)  # not a leaf: see concrete_types
        total = 0
        for field in self.fields_for(concrete, selection_set):
            key = field.alias.value if field.alias else field.name.value
            if key in value:
                total += self.actual_field(concrete, field, value[key], (*path, key))
        return total

    def actual_field(self, parent: GraphQLObjectType, node: FieldNode, value: Any, path: Path) -> int:
        field_def = parent.fields.get(node.name.value)
        if field_def is None or value is None:
            return 0
        named = get_named_type(field_def.type)
        if is_leaf_type(named):
            return 0
        if isinstance(value, list):
            if not value:
                return 0
            # A list of nulls (``nodes(ids:)`` for records that are gone) costs nothing more.
            return max(
                (1 + self.actual_selection(named, node.selection_set, v, (*path, i)) for i, v in enumerate(value) if v is not None),
                default=0,
            )
        if is_connection_type(named):
            return CONNECTION_BASE_COST + self.actual_connection(named, node, value, path)
        return 1 + self.actual_selection(named, node.selection_set, value, path)

    def actual_connection(
        self, connection: GraphQLObjectType, node: FieldNode, value: Mapping[str, Any], path: Path
    ) -> int:
        total = 0
        for sub in self.fields_for(connection, node.selection_set):
            key = sub.alias.value if sub.alias else sub.name.value
            items = value.get(key)
            if sub.name.value == "nodes" and items:
                node_type = get_named_type(connection.fields["nodes"].type)
                total += sum(
                    1 + self.actual_selection(node_type, sub.selection_set, n, (*path, key, i))
                    for i, n in enumerate(items)
                    if n
                )
            elif sub.name.value == "edges" and items:
                edge_type = get_named_type(connection.fields["edges"].type)
                inner = get_named_type(edge_type.fields["node"].type)
                for edge_field in self.fields_for(edge_type, sub.selection_set):
                    if edge_field.name.value == "node":
                        ekey = edge_field.alias.value if edge_field.alias else "node"
                        total += sum(
                            1 + self.actual_selection(inner, edge_field.selection_set, e[ekey], (*path, key, i, ekey))
                            for i, e in enumerate(items)
                            if e and e.get(ekey)
                        )
        return total


def _top_fields(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None,
    operation_name: str | None,
    runtime_types: Mapping[Path, str] | None = None,
) -> tuple[_Coster, GraphQLObjectType, list[FieldNode], bool]:
    """What both costs start from: the coster, the operation's root type, its top-level fields,
    and whether it is a mutation (charged a flat cost per field)."""
    coster = _Coster(schema, document, variables, runtime_types)
    op = _operation(document, operation_name)
    root = _root_type(schema, op)
    return coster, root, coster.fields_for(root, op.selection_set), op.operation == OperationType.MUTATION


def requested_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
) -> int:
    """The static worst-case cost Shopify would charge up front for this operation."""
    coster, root, fields, mutation = _top_fields(schema, document, variables, operation_name)
    if mutation:
        return MUTATION_COST * len(fields)
    return sum(coster.field_cost(root, f) for f in fields)


def actual_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    data: Mapping[str, Any] | None,
    variables: Mapping[str, Any] | None = None,
    operation_name: str | None = None,
    runtime_types: Mapping[Path, str] | None = None,
) -> int:
    """The cost of what ``data`` actually holds (never more than :func:`requested_cost`).

    A value of an abstract type (``node(id:)``, a union) is costed as the concrete type it came
    back as, as Shopify does after execution: its ``__typename`` when selected, else
    ``runtime_types[path]`` — the executor's record of what it resolved the value at that response
    path to. Only when neither says is it charged its static worst case.
    """
    coster, root, fields, mutation = _top_fields(schema, document, variables, operation_name, runtime_types)
    if mutation:
        return MUTATION_COST * len(fields)
    if not data:
        return 0
    total = 0
    for f in fields:
        key = f.alias.value if f.alias else f.name.value
        if key in data:
            total += coster.actual_field(root, f, data[key], (key,))
    return total


__all__ = [
    "CONNECTION_BASE_COST",
    "MAX_QUERY_COST",
    "MUTATION_COST",
    "CostError",
    "Path",
    "actual_cost",
    "is_connection_type",
    "requested_cost",
]
