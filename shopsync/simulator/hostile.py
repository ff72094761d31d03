"""Hostile answers (issue 10): pure rewrites of a normal answer into one a careful client refuses.

Each function takes the answer the shop would have given and returns (or changes in place) what
the switch in :class:`~shopsync.simulator.config.FaultConfig` asks for; :class:`Faults.take
<shopsync.simulator.faults.Faults.take>` decides when, and :mod:`shopsync.simulator.shop` sends it.

==================  ====================================================================
switch = value      what the client receives
==================  ====================================================================
``cursor``          every root connection: ``hasNextPage`` true and ``endCursor`` = the
  ``repeat``        request's ``after`` (fires only on requests that sent a cursor);
  ``null``          ``endCursor`` null; ``empty_page``: ``nodes``/``edges`` ``[]``
``bad_data``        ``empty``: ``data: {}``; ``null``: ``data: null`` without ``errors``;
                    ``nodes_string``: ``nodes``/``edges`` a string; ``no_page_info``: no
                    ``pageInfo``; ``count_string``: every root ``count`` a string
``throttle_status`` ``maximumAvailable``/``currentlyAvailable``/``restoreRate`` (those in
                    ``throttle_status_fields``) ``zero``, ``negative``, ``missing`` or
                    ``null``; ``absent``: no ``throttleStatus`` at all
``retry_after_text`` Retry-After sent verbatim; ``past`` is an HTTP date a day ago
``huge_body``       the answer with a ``"padding"`` member in front, more than N bytes
``bulk_bad_line``   ``not_json``: a cut-off line after the first row; ``orphan``: the first
                    child row's ``__parentId`` names a parent not in the file
==================  ====================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from email.utils import formatdate
from typing import Any

import orjson
from graphql import DocumentNode, FieldNode, OperationDefinitionNode, VariableNode
from graphql.utilities import value_from_ast_untyped

from shopsync.simulator.documents import compile_document

__all__ = [
    "NOT_JSON_LINE",
    "ORPHAN_ID",
    "bad_data_applies",
    "corrupt_bulk_rows",
    "cursor_applies",
    "padded_parts",
    "request_names",
    "retry_after_value",
    "rewrite_bad_data",
    "rewrite_cursor",
    "rewrite_throttle_status",
    "root_afters",
]

#: The line ``bulk_bad_line = "not_json"`` writes: a row cut short, as a broken upload would leave it.
NOT_JSON_LINE = b'{"id":"gid://shopify/Order/0","name":"#10'
#: The numeric id of the parent an ``orphan`` row points at (no record has it).
ORPHAN_ID = "999999999999"


# -- what a request asks ---------------------------------------------------------------------------
def request_names(raw: bytes) -> frozenset[str]:
    """The operation names and root field names of a GraphQL request body (empty when unparsable)."""
    try:
        payload = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return frozenset()
    query = payload.get("query") if isinstance(payload, dict) else None
    if not isinstance(query, str):
        return frozenset()
    document = compile_document(query).document
    if document is None:
        return frozenset()
    names: set[str] = set()
    for op in _operations(document):
        if op.name is not None:
            names.add(op.name.value)
        names.update(sel.name.value for sel in op.selection_set.selections if isinstance(sel, FieldNode))
    return frozenset(names)


def root_afters(document: DocumentNode, operation_name: str | None, variables: Mapping[str, Any]) -> dict[str, Any]:
    """The ``after`` argument of each root field of the operation run, by response key."""
    ops = _operations(document)
    if operation_name is not None:
        ops = [o for o in ops if o.name is not None and o.name.value == operation_name]
    out: dict[str, Any] = {}
    for op in ops[:1]:
        for sel in op.selection_set.selections:
            if not isinstance(sel, FieldNode):
                continue
            key = sel.alias.value if sel.alias else sel.name.value
            for arg in sel.arguments or ():
                if arg.name.value == "after":
                    value = arg.value
                    out[key] = variables.get(value.name.value) if isinstance(value, VariableNode) else value_from_ast_untyped(value)
    return out


def _operations(document: DocumentNode) -> list[OperationDefinitionNode]:
    return [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]


def _connections(data: Any) -> Iterator[tuple[str, dict]]:
    """The root connections of ``data`` (objects with a ``pageInfo``), with their response keys."""
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(value, dict) and isinstance(value.get("pageInfo"), dict):
                yield key, value


# -- cursors -------------------------------------------------------------------------------------
def cursor_applies(data: Any, mode: str, afters: Mapping[str, Any]) -> bool:
    """Whether ``cursor = mode`` can show in this answer (``repeat`` needs a cursor to repeat)."""
    keys = [key for key, _ in _connections(data)]
    if mode == "repeat":
        return any(afters.get(key) for key in keys)
    return bool(keys)


def rewrite_cursor(data: Any, mode: str, afters: Mapping[str, Any]) -> None:
    """Make every root connection's page not advance (in place); ``hasNextPage`` stays true."""
    for key, conn in _connections(data):
        info = conn["pageInfo"]
        if mode == "repeat":
            after = afters.get(key)
            if not after:
                continue
            _set_end_cursor(conn, after)
        elif mode == "null":
            _set_end_cursor(conn, None)
        else:  # empty_page: the cursor still moves on, but nothing came with it
            for member in ("nodes", "edges"):
                if member in conn:
                    conn[member] = []
        info["hasNextPage"] = True


