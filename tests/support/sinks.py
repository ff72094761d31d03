"""Reading what a sync wrote (the SQLite sink and the state tables, read-only, so beside a writer)
and comparing a sink with a simulated shop: shared by the end-to-end, daemon and chaos runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import orjson

from shopsync.simulator.server import SimulatedShop

ALL_RESOURCES = ("orders", "products", "customers", "inventory_items", "inventory_levels", "locations", "collections")
#: The resources of issue 14 (money records), synced only by the tests that name them.
FINANCE_RESOURCES = ("gift_cards", "shopify_payments_balance_transactions", "shopify_payments_payouts", "shopify_payments_disputes")
#: Draft orders, abandoned checkouts, fulfillment orders (incremental, line items) and markets (issue 14).
COMMERCE_RESOURCES = ("draft_orders", "abandoned_checkouts", "fulfillment_orders", "markets")
#: Each order's fulfillments (with tracking), returns and risk assessments, one record per order (issue 14).
ORDER_DETAIL_RESOURCES = ("order_fulfillments", "order_returns", "order_risks")
#: Each order's transactions, refunds (line items, transactions) and shipping and discount lines,
#: one record per order (issue 14); the last two are read page by page only (bulk: no).
ORDER_MONEY_RESOURCES = ("order_transactions", "order_refunds", "order_shipping_discounts")
#: What each order's fulfillments shipped and its returns took back, one record per order (issue
#: 14); read page by page only (bulk: no).
ORDER_LINES_RESOURCES = ("order_fulfillment_lines", "order_return_lines")
#: Metafields (issue 14): of every product (paged per product) and of the shop, read whole; of
#: orders, customers and collections, read with their owners.
METAFIELD_RESOURCES = (
    "product_metafields", "shop_metafields", "order_metafields", "customer_metafields", "collection_metafields",
)  # fmt: skip
#: Variants and their metafields as records of their own, and the shop itself (one record; issue 14).
CATALOG_RESOURCES = ("product_variants", "variant_metafields", "shop")
#: Discounts, code and automatic (issue 14), read whole.
DISCOUNT_RESOURCES = ("discount_nodes",)
#: Every resource issue 14 added.
ISSUE14_RESOURCES = (
    *FINANCE_RESOURCES, *COMMERCE_RESOURCES, *METAFIELD_RESOURCES, *ORDER_DETAIL_RESOURCES, "collection_memberships",
    "product_media", *ORDER_MONEY_RESOURCES, *ORDER_LINES_RESOURCES, *CATALOG_RESOURCES, *DISCOUNT_RESOURCES,
)  # fmt: skip


def read_only(db: Path, sql: str, params: tuple[Any, ...] = ()) -> list[sqlite3.Row] | None:
    """The rows of ``sql`` on ``db`` opened read-only; None when the table is not there (yet)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, params).fetchall()
    except sqlite3.OperationalError:
        return None
    finally:
        con.close()


def sink_rows(db: Path, resource: str, shop: str, *, deleted: bool | None = False) -> dict[str, dict | None]:
    """The SQLite sink's rows of one shop and resource keyed by id: live rows (``deleted=False``),
    rows marked deleted (``True``) or all (``None``). Read-only, so it works beside a writer."""
    rows = read_only(db, f'SELECT id, data, deleted_at FROM "{resource}" WHERE shop = ?', (shop,)) or []
    return {
        i: (orjson.loads(d) if d is not None else None)
        for i, d, gone in rows
        if deleted is None or (gone is not None) == deleted
    }


def stream_states(db: Path) -> dict[tuple[str, str], dict[str, Any]]:
    """Every row of ``stream_state`` (including the engine's ``@deletions`` rows), read-only."""
    if not db.exists():
        return {}
    rows = read_only(db, "SELECT * FROM stream_state") or []
    return {(r["shop"], r["resource"]): dict(r) for r in rows}


def bulk_operations(db: Path) -> list[dict[str, Any]]:
    """Every row of ``bulk_operations``, oldest first, read-only."""
    if not db.exists():
        return []
    return [dict(r) for r in read_only(db, "SELECT * FROM bulk_operations ORDER BY created_at") or []]


def diff_records(expected: dict[str, dict], actual: dict[str, Any]) -> str:
    """A short description of how two id→record maps differ ('' when equal)."""
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(i for i in set(expected) & set(actual) if expected[i] != actual[i])
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing (e.g. {missing[:3]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[:3]})")
    if changed:
        i = changed[0]
        keys = sorted(k for k in set(expected[i]) | set(actual[i] or {}) if expected[i].get(k) != (actual[i] or {}).get(k))
        parts.append(f"{len(changed)} differ (e.g. {i} in {keys[:5]})")
    return "; ".join(parts)


def assert_matches_truth(shop: SimulatedShop, db: Path, resources=ALL_RESOURCES) -> None:
    """Live sink rows equal the shop's truth, record for record (deleted ones are marked, so absent here)."""
    problems = []
    for resource in resources:
        d = diff_records(shop.truth(resource), sink_rows(db, resource, shop.name))
        if d:
            problems.append(f"{shop.name}/{resource}: {d}")
    assert not problems, "\n".join(problems)
