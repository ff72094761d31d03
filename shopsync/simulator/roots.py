"""The built-in root fields: listings, ``*Count``, lookups by id, ``node`` and ``nodes``.

Root fields: ``orders``, ``products``, ``customers``, ``inventoryItems``, ``locations``,
``collections``, ``events``, ``giftCards``, ``draftOrders``, ``abandonedCheckouts``,
``fulfillmentOrders``, ``markets``, ``productVariants``, ``discountNodes`` (connections, with their modelled sort keys), the ``*Count``
fields, ``order``/``product``/… by id, ``node``/``nodes`` (which also ask the node resolvers the
server registers, e.g. for ``BulkOperation``), ``shop`` and ``shopifyPaymentsAccount`` (objects
whose connections are "specials", :mod:`~shopsync.simulator.payments_fields`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from shopsync.simulator.commerce_records import fulfillment_order_filter
from shopsync.simulator.connections import mem_connection, search_query, store_connection
from shopsync.simulator.data import gid_type
from shopsync.simulator.exec_context import ExecContext, ExecutionFieldError, Resolver, Where
from shopsync.simulator.finance_records import payments_account
from shopsync.simulator.search import SearchQuery

__all__ = [
    "BY_ID",
    "COUNTS",
    "MAX_INPUT_ARRAY",
    "MEM",
    "ROOTS",
    "STORE",
    "RootSpec",
    "builtin_root_resolvers",
    "location_filter",
    "root_plan",
]

MAX_INPUT_ARRAY = 250


@dataclass(frozen=True)
class RootSpec:
    """A root connection: its node type, search-field key and modelled sort keys."""

    type_name: str
    connection: str  # search-field key in CONNECTION_FIELDS and name for messages
    sorts: Mapping[str, tuple[str, str]]  # sortKey → ("store", updated|created|id) | ("mem", field)
    default_sort: str


STORE = "store"
MEM = "mem"
ROOTS: dict[str, RootSpec] = {
    "orders": RootSpec("Order", "orders", {
        "UPDATED_AT": (STORE, "updated"), "CREATED_AT": (STORE, "created"), "PROCESSED_AT": (STORE, "created"),
        "ID": (STORE, "id"), "ORDER_NUMBER": (STORE, "id"), "RELEVANCE": (STORE, "id"),
    }, "PROCESSED_AT"),
    "products": RootSpec("Product", "products", {
        "UPDATED_AT": (STORE, "updated"), "CREATED_AT": (STORE, "created"), "ID": (STORE, "id"),
        "RELEVANCE": (STORE, "id"), "TITLE": (MEM, "title"), "VENDOR": (MEM, "vendor"),
        "PRODUCT_TYPE": (MEM, "productType"),
    }, "ID"),
    "customers": RootSpec("Customer", "customers", {
        "UPDATED_AT": (STORE, "updated"), "CREATED_AT": (STORE, "created"), "ID": (STORE, "id"),
        "RELEVANCE": (STORE, "id"),
    }, "ID"),
    "inventoryItems": RootSpec("InventoryItem", "inventoryItems", {"ID": (STORE, "id")}, "ID"),
    "locations": RootSpec("Location", "locations", {
        "NAME": (MEM, "name"), "ID": (STORE, "id"), "RELEVANCE": (STORE, "id"),
    }, "NAME"),
    "collections": RootSpec("Collection", "collections", {
        "UPDATED_AT": (STORE, "updated"), "ID": (STORE, "id"), "RELEVANCE": (STORE, "id"), "TITLE": (MEM, "title"),
    }, "ID"),
    "events": RootSpec("BasicEvent", "events", {"ID": (STORE, "id"), "CREATED_AT": (STORE, "created")}, "ID"),
    "giftCards": RootSpec("GiftCard", "giftCards", {
        "ID": (STORE, "id"), "CREATED_AT": (STORE, "created"), "UPDATED_AT": (STORE, "updated"),
    }, "ID"),
    "draftOrders": RootSpec("DraftOrder", "draftOrders", {
        "UPDATED_AT": (STORE, "updated"), "ID": (STORE, "id"), "NUMBER": (STORE, "id"), "RELEVANCE": (STORE, "id"),
    }, "ID"),
    "abandonedCheckouts": RootSpec("AbandonedCheckout", "abandonedCheckouts", {
        "ID": (STORE, "id"), "CHECKOUT_ID": (STORE, "id"), "CREATED_AT": (STORE, "created"), "RELEVANCE": (STORE, "id"),
    }, "ID"),
    "fulfillmentOrders": RootSpec("FulfillmentOrder", "fulfillmentOrders", {
        "UPDATED_AT": (STORE, "updated"), "ID": (STORE, "id"),
    }, "ID"),
    "markets": RootSpec("Market", "markets", {"ID": (STORE, "id"), "NAME": (MEM, "name")}, "ID"),
    "discountNodes": RootSpec("DiscountNode", "discountNodes", {
        "ID": (STORE, "id"), "CREATED_AT": (STORE, "created"), "UPDATED_AT": (STORE, "updated"), "RELEVANCE": (STORE, "id"),
    }, "ID"),
    # Variants live in their products; the store lists them by id (simulator/variant_scan.py).
    "productVariants": RootSpec("ProductVariant", "productVariants", {"ID": (STORE, "id"), "RELEVANCE": (STORE, "id")}, "ID"),
}  # fmt: skip
COUNTS = {
    "ordersCount": ("Order", "orders"),
    "productsCount": ("Product", "products"),
    "customersCount": ("Customer", "customers"),
    "collectionsCount": ("Collection", "collections"),
    "locationsCount": ("Location", "locations"),
    "eventsCount": ("BasicEvent", "events"),
    "giftCardsCount": ("GiftCard", "giftCards"),
    "draftOrdersCount": ("DraftOrder", "draftOrders"),
    "abandonedCheckoutsCount": ("AbandonedCheckout", "abandonedCheckouts"),
    "discountNodesCount": ("DiscountNode", "discountNodes"),
}
BY_ID = {
    "order": "Order",
    "product": "Product",
    "customer": "Customer",
    "collection": "Collection",
    "location": "Location",
    "inventoryItem": "InventoryItem",
    "inventoryLevel": "InventoryLevel",
    "giftCard": "GiftCard",
    "productVariant": "ProductVariant",
    "discountNode": "DiscountNode",
}


def location_filter(args: Mapping[str, Any]) -> Callable[[int, dict], bool]:
    """The locations ``includeInactive``/``includeLegacy`` let through."""
    inactive = bool(args.get("includeInactive"))
    legacy = bool(args.get("includeLegacy"))

    def ok(_idx: int, rec: dict) -> bool:
        return (inactive or rec["isActive"]) and (legacy or not rec.get("_legacy"))

    return ok


def root_plan(
    name: str, args: Mapping[str, Any]
) -> tuple[RootSpec, tuple[str, str], SearchQuery | None, str, Where | None]:
    """How to list root connection ``name``: its spec, ``(how, sort)``, search, view and filter."""
    spec = ROOTS[name]
    sort_key = args.get("sortKey") or spec.default_sort
    sort = spec.sorts.get(sort_key)
    if sort is None:
        raise ExecutionFieldError(
            f"sortKey {sort_key} of '{name}' is not modelled by the shopsync simulator"
            f" (modelled: {', '.join(sorted(spec.sorts))})",
            code="NOT_MODELLED",
        )
    q = search_query(args.get("query"), spec.connection)
    view = "index" if (q is not None or sort == (STORE, "updated")) else "live"
    where = location_filter(args) if name == "locations" else None
    if name == "fulfillmentOrders":
        where = fulfillment_order_filter(args)
    return spec, sort, q, view, where


def _make_root_connection(name: str) -> Resolver:
    def resolve(args: dict[str, Any], ctx: ExecContext) -> Any:
        spec, (how, sort), q, view, where = root_plan(name, args)
        if how == MEM:
            return mem_connection(ctx, spec.type_name, args, field_name=sort, q=q, view=view, what=name, where=where)
        return store_connection(ctx, spec.type_name, args, sort=sort, q=q, view=view, what=name, where=where)

    return resolve


def _make_count(name: str) -> Resolver:
    type_name, connection = COUNTS[name]

    def resolve(args: dict[str, Any], ctx: ExecContext) -> dict:
        limit = args["limit"] if "limit" in args else 10_000
        if limit is not None and limit < 0:
            raise ExecutionFieldError(f"The limit argument of '{name}' must not be negative.")
        q = search_query(args.get("query"), connection)
        n = ctx.store.count(type_name, query=q, view="index" if q is not None else "live", limit=limit)
        if limit is not None and n > limit:
            return {"count": limit, "precision": "AT_LEAST"}
        return {"count": n, "precision": "EXACT"}

    return resolve


def _make_by_id(type_name: str) -> Resolver:
    def resolve(args: dict[str, Any], ctx: ExecContext) -> dict | None:
        gid = args.get("id")
        if gid is None:
            return None
        if gid_type(str(gid)) != type_name:
            return None
        return ctx.store.get(str(gid))

    return resolve


def _resolve_node(gid: Any, ctx: ExecContext) -> dict | None:
    gid = str(gid)
    t = gid_type(gid)
    if t is None:
        raise ExecutionFieldError(f"Invalid global id '{gid}'", code="BAD_REQUEST")
    resolver = ctx.executor.node_resolvers.get(t)
    if resolver is not None:
        found: dict | None = resolver({"id": gid}, ctx)
        return found
    return ctx.store.get(gid)


def _node(args: dict[str, Any], ctx: ExecContext) -> dict | None:
    return _resolve_node(args["id"], ctx)


def _nodes(args: dict[str, Any], ctx: ExecContext) -> list:
    ids = args.get("ids") or []
    if len(ids) > MAX_INPUT_ARRAY:
        raise ExecutionFieldError(
            f"The input array size of {len(ids)} is greater than the maximum allowed of {MAX_INPUT_ARRAY}.",
            code="MAX_INPUT_SIZE_EXCEEDED",
        )
    return [_resolve_node(g, ctx) for g in ids]


def _shop(args: dict[str, Any], ctx: ExecContext) -> Any:
    return ctx.store.shop


def _payments_account(args: dict[str, Any], ctx: ExecContext) -> Any:
    return payments_account(ctx.store.data)


def builtin_root_resolvers() -> dict[str, Resolver]:
    """The QueryRoot fields the simulator serves itself, in registration order."""
    resolvers: dict[str, Resolver] = {}
    for name in ROOTS:
        resolvers[name] = _make_root_connection(name)
    for name in COUNTS:
        resolvers[name] = _make_count(name)
    for name, type_name in BY_ID.items():
        resolvers[name] = _make_by_id(type_name)
    resolvers["node"] = _node
    resolvers["nodes"] = _nodes
    resolvers["shop"] = _shop
    resolvers["shopifyPaymentsAccount"] = _payments_account
    return resolvers
