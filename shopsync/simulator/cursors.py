"""Cursors and page windows: the pure arithmetic shared by every connection the simulator serves.

Cursors are base64 JSON ``{"last_id": <numeric id>, "last_value": <sort value>}``, shaped like
Shopify's; pages order ties by id, so records sharing one sort value page exactly once.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

import orjson

from shopsync.simulator.exec_context import ExecutionFieldError

__all__ = [
    "MAX_PAGE_SIZE",
    "connection_page",
    "decode_cursor",
    "encode_cursor",
    "list_position",
    "numeric_id",
    "page_size",
    "window",
]

MAX_PAGE_SIZE = 250


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


def list_position(cursor: str) -> int:
    """The position a child-list cursor (line items, variants) points at."""
    _id, value = decode_cursor(cursor)
    if not isinstance(value, int):
        raise ExecutionFieldError(f"Invalid cursor '{cursor}'.", code="BAD_REQUEST")
    return value


def numeric_id(gid: str) -> int:
    """The number at the end of a GID (ignoring a ``?query`` suffix)."""
    tail = gid.rsplit("/", 1)[-1]
    q = tail.find("?")
    return int(tail[:q] if q >= 0 else tail)


def page_size(args: Mapping[str, Any], what: str) -> tuple[int | None, int | None]:
    """``(first, last)`` of a connection's arguments, checked: one is required, each at most 250."""
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


def window(n_keys: int, lo: int, hi: int, desc: bool, first: int | None, last: int | None) -> tuple[list[int], bool, bool]:
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


def connection_page(edges: list[tuple[str | None, dict]], has_next: bool, has_prev: bool) -> dict:
    """A connection value (edges, nodes, pageInfo) from ``(cursor, node)`` pairs."""
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
