"""Is an answer's ``data`` shaped the way the document asked? Pure checks, no I/O.

A 200 answer without errors is not yet a page: ``data`` may lack the root field, a connection may
come without ``pageInfo`` or with ``nodes`` that are a string, a count may be text (issue 10,
"answers are checked, never trusted"). Each check here takes the answer's ``data`` and a
description of what the document selected and returns ``None`` when the answer can be used, else
one short sentence naming the path and the fault::

    data.orders.pageInfo missing
    data.orders.edges is a string, not a list
    data.ordersCount.count is a string ('many'), not a count

The engine builds the description from the resource (it knows the root and nested connection
paths of every document it sends) and hands the check to
:meth:`shopsync.client.ShopClient.execute`, which treats a problem like a 5xx
(:class:`~shopsync.errors.MalformedAnswerError`: resent with backoff). A second family of checks,
:func:`stall_problem`, says whether a well-formed page fails to advance its cursor.

Nothing here imports the query model (it lives above this layer): shapes are plain field names.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Nested",
    "object_problem",
    "PageShape",
    "bulk_list_problem",
    "bulk_operation_problem",
    "bulk_start_problem",
    "check_page",
    "connection_at",
    "connection_problem",
    "count_problem",
    "kind",
    "page_nodes",
    "stall_problem",
]


@dataclass(frozen=True)
class Nested:
    """A nested connection selected in every node: its field name and its own nested connections.

    ``through``: the list of objects between the node and the connection (``("refunds",)`` for
    ``refunds[].refundLineItems``); each element must then be an object with an ``id``, the node
    its drain pages under. ``within``: the one object of the node the connection is selected in,
    through an inline fragment (``("discount",)``, a union): members without the connection do
    not hold it."""

    field: str
    children: tuple[Nested, ...] = ()
    through: tuple[str, ...] = ()
    within: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class PageShape:
    """Where a page's connection is and what its nodes hold.

    ``path`` goes from ``data`` to the connection (``("orders",)``; under ``node(id:)``:
    ``("node", "lineItems")``). ``vanishing``: ``data.<path[0]>`` may be null (a ``node(id:)``
    whose record was deleted meanwhile) — then the page is empty, not malformed. ``nested`` are
    the connections inside each node (each must carry ``pageInfo`` and its nodes). ``node_id``:
    each node must carry a non-empty string ``id`` (records do; events selected through an
    inline fragment may be ``{}``).
    """

    path: tuple[str, ...]
    nested: tuple[Nested, ...] = ()
    vanishing: bool = False
    node_id: bool = True


def kind(value: object) -> str:
    """What a JSON value is, for a message: ``null``, ``a string ('many')``, ``a list`` …"""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"a number ({value!r})"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"a string ({shown!r})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, Mapping):
        return "an object"
    return type(value).__name__


def _where(path: Sequence[str]) -> str:
    return ".".join(("data", *path))


def check_page(data: object, shape: PageShape) -> str | None:
    """The first problem of a page answer's ``data`` against ``shape``, or ``None``."""
    if not isinstance(data, Mapping):
        return f"data is {kind(data)}, not an object"
    obj: Mapping[str, Any] = data
    for i, key in enumerate(shape.path):
        where = _where(shape.path[: i + 1])
        if key not in obj:
            return f"{where} missing"
        value = obj[key]
        if value is None and i == 0 and shape.vanishing:
            return None  # the node is gone: an empty page
        if i == len(shape.path) - 1:
            return connection_problem(value, where, shape.nested, node_id=shape.node_id)
        if not isinstance(value, Mapping):
            return f"{where} is {kind(value)}, not an object"
        obj = value
    return None


def object_problem(data: object, field: str) -> str | None:
    """The first problem of a single-object answer (``data.shop``): an object with a string id."""
    if not isinstance(data, Mapping):
        return f"data is {kind(data)}, not an object"
    value = data.get(field)
    if not isinstance(value, Mapping):
        return f"data.{field} is {kind(value)}, not an object"
    ident = value.get("id")
    if not isinstance(ident, str) or not ident:
        return f"data.{field}.id is {kind(ident)}, not an id"
    return None


def connection_at(data: Mapping[str, Any], shape: PageShape) -> Mapping[str, Any] | None:
    """The connection of a page that passed :func:`check_page` (``None``: the node vanished)."""
    obj: Any = data
    for key in shape.path:
        obj = obj.get(key) if isinstance(obj, Mapping) else None
        if obj is None:
            return None
    return obj if isinstance(obj, Mapping) else None