def _set_end_cursor(conn: dict, cursor: Any) -> None:
    conn["pageInfo"]["endCursor"] = cursor
    edges = conn.get("edges")
    if isinstance(edges, list) and edges and isinstance(edges[-1], dict) and "cursor" in edges[-1]:
        edges[-1]["cursor"] = cursor


# -- data of the wrong shape -----------------------------------------------------------------------
def bad_data_applies(body: Mapping[str, Any], mode: str) -> bool:
    data = body.get("data")
    if mode in ("empty", "null"):
        return isinstance(data, dict)
    if mode == "count_string":
        return isinstance(data, dict) and any(isinstance(v, dict) and "count" in v for v in data.values())
    return any(True for _ in _connections(data))


def rewrite_bad_data(body: dict[str, Any], mode: str) -> None:
    """Break ``body`` (in place) the way ``bad_data = mode`` says."""
    data = body.get("data")
    if mode == "empty":
        body["data"] = {}
    elif mode == "null":
        body["data"] = None
        body.pop("errors", None)
    elif mode == "count_string":
        for value in data.values() if isinstance(data, dict) else ():
            if isinstance(value, dict) and "count" in value:
                value["count"] = "many"
    else:
        for _, conn in list(_connections(data)):
            if mode == "no_page_info":
                del conn["pageInfo"]
            else:  # nodes_string
                for member in ("nodes", "edges"):
                    if member in conn:
                        conn[member] = "[object Object]"


# -- the cost extension and Retry-After ------------------------------------------------------------
def rewrite_throttle_status(body: dict[str, Any], mode: str, fields: Iterable[str]) -> bool:
    """Spoil ``extensions.cost.throttleStatus`` (in place); ``False`` when the body has none."""
    extensions = body.get("extensions")
    cost = extensions.get("cost") if isinstance(extensions, dict) else None
    status = cost.get("throttleStatus") if isinstance(cost, dict) else None
    if not isinstance(cost, dict) or not isinstance(status, dict):
        return False
    if mode == "absent":
        del cost["throttleStatus"]
        return True
    for name in fields:
        if mode == "missing":
            status.pop(name, None)
        elif mode == "null":
            status[name] = None
        elif mode == "zero":
            status[name] = 0 if name == "currentlyAvailable" else 0.0
        else:  # negative
            value = status.get(name) or 1
            status[name] = -abs(value)
    return True


def retry_after_value(text: str | None, seconds: float, now: float) -> str:
    """The Retry-After header: ``text`` verbatim (``past``: an HTTP date a day ago), else seconds."""
    if text is None:
        return f"{seconds:g}"
    if text == "past":
        return formatdate(now - 86_400, usegmt=True)
    return text


# -- huge bodies -----------------------------------------------------------------------------------
def padded_parts(raw: bytes, size: int) -> tuple[bytes, int, bytes]:
    """``(head, padding, tail)``: ``head + b"x" * padding + tail`` is ``raw`` (a JSON object) with a
    ``"padding"`` member in front, more than ``size`` bytes long (streamed by the caller)."""
    head = b'{"padding":"'
    rest = raw[1:] if raw.startswith(b"{") else b"}"
    tail = b'"' + (b"," + rest if rest.strip() != b"}" else b"}")
    return head, max(0, size + 1 - len(head) - len(tail)), tail


# -- bulk files ------------------------------------------------------------------------------------
def corrupt_bulk_rows(rows: Iterable[dict], mode: str, on_applied: Callable[[], None]) -> Iterator[dict | bytes]:
    """The rows of a result file with one bad line: raw bytes (``not_json``, after the first row)
    or a row whose ``__parentId`` is not in the file (``orphan``, the first child row)."""
    done = False
    for index, row in enumerate(rows):
        if not done and mode == "orphan" and "__parentId" in row:
            prefix = str(row["__parentId"]).rsplit("/", 1)[0]
            row = {**row, "__parentId": f"{prefix}/{ORPHAN_ID}"}
            done = True
            on_applied()
        yield row
        if not done and mode == "not_json" and index == 0:
            done = True
            on_applied()
            yield NOT_JSON_LINE
