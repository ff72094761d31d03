"""What reassembling a bulk file needs to know of a resource, as plain data (pure).

A :class:`~shopsync.queries.Resource` carries its parsed GraphQL; reading its bulk file needs only
the record's node type, its nested connections (field, node types, depth, which connection each
hangs from) and, for a ``parent.child`` resource, the parent's node type. :class:`BulkShape` is
that, and nothing that imports GraphQL: the spill workers (:mod:`~shopsync.engine.spill_worker`),
separate processes, get it as JSON and start in a few milliseconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shopsync.queries import Resource

__all__ = ["BulkShape", "ConnectionShape"]


@dataclass(frozen=True)
class ConnectionShape:
    """One nested connection: ``parent`` is the index of the connection it hangs from (None: the
    record itself), ``children`` the indices of those hanging from it (indices into
    :attr:`BulkShape.connections`)."""

    field: str
    node_type: str
    node_types: tuple[str, ...]
    parent_type: str
    depth: int
    parent: int | None
    children: tuple[int, ...]


@dataclass(frozen=True)
class BulkShape:
    """A resource as its bulk file shows it: ``connections`` depth first (a parent before its
    children), as :meth:`Resource.all_nested` lists them."""

    name: str
    node_type: str
    parent_field: str | None
    parent_node_type: str | None
    connections: tuple[ConnectionShape, ...]

    @property
    def top(self) -> tuple[int, ...]:
        """The indices of the record's own connections (depth 1)."""
        return tuple(i for i, c in enumerate(self.connections) if c.parent is None)

    @classmethod
    def of(cls, resource: Resource) -> BulkShape:
        flat = list(resource.all_nested())
        index = {id(nc): i for i, nc in enumerate(flat)}
        parents: dict[int, int] = {index[id(child)]: index[id(nc)] for nc in flat for child in nc.children}
        connections = tuple(
            ConnectionShape(
                field=nc.field, node_type=nc.node_type, node_types=tuple(nc.node_types), parent_type=nc.parent_type,
                depth=nc.depth, parent=parents.get(i), children=tuple(index[id(c)] for c in nc.children),
            )  # fmt: skip
            for i, nc in enumerate(flat)
        )
        return cls(resource.name, resource.node_type, resource.parent_field, resource.parent_node_type, connections)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "node_type": self.node_type, "parent_field": self.parent_field,
            "parent_node_type": self.parent_node_type,
            "connections": [
                {"field": c.field, "node_type": c.node_type, "node_types": list(c.node_types), "parent_type": c.parent_type,
                 "depth": c.depth, "parent": c.parent, "children": list(c.children)}
                for c in self.connections
            ],
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> BulkShape:
        connections = tuple(
            ConnectionShape(
                field=c["field"], node_type=c["node_type"], node_types=tuple(c["node_types"]), parent_type=c["parent_type"],
                depth=c["depth"], parent=c["parent"], children=tuple(c["children"]),
            )  # fmt: skip
            for c in data["connections"]
        )
        return cls(data["name"], data["node_type"], data["parent_field"], data["parent_node_type"], connections)
