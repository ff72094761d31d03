"""SQL views over the resource tables, for analysts (pure: DDL text from a Resource and the schema).

Next to each resource table the table sinks keep:

* ``<resource>_v``: one row per record not marked deleted, one typed column per scalar field of
  the fragment. Nested objects are flattened with ``__`` (``shipping_address__city``); a
  ``MoneyV2`` becomes its numeric amount under the field's name plus ``<name>_currency``; a
  ``MoneyBag`` (``totalPriceSet``) its ``shopMoney`` the same way and its ``presentmentMoney``
  under ``<name>__presentment``; a list of scalars (``tags``) is one JSON column.
* ``<resource>__<list>``: one row per element of each nested connection or list of objects
  (``orders__line_items``, ``orders__refunds``), with ``shop``, the owning row's id
  (``order_id``; ``product_variant_id`` one level further down), ``position`` (1-based) and the
  element's columns. A list inside a flattened object keeps its path: ``orders__shipping_line__tax_lines``.

Column names are the snake_case of the response keys (alias or field name). Types follow the
schema: ``DateTime`` is ``timestamptz`` in PostgreSQL and ISO text in SQLite, ``Boolean`` is
``boolean`` / ``0``/``1``, ``Int`` ``bigint`` / integer, ``Decimal``/``Money``/``Float`` ``numeric`` / real,
``ID`` and everything else text. A record column colliding with one of the owning row's columns
(``position`` of a variant) is prefixed with the element type (``product_variant_position``).

:func:`view_ddl` gives the statements for one resource; each view is dropped and created again
only when its definition changed (:func:`view_marker` is embedded in the definition so the sinks can
tell). Views the fragment no longer produces are dropped as well (:func:`stale_views`).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from graphql import (
    FieldNode,
    GraphQLEnumType,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    GraphQLUnionType,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
)

from shopsync.errors import QueryDocumentError
from shopsync.queries import Resource
from shopsync.shopify.schema import load_schema

Dialect = Literal["sqlite", "postgresql"]
DIALECTS: tuple[Dialect, ...] = ("sqlite", "postgresql")

#: SQL type per GraphQL scalar (anything else, enums included, is text).
_PG_TYPES = {
    "Int": "bigint",
    "Float": "double precision",
    "Decimal": "numeric",
    "Money": "numeric",
    "UnsignedInt64": "numeric",
    "BigInt": "numeric",
    "Boolean": "boolean",
    "DateTime": "timestamptz",
    "Date": "date",
    "JSON": "jsonb",
}
_SQLITE_CASTS = {"Decimal": "REAL", "Money": "REAL", "Float": "REAL", "Int": "INTEGER", "UnsignedInt64": "INTEGER"}
_MARKER = "shopsync:view"
#: PostgreSQL's identifier limit (longer names are cut, which would break finding the views again).
MAX_NAME = 63


def snake(name: str) -> str:
    """``shippingAddress`` → ``shipping_address``, ``countryCodeV2`` → ``country_code_v2``, ``address1`` stays."""
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    s = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", s)
    return s.lower()


@dataclass(frozen=True)
class Column:
    """One view column: its name, the JSON key path from the row's object, and the GraphQL scalar."""

    name: str
    keys: tuple[str, ...]
    scalar: str  # a GraphQL scalar name, or "JSON" for a list of scalars / an opaque value


@dataclass
class ListView:
    """A view of one row per element of a list (``keys``: where it lives in its owner's object)."""

    name: str
    keys: tuple[str, ...]
    node_type: str
    owner: ListView | None
    columns: list[Column] = field(default_factory=list)
    children: list[ListView] = field(default_factory=list)