def page_nodes(conn: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The nodes of a connection that passed :func:`connection_problem`, in either form."""
    if "edges" in conn:
        return [edge["node"] for edge in conn["edges"]]
    return list(conn["nodes"])


def connection_problem(
    value: object, where: str, nested: Sequence[Nested] = (), *, node_id: bool = False
) -> str | None:
    """The first problem of one connection value (``pageInfo`` and ``edges { node }``/``nodes``)."""
    if not isinstance(value, Mapping):
        return f"{where} is {kind(value)}, not a connection object"
    problem = _page_info_problem(value, where)
    if problem is not None:
        return problem
    if "edges" in value:
        edges = value["edges"]
        if not isinstance(edges, list):
            return f"{where}.edges is {kind(edges)}, not a list"
        nodes: list[tuple[str, object]] = []
        for i, edge in enumerate(edges):
            if not isinstance(edge, Mapping):
                return f"{where}.edges[{i}] is {kind(edge)}, not an object"
            if "node" not in edge:
                return f"{where}.edges[{i}].node missing"
            nodes.append((f"{where}.edges[{i}].node", edge["node"]))
    elif "nodes" in value:
        listed = value["nodes"]
        if not isinstance(listed, list):
            return f"{where}.nodes is {kind(listed)}, not a list"
        nodes = [(f"{where}.nodes[{i}]", node) for i, node in enumerate(listed)]
    else:
        return f"{where}: neither edges nor nodes"
    for node_where, node in nodes:
        problem = _node_problem(node, node_where, nested, node_id=node_id)
        if problem is not None:
            return problem
    return None


def _page_info_problem(conn: Mapping[str, Any], where: str) -> str | None:
    if "pageInfo" not in conn:
        return f"{where}.pageInfo missing"
    info = conn["pageInfo"]
    if not isinstance(info, Mapping):
        return f"{where}.pageInfo is {kind(info)}, not an object"
    if "hasNextPage" not in info:
        return f"{where}.pageInfo.hasNextPage missing"
    if not isinstance(info["hasNextPage"], bool):
        return f"{where}.pageInfo.hasNextPage is {kind(info['hasNextPage'])}, not a boolean"
    if "endCursor" not in info:
        return f"{where}.pageInfo.endCursor missing"
    cursor = info["endCursor"]
    if cursor is not None and not isinstance(cursor, str):
        return f"{where}.pageInfo.endCursor is {kind(cursor)}, not a string"
    return None


def _node_problem(node: object, where: str, nested: Sequence[Nested], *, node_id: bool) -> str | None:
    if not isinstance(node, Mapping):
        return f"{where} is {kind(node)}, not an object"
    if node_id:
        gid = node.get("id")
        if not isinstance(gid, str) or not gid:
            return f"{where}.id missing" if "id" not in node else f"{where}.id is {kind(gid)}, not an id"
    for nc in nested:
        for owner, owner_where in _owners(node, nc, where):
            if isinstance(owner, str):
                return owner  # the problem of the list it hangs from
            here = f"{owner_where}.{nc.field}"
            if nc.field not in owner:
                return f"{here} missing"
            value = owner[nc.field]
            if value is None:
                continue  # a null connection reads as no nodes (records get [])
            problem = connection_problem(value, here, nc.children)
            if problem is not None:
                return problem
    return None


def _owners(node: Mapping[str, Any], nc: Nested, where: str) -> list[tuple[Any, str]]:
    """The objects holding ``nc`` in ``node`` with their place, or one ``(problem, "")``."""
    if nc.within:
        (object_field,) = nc.within
        here = f"{where}.{object_field}"
        if object_field not in node:
            return [(f"{here} missing", "")]
        inner = node[object_field]
        if inner is not None and not isinstance(inner, Mapping):
            return [(f"{here} is {kind(inner)}, not an object", "")]
        # A member of the object's union without the connection does not hold it.
        return [(inner, here)] if inner is not None and nc.field in inner else []
    if not nc.through:
        return [(node, where)]
    (list_field,) = nc.through
    here = f"{where}.{list_field}"
    if list_field not in node:
        return [(f"{here} missing", "")]
    items = node[list_field]
    if items is None:
        return []
    if not isinstance(items, list):
        return [(f"{here} is {kind(items)}, not a list", "")]
    owners: list[tuple[Any, str]] = []
    for i, item in enumerate(items):
        at = f"{here}[{i}]"
        if not isinstance(item, Mapping):
            return [(f"{at} is {kind(item)}, not an object", "")]
        gid = item.get("id")
        if not isinstance(gid, str) or not gid:
            return [(f"{at}.id missing" if "id" not in item else f"{at}.id is {kind(gid)}, not an id", "")]
        owners.append((item, at))
    return owners


# -- does a page advance? --------------------------------------------------------------------------
def stall_problem(after: str | None, page_info: Mapping[str, Any], nodes: int, seen: Collection[str] = ()) -> str | None:
    """Why a well-formed page does not move its connection on, or ``None`` when it does.

    ``after`` is the cursor the page was asked with, ``nodes`` how many nodes it held, ``seen``
    the end cursors of the pages read before it in the same walk. A last page
    (``hasNextPage`` false) always ends the walk, so it never stalls.
    """
    if not page_info.get("hasNextPage"):
        return None
    cursor = page_info.get("endCursor")
    if cursor is None:
        return "hasNextPage is true but endCursor is null"
    if cursor == after:
        return f"endCursor {_short(cursor)} is the cursor the page was asked with"
    if cursor in seen:
        return f"endCursor {_short(cursor)} was already returned by an earlier page"
    if nodes == 0:
        return "an empty page with hasNextPage true"
    return None


def _short(cursor: str) -> str:
    return repr(cursor if len(cursor) <= 40 else cursor[:37] + "...")


def _root_object(data: object, field: str, *, nullable: bool = False) -> tuple[Mapping[str, Any] | None, str, str | None]:
    """``data.<field>`` as an object, its path, and the problem (data not an object, the field
    missing or not an object; null is fine when ``nullable``): ``(value, where, problem)``."""
    where = _where((field,))
    if not isinstance(data, Mapping):
        return None, where, f"data is {kind(data)}, not an object"
    if field not in data:
        return None, where, f"{where} missing"
    value = data[field]
    if value is None and nullable:
        return None, where, None
    if not isinstance(value, Mapping):
        return None, where, f"{where} is {kind(value)}, not an object"
    return value, where, None


# -- counts ---------------------------------------------------------------------------------------
def count_problem(data: object, field: str) -> str | None:
    """The problem of a count answer (``data.<field>.count``, a non-negative integer), or ``None``."""
    value, where, problem = _root_object(data, field)
    if value is None:
        return problem
    if "count" not in value:
        return f"{where}.count missing"
    count = value["count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        return f"{where}.count is {kind(count)}, not a count"
    return None


# -- the bulk operation documents -------------------------------------------------------------------
def _unsigned(value: object) -> bool:
    """``UnsignedInt64`` travels as a decimal string; accept a plain integer too."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return value >= 0
    return isinstance(value, str) and value.isdigit()


def bulk_operation_problem(data: object, field: str = "bulkOperation") -> str | None:
    """The problem of a ``bulkOperation(id:)`` answer (null is fine: unknown to Shopify), or ``None``."""
    op, where, problem = _root_object(data, field, nullable=True)
    if op is None:
        return problem
    status = op.get("status")
    if not isinstance(status, str) or not status:
        return f"{where}.status is {kind(status)}, not a status"
    for name in ("objectCount", "rootObjectCount", "fileSize"):
        value = op.get(name)
        if value is not None and not _unsigned(value):
            return f"{where}.{name} is {kind(value)}, not a count"
    for name in ("url", "partialDataUrl", "errorCode", "completedAt"):
        value = op.get(name)
        if value is not None and not isinstance(value, str):
            return f"{where}.{name} is {kind(value)}, not a string"
    return None


def bulk_start_problem(data: object) -> str | None:
    """The problem of a ``bulkOperationRunQuery`` answer, or ``None``."""
    payload, where, problem = _root_object(data, "bulkOperationRunQuery")
    if payload is None:
        return problem
    errors = payload.get("userErrors")
    if not isinstance(errors, list) or not all(isinstance(e, Mapping) for e in errors):
        return f"{where}.userErrors is {kind(errors)}, not a list of objects"
    op = payload.get("bulkOperation")
    if op is not None:
        if not isinstance(op, Mapping):
            return f"{where}.bulkOperation is {kind(op)}, not an object"
        if not isinstance(op.get("id"), str) or not op["id"]:
            return f"{where}.bulkOperation.id is {kind(op.get('id'))}, not an id"
    return None


def bulk_list_problem(data: object) -> str | None:
    """The problem of a ``bulkOperations(first:) { nodes { … } }`` answer, or ``None``."""
    conn, where, problem = _root_object(data, "bulkOperations")
    if conn is None:
        return problem
    nodes = conn.get("nodes")
    if not isinstance(nodes, list):
        return f"{where}.nodes is {kind(nodes)}, not a list"
    for i, node in enumerate(nodes):
        if not isinstance(node, Mapping):
            return f"{where}.nodes[{i}] is {kind(node)}, not an object"
        if not isinstance(node.get("id"), str) or not node["id"]:
            return f"{where}.nodes[{i}].id is {kind(node.get('id'))}, not an id"
    return None
