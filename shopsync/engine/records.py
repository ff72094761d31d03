"""Normalising API nodes into sink records (pure).

A record is the node's fields as Shopify returns them with every nested connection replaced by the
complete list of its nodes under the field name (docs/ARCHITECTURE.md, "Sink record shape"). A
paginated page may hold only the first page of a nested connection; :func:`normalize_node` says
which ones need draining (:class:`PendingDrain`), and :func:`append_drained` merges each page a
drain query returns. The bulk path builds the same shape from JSONL
(:mod:`shopsync.engine.reassembly`); :func:`serialize` gives both the same bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson

from shopsync.errors import IntegrityError
from shopsync.queries import NestedConnection, Resource
from shopsync.shopify.gid import gid_type
from shopsync.shopify.shape import Nested, PageShape
from shopsync.timeutil import parse_ts

#: Path to a list inside a record: field names and list indexes, e.g. ``("lineItems", 3, "taxLines")``.
RecordPath = tuple[str | int, ...]


@dataclass(frozen=True, kw_only=True)
class PendingDrain:
    """A nested connection whose first page did not hold every node.

    ``parent_id`` is the node that owns the connection (the ``$id`` of the drain query), ``after``
    the cursor to continue from, ``record_path`` where the list lives in the record.
    """

    parent_id: str
    nested: NestedConnection
    after: str
    record_path: RecordPath

    def variables(self, first: int) -> dict[str, Any]:
        """The variables of :func:`shopsync.queries.builder.drain_query` for the next page."""
        return {"id": self.parent_id, "first": first, "after": self.after}


def connection_nodes(value: object, where: str = "connection") -> list[dict[str, Any]]:
    """The nodes of a connection value in either form (``edges { node }`` or ``nodes``)."""
    if value is None:
        return []
    if isinstance(value, list):  # already normalised
        return value
    if not isinstance(value, Mapping):
        raise IntegrityError(f"{where}: expected a connection object, got {type(value).__name__}")
    if "edges" in value:
        return [edge["node"] for edge in value["edges"] or () if edge and edge.get("node") is not None]
    if "nodes" in value:
        return [n for n in value["nodes"] or () if n is not None]
    raise IntegrityError(f"{where}: a connection without edges or nodes")


def _next_cursor(value: object, where: str) -> str | None:
    """``endCursor`` when the connection has more pages, else ``None``."""
    if not isinstance(value, Mapping):
        return None
    page_info = value.get("pageInfo") or {}
    if not page_info.get("hasNextPage"):
        return None
    cursor = page_info.get("endCursor")
    if not cursor:
        raise IntegrityError(f"{where}: hasNextPage is true but endCursor is missing")
    return cursor


def _normalize_into(
    obj: dict,
    nested: Sequence[NestedConnection],
    path: RecordPath,
    pending: list[PendingDrain],
) -> None:
    for nc in nested:
        for owner, owner_path in _owners(obj, nc, path):
            if nc.within and nc.field not in owner:
                continue  # a member of the object's union that has no such connection
            value = owner.get(nc.field)
            where = ".".join(str(p) for p in (*owner_path, nc.field))
            nodes = []
            for i, child in enumerate(connection_nodes(value, where)):
                child = dict(child)
                if nc.children:
                    _normalize_into(child, nc.children, (*owner_path, nc.field, i), pending)
                nodes.append(child)
            # A missing connection becomes [] so the record has the same keys on both paths.
            owner[nc.field] = nodes
            cursor = _next_cursor(value, where)
            if cursor is not None:
                # Drained under its owner's id; a connection in one object of the record, under the record's.
                parent_id = record_id(obj if nc.within else owner)
                pending.append(PendingDrain(parent_id=parent_id, nested=nc, after=cursor, record_path=(*owner_path, nc.field)))


def _owners(obj: dict, nc: NestedConnection, path: RecordPath) -> list[tuple[dict, RecordPath]]:
    """The objects holding ``nc``: ``obj`` itself, or for a connection hanging from a list of
    nodes (:attr:`NestedConnection.through`) each element of that list, or for one in an object of
    ``obj`` (:attr:`NestedConnection.within`) that object; copied into ``obj`` so the caller's input
    stays unmodified."""
    if nc.within:
        (object_field,) = nc.within
        inner = obj.get(object_field)
        if not isinstance(inner, Mapping):
            return []
        obj[object_field] = copy = dict(inner)
        return [(copy, (*path, object_field))]
    if not nc.through:
        return [(obj, path)]
    (list_field,) = nc.through
    items = obj.get(list_field)
    if items is None:
        return []
    if not isinstance(items, list):
        raise IntegrityError(f"{'.'.join(str(p) for p in (*path, list_field))}: expected a list, got {type(items).__name__}")
    copies = [dict(item) if isinstance(item, Mapping) else item for item in items]
    obj[list_field] = copies
    return [(item, (*path, list_field, i)) for i, item in enumerate(copies) if isinstance(item, dict)]


def normalize_node(node: Mapping[str, Any], resource: Resource) -> tuple[dict, list[PendingDrain]]:
    """``node`` (from a page's ``edges[].node``) as a record, and the connections left to drain.

    The input is not modified. Depth-1 drains come before the depth-2 drains of their children.
    """
    record = dict(node)
    pending: list[PendingDrain] = []
    _normalize_into(record, resource.nested, (), pending)
    pending.sort(key=lambda d: d.nested.depth)
    return record, pending


def _locate(record: dict, path: RecordPath) -> list:
    target: Any = record
    for step in path:
        target = target[step]
    if not isinstance(target, list):
        raise IntegrityError(f"{'.'.join(map(str, path))} is not a list in the record")
    return target


def append_drained(record: dict, drain: PendingDrain, page: Mapping[str, Any] | Sequence[dict]) -> list[PendingDrain]:
    """Append one page of a drained connection to the list ``drain`` refers to.

    ``page`` is what the drain query returned under ``data.node.<field>`` (a connection with
    ``edges``/``nodes``) or an already normalised list of nodes. Returns the depth-2 connections of
    the appended nodes that have more pages. Continuing *this* connection (its ``pageInfo``) is
    the caller's loop: see :func:`next_page` (or ``drain.after`` replaced by ``endCursor``).
    """
    target = _locate(record, drain.record_path)
    where = ".".join(map(str, drain.record_path))
    start = len(target)
    pending: list[PendingDrain] = []
    appended = []
    for i, child in enumerate(connection_nodes(page, where)):
        child = dict(child)
        if drain.nested.children:
            _normalize_into(child, drain.nested.children, (*drain.record_path, start + i), pending)
        appended.append(child)
    target.extend(appended)
    return pending


def next_page(drain: PendingDrain, page: Mapping[str, Any]) -> PendingDrain | None:
    """The same drain continued after ``page``, or ``None`` if ``page`` was its last."""
    cursor = _next_cursor(page, ".".join(map(str, drain.record_path)))
    return replace(drain, after=cursor) if cursor is not None else None


def _nested_shapes(nested: Sequence[NestedConnection]) -> tuple[Nested, ...]:
    return tuple(Nested(nc.field, _nested_shapes(nc.children), through=nc.through, within=nc.within) for nc in nested)


@lru_cache(maxsize=256)
def page_shape(resource: Resource) -> PageShape:
    """What a page of ``resource`` (:func:`shopsync.queries.builder.page_query`) must look like."""
    nested = _nested_shapes(resource.nested)
    if resource.parent_field:
        # Paged under node(id: $parentId): a parent deleted meanwhile answers node: null.
        return PageShape(path=("node", resource.root_field), nested=nested, vanishing=True)
    # Under a singular object (shopifyPaymentsAccount), which is null in a shop without it.
    return PageShape(path=resource.page_path, nested=nested, vanishing=bool(resource.root_path))


@lru_cache(maxsize=256)
def drain_shape(nested: NestedConnection) -> PageShape:
    """What a page of :func:`shopsync.queries.builder.drain_query` for ``nested`` must look like."""
    owner = (nested.lookup, *nested.within) if nested.lookup else ("node",)
    return PageShape(path=(*owner, nested.field), nested=_nested_shapes(nested.children), vanishing=True, node_id=False)


def parents_shape(resource: Resource) -> PageShape:
    """What a page of :func:`shopsync.queries.builder.parent_ids_query` must look like."""
    if not resource.parent_field:
        raise ValueError(f"{resource.name} is not paged under parents")
    return PageShape(path=(resource.parent_field,))


def record_id(data: Mapping[str, Any]) -> str:
    """The record's GID."""
    value = data.get("id")
    if not isinstance(value, str) or not value:
        raise IntegrityError(f"record without an id: {sorted(data)[:8]}")
    return value


def record_updated_at(data: Mapping[str, Any]) -> datetime | None:
    """The record's ``updatedAt`` as an aware UTC datetime, or ``None`` if it has none."""
    value = data.get("updatedAt")
    return parse_ts(value) if value else None


def serialize(data: Mapping[str, Any]) -> bytes:
    """The canonical sink text of a record: JSON with sorted keys (same bytes on both paths)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)


__all__ = [
    "PendingDrain",
    "RecordPath",
    "append_drained",
    "connection_nodes",
    "drain_shape",
    "gid_type",
    "next_page",
    "normalize_node",
    "page_shape",
    "parents_shape",
    "record_id",
    "record_updated_at",
    "serialize",
]