@dataclass(frozen=True)
class ViewPlan:
    """Every view of one resource: the record view and the list views, depth first."""

    resource: str
    node_type: str
    columns: tuple[Column, ...]
    lists: tuple[ListView, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return (f"{self.resource}_v", *(lv.name for lv in self.lists))


def _unwrap(t: GraphQLOutputType) -> tuple[GraphQLOutputType, bool]:
    """The named type under NonNull/List wrappers, and whether a list was among them."""
    is_list = False
    while isinstance(t, GraphQLNonNull | GraphQLList):
        if isinstance(t, GraphQLList):
            is_list = True
        t = t.of_type
    return t, is_list


def _is_connection(t: GraphQLOutputType) -> bool:
    return isinstance(t, GraphQLObjectType) and "pageInfo" in t.fields and ("edges" in t.fields or "nodes" in t.fields)


def _node_type(connection: GraphQLOutputType) -> str:
    """The node type's name of a connection type (through ``nodes``, else ``edges.node``)."""
    assert isinstance(connection, GraphQLObjectType)
    if "nodes" in connection.fields:
        return get_named_type(connection.fields["nodes"].type).name
    edge = get_named_type(connection.fields["edges"].type)
    assert isinstance(edge, GraphQLObjectType)
    return get_named_type(edge.fields["node"].type).name


def _node_selection(sel: FieldNode, origin: str) -> SelectionSetNode:
    """The node's selection inside a connection's ``edges { node { … } }`` or ``nodes { … }``."""
    assert sel.selection_set is not None
    for inner in sel.selection_set.selections:
        if not isinstance(inner, FieldNode) or inner.selection_set is None:
            continue
        if inner.name.value == "nodes":
            return inner.selection_set
        if inner.name.value == "edges":
            for node in inner.selection_set.selections:
                if isinstance(node, FieldNode) and node.name.value == "node" and node.selection_set:
                    return node.selection_set
    raise QueryDocumentError(f"{origin}: connection {sel.name.value} selects no nodes")


class _Planner:
    def __init__(self, resource: Resource, schema: GraphQLSchema) -> None:
        self.resource = resource
        self.schema = schema
        self.lists: list[ListView] = []

    def type(self, name: str) -> GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType:
        t = self.schema.get_type(name)
        if not isinstance(t, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType):
            raise QueryDocumentError(f"{self.resource.origin}: {name} is not an object type of the pinned schema")
        return t

    def walk(
        self,
        selection: SelectionSetNode,
        parent: GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType,
        keys: tuple[str, ...],
        prefix: str,
        owner: ListView | None,
        columns: list[Column],
    ) -> None:
        for sel in selection.selections:
            if isinstance(sel, InlineFragmentNode):
                cond = self.type(sel.type_condition.name.value) if sel.type_condition else parent
                self.walk(sel.selection_set, cond, keys, prefix, owner, columns)
                continue
            if not isinstance(sel, FieldNode):
                raise QueryDocumentError(f"{self.resource.origin}: fragment spreads are not supported in views")
            name = sel.name.value
            key = sel.alias.value if sel.alias else name
            if name == "__typename":
                # In a flattened object, its kind: discount__typename (at the top, __typename).
                own = snake(key) if sel.alias else ("typename" if prefix else name)
                columns.append(Column(f"{prefix}{own}", (*keys, key), "String"))
                continue
            if isinstance(parent, GraphQLUnionType) or name not in parent.fields:
                raise QueryDocumentError(f"{self.resource.origin}: {parent.name} has no field {name}")
            col = f"{prefix}{snake(key)}"
            t, is_list = _unwrap(parent.fields[name].type)
            if isinstance(t, GraphQLScalarType | GraphQLEnumType):
                scalar = "JSON" if is_list else (t.name if isinstance(t, GraphQLScalarType) else "String")
                column = Column(col, (*keys, key), scalar)
                # The same key of the same type on two members of a union (a discount's title on
                # each kind): an object is one member, so the key is one column, whichever it is.
                if column not in columns:
                    columns.append(column)
                continue
            assert sel.selection_set is not None and isinstance(t, GraphQLObjectType | GraphQLInterfaceType | GraphQLUnionType)
            if _is_connection(t):
                self.list_view((*keys, key), col, _node_selection(sel, self.resource.origin), _node_type(t), owner)
            elif is_list:
                self.list_view((*keys, key), col, sel.selection_set, t.name, owner)
            elif t.name == "MoneyV2":
                self.money(sel.selection_set, (*keys, key), col, columns)
            elif t.name == "MoneyBag":
                for inner in sel.selection_set.selections:
                    if isinstance(inner, FieldNode) and inner.selection_set is not None:
                        ikey = inner.alias.value if inner.alias else inner.name.value
                        icol = col if inner.name.value == "shopMoney" else f"{col}__{snake(ikey).removesuffix('_money')}"
                        self.money(inner.selection_set, (*keys, key, ikey), icol, columns)
            else:
                self.walk(sel.selection_set, t, (*keys, key), f"{col}__", owner, columns)

    def money(self, selection: SelectionSetNode, keys: tuple[str, ...], col: str, columns: list[Column]) -> None:
        for sel in selection.selections:
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                if sel.name.value == "amount":
                    columns.append(Column(col, (*keys, key), "Decimal"))
                elif sel.name.value == "currencyCode":
                    columns.append(Column(f"{col}_currency", (*keys, key), "String"))
                else:
                    columns.append(Column(f"{col}__{snake(key)}", (*keys, key), "String"))

    def list_view(
        self, keys: tuple[str, ...], col: str, selection: SelectionSetNode, node_type: str, owner: ListView | None
    ) -> None:
        base = owner.name if owner else self.resource.name
        view = ListView(name=f"{base}__{col}", keys=keys, node_type=node_type, owner=owner)
        self.lists.append(view)
        if owner is not None:
            owner.children.append(view)
        self.walk(selection, self.type(node_type), (), "", view, view.columns)


def plan_views(resource: Resource, schema: GraphQLSchema | None = None) -> ViewPlan:
    """The views of ``resource`` (its fragment read against ``schema``, default the pinned one)."""
    if resource.fragment_ast is None:
        raise QueryDocumentError(f"{resource.origin}: no parsed fragment to build views from")
    planner = _Planner(resource, schema or load_schema())
    columns: list[Column] = []
    planner.walk(resource.fragment_ast.selection_set, planner.type(resource.node_type), (), "", None, columns)
    _check_unique(["shop", *(c.name for c in columns)], resource)  # list views rename clashes themselves
    for lv in planner.lists:
        _check_unique([c.name for c in lv.columns], resource)
    plan = ViewPlan(resource=resource.name, node_type=resource.node_type, columns=tuple(columns), lists=tuple(planner.lists))
    names = [*plan.names, *(c.name for cols in (columns, *(lv.columns for lv in plan.lists)) for c in cols)]
    too_long = [n for n in names if len(n) > MAX_NAME]
    if too_long:
        raise QueryDocumentError(f"{resource.origin}: view or column name {too_long[0]!r} is longer than {MAX_NAME} characters")
    return plan


def _check_unique(names: Sequence[str], resource: Resource) -> None:
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise QueryDocumentError(f"{resource.origin}: two fields give the view column {name!r}; use an alias")
        seen.add(name)


def _owner_columns(plan: ViewPlan, view: ListView) -> list[tuple[str, str]]:
    """(column name, SQL alias of the row whose id it is) for the ids of the owning rows, outermost first."""
    chain: list[ListView] = []
    o = view.owner
    while o is not None:
        chain.insert(0, o)
        o = o.owner
    out = [(f"{snake(plan.node_type)}_id", "t")]
    for depth, lv in enumerate(chain, start=1):
        out.append((f"{snake(lv.node_type)}_id", f"c{depth}"))
    return out


def _chain(view: ListView) -> list[ListView]:
    chain = [view]
    while chain[0].owner is not None:
        chain.insert(0, chain[0].owner)
    return chain


def _sql_path(keys: Iterable[str]) -> str:
    return "$." + ".".join(keys) if keys else "$"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sqlite_expr(source: str, col: Column) -> str:
    e = f"json_extract({source}, '{_sql_path(col.keys)}')"
    cast = _SQLITE_CASTS.get(col.scalar)
    return f"CAST({e} AS {cast})" if cast else e


def _pg_expr(source: str, col: Column) -> str:
    path = "{" + ",".join(col.keys) + "}"
    if col.scalar == "JSON":
        return f"({source} #> '{path}')"
    e = f"({source} #>> '{path}')"
    pg = _PG_TYPES.get(col.scalar)
    return f"{e}::{pg}" if pg else e


@dataclass(frozen=True)
class ViewSql:
    """One view: its name and the ``CREATE VIEW`` statement (with :func:`view_marker` inside)."""

    name: str
    create: str


def view_marker(definition: str) -> str:
    """The comment that marks a shopsync view and names its definition's hash."""
    return f"/* {_MARKER} {hashlib.sha256(definition.encode()).hexdigest()[:16]} */"


def _select_columns(exprs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{e} AS {_quote(n)}" for n, e in exprs)


def view_sql(plan: ViewPlan, dialect: Dialect, *, table: str | None = None) -> list[ViewSql]:
    """The ``CREATE VIEW`` statements of ``plan``; ``table`` is the quoted table (default ``"<resource>"``)."""
    if dialect not in DIALECTS:
        raise ValueError(f"unknown SQL dialect {dialect!r}")
    table = table or _quote(plan.resource)
    expr = _sqlite_expr if dialect == "sqlite" else _pg_expr
    base: list[tuple[str, str]] = [("shop", "t.shop")]
    base += [(c.name, "t.id" if c.keys == ("id",) else expr("t.data", c)) for c in plan.columns]
    views = [(f"{plan.resource}_v", f"SELECT {_select_columns(base)} FROM {table} AS t WHERE t.deleted_at IS NULL")]
    for lv in plan.lists:
        chain = _chain(lv)
        owners = _owner_columns(plan, lv)
        exprs: list[tuple[str, str]] = [("shop", "t.shop")]
        for name, alias in owners:
            exprs.append((name, "t.id" if alias == "t" else expr(f"{alias}.value", Column(name, ("id",), "ID"))))
        depth = len(chain)
        position = f"c{depth}.key + 1" if dialect == "sqlite" else f"c{depth}.position"
        exprs.append(("position", position))
        taken = {n for n, _ in exprs}
        for c in lv.columns:
            name = f"{snake(lv.node_type)}_{c.name}" if c.name in taken else c.name
            exprs.append((name, expr(f"c{depth}.value", c)))
        joins, where = [], ["t.deleted_at IS NULL"]
        for i, step in enumerate(chain, start=1):
            src = "t.data" if i == 1 else f"c{i - 1}.value"
            if dialect == "sqlite":
                joins.append(f"json_each({src}, '{_sql_path(step.keys)}') AS c{i}")
                where.append(f"json_type({src}, '{_sql_path(step.keys)}') = 'array'")
            else:
                arr = f"({src} #> '{{{','.join(step.keys)}}}')"
                joins.append(
                    f"jsonb_array_elements(CASE WHEN jsonb_typeof({arr}) = 'array' THEN {arr} ELSE '[]'::jsonb END)"
                    f" WITH ORDINALITY AS c{i}(value, position)"
                )
        if dialect == "sqlite":
            from_ = f"{table} AS t, " + ", ".join(joins)
        else:
            from_ = f"{table} AS t" + "".join(f" CROSS JOIN LATERAL {j}" for j in joins)
        views.append((lv.name, f"SELECT {_select_columns(exprs)} FROM {from_} WHERE {' AND '.join(where)}"))
    out = []
    for name, select in views:
        out.append(ViewSql(name=name, create=f"CREATE VIEW {_view_name(name, table)} AS {view_marker(select)} {select}"))
    return out


def _view_name(name: str, table: str) -> str:
    """The view's quoted name, in the table's schema when the table is schema-qualified."""
    if "." in table and table.startswith('"'):
        schema = table.split(".", 1)[0]
        return f"{schema}.{_quote(name)}"
    return _quote(name)


def view_ddl(resource: Resource, dialect: Dialect, *, table: str | None = None) -> list[ViewSql]:
    """:func:`view_sql` of :func:`plan_views` of ``resource``."""
    return view_sql(plan_views(resource), dialect, table=table)


def is_own_view(definition: str | None) -> bool:
    """Whether a stored view definition is one shopsync made (it holds the marker comment)."""
    return definition is not None and _MARKER in definition


def marker_of(definition: str | None) -> str | None:
    """The hash-bearing marker inside a stored definition, or None."""
    if definition is None:
        return None
    found = re.search(r"/\* " + re.escape(_MARKER) + r" [0-9a-f]{16} \*/", definition)
    return found.group(0) if found else None


def stale_views(resource: str, wanted: Iterable[str], existing: Iterable[str]) -> list[str]:
    """Names among ``existing`` (shopsync's own views) that belong to ``resource`` but are no longer wanted."""
    keep = set(wanted)
    mine = [n for n in existing if n == f"{resource}_v" or n.startswith(f"{resource}__")]
    return sorted(n for n in mine if n not in keep)


__all__ = [
    "DIALECTS",
    "Column",
    "Dialect",
    "ListView",
    "ViewPlan",
    "ViewSql",
    "is_own_view",
    "marker_of",
    "plan_views",
    "snake",
    "stale_views",
    "view_ddl",
    "view_marker",
    "view_sql",
]
