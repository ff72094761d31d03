"""Execute validated GraphQL documents against a :class:`~shopsync.simulator.store.ShopStore`.

Records are plain dicts keyed by schema field names (:mod:`shopsync.simulator.data`). Instead of
graphql-core's resolver machinery (too slow for 250 orders × 25 line items per page), a small
projector walks the request's selection sets over those dicts: aliases, fragments, inline
fragments with type conditions, ``@skip``/``@include``, ``__typename`` (only when asked for),
variables and field arguments. graphql-core is used for parsing and validation only — done by the
caller (:func:`shopsync.schema.parse_and_validate`) before :meth:`Executor.execute`.

What is modelled
----------------
Root fields: ``orders``, ``products``, ``customers``, ``inventoryItems``, ``locations``,
``collections``, ``events``, ``node``, ``nodes``, ``order``/``product``/``customer``/
``inventoryItem``/``location``/``collection``/``inventoryLevel`` by id, the ``*Count`` fields and
``shop``; plus whatever the server registers (:meth:`Executor.register_root_field`,
:meth:`register_mutation`, :meth:`register_node_resolver`). Fields per type are listed in
:data:`shopsync.simulator.data.MODELLED_FIELDS`. Selecting anything else is answered with an
error naming it (``"Field 'Order.agreements' is not modelled by the shopsync simulator"``,
``extensions.code = "NOT_MODELLED"``) — never a silent null; such documents are refused before
execution, with ``data: null``.

Connections: ``first``/``last`` (one is required, at most 250), ``after``/``before``, ``reverse``,
``sortKey``; ``edges { cursor node }``, ``nodes``, ``pageInfo``. Cursors are base64 JSON
``{"last_id": <numeric id>, "last_value": <sort value>}`` and order ties by id, so records sharing
one updatedAt second page exactly once. Root listings with a ``query:`` filter or sorted by
``UPDATED_AT`` read the store's lagging *index view* (see :mod:`shopsync.simulator.store`); nodes
are always current. Nested connections (``Order.lineItems``, ``Product.variants``,
``Location.inventoryLevels``, ``InventoryItem.inventoryLevels``) have their own cursors, so a
client drains a 400-line-item order through ``node(id:)`` with ``lineItems(after:)``.

Bulk rows (:meth:`Executor.bulk_rows`)
--------------------------------------
A bulk query runs over *all* matching root nodes (``first``/``pageInfo`` ignored), one dict per
connection node. Children of nested connections are not inlined: each becomes its own row with
``"__parentId"`` (the parent's GID) — scalars and plain objects stay inline. Row order:

* ``group_objects=True``: each parent is directly followed by its children (depth first).
* ``group_objects=False`` (the 2026-10 default): roots are emitted in chunks of 8–48 (sizes drawn
  from the shop's seed, so deterministic), and only after a chunk's roots come that chunk's
  children, parent by parent, alternating between child connection types. Every child still comes
  after its parent and the order within each connection type is kept — the only guarantee Shopify
  documents — but most children are *not* next to their parent, so a client must join by
  ``__parentId``.

:meth:`Executor.materialize` gives the "truth": every live record of a type projected through a
fragment with nested connections replaced by complete arrays of their nodes — the shape of a
perfect sync's sink record (docs/ARCHITECTURE.md, "Sink record shape").

Speed
-----
Selections are compiled once per request into plans; the hot parts (line items, money bags,
addresses, edges, id-only references) are projected by small generated functions, one dict
display each. Measured on the 2-core dev machine: a page of ``orders(first: 250)`` with the
orders resource fragment on a 1,000,000-order store takes ~19 ms (~560 line items), and a page
of 250 orders × 25 line items ~63 ms. :meth:`Executor.execute` pauses the cyclic garbage collector
while it runs (restoring it after), which halved the second figure.
"""

from __future__ import annotations

import base64
import binascii
import gc
import random
import re
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    ListValueNode,
    ObjectValueNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    VariableNode,
    get_location,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    parse,
    value_from_ast_untyped,
)
from graphql.pyutils import Undefined

from shopsync.cost import is_connection_type
from shopsync.schema import load_schema
from shopsync.simulator.data import ID_BASE, MODELLED_FIELDS, Ref, fmt_ts, gid_type
from shopsync.simulator.search import CONNECTION_FIELDS, SearchQuery, SearchSyntaxError, parse_search
from shopsync.simulator.store import ShopStore
from shopsync.timeutil import parse_ts

__all__ = [
    "BulkQueryError",
    "ExecContext",
    "ExecResult",
    "ExecutionFieldError",
    "Executor",
    "MAX_PAGE_SIZE",
    "decode_cursor",
    "encode_cursor",
    "parse_resource_header",
]

MAX_PAGE_SIZE = 250
MAX_INPUT_ARRAY = 250
_INVENTORY_QUANTITY_NAMES = (
    "available", "committed", "damaged", "incoming", "on_hand", "quality_control", "reserved", "safety_stock",
)  # fmt: skip

Resolver = Callable[[dict[str, Any], "ExecContext"], Any]


