"""Execute validated GraphQL documents against a :class:`~shopsync.simulator.store.ShopStore`.

Records are plain dicts keyed by schema field names (:mod:`shopsync.simulator.data`). Instead of
graphql-core's resolver machinery (too slow for 250 orders × 25 line items per page), a small
projector walks the request's selection sets over those dicts: aliases, fragments, inline
fragments with type conditions, ``@skip``/``@include``, ``__typename`` (only when asked for),
variables and field arguments. graphql-core is used for parsing and validation only — done by the
caller (:func:`shopsync.shopify.schema.parse_and_validate`) before :meth:`Executor.execute`.

The executor is laid out by concern; this module is the entry point and the registry of fields:

* :mod:`~shopsync.simulator.exec_context` — the per-execution context, result and error types;
* :mod:`~shopsync.simulator.modelled` — refusing fields the simulator does not model;
* :mod:`~shopsync.simulator.plan` and :mod:`~shopsync.simulator.compiler` — compiled selections;
* :mod:`~shopsync.simulator.projection` — records projected through plans;
* :mod:`~shopsync.simulator.cursors` and :mod:`~shopsync.simulator.connections` — pages;
* :mod:`~shopsync.simulator.roots` — the built-in root fields (listings, counts, node lookups);
* :mod:`~shopsync.simulator.inventory_fields` — inventory fields computed from the level table;
* :mod:`~shopsync.simulator.bulk_rows` and :mod:`~shopsync.simulator.materialize` — bulk rows and
  the "truth" of a perfect sync.

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

Bulk rows (:meth:`Executor.bulk_rows`) run over *all* matching root nodes, each nested
connection's children as rows of their own with ``"__parentId"``; their order is described in
:mod:`shopsync.simulator.bulk_rows`. :meth:`Executor.materialize` gives the "truth": every live
record of a type with nested connections as complete arrays (docs/ARCHITECTURE.md, "Sink record
shape").

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

import gc
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from graphql import (
    DocumentNode,
    FragmentDefinitionNode,
    GraphQLObjectType,
    GraphQLSchema,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    value_from_ast_untyped,
)

from shopsync.shopify.schema import load_schema
from shopsync.simulator import bulk_rows as _bulk
from shopsync.simulator import materialize as _materialize
from shopsync.simulator.collection_fields import COLLECTION_SPECIALS
from shopsync.simulator.compiler import compile_plan, field_args
from shopsync.simulator.cursors import MAX_PAGE_SIZE, decode_cursor, encode_cursor
from shopsync.simulator.exec_context import (
    BulkQueryError,
    ExecContext,
    ExecResult,
    ExecutionFieldError,
    Resolver,
    record_error,
)
from shopsync.simulator.fulfilment_fields import FULFILMENT_NODES, FULFILMENT_SPECIALS
from shopsync.simulator.inventory_fields import SPECIALS, Special
from shopsync.simulator.media_fields import MEDIA_SPECIALS
from shopsync.simulator.metafield_fields import METAFIELD_SPECIALS
from shopsync.simulator.modelled import ModelChecker
from shopsync.simulator.order_detail_fields import ORDER_DETAIL_SPECIALS
from shopsync.simulator.payments_fields import PAYMENTS_SPECIALS
from shopsync.simulator.plan import TYPENAME
from shopsync.simulator.projection import complete_value
from shopsync.simulator.roots import builtin_root_resolvers
from shopsync.simulator.search import SearchSyntaxError
from shopsync.simulator.store import ShopStore

__all__ = [
    "BulkQueryError",
    "ExecContext",
    "ExecResult",
    "ExecutionFieldError",
    "Executor",
    "MAX_PAGE_SIZE",
    "Resolver",
    "decode_cursor",
    "encode_cursor",
]


class Executor:
    """Executes validated documents against a store. One per simulated shop; not thread-safe.

    ``root_resolvers``, ``mutations`` and ``node_resolvers`` are the fields served (the built-in
    ones plus those registered); ``specials`` the computed fields by ``(type, field)``.
    """

    def __init__(self, store: ShopStore, schema: GraphQLSchema | None = None) -> None:
        self.store = store
        self.schema = schema or load_schema()
        self.root_resolvers: dict[str, Resolver] = builtin_root_resolvers()
        self.mutations: dict[str, Resolver] = {}
        self.node_resolvers: dict[str, Resolver] = dict(FULFILMENT_NODES)
        self.specials: dict[tuple[str, str], Special] = {
            **SPECIALS, **PAYMENTS_SPECIALS, **METAFIELD_SPECIALS, **COLLECTION_SPECIALS, **MEDIA_SPECIALS,
            **FULFILMENT_SPECIALS, **ORDER_DETAIL_SPECIALS,
        }  # fmt: skip
        self.model = ModelChecker(self.schema, self.root_resolvers, self.mutations)

    # -- registration (for the server) --------------------------------------------------------------
    def register_root_field(self, name: str, resolver: Resolver) -> None:
        """Serve QueryRoot field ``name`` with ``resolver(args, ctx)`` returning plain dicts keyed
        by schema field names (abstract values need ``"__typename"``), lists or ``None``; the
        projector applies the request's selection. Raise :class:`ExecutionFieldError` for errors."""
        self.root_resolvers[name] = resolver

    def register_mutation(self, name: str, resolver: Resolver) -> None:
        """Serve Mutation field ``name`` (same contract as :meth:`register_root_field`)."""
        self.mutations[name] = resolver

    def register_node_resolver(self, type_name: str, resolver: Resolver) -> None:
        """Let ``node``/``nodes`` resolve GIDs of ``type_name`` (e.g. ``BulkOperation``):
        ``resolver({"id": gid}, ctx)`` returns the record dict (with ``__typename``) or ``None``."""
        self.node_resolvers[type_name] = resolver

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
            ctx = self.context(document, variables, operation_name, context)
        except ExecutionFieldError as exc:
            return ExecResult(None, [{"message": exc.message, "extensions": {"code": exc.code, **exc.extensions}}])
        problems = self.check(document, operation_name)
        if problems:
            return ExecResult(None, problems)
        op = ctx.operation
        root_type: GraphQLObjectType | None
        if op.operation == OperationType.MUTATION:
            root_type = self.schema.mutation_type
            resolvers = self.mutations
        elif op.operation == OperationType.QUERY:
            root_type = self.schema.query_type
            resolvers = self.root_resolvers
        else:
            return ExecResult(None, [{"message": "Subscriptions are not supported", "extensions": {"code": "NOT_MODELLED"}}])
        assert root_type is not None
        data: dict[str, Any] = {}
        for f in compile_plan(ctx, root_type, (op.selection_set,)):
            if f.kind == TYPENAME:
                data[f.key] = root_type.name
                continue
            resolver = resolvers[f.name]
            try:
                value = resolver(field_args(ctx, f), ctx)
            except ExecutionFieldError as exc:
                record_error(ctx, f.nodes, (f.key,), exc)
                data[f.key] = None
                continue
            except SearchSyntaxError as exc:
                record_error(ctx, f.nodes, (f.key,), ExecutionFieldError(str(exc), code="BAD_REQUEST"))
                data[f.key] = None
                continue
            data[f.key] = complete_value(ctx, f, value, (f.key,))
        return ExecResult(data, ctx.errors, ctx.runtime_types)

    def check(self, document: DocumentNode, operation_name: str | None = None) -> list[dict]:
        """Errors for fields the simulator does not model (empty if the document is runnable)."""
        op = self._operation(document, operation_name)
        fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        root = self.schema.mutation_type if op.operation == OperationType.MUTATION else self.schema.query_type
        errors: list[dict] = []
        assert root is not None
        self.model.check(root, op.selection_set, (), fragments, errors, set())
        return errors

    def bulk_rows(
        self,
        document: DocumentNode,
        *,
        group_objects: bool,
        variables: Mapping[str, Any] | None = None,
        operation_name: str | None = None,
        context: Any = None,
        root_order: str = "sorted",
    ) -> Iterator[dict]:
        """Rows of a bulk export of ``document`` (see :mod:`shopsync.simulator.bulk_rows` for their order).

        Raises :class:`BulkQueryError` (before yielding anything) if the query cannot run.
        Lazy: records are read as rows are consumed, so changes made meanwhile show up as they
        would on Shopify (each root page is re-read from the index by key).
        """
        export = _bulk.bulk_export(self, document, variables, operation_name, context)
        return _bulk.bulk_rows(export, group_objects, root_order)

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
        return _materialize.materialize(self, type_name, selection, where=where)

    def materialize_resource(self, path: str | Path) -> Iterator[dict]:
        """:meth:`materialize` for a resource file (``shopsync/queries/resources/orders.graphql``):
        the fragment's type, honouring ``root_args`` ``includeInactive``/``includeLegacy`` for
        location-rooted resources."""
        return _materialize.materialize_resource(self, path)

    # -- operation and context -----------------------------------------------------------------------
    def _operation(self, document: DocumentNode, operation_name: str | None) -> OperationDefinitionNode:
        ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
        if operation_name is not None:
            ops = [o for o in ops if o.name is not None and o.name.value == operation_name]
        if len(ops) != 1:
            what = f"named {operation_name!r}" if operation_name else "(the document has several; name one)"
            raise ExecutionFieldError(f"No single operation {what}", code="BAD_REQUEST")
        return ops[0]

    def context(
        self, document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None, request: Any
    ) -> ExecContext:
        """The execution context of ``document``'s operation (variables with their defaults).

        Raises :class:`ExecutionFieldError` when no single operation matches ``operation_name``.
        """
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
