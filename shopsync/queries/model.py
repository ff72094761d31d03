"""The resource model: what a validated resource file says, and the limits it is checked against.

A :class:`Resource` is built by :mod:`shopsync.queries.parser` from one ``.graphql`` file; the
document builder (:mod:`shopsync.queries.builder`) and the engine read it. Nothing here reads files
or the schema.
"""

from __future__ import annotations

import dataclasses  # dataclasses.field: NestedConnection has a field called "field"
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from graphql import FragmentDefinitionNode

#: Values of the header's ``filter`` key.
FILTERS = ("updated_at", "none")
#: Shopify's hard ceiling for ``first`` on any connection.
MAX_PAGE_SIZE = 250
#: Bulk query limits (shopify-api-facts §3): connections in total, and levels of nesting below the root.
BULK_MAX_CONNECTIONS = 5
BULK_MAX_NESTING = 2
#: Arguments the builder sets itself; a resource file must not set them in ``root_args``.
RESERVED_ARGS = ("first", "last", "after", "before", "query", "sortKey", "reverse")
#: Values of the header's ``bulk`` key: ``no`` reads the resource page by page only.
BULK_VALUES = ("yes", "no")
#: Orders older than 60 days are invisible without this scope (shopify-api-facts §4).
READ_ALL_ORDERS = "read_all_orders"

@dataclass(frozen=True, kw_only=True)
class NestedConnection:
    """A connection selected inside the fragment (``lineItems(first: 25) { … }``).

    ``path`` is the chain of field names from the record root (``("lineItems",)``; depth 2:
    ``("lineItems", "discountAllocations")``). ``parent_type`` is the type whose field it is (the
    ``... on <ParentType>`` of a drain query); ``node_type`` the connection's node type and
    ``node_types`` its concrete object types (used to tell bulk child lines apart by GID type).
    ``page_size`` is the fragment's ``first``. ``through`` names the list of objects (each a
    Node, selecting its ``id``) the connection hangs from, between its owner and it
    (``Order.refunds[].refundLineItems``: ``through=("refunds",)``, ``parent_type`` ``Refund``);
    only resources read page by page (``bulk: no``) may have one, and ``path`` includes it.

    ``within`` names the single object, a field of the record, that the connection is selected
    in, through an inline fragment on ``parent_type`` (``DiscountNode.discount``, the ``Discount``
    union: ``within=("discount",)``, ``parent_type`` ``DiscountCodeBasic``, which is not a Node).
    Such a connection is drained under the record's id, asked of ``lookup``, the QueryRoot field
    that finds a record by id (``discountNode``): Shopify's own example looks a DiscountNode up
    by a ``DiscountAutomaticNode`` GID, which ``node(id:)`` may answer as that type, where
    ``... on DiscountNode`` would select nothing. Only ``bulk: no`` resources may have
    one; ``path`` includes it, and ``field`` is the response key (an alias, when the members
    of a union share the connection's name).
    """

    field: str
    path: tuple[str, ...]
    parent_type: str
    node_type: str
    node_types: tuple[str, ...]
    page_size: int
    depth: int
    children: tuple[NestedConnection, ...] = ()
    through: tuple[str, ...] = ()
    within: tuple[str, ...] = ()
    lookup: str | None = None
    line: int = dataclasses.field(default=0, compare=False)


@dataclass(frozen=True, kw_only=True)
class Resource:
    """One syncable resource, parsed and validated from its ``.graphql`` file.

    For a ``parent.child`` root (``locations.inventoryLevels``) ``root_field`` is the child
    connection (``inventoryLevels``), ``parent_field`` the QueryRoot connection listing the parents
    (``locations``) and ``parent_node_type`` their type (``Location``); ``root_args`` then apply to
    the parent connection. ``fragment_source`` is the whole file text (line numbers in errors refer
    to it). ``required_scopes`` is a smallest set of access scopes satisfying every ``requiredAccess``
    of the types and fields the documents touch (``read_all_orders`` added for orders);
    ``access_requirements`` keeps each requirement's alternatives.

    For an ``object.connection`` root (``shopifyPaymentsAccount.balanceTransactions``)
    ``root_path`` names the singular QueryRoot object the records' connection hangs from
    (``("shopifyPaymentsAccount",)``; empty otherwise) and ``root_object_type`` its type; such an
    object may be null (a shop without Shopify Payments), which reads as no records. ``every`` is
    the header's own schedule (``None``: the shop's), for resources read whole. ``exportable``
    is false for a resource whose header says ``bulk: no``: its fragment holds a connection
    Shopify's bulk queries refuse (nodes not implementing ``Node``, or inside a list), so every
    window is read page by page.

    ``singular``: the root is a singular QueryRoot object, not a connection (``root: shop``): the
    resource is that one record, read whole by one query (:func:`shopsync.queries.builder.object_query`)
    on every run of its schedule. Bulk operations need a connection, so it has no bulk form; its
    fragment may hold no nested connection.
    """

    name: str
    path: Path
    root_field: str
    parent_field: str | None
    parent_node_type: str | None
    root_args: str
    sort_key: str | None
    incremental: bool
    count_field: str | None
    deletion_subject: str | None
    node_type: str
    fragment_name: str
    fragment_source: str
    nested: tuple[NestedConnection, ...]
    required_scopes: tuple[str, ...]
    access_requirements: tuple[tuple[str, ...], ...] = ()
    root_path: tuple[str, ...] = ()
    root_object_type: str | None = None
    every: timedelta | None = None
    exportable: bool = True
    singular: bool = False
    fragment_ast: FragmentDefinitionNode | None = dataclasses.field(default=None, repr=False, compare=False)
    header_lines: Mapping[str, int] = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @property
    def page_path(self) -> tuple[str, ...]:
        """Where a page's connection is in ``data`` (``("orders",)``, ``("shopifyPaymentsAccount",
        "balanceTransactions")``); ``parent.child`` pages are under ``node`` instead."""
        if self.parent_field:
            return ("node", self.root_field)
        return (*self.root_path, self.root_field)

    @property
    def has_nested(self) -> bool:
        return bool(self.nested)

    def all_nested(self) -> Iterator[NestedConnection]:
        """Every nested connection, depth first (a parent before its children)."""
        stack = list(reversed(self.nested))
        while stack:
            nc = stack.pop()
            yield nc
            stack.extend(reversed(nc.children))

    def nested_at(self, path: tuple[str, ...]) -> NestedConnection:
        for nc in self.all_nested():
            if nc.path == path:
                return nc
        raise KeyError(f"{self.name} has no nested connection at {'.'.join(path)}")

    @property
    def origin(self) -> str:
        return str(self.path)



__all__ = [
    "BULK_MAX_CONNECTIONS",
    "BULK_MAX_NESTING",
    "BULK_VALUES",
    "FILTERS",
    "MAX_PAGE_SIZE",
    "NestedConnection",
    "READ_ALL_ORDERS",
    "RESERVED_ARGS",
    "Resource",
]
