"""The state and outcome of one execution: context, result, and the errors resolvers raise.

:class:`ExecContext` is what every part of the executor (compiler, projector, connections,
resolvers registered by the server) receives; :class:`ExecutionFieldError` is how a resolver
reports a GraphQL error at its field; :class:`BulkQueryError` refuses a bulk query up front.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode, FieldNode, FragmentDefinitionNode, OperationDefinitionNode, get_location

from shopsync.simulator.store import ShopStore

if TYPE_CHECKING:
    from shopsync.simulator.executor import Executor
    from shopsync.simulator.plan import PlanField

__all__ = [
    "BulkQueryError",
    "ExecContext",
    "ExecResult",
    "ExecutionFieldError",
    "Resolver",
    "Where",
    "error_locations",
    "record_error",
]

#: A field resolver: ``resolver(args, ctx)`` returns plain dicts keyed by schema field names,
#: lists or ``None``; the projector applies the request's selection to what it returns.
Resolver = Callable[[dict[str, Any], "ExecContext"], Any]

#: A filter over a table's records: ``where(idx, record)``.
Where = Callable[[int, dict], bool]


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
    """The answer to one execution: ``data`` (``None`` when refused) and GraphQL-shaped ``errors``."""

    data: dict | None
    errors: list[dict] = field(default_factory=list)
    #: the concrete type of each abstract-typed value in ``data``, by response path: what the
    #: actual cost is computed from when ``__typename`` was not selected (Shopify knows it too)
    runtime_types: dict[tuple[str | int, ...], str] = field(default_factory=dict)


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
    #: bulk mode: (parent gid, response key, node field, records) collected per row
    children: list[tuple[str, str, PlanField, list]] | None = None
    exists_memo: dict[str, bool] = field(default_factory=dict)
    row_id: str | None = None  # bulk mode: the GID of the row being built
    #: page mode: the concrete type each abstract-typed value was resolved to, by response path
    runtime_types: dict[tuple[str | int, ...], str] = field(default_factory=dict)


def error_locations(node: Any) -> list[dict]:
    """GraphQL ``locations`` of an AST node (empty when the node carries no source)."""
    loc = getattr(node, "loc", None)
    if loc is None or loc.source is None:
        return []
    where = get_location(loc.source, loc.start)
    return [{"line": where.line, "column": where.column}]


def record_error(ctx: ExecContext, nodes: Sequence[FieldNode], path: tuple, exc: ExecutionFieldError) -> None:
    """Add ``exc`` to the execution's errors, located at the first of the field's ``nodes``."""
    ctx.errors.append({
        "message": exc.message,
        "locations": error_locations(nodes[0]) if nodes else [],
        "path": list(path),
        "extensions": {"code": exc.code, **exc.extensions},
    })