class ExecutionFieldError(Exception):
    """Raised by a resolver: becomes one GraphQL error at that field (whose value is null)."""

    def __init__(self, message: str, *, code: str = "BAD_REQUEST", extensions: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.extensions = dict(extensions or {})


class BulkQueryError(ValueError):
    """A bulk query the simulator cannot run (no root connection, unmodelled fields, bad search).

    ``errors`` holds the GraphQL-shaped errors; the server reports them as ``userErrors``.
    """

    def __init__(self, message: str, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


@dataclass
class ExecResult:
    data: dict | None
    errors: list[dict] = field(default_factory=list)


@dataclass
class ExecContext:
    """Per-execution state; resolvers registered by the server receive it as ``ctx``.

    ``request`` is whatever the caller passed as ``context`` to :meth:`Executor.execute` (e.g. the
    HTTP request's shop and app identity).
    """

    executor: Executor
    store: ShopStore
    document: DocumentNode
    operation: OperationDefinitionNode
    variables: dict[str, Any]
    request: Any = None
    mode: str = "page"  # "page" | "array" (materialize) | "bulk"
    errors: list[dict] = field(default_factory=list)
    fragments: dict[str, FragmentDefinitionNode] = field(default_factory=dict)
    children: list | None = None  # bulk mode: (parent gid, node field, records) collected per row
    exists_memo: dict[str, bool] = field(default_factory=dict)
    row_id: str | None = None  # bulk mode: the GID of the row being built


# -- cursors ---------------------------------------------------------------------------------------
def encode_cursor(last_id: int, last_value: Any) -> str:
    """Opaque cursor, shaped like Shopify's: base64 of ``{"last_id": …, "last_value": …}``."""
    return base64.b64encode(orjson.dumps({"last_id": last_id, "last_value": last_value})).decode("ascii")


def decode_cursor(cursor: str) -> tuple[int, Any]:
    """``(last_id, last_value)``; raises :class:`ExecutionFieldError` for a malformed cursor."""
    try:
        obj = orjson.loads(base64.b64decode(cursor.encode("ascii"), validate=True))
        last_id = obj["last_id"]
        value = obj["last_value"]
    except (binascii.Error, orjson.JSONDecodeError, KeyError, TypeError, UnicodeEncodeError, ValueError) as exc:
        raise ExecutionFieldError(f"Invalid cursor '{cursor}'.", code="BAD_REQUEST") from exc
    if not isinstance(last_id, int):
        raise ExecutionFieldError(f"Invalid cursor '{cursor}'.", code="BAD_REQUEST")
    return last_id, value


def _numeric_id(gid: str) -> int:
    tail = gid.rsplit("/", 1)[-1]
    q = tail.find("?")
    return int(tail[:q] if q >= 0 else tail)


# -- compiled selections ---------------------------------------------------------------------------
TYPENAME, LEAF, OBJECT, OBJLIST, CONNECTION, SIMPLE, LEAF_SPECIAL, REF_ID, SIMPLE_LIST = range(9)
_OMIT = object()  # a field left out of the row (bulk children)
#: Node types whose values in records are always embedded dicts, never references.
_NEVER_REF = frozenset({"MailingAddress"})
_CODE_CACHE: dict[str, Any] = {}


class _Plan(list):
    """The compiled fields of one selection on one concrete type.

    ``fast`` is a generated function projecting a record in one dict display when every field is a
    plain leaf, a plain nested object or an id-only reference (the hot path: line items, money
    bags, addresses); it raises ``KeyError``/``TypeError`` on anything unexpected, and the caller
    then takes the general path, which reports the problem properly.
    """

    __slots__ = ("fast",)


def _generate(plan: _Plan, type_name: str) -> Callable[[dict], dict] | None:
    parts = []
    env: dict[str, Any] = {"list": list}
    for i, f in enumerate(plan):
        k, n = repr(f.key), repr(f.name)
        if f.kind == LEAF:
            parts.append(f"{k}: (None if (v := rec[{n}]) is None else list(v))" if f.is_list else f"{k}: rec[{n}]")
        elif f.kind == SIMPLE:
            env[f"F{i}"] = f.fn
            parts.append(f"{k}: (None if (v := rec[{n}]) is None else F{i}(v))")
        elif f.kind == REF_ID:
            env[f"F{i}"] = f.fn
            parts.append(f"{k}: F{i}(rec[{n}])")
        elif f.kind == SIMPLE_LIST:
            env[f"F{i}"] = f.fn
            parts.append(f"{k}: (None if (v := rec[{n}]) is None else [F{i}(x) for x in v])")
        elif f.kind == TYPENAME:
            parts.append(f"{k}: {type_name!r}")
        else:
            return None
    src = "def fast(rec):\n    return {" + ", ".join(parts) + "}\n"
    code = _CODE_CACHE.get(src)
    if code is None:
        if len(_CODE_CACHE) > 4096:
            _CODE_CACHE.clear()
        code = _CODE_CACHE[src] = compile(src, "<shopsync-simulator-projection>", "exec")
    exec(code, env)  # noqa: S102 - source built from schema field names only
    return env["fast"]


def _ref_projector(plan: _Plan, type_name: str, exists: Callable[[Ref], bool]) -> Callable[[Any], dict | None]:
    """For ``{ id }`` / ``{ id __typename }`` on a reference: check existence, build nothing."""
    keys = tuple((f.key, f.kind == TYPENAME) for f in plan)
    if len(keys) == 1 and not keys[0][1]:
        key = keys[0][0]

        def project_id(v: Any) -> dict | None:  # the common case, kept lean
            if type(v) is Ref:
                return {key: v.gid} if exists(v) else None
            return None if v is None else {key: v["id"]}

        return project_id

    def project(v: Any) -> dict | None:
        if v is None:
            return None
        if type(v) is Ref:
            if not exists(v):
                return None
            gid = v.gid
        else:
            gid = v["id"]
        return {k: (type_name if is_type else gid) for k, is_type in keys}

    return project


class _F:
    """One response key of a selection on one concrete type (fields merged by response key)."""

    __slots__ = (
        "key", "name", "kind", "nodes", "sub", "named", "abstract", "is_list", "special", "fdef",
        "args_static", "plans", "node_field", "parent_type", "fn", "edge_cursors",
    )  # fmt: skip

    def __init__(self, key: str, name: str, kind: int, nodes: list[FieldNode], parent_type: str) -> None:
        self.key = key
        self.name = name
        self.kind = kind
        self.nodes = nodes
        self.parent_type = parent_type
        self.sub: tuple[SelectionSetNode, ...] = tuple(n.selection_set for n in nodes if n.selection_set)
        self.named = ""
        self.abstract = False
        self.is_list = False
        self.special: Callable | None = None
        self.fdef: Any = None
        self.args_static: dict | None = None
        self.plans: dict[str, _Plan] = {}
        self.node_field: _F | None = None
        self.fn: Callable | None = None
        self.edge_cursors = True


def _has_variables(node: Any) -> bool:
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, ListValueNode):
        return any(_has_variables(v) for v in node.values)
    if isinstance(node, ObjectValueNode):
        return any(_has_variables(f.value) for f in node.fields)
    return False


@dataclass(frozen=True)
class _RootSpec:
    type_name: str
    connection: str  # search-field key in CONNECTION_FIELDS and name for messages
    sorts: Mapping[str, tuple[str, str]]  # sortKey → ("store", updated|created|id) | ("mem", field)
    default_sort: str


_STORE = "store"
_MEM = "mem"
_ROOTS: dict[str, _RootSpec] = {
    "orders": _RootSpec("Order", "orders", {
        "UPDATED_AT": (_STORE, "updated"), "CREATED_AT": (_STORE, "created"), "PROCESSED_AT": (_STORE, "created"),
        "ID": (_STORE, "id"), "ORDER_NUMBER": (_STORE, "id"), "RELEVANCE": (_STORE, "id"),
    }, "PROCESSED_AT"),
    "products": _RootSpec("Product", "products", {
        "UPDATED_AT": (_STORE, "updated"), "CREATED_AT": (_STORE, "created"), "ID": (_STORE, "id"),
        "RELEVANCE": (_STORE, "id"), "TITLE": (_MEM, "title"), "VENDOR": (_MEM, "vendor"),
        "PRODUCT_TYPE": (_MEM, "productType"),
    }, "ID"),
    "customers": _RootSpec("Customer", "customers", {
        "UPDATED_AT": (_STORE, "updated"), "CREATED_AT": (_STORE, "created"), "ID": (_STORE, "id"),
        "RELEVANCE": (_STORE, "id"),
    }, "ID"),
    "inventoryItems": _RootSpec("InventoryItem", "inventoryItems", {"ID": (_STORE, "id")}, "ID"),
    "locations": _RootSpec("Location", "locations", {
        "NAME": (_MEM, "name"), "ID": (_STORE, "id"), "RELEVANCE": (_STORE, "id"),
    }, "NAME"),
    "collections": _RootSpec("Collection", "collections", {
        "UPDATED_AT": (_STORE, "updated"), "ID": (_STORE, "id"), "RELEVANCE": (_STORE, "id"), "TITLE": (_MEM, "title"),
    }, "ID"),
    "events": _RootSpec("BasicEvent", "events", {"ID": (_STORE, "id"), "CREATED_AT": (_STORE, "created")}, "ID"),
}  # fmt: skip
_COUNTS = {
    "ordersCount": ("Order", "orders"),
    "productsCount": ("Product", "products"),
    "customersCount": ("Customer", "customers"),
    "collectionsCount": ("Collection", "collections"),
    "locationsCount": ("Location", "locations"),
    "eventsCount": ("BasicEvent", "events"),
}
_BY_ID = {
    "order": "Order",
    "product": "Product",
    "customer": "Customer",
    "collection": "Collection",
    "location": "Location",
    "inventoryItem": "InventoryItem",
    "inventoryLevel": "InventoryLevel",
}
#: Child-list connections (records hold the full list) and the sort keys they model.
_LIST_SORTS = {None, "POSITION", "ID", "RELEVANCE"}
#: The page-size cap for in-memory sorts (sorting by a non-indexed field of a small table).
_MEM_SORT_LIMIT = 10_000


def parse_resource_header(text: str) -> dict[str, str]:
    """The ``# key: value`` lines after ``# shopsync:resource`` at the top of a resource file."""
    header: dict[str, str] = {}
    started = False
    for line in text.splitlines():
        s = line.strip()
        if not s:
            continue
        if not s.startswith("#"):
            break
        body = s[1:].strip()
        if body == "shopsync:resource":
            started = True
            continue
        m = re.match(r"^([a-z_]+):\s*(.*)$", body)
        if started and m:
            header[m.group(1)] = m.group(2).strip()
    return header


class Executor:
    """Executes validated documents against a store. One per simulated shop; not thread-safe."""

    def __init__(self, store: ShopStore, schema: GraphQLSchema | None = None) -> None:
        self.store = store
        self.schema = schema or load_schema()
        self._root_resolvers: dict[str, Resolver] = {}
        self._mutations: dict[str, Resolver] = {}
        self._node_resolvers: dict[str, Resolver] = {}
        self._specials: dict[tuple[str, str], Callable] = {
            ("Location", "inventoryLevels"): self._location_levels,
            ("InventoryItem", "inventoryLevels"): self._item_levels,
            ("InventoryLevel", "quantities"): self._quantities,
            ("InventoryItem", "inventoryLevel"): self._item_level,
            ("Location", "inventoryLevel"): self._location_level,
        }
        for name in _ROOTS:
            self._root_resolvers[name] = self._make_root_connection(name)
        for name in _COUNTS:
            self._root_resolvers[name] = self._make_count(name)
        for name, type_name in _BY_ID.items():
            self._root_resolvers[name] = self._make_by_id(type_name)
        self._root_resolvers["node"] = self._node
        self._root_resolvers["nodes"] = self._nodes
        self._root_resolvers["shop"] = lambda args, ctx: ctx.store.shop
        self._builtin_roots = frozenset(self._root_resolvers)

    # -- registration (for the server) --------------------------------------------------------------
    def register_root_field(self, name: str, resolver: Resolver) -> None:
        """Serve QueryRoot field ``name`` with ``resolver(args, ctx)`` returning plain dicts keyed
        by schema field names (abstract values need ``"__typename"``), lists or ``None``; the
        projector applies the request's selection. Raise :class:`ExecutionFieldError` for errors."""
        self._root_resolvers[name] = resolver

    def register_mutation(self, name: str, resolver: Resolver) -> None:
        """Serve Mutation field ``name`` (same contract as :meth:`register_root_field`)."""
        self._mutations[name] = resolver

    def register_node_resolver(self, type_name: str, resolver: Resolver) -> None:
        """Let ``node``/``nodes`` resolve GIDs of ``type_name`` (e.g. ``BulkOperation``):
        ``resolver({"id": gid}, ctx)`` returns the record dict (with ``__typename``) or ``None``."""
        self._node_resolvers[type_name] = resolver

    node_resolver = register_node_resolver

    # -- entry points ------------------------------------------------------------------------------
    def execute(
        self,
        document: DocumentNode,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        *,
        context: Any = None,
    ) -> ExecResult:
        """Run a query or mutation (already validated against the schema).

        Synchronous, with no await inside: the cyclic garbage collector is paused for its duration
        (and restored as it was). A page allocates tens of thousands of short-lived acyclic dicts;
        letting the collector run over them dozens of times per page doubled page latency.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            return self._execute(document, variables, operation_name, context)
        finally:
            if was_enabled:
                gc.enable()

    def _execute(
        self, document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None, context: Any
    ) -> ExecResult:
        try:
            ctx = self._context(document, variables, operation_name, context)
        except ExecutionFieldError as exc:
            return ExecResult(None, [{"message": exc.message, "extensions": {"code": exc.code, **exc.extensions}}])
        problems = self.check(document, operation_name)
        if problems:
            return ExecResult(None, problems)
        op = ctx.operation
        if op.operation == OperationType.MUTATION:
            root_type = self.schema.mutation_type
            resolvers = self._mutations
        elif op.operation == OperationType.QUERY:
            root_type = self.schema.query_type
            resolvers = self._root_resolvers
        else:
            return ExecResult(None, [{"message": "Subscriptions are not supported", "extensions": {"code": "NOT_MODELLED"}}])
        assert root_type is not None
        data: dict[str, Any] = {}
        for f in self._compile(ctx, root_type, (op.selection_set,)):
            if f.kind == TYPENAME:
                data[f.key] = root_type.name
                continue
            resolver = resolvers[f.name]
            try:
                value = resolver(self._args(ctx, f), ctx)
            except ExecutionFieldError as exc:
                self._error(ctx, f, (f.key,), exc)
                data[f.key] = None
                continue
            except SearchSyntaxError as exc:
                self._error(ctx, f, (f.key,), ExecutionFieldError(str(exc), code="BAD_REQUEST"))
                data[f.key] = None
                continue
            data[f.key] = self._complete(ctx, f, value, (f.key,))
        return ExecResult(data, ctx.errors)

    def check(self, document: DocumentNode, operation_name: str | None = None) -> list[dict]:
        """Errors for fields the simulator does not model (empty if the document is runnable)."""
        op = self._operation(document, operation_name)
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        root = self.schema.mutation_type if op.operation == OperationType.MUTATION else self.schema.query_type
        errors: list[dict] = []
        assert root is not None
        self._check(root, op.selection_set, (), fragments, errors, set())
        return errors

    def bulk_rows(
        self,
        document: DocumentNode,
        *,
        group_objects: bool,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        context: Any = None,
    ) -> Iterator[dict]:
        """Rows of a bulk export of ``document`` (see the module docstring for their order).

        Raises :class:`BulkQueryError` (before yielding anything) if the query cannot run.
        Lazy: records are read as rows are consumed, so changes made meanwhile show up as they
        would on Shopify (each root page is re-read from the index by key).
        """
        ctx, f, spec, sort, desc, q, view, where = self._bulk_setup(document, variables, operation_name, context)
        return self._bulk_iter(ctx, f, spec, sort, desc, q, view, where, group_objects)

    def materialize(
        self,
        type_name: str,
        selection: DocumentNode | SelectionSetNode | str,
        *,
        where: Callable[[int, dict], bool] | None = None,
    ) -> Iterator[dict]:
        """Every live record of ``type_name`` projected through ``selection`` (a fragment document,
        its source, or a selection set), nested connections as complete arrays of nodes — no
        paging, no index lag, no edges/cursor/pageInfo. Records come in id order."""
        ctx, sets = self._materialize_setup(type_name, selection)
        plan = self._compile(ctx, self._object_type(type_name), sets)
        for _key, _idx, rec in self.store.scan(type_name, sort="id", view="live", where=where):
            yield self._obj(ctx, rec, type_name, plan, ())

    def materialize_resource(self, path: str | Path) -> Iterator[dict]:
        """:meth:`materialize` for a resource file (``shopsync/queries/resources/orders.graphql``):
        the fragment's type, honouring ``root_args`` ``includeInactive``/``includeLegacy`` for
        location-rooted resources."""
        text = Path(path).read_text(encoding="utf-8")
        header = parse_resource_header(text)
        doc = parse(text)
        frag = next(d for d in doc.definitions if isinstance(d, FragmentDefinitionNode))
        type_name = frag.type_condition.name.value
        where = None
        root = header.get("root", "")
        if root.split(".")[0] == "locations":
            args = {}
            if header.get("root_args"):
                probe = parse(f"{{ x({header['root_args']}) }}")
                fnode = probe.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
                args = {a.name.value: value_from_ast_untyped(a.value) for a in fnode.arguments or ()}
            loc_ok = self._location_filter(args)
            if type_name == "Location":
                where = loc_ok
            else:
                locs = self.store.tables["Location"]
                n_loc = max(1, self.store.data.count("Location"))

                def where(idx: int, rec: dict) -> bool:
                    loc_idx = idx % n_loc
                    loc = locs.record(loc_idx)
                    return loc is not None and loc_ok(loc_idx, loc)

        return self.materialize(type_name, doc, where=where)

    # -- context, compile, check -------------------------------------------------------------------
    def _operation(self, document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode:
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            ops = [o for o in ops if o.name is not None and o.name.value == operation_name]
        if len(ops) != 1:
            what = f"named {operation_name!r}" if operation_name else "(the document has several; name one)"
            raise ExecutionFieldError(f"No single operation {what}", code="BAD_REQUEST")
        return ops[0]

    def _context(
        self, document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None, request: Any
    ) -> ExecContext:
        op = self._operation(document, operation_name)
        given = dict(variables or {})
        values: dict[str, Any] = {}
        for vd in op.variable_definitions or ():
            name = vd.variable.name.value
            if name in given:
                values[name] = given[name]
            elif vd.default_value is not None:
                values[name] = value_from_ast_untyped(vd.default_value)
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        return ExecContext(self, self.store, document, op, values, request, fragments=fragments)

    def _object_type(self, name: str) -> GraphQLObjectType:
        t = self.schema.get_type(name)
        if not is_object_type(t):
            raise KeyError(f"{name} is not an object type of the schema")
        return t  # type: ignore[return-value]

    def _applies(self, cond: str | None, obj: GraphQLObjectType) -> bool:
        if cond is None or cond == obj.name:
            return True
        t = self.schema.get_type(cond)
        return t is not None and is_abstract_type(t) and self.schema.is_sub_type(t, obj)  # type: ignore[arg-type]

    def _included(self, ctx: ExecContext, node: Any) -> bool:
        for d in node.directives or ():
            name = d.name.value
            if name in ("skip", "include"):
                arg = next((a for a in d.arguments or () if a.name.value == "if"), None)
                val = bool(value_from_ast_untyped(arg.value, ctx.variables)) if arg else False
                if (name == "skip" and val) or (name == "include" and not val):
                    return False
        return True

    def _collect(
        self, ctx: ExecContext, obj: GraphQLObjectType, sets: Sequence[SelectionSetNode], out: dict[str, list[FieldNode]]
    ) -> None:
        for ss in sets:
            for sel in ss.selections:
                if not self._included(ctx, sel):
                    continue
                if isinstance(sel, FieldNode):
                    key = sel.alias.value if sel.alias else sel.name.value
                    out.setdefault(key, []).append(sel)
                elif isinstance(sel, InlineFragmentNode):
                    cond = sel.type_condition.name.value if sel.type_condition else None
                    if self._applies(cond, obj):
                        self._collect(ctx, obj, (sel.selection_set,), out)
                elif isinstance(sel, FragmentSpreadNode):
                    frag = ctx.fragments.get(sel.name.value)
                    if frag is not None and self._applies(frag.type_condition.name.value, obj):
                        self._collect(ctx, obj, (frag.selection_set,), out)

    def _compile(self, ctx: ExecContext, obj: GraphQLObjectType, sets: Sequence[SelectionSetNode]) -> _Plan:
        grouped: dict[str, list[FieldNode]] = {}
        self._collect(ctx, obj, sets, grouped)
        plan = _Plan()
        for key, nodes in grouped.items():
            name = nodes[0].name.value
            if name == "__typename":
                plan.append(_F(key, name, TYPENAME, nodes, obj.name))
                continue
            fdef = obj.fields[name]
            named = get_named_type(fdef.type)
            t = fdef.type.of_type if is_non_null_type(fdef.type) else fdef.type
            is_list = is_list_type(t)
            if is_leaf_type(named):
                kind = LEAF
            elif is_connection_type(named):
                kind = CONNECTION
            elif is_list:
                kind = OBJLIST
            else:
                kind = OBJECT
            f = _F(key, name, kind, nodes, obj.name)
            f.fdef = fdef
            f.named = named.name
            f.abstract = is_abstract_type(named)
            f.is_list = is_list
            f.special = self._specials.get((obj.name, name))
            if f.special is not None and kind == LEAF:
                f.kind = LEAF_SPECIAL
            args = nodes[0].arguments or ()
            if not any(_has_variables(a.value) for a in args):
                f.args_static = {a.name.value: value_from_ast_untyped(a.value) for a in args}
            if kind == CONNECTION:
                f.node_field = self._node_field(ctx, named, f)  # type: ignore[arg-type]
            elif kind in (OBJECT, OBJLIST) and f.special is None and not f.abstract and f.sub:
                sub = self._plan(ctx, f, named.name)
                can_be_ref = named.name not in _NEVER_REF and any(i.name == "Node" for i in named.interfaces)  # type: ignore[union-attr]
                id_only = all(p.kind == TYPENAME or (p.name == "id" and p.kind == LEAF) for p in sub)
                if kind == OBJECT and can_be_ref and id_only:
                    f.kind = REF_ID
                    f.fn = _ref_projector(sub, named.name, self._exists_fn(ctx))
                elif sub.fast is not None and (kind == OBJECT or "first" not in fdef.args):
                    # A reference (Ref) value makes ``sub.fast`` raise TypeError: the general
                    # path then resolves it.
                    f.kind = SIMPLE if kind == OBJECT else SIMPLE_LIST
                    f.fn = sub.fast
            plan.append(f)
        plan.fast = _generate(plan, obj.name)
        return plan

    def _node_field(self, ctx: ExecContext, conn: GraphQLObjectType, f: _F) -> _F:
        """A pseudo-field for the nodes of connection ``f`` (edges.node and nodes selections merged)."""
        node_sets: list[SelectionSetNode] = []
        grouped: dict[str, list[FieldNode]] = {}
        self._collect(ctx, conn, f.sub, grouped)
        edge_type = get_named_type(conn.fields["edges"].type)
        f.edge_cursors = False
        for nodes in grouped.values():
            name = nodes[0].name.value
            if name == "nodes":
                node_sets.extend(n.selection_set for n in nodes if n.selection_set)
            elif name == "edges":
                eg: dict[str, list[FieldNode]] = {}
                self._collect(ctx, edge_type, [n.selection_set for n in nodes if n.selection_set], eg)  # type: ignore[arg-type]
                for enodes in eg.values():
                    if enodes[0].name.value == "node":
                        node_sets.extend(n.selection_set for n in enodes if n.selection_set)
                    elif enodes[0].name.value == "cursor":
                        f.edge_cursors = True
        node_type = get_named_type(conn.fields["nodes"].type)
        nf = _F("node", "node", OBJECT, [], conn.name)
        nf.sub = tuple(node_sets)
        nf.named = node_type.name
        nf.abstract = is_abstract_type(node_type)
        return nf

    def _exists_fn(self, ctx: ExecContext) -> Callable[[Ref], bool]:
        """Reference existence checks, memoised for one request (the store cannot change during a
        synchronous execution; bulk exports and materializations are lazy, so they are not)."""
        exists = ctx.store.exists_ref
        if ctx.mode != "page":
            return exists
        memo = ctx.exists_memo

        def check(ref: Ref) -> bool:
            r = memo.get(ref.gid)
            if r is None:
                r = memo[ref.gid] = exists(ref)
            return r

        return check

    def _modelled(self, type_name: str, field_name: str) -> bool | None:
        """True/False for types the simulator owns; None for types it leaves to others."""
        if type_name in MODELLED_FIELDS:
            return field_name in MODELLED_FIELDS[type_name]
        if type_name == self.schema.query_type.name:  # type: ignore[union-attr]
            return field_name in self._root_resolvers
        mt = self.schema.mutation_type
        if mt is not None and type_name == mt.name:
            return field_name in self._mutations
        t = self.schema.get_type(type_name)
        if t is not None and is_connection_type(t):  # type: ignore[arg-type]
            return field_name in ("edges", "nodes", "pageInfo")
        if type_name.endswith("Edge") and t is not None and is_object_type(t) and "cursor" in t.fields:  # type: ignore[union-attr]
            return field_name in ("cursor", "node")
        return None

    def _check(
        self,
        parent: Any,
        ss: SelectionSetNode,
        path: tuple,
        fragments: dict[str, FragmentDefinitionNode],
        errors: list[dict],
        seen: set,
    ) -> None:
        for sel in ss.selections:
            if isinstance(sel, FieldNode):
                name = sel.name.value
                if name == "__typename":
                    continue
                key = sel.alias.value if sel.alias else name
                if hasattr(parent, "fields") and name not in parent.fields:
                    # Normally caught by validation before execution; kept for unvalidated callers.
                    errors.append({
                        "message": f"Field '{name}' doesn't exist on type '{parent.name}'",
                        "locations": _locations(sel),
                        "path": [*path, key],
                        "extensions": {"code": "undefinedField", "typeName": parent.name, "fieldName": name},
                    })
                    continue
                if is_abstract_type(parent):
                    owners = [t.name for t in self.schema.get_possible_types(parent) if t.name in MODELLED_FIELDS]
                else:
                    owners = [parent.name]
                for owner in owners:
                    if self._modelled(owner, name) is False:
                        errors.append({
                            "message": f"Field '{owner}.{name}' is not modelled by the shopsync simulator",
                            "locations": _locations(sel),
                            "path": [*path, key],
                            "extensions": {"code": "NOT_MODELLED", "typeName": owner, "fieldName": name},
                        })
                fdef = parent.fields.get(name) if hasattr(parent, "fields") else None
                if fdef is not None and sel.selection_set is not None:
                    self._check(get_named_type(fdef.type), sel.selection_set, (*path, key), fragments, errors, seen)
            elif isinstance(sel, InlineFragmentNode):
                t = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                self._check(t, sel.selection_set, path, fragments, errors, seen)
            elif isinstance(sel, FragmentSpreadNode):
                frag = fragments.get(sel.name.value)
                mark = (sel.name.value, path)
                if frag is not None and mark not in seen:
                    seen.add(mark)
                    t = self.schema.get_type(frag.type_condition.name.value)
                    self._check(t, frag.selection_set, path, fragments, errors, seen)

    # -- projection ---------------------------------------------------------------------------------
    def _args(self, ctx: ExecContext, f: _F) -> dict[str, Any]:
        if f.args_static is not None:
            return f.args_static
        out = {}
        for a in f.nodes[0].arguments or ():
            v = value_from_ast_untyped(a.value, ctx.variables)
            if v is not Undefined:
                out[a.name.value] = v
        return out

    def _error(self, ctx: ExecContext, f: _F, path: tuple, exc: ExecutionFieldError) -> None:
        ctx.errors.append({
            "message": exc.message,
            "locations": _locations(f.nodes[0]) if f.nodes else [],
            "path": list(path),
            "extensions": {"code": exc.code, **exc.extensions},
        })

    def _plan(self, ctx: ExecContext, f: _F, type_name: str) -> _Plan:
        plan = f.plans.get(type_name)
        if plan is None:
            plan = f.plans[type_name] = self._compile(ctx, self._object_type(type_name), f.sub)
        return plan

    def _obj(self, ctx: ExecContext, rec: dict, type_name: str, plan: _Plan, path: tuple) -> dict:
        fast = plan.fast
        if fast is not None:
            try:
                return fast(rec)
            except (KeyError, TypeError):
                pass  # the general path below reports what is wrong
        out: dict[str, Any] = {}
        for f in plan:
            kind = f.kind
            if kind == LEAF:
                try:
                    v = rec[f.name]
                except KeyError:
                    v = self._missing(ctx, f, type_name, path)
                else:
                    if f.is_list and v is not None:
                        v = list(v)
                out[f.key] = v
            elif kind == SIMPLE or kind == REF_ID or kind == SIMPLE_LIST:
                # Plain nested objects (money bags, addresses, edges), id-only references and lists
                # of plain objects: generated projectors; anything unexpected takes the general path.
                try:
                    v = rec[f.name]
                    if v is None:
                        out[f.key] = None
                    elif kind == SIMPLE_LIST:
                        fn = f.fn
                        out[f.key] = [fn(x) for x in v]  # type: ignore[misc]
                    else:
                        out[f.key] = f.fn(v)  # type: ignore[misc]
                    continue
                except (KeyError, TypeError):
                    pass
                out[f.key] = self._field(ctx, rec, type_name, f, path)
            elif kind == TYPENAME:
                out[f.key] = type_name
            else:
                v = self._field(ctx, rec, type_name, f, path)
                if v is not _OMIT:
                    out[f.key] = v
        return out

    def _field(self, ctx: ExecContext, rec: dict, type_name: str, f: _F, path: tuple) -> Any:
        """The general path for one field: specials, connections, references, lists, errors."""
        kind = f.kind
        fpath = (*path, f.key)
        if f.special is not None:
            try:
                v = f.special(ctx, rec, self._args(ctx, f), f, fpath)
            except ExecutionFieldError as exc:
                self._error(ctx, f, fpath, exc)
                return None
            except SearchSyntaxError as exc:
                self._error(ctx, f, fpath, ExecutionFieldError(str(exc)))
                return None
        else:
            try:
                v = rec[f.name]
            except KeyError:
                return self._missing(ctx, f, type_name, path)
            if kind == CONNECTION:
                try:
                    v = self._list_connection(ctx, rec, f, v)
                except ExecutionFieldError as exc:
                    self._error(ctx, f, fpath, exc)
                    return None
            elif kind == OBJLIST and v is not None and "first" in f.fdef.args:
                first = self._args(ctx, f).get("first")
                if first is not None:
                    v = v[:first]
        if kind == CONNECTION and ctx.mode != "page":
            nodes = v or []
            nf = f.node_field
            assert nf is not None
            if ctx.mode == "bulk":
                assert ctx.children is not None
                # The parent is the row being built (the nearest enclosing connection node or root),
                # even when the connection sits inside a plain object of that row.
                ctx.children.append((ctx.row_id or rec["id"], f.key, nf, nodes))
                return _OMIT
            return [self._value(ctx, nf, n, (*fpath, i)) for i, n in enumerate(nodes)]
        return self._complete(ctx, f, v, fpath)

    def _missing(self, ctx: ExecContext, f: _F, type_name: str, path: tuple) -> None:
        self._error(
            ctx,
            f,
            (*path, f.key),
            ExecutionFieldError(
                f"Field '{type_name}.{f.name}' is not modelled by the shopsync simulator",
                code="NOT_MODELLED",
                extensions={"typeName": type_name, "fieldName": f.name},
            ),
        )

    def _complete(self, ctx: ExecContext, f: _F, value: Any, path: tuple) -> Any:
        if value is None:
            return None
        kind = f.kind
        if kind == LEAF or kind == LEAF_SPECIAL:
            return list(value) if f.is_list else value
        if kind == OBJLIST or kind == SIMPLE_LIST or (kind == CONNECTION and isinstance(value, list)):
            return [self._value(ctx, f, v, (*path, i)) for i, v in enumerate(value)]
        if kind == CONNECTION:
            return self._obj(ctx, value, f.named, self._plan(ctx, f, f.named), path)
        return self._value(ctx, f, value, path)

    def _value(self, ctx: ExecContext, f: _F, value: Any, path: tuple) -> Any:
        if value is None:
            return None
        if type(value) is Ref:
            gid = value.gid
            type_name = gid_type(gid) or f.named
            plan = self._plan(ctx, f, type_name)
            if all(p.name in ("id", "__typename") for p in plan):
                # Only the id is wanted: no need to build the target, only to know it exists.
                if not ctx.store.exists(gid):
                    return None
                return {p.key: (gid if p.name == "id" else type_name) for p in plan}
            rec = ctx.store.get(gid)
            if rec is None:
                return None
            return self._obj(ctx, rec, type_name, plan, path)
        if f.abstract:
            type_name = value.get("__typename")
            if type_name is None:
                raise TypeError(f"a {f.named} value needs '__typename' to be projected: {value!r}"[:300])
        else:
            type_name = f.named
        return self._obj(ctx, value, type_name, self._plan(ctx, f, type_name), path)

    # -- connections ----------------------------------------------------------------------------------
    @staticmethod
    def _page_size(args: Mapping[str, Any], what: str) -> tuple[int | None, int | None]:
        first, last = args.get("first"), args.get("last")
        if first is None and last is None:
            raise ExecutionFieldError("you must provide one of first or last", code="BAD_REQUEST")
        for name, v in (("first", first), ("last", last)):
            if v is not None and not 0 <= v <= MAX_PAGE_SIZE:
                raise ExecutionFieldError(
                    f"The '{name}' argument of '{what}' must be between 0 and {MAX_PAGE_SIZE} (got {v}).",
                    code="BAD_REQUEST",
                    extensions={"argumentName": name, "maximum": MAX_PAGE_SIZE},
                )
        return first, last

    @staticmethod
    def _window(n_keys: int, lo: int, hi: int, desc: bool, first: int | None, last: int | None) -> tuple[list[int], bool, bool]:
        """Positions (into an ascending sequence) of a page over ``[lo, hi)``; has next/previous."""
        order = list(range(hi - 1, lo - 1, -1)) if desc else list(range(lo, hi))
        has_next = (lo > 0) if desc else (hi < n_keys)  # elements beyond ``before``
        has_prev = (hi < n_keys) if desc else (lo > 0)  # elements up to ``after``
        if first is not None:
            has_next = len(order) > first
            order = order[:first]
        if last is not None:
            has_prev = len(order) > last
            order = order[len(order) - last :] if last else []
        return order, has_next, has_prev

    def _list_connection(self, ctx: ExecContext, rec: dict, f: _F, items: list) -> Any:
        """A connection over a child list held by the record (line items, variants)."""
        args = self._args(ctx, f)
        sort_key = args.get("sortKey")
        if sort_key not in _LIST_SORTS:
            raise ExecutionFieldError(
                f"sortKey {sort_key} of '{f.parent_type}.{f.name}' is not modelled by the shopsync simulator",
                code="NOT_MODELLED",
            )
        if ctx.mode != "page":
            return items
        first, last = self._page_size(args, f"{f.parent_type}.{f.name}")
        n = len(items)
        desc = bool(args.get("reverse"))
        lo, hi = 0, n
        after, before = args.get("after"), args.get("before")
        if after is not None:
            pos = self._list_pos(after)
            if desc:
                hi = min(hi, max(0, pos))
            else:
                lo = max(lo, pos + 1)
        if before is not None:
            pos = self._list_pos(before)
            if desc:
                lo = max(lo, pos + 1)
            else:
                hi = min(hi, max(0, pos))
        lo = min(lo, n)
        hi = max(hi, lo)
        order, has_next, has_prev = self._window(n, lo, hi, desc, first, last)
        if f.edge_cursors:
            edges = [(encode_cursor(_numeric_id(items[i]["id"]), i), items[i]) for i in order]
        else:  # only pageInfo's start and end cursors can be asked for: skip encoding the rest
            last_pos = len(order) - 1
            edges = [
                (encode_cursor(_numeric_id(items[i]["id"]), i) if j == 0 or j == last_pos else None, items[i])
                for j, i in enumerate(order)
            ]
        return _connection(edges, has_next, has_prev)

    @staticmethod
    def _list_pos(cursor: str) -> int:
        _id, value = decode_cursor(cursor)
        if not isinstance(value, int):
            raise ExecutionFieldError(f"Invalid cursor '{cursor}'.", code="BAD_REQUEST")
        return value

    def _search(self, text: Any, connection: str) -> SearchQuery | None:
        if text is None or not str(text).strip():
            return None
        return parse_search(str(text), allowed=CONNECTION_FIELDS[connection], connection=connection)

    def _store_connection(
        self,
        ctx: ExecContext,
        type_name: str,
        args: Mapping[str, Any],
        *,
        sort: str,
        q: SearchQuery | None,
        view: str,
        what: str,
        where: Callable[[int, dict], bool] | None = None,
        bounds: tuple[int, int] | None = None,
    ) -> dict:
        """One page of a store-backed listing (roots, Location.inventoryLevels)."""
        first, last = self._page_size(args, what)
        store = ctx.store
        desc = bool(args.get("reverse"))
        after = self._store_key(type_name, sort, args.get("after"))
        before = self._store_key(type_name, sort, args.get("before"))
        if bounds is not None:  # a sub-range of ids, e.g. one item's levels
            lo, hi = bounds
            if desc:
                after = hi + 1 if after is None else min(after, hi + 1)
                before = lo - 1 if before is None else max(before, lo - 1)
            else:
                after = lo - 1 if after is None else max(after, lo - 1)
                before = hi + 1 if before is None else min(before, hi + 1)

        def scan(reverse: bool, start: int | None, stop: int | None) -> Iterator[tuple[int, int, dict]]:
            return store.scan(
                type_name, sort=sort, descending=reverse, query=q, view=view, start_after=start, stop_before=stop, where=where
            )

        def exists_beyond(reverse: bool, edge: int | None) -> bool:
            # Any match at or beyond ``edge`` (inclusive) walking in direction ``reverse``?
            if edge is None:
                return False
            start = edge - 1 if not reverse else edge + 1
            return next(iter(scan(reverse, start, None)), None) is not None

        if first is not None:
            items = list(islice(scan(desc, after, before), first + 1))
            has_next = len(items) > first
            items = items[:first]
            if args.get("after") is not None:
                has_prev = exists_beyond(not desc, after)
            else:
                has_prev = False
            if last is not None:
                has_prev = has_prev or len(items) > last
                items = items[len(items) - last :] if last else []
        else:
            assert last is not None
            items = list(islice(scan(not desc, before, after), last + 1))
            has_prev = len(items) > last
            items = items[:last]
            items.reverse()
            has_next = exists_beyond(desc, before) if args.get("before") is not None else False
        edges = []
        for key, _idx, rec in items:
            value, num = store.position_of(type_name, sort, key)
            edges.append((encode_cursor(num, value if sort == "id" else fmt_ts(value)), rec))
        return _connection(edges, has_next, has_prev)

    def _store_key(self, type_name: str, sort: str, cursor: str | None) -> int | None:
        if cursor is None:
            return None
        num, value = decode_cursor(cursor)
        if sort == "id":
            return self.store.key_for(type_name, sort, num, num)
        if not isinstance(value, str):
            raise ExecutionFieldError(f"Invalid cursor '{cursor}' for this sort key.", code="BAD_REQUEST")
        try:
            seconds = int(parse_ts(value).timestamp())
        except ValueError as exc:
            raise ExecutionFieldError(f"Invalid cursor '{cursor}'.", code="BAD_REQUEST") from exc
        return self.store.key_for(type_name, sort, seconds, num)

    def _mem_connection(
        self,
        ctx: ExecContext,
        type_name: str,
        args: Mapping[str, Any],
        *,
        field_name: str,
        q: SearchQuery | None,
        view: str,
        what: str,
        where: Callable[[int, dict], bool] | None,
    ) -> dict:
        """A page of a small table sorted in memory by a non-indexed field (NAME, TITLE …)."""
        first, last = self._page_size(args, what)
        if ctx.store.live_count(type_name) > _MEM_SORT_LIMIT:
            raise ExecutionFieldError(
                f"sorting {what} by {field_name} is not modelled by the shopsync simulator for more than"
                f" {_MEM_SORT_LIMIT} records",
                code="NOT_MODELLED",
            )
        rows = sorted(
            ((str(rec.get(field_name) or ""), _numeric_id(rec["id"])), rec)
            for _k, _i, rec in ctx.store.scan(type_name, query=q, view=view, where=where)
        )
        keys = [k for k, _ in rows]
        desc = bool(args.get("reverse"))
        lo, hi = 0, len(keys)
        for name in ("after", "before"):
            cursor = args.get(name)
            if cursor is None:
                continue
            num, value = decode_cursor(cursor)
            if not isinstance(value, str):
                raise ExecutionFieldError(f"Invalid cursor '{cursor}' for this sort key.", code="BAD_REQUEST")
            k = (value, num)
            if (name == "after") != desc:
                lo = max(lo, bisect_right(keys, k))
            else:
                hi = min(hi, bisect_left(keys, k))
        hi = max(hi, lo)
        order, has_next, has_prev = self._window(len(keys), lo, hi, desc, first, last)
        return _connection([(encode_cursor(keys[i][1], keys[i][0]), rows[i][1]) for i in order], has_next, has_prev)

    def _location_filter(self, args: Mapping[str, Any]) -> Callable[[int, dict], bool]:
        inactive = bool(args.get("includeInactive"))
        legacy = bool(args.get("includeLegacy"))

        def ok(_idx: int, rec: dict) -> bool:
            return (inactive or rec["isActive"]) and (legacy or not rec.get("_legacy"))

        return ok

    def _root_plan(
        self, name: str, args: Mapping[str, Any]
    ) -> tuple[_RootSpec, tuple[str, str], SearchQuery | None, str, Callable[[int, dict], bool] | None]:
        spec = _ROOTS[name]
        sort_key = args.get("sortKey") or spec.default_sort
        sort = spec.sorts.get(sort_key)
        if sort is None:
            raise ExecutionFieldError(
                f"sortKey {sort_key} of '{name}' is not modelled by the shopsync simulator"
                f" (modelled: {', '.join(sorted(spec.sorts))})",
                code="NOT_MODELLED",
            )
        q = self._search(args.get("query"), spec.connection)
        view = "index" if (q is not None or sort == (_STORE, "updated")) else "live"
        where = self._location_filter(args) if name == "locations" else None
        return spec, sort, q, view, where

    def _make_root_connection(self, name: str) -> Resolver:
        def resolve(args: dict[str, Any], ctx: ExecContext) -> Any:
            spec, (how, sort), q, view, where = self._root_plan(name, args)
            if how == _MEM:
                return self._mem_connection(ctx, spec.type_name, args, field_name=sort, q=q, view=view, what=name, where=where)
            return self._store_connection(ctx, spec.type_name, args, sort=sort, q=q, view=view, what=name, where=where)

        return resolve

    def _make_count(self, name: str) -> Resolver:
        type_name, connection = _COUNTS[name]

        def resolve(args: dict[str, Any], ctx: ExecContext) -> dict:
            limit = args["limit"] if "limit" in args else 10_000
            if limit is not None and limit < 0:
                raise ExecutionFieldError(f"The limit argument of '{name}' must not be negative.")
            q = self._search(args.get("query"), connection)
            n = ctx.store.count(type_name, query=q, view="index" if q is not None else "live", limit=limit)
            if limit is not None and n > limit:
                return {"count": limit, "precision": "AT_LEAST"}
            return {"count": n, "precision": "EXACT"}

        return resolve

    def _make_by_id(self, type_name: str) -> Resolver:
        def resolve(args: dict[str, Any], ctx: ExecContext) -> dict | None:
            gid = args.get("id")
            if gid is None:
                return None
            if gid_type(str(gid)) != type_name:
                return None
            return ctx.store.get(str(gid))

        return resolve

    def _resolve_node(self, gid: Any, ctx: ExecContext) -> dict | None:
        gid = str(gid)
        t = gid_type(gid)
        if t is None:
            raise ExecutionFieldError(f"Invalid global id '{gid}'", code="BAD_REQUEST")
        resolver = self._node_resolvers.get(t)
        if resolver is not None:
            return resolver({"id": gid}, ctx)
        return ctx.store.get(gid)

    def _node(self, args: dict[str, Any], ctx: ExecContext) -> dict | None:
        return self._resolve_node(args["id"], ctx)

    def _nodes(self, args: dict[str, Any], ctx: ExecContext) -> list:
        ids = args.get("ids") or []
        if len(ids) > MAX_INPUT_ARRAY:
            raise ExecutionFieldError(
                f"The input array size of {len(ids)} is greater than the maximum allowed of {MAX_INPUT_ARRAY}.",
                code="MAX_INPUT_SIZE_EXCEEDED",
            )
        return [self._resolve_node(g, ctx) for g in ids]

    # -- special fields ------------------------------------------------------------------------------
    def _location_levels(self, ctx: ExecContext, rec: dict, args: dict, f: _F, path: tuple) -> Any:
        n_loc = max(1, ctx.store.data.count("Location"))
        loc_idx = _numeric_id(rec["id"]) - ID_BASE["Location"]
        include_inactive = bool(args.get("includeInactive"))
        q = self._search(args.get("query"), "inventoryLevels")
        view = "index" if q is not None else "live"

        def where(idx: int, level: dict) -> bool:
            return idx % n_loc == loc_idx and (include_inactive or level["isActive"])

        if ctx.mode != "page":
            return [r for _k, _i, r in ctx.store.scan("InventoryLevel", query=q, view=view, where=where)]
        return self._store_connection(
            ctx, "InventoryLevel", args, sort="id", q=q, view=view, what="Location.inventoryLevels", where=where
        )

    def _item_levels(self, ctx: ExecContext, rec: dict, args: dict, f: _F, path: tuple) -> Any:
        n_loc = ctx.store.data.count("Location")
        item_idx = _numeric_id(rec["id"]) - ID_BASE["InventoryItem"]
        include_inactive = bool(args.get("includeInactive"))
        q = self._search(args.get("query"), "inventoryLevels")
        view = "index" if q is not None else "live"
        lo, hi = item_idx * n_loc, item_idx * n_loc + n_loc - 1

        def where(_idx: int, level: dict) -> bool:
            return include_inactive or level["isActive"]

        if ctx.mode != "page":
            return [
                r
                for _k, _i, r in ctx.store.scan(
                    "InventoryLevel", query=q, view=view, start_after=lo - 1, stop_before=hi + 1, where=where
                )
            ]
        return self._store_connection(
            ctx, "InventoryLevel", args, sort="id", q=q, view=view, what="InventoryItem.inventoryLevels",
            where=where, bounds=(lo, hi),
        )  # fmt: skip

    def _quantities(self, ctx: ExecContext, rec: dict, args: dict, f: _F, path: tuple) -> list[dict]:
        names = args.get("names") or []
        q = rec["_quantities"]
        at = rec["_quantities_at"]
        level_num = _numeric_id(rec["id"])
        out = []
        for name in names:
            if name not in q:
                raise ExecutionFieldError(
                    f"'{name}' is not a valid inventory quantity name (valid: {', '.join(_INVENTORY_QUANTITY_NAMES)})",
                    code="BAD_REQUEST",
                )
            out.append({
                "id": f"gid://shopify/InventoryQuantity/{level_num}?name={name}",
                "name": name,
                "quantity": q[name],
                "updatedAt": at[name],
            })
        return out

    def _item_level(self, ctx: ExecContext, rec: dict, args: dict, f: _F, path: tuple) -> dict | None:
        loc = args.get("locationId")
        if gid_type(str(loc)) != "Location":
            return None
        return self._level(ctx, _numeric_id(rec["id"]) - ID_BASE["InventoryItem"], _numeric_id(str(loc)) - ID_BASE["Location"])

    def _location_level(self, ctx: ExecContext, rec: dict, args: dict, f: _F, path: tuple) -> dict | None:
        item = args.get("inventoryItemId")
        if gid_type(str(item)) != "InventoryItem":
            return None
        return self._level(ctx, _numeric_id(str(item)) - ID_BASE["InventoryItem"], _numeric_id(rec["id"]) - ID_BASE["Location"])

    def _level(self, ctx: ExecContext, item_idx: int, loc_idx: int) -> dict | None:
        data = ctx.store.data
        if not (0 <= loc_idx < data.count("Location")) or item_idx < 0:
            return None
        return ctx.store.tables["InventoryLevel"].record(data.level_idx(item_idx, loc_idx))

    # -- bulk and materialize ---------------------------------------------------------------------------
    def _bulk_setup(
        self, document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None, request: Any
    ) -> tuple:
        try:
            ctx = self._context(document, variables, operation_name, request)
        except ExecutionFieldError as exc:
            raise BulkQueryError(exc.message) from exc
        if ctx.operation.operation != OperationType.QUERY:
            raise BulkQueryError("a bulk query must be a query operation")
        problems = self.check(document, operation_name)
        if problems:
            raise BulkQueryError("; ".join(p["message"] for p in problems), problems)
        qt = self.schema.query_type
        assert qt is not None
        plan = [f for f in self._compile(ctx, qt, (ctx.operation.selection_set,)) if f.kind != TYPENAME]
        if len(plan) != 1 or plan[0].kind != CONNECTION or plan[0].name not in _ROOTS:
            raise BulkQueryError(
                "a bulk query must select exactly one root connection modelled by the simulator"
                f" ({', '.join(sorted(_ROOTS))})"
            )
        f = plan[0]
        args = self._args(ctx, f)
        try:
            spec, (how, sort), q, view, where = self._root_plan(f.name, args)
        except (ExecutionFieldError, SearchSyntaxError) as exc:
            raise BulkQueryError(str(exc)) from exc
        if how == _MEM:
            sort = "id"  # bulk output order is not promised anyway
        ctx.mode = "bulk"
        return ctx, f, spec, sort, bool(args.get("reverse")), q, view, where

    def _bulk_iter(
        self, ctx: ExecContext, f: _F, spec: _RootSpec, sort: str, desc: bool, q: SearchQuery | None, view: str,
        where: Callable[[int, dict], bool] | None, group_objects: bool,
    ) -> Iterator[dict]:  # fmt: skip
        nf = f.node_field
        assert nf is not None
        # A fresh stream per export: the same query on the same data gives the same file.
        rng = random.Random((ctx.store.config.seed << 4) | 0xB)

        def build(nfield: _F, rec: dict, parent: str | None) -> tuple[dict, list]:
            ctx.children = []
            ctx.row_id = rec.get("id")
            row = self._value(ctx, nfield, rec, ())
            if parent is not None:
                row["__parentId"] = parent
            return row, ctx.children

        def emit_grouped(nfield: _F, rec: dict, parent: str | None) -> Iterator[dict]:
            row, kids = build(nfield, rec, parent)
            yield row
            for parent_id, _key, child_field, records in kids:
                for child in records:
                    yield from emit_grouped(child_field, child, parent_id)

        def emit_chunk(entries: list[tuple[dict, list]]) -> Iterator[dict]:
            # Roots (or children) of the chunk first, then their children, alternating between
            # connection fields parent by parent; deeper levels follow the same rule.
            for row, _kids in entries:
                yield row
            child_entries: list[tuple[dict, list]] = []
            for _row, kids in entries:
                for parent_id, _key, child_field, records in kids:
                    for child in records:
                        child_entries.append(build(child_field, child, parent_id))
            if child_entries:
                yield from emit_chunk(child_entries)

        scan = ctx.store.scan(spec.type_name, sort=sort, descending=desc, query=q, view=view, where=where)
        if group_objects:
            for _key, _idx, rec in scan:
                yield from emit_grouped(nf, rec, None)
            return
        chunk: list[tuple[dict, list]] = []
        size = 8 + int(rng.random() * 41)
        for _key, _idx, rec in scan:
            chunk.append(build(nf, rec, None))
            if len(chunk) >= size:
                yield from emit_chunk(chunk)
                chunk = []
                size = 8 + int(rng.random() * 41)
        if chunk:
            yield from emit_chunk(chunk)

    def _materialize_setup(
        self, type_name: str, selection: DocumentNode | SelectionSetNode | str
    ) -> tuple[ExecContext, tuple[SelectionSetNode, ...]]:
        if isinstance(selection, str):
            selection = parse(selection)
        if isinstance(selection, SelectionSetNode):
            doc = DocumentNode(definitions=())
            sets: tuple[SelectionSetNode, ...] = (selection,)
        else:
            doc = selection
            frags = [
                d for d in doc.definitions
                if isinstance(d, FragmentDefinitionNode) and d.type_condition.name.value == type_name
            ]  # fmt: skip
            if not frags:
                raise ValueError(f"no fragment on {type_name} in the document")
            sets = (frags[0].selection_set,)
        dummy_op = OperationDefinitionNode(operation=OperationType.QUERY, selection_set=sets[0], variable_definitions=())
        fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
        errors: list[dict] = []
        self._check(self._object_type(type_name), sets[0], (), fragments, errors, set())
        if errors:
            raise ValueError("; ".join(e["message"] for e in errors))
        ctx = ExecContext(self, self.store, doc, dummy_op, {}, None, mode="array", fragments=fragments)
        return ctx, sets


def _connection(edges: list[tuple[str | None, dict]], has_next: bool, has_prev: bool) -> dict:
    return {
        "edges": [{"cursor": c, "node": n} for c, n in edges],
        "nodes": [n for _c, n in edges],
        "pageInfo": {
            "hasNextPage": has_next,
            "hasPreviousPage": has_prev,
            "startCursor": edges[0][0] if edges else None,
            "endCursor": edges[-1][0] if edges else None,
        },
    }


def _locations(node: Any) -> list[dict]:
    loc = getattr(node, "loc", None)
    if loc is None or loc.source is None:
        return []
    where = get_location(loc.source, loc.start)
    return [{"line": where.line, "column": where.column}]
