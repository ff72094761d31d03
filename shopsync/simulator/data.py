"""The simulated shop's base data: deterministic, seeded, generated lazily.

Model
-----
Every top-level record type (Order, Customer, Product, InventoryItem, InventoryLevel, Location,
Collection) has ``count`` base records numbered by an *index* ``idx`` (0, 1, …). Record ``idx`` is
a pure function of (:class:`~shopsync.simulator.config.DataConfig`, idx): :meth:`ShopData.generate`
builds it on demand with a ``random.Random`` seeded from (seed, type, idx). Nothing but compact
arrays is kept in memory:

* ``created[type]`` / ``updated[type]`` — ``array('q')`` of epoch seconds per idx. ``created`` is
  non-decreasing in idx by construction (ids grow with time, as on Shopify), so it doubles as the
  created_at index; ``updated_keys[type]`` is the sorted array of ``updated << SHIFT | idx``
  composite keys (the updated_at index: bisect on it, ties broken by id).
* the variant count per product (prefix sums), the set of big orders.

A million orders cost ~24 MB of arrays and about a second to build; a record is generated in
tens of microseconds when read. Mutations never touch this module's state: the store keeps an
overlay (see :mod:`shopsync.simulator.store`).

Ids: numeric id = ``ID_BASE[type] + idx`` (so ids sort like idx), GIDs ``gid://shopify/Order/<n>``;
child objects' ids derive from their parent's (see :mod:`shopsync.simulator.ids`).

Values are realistic rather than random noise: money as strings in MoneyBag/MoneyV2 shapes
(``"10.0"``, ``"12.5"``, ``"123.45"`` — Shopify's Decimal format; ``Money`` scalars such as
``ProductVariant.price`` keep two decimals), a USD shop with some orders presented in EUR, CAD,
ILS, AED or JPY, addresses in several countries, tags, notes, names with accents, emoji, Arabic and
Hebrew, and nulls where Shopify has them (cancelledAt, note, phone, company, compareAtPrice …).

Timestamps of base records lie in ``[anchor − history_days, anchor]`` with createdAt ≤ updatedAt.
``tie_groups`` blocks of ``tie_group_size`` orders share one updatedAt second (shrunk to fit when
there are too few orders). ``big_orders`` orders have ``big_order_line_items`` line items.

Cross-record links (Order.customer, LineItem.variant/product, ProductVariant.inventoryItem, …) are
:class:`Ref` objects; the executor resolves them through the store (a deleted target reads as
null). Keys starting with ``_`` are internal (never exposed: GraphQL names cannot start with ``_``).

Modules
-------
This module keeps the index (counts, timestamps, id lookups) and the public face; the pieces are
:mod:`~shopsync.simulator.ids` (numbering, :class:`Ref`), :mod:`~shopsync.simulator.formats`
(timestamps, amounts), :mod:`~shopsync.simulator.vocabulary` (the value tables),
:mod:`~shopsync.simulator.modelled_fields`, the generators :mod:`~shopsync.simulator.order_records`,
:mod:`~shopsync.simulator.customer_records` and :mod:`~shopsync.simulator.catalog_records`, and
:mod:`~shopsync.simulator.updates` (changes to records).
"""

from __future__ import annotations

import random
from array import array
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache, partial

from shopsync.simulator.catalog_records import (
    generate_collection,
    generate_inventory_item,
    generate_inventory_level,
    generate_location,
    generate_product,
    level_quantities,
    product_core,
)
from shopsync.simulator.commerce_records import (
    generate_abandoned_checkout,
    generate_draft_order,
    generate_fulfillment_order,
    generate_market,
)
from shopsync.simulator.config import DataConfig
from shopsync.simulator.customer_records import generate_customer
from shopsync.simulator.discount_records import MAX_DISCOUNT_CODES, generate_discount_node
from shopsync.simulator.finance_records import (
    generate_balance_transaction,
    generate_dispute,
    generate_gift_card,
    generate_payout,
)
from shopsync.simulator.formats import decimal_amount, fmt_ts, money_amount, money_bag
from shopsync.simulator.ids import (
    COMMERCE_TYPES,
    DISCOUNT_TYPES,
    FINANCE_TYPES,
    ID_BASE,
    LINE_ITEM_BASE,
    MASK,
    MAX_LINE_ITEMS,
    MAX_VARIANTS,
    OPTION_BASE,
    REFUND_BASE,
    SALT,
    SHIFT,
    TOP_TYPES,
    TRANSACTION_BASE,
    VARIANT_BASE,
    Ref,
    gid_number,
    gid_type,
    seed_of,
)
from shopsync.simulator.metafield_records import generate_metafield, metafield_layout
from shopsync.simulator.modelled_fields import MODELLED_FIELDS
from shopsync.simulator.order_records import generate_order
from shopsync.simulator.updates import apply_update, destroy_event, sample_records

__all__ = [
    "ID_BASE",
    "MASK",
    "MAX_LINE_ITEMS",
    "MODELLED_FIELDS",
    "SHIFT",
    "TOP_TYPES",
    "Ref",
    "ShopData",
    "apply_update",
    "decimal_amount",
    "fmt_ts",
    "gid_type",
    "money_amount",
    "sample_records",
]


class ShopData:
    """Base records of one simulated shop. Immutable after construction; thread-safe for reads.

    ``now`` fixes the anchor when ``config.anchor`` is ``None`` (floored to the minute).
    """

    def __init__(self, config: DataConfig, *, now: float) -> None:
        self.config = config
        self.seed = config.seed
        anchor = config.anchor if config.anchor is not None else now
        self.anchor = int(anchor // 60 * 60) if config.anchor is None else int(anchor)
        self.start = self.anchor - int(config.history_days * 86_400)
        n_customers = config.customers if config.customers is not None else max(10, config.orders // 4)
        if config.big_order_line_items > MAX_LINE_ITEMS:
            raise ValueError(f"big_order_line_items must be ≤ {MAX_LINE_ITEMS}")
        if config.big_discount_codes > MAX_DISCOUNT_CODES:
            raise ValueError(f"big_discount_codes must be ≤ {MAX_DISCOUNT_CODES}")

        # Variants per product (1..5), as prefix sums: item idx j belongs to product
        # bisect_right(offsets, j) - 1.
        rv = random.Random(seed_of(self.seed, SALT["variants"], 0)).random
        offsets = array("q", [0])
        total = 0
        for _ in range(config.products):
            total += 1 + int(rv() ** 1.5 * MAX_VARIANTS)
            offsets.append(total)
        self.variant_offsets = offsets
        n_locations = config.locations
        self.counts: dict[str, int] = {
            "Order": config.orders,
            "Customer": n_customers,
            "Product": config.products,
            "InventoryItem": total,
            "InventoryLevel": total * n_locations,
            "Location": n_locations,
            "Collection": config.collections,
            "BasicEvent": 0,
            "ShopifyPaymentsBalanceTransaction": config.balance_transactions if config.shopify_payments else 0,
            "ShopifyPaymentsPayout": config.payouts if config.shopify_payments else 0,
            "ShopifyPaymentsDispute": config.disputes if config.shopify_payments else 0,
            "GiftCard": config.gift_cards,
            "DraftOrder": config.draft_orders,
            "AbandonedCheckout": config.abandoned_checkouts,
            "FulfillmentOrder": config.fulfillment_orders,
            "Market": config.markets,
            "DiscountNode": config.discount_nodes,
        }
        owners = {"Shop": 1, "ProductVariant": total, **self.counts}
        #: Whose metafields are where in the Metafield table (see metafield_records.metafield_layout).
        self.metafield_layout = metafield_layout(config, owners)
        self.counts["Metafield"] = sum(n * per for _t, _start, n, per in self.metafield_layout)
        for t, n in self.counts.items():
            if n > MASK // 2:
                raise ValueError(f"too many {t} records for the simulator: {n} (max {MASK // 2})")

        self.created: dict[str, array] = {}
        self.updated: dict[str, array] = {}
        for t in ("Order", "Customer", "Product", "Collection", *FINANCE_TYPES, "Metafield", *COMMERCE_TYPES, *DISCOUNT_TYPES):
            self.created[t], self.updated[t] = self._times(self.counts[t], t)
        loc_c, loc_u = self._times(n_locations, "Location", end=self.start + 86_400 * min(30.0, config.history_days / 4))
        self.created["Location"], self.updated["Location"] = loc_c, loc_u
        self._derived_times()
        self.tie_groups: list[tuple[int, int, int]] = self._apply_tie_groups()
        self.big_orders = self._pick_big_orders()
        self.updated_keys: dict[str, array] = {}
        for t in self.created:
            upd = self.updated[t]
            self.updated_keys[t] = array("q", sorted([(upd[i] << SHIFT) | i for i in range(len(upd))]))
        self.created["BasicEvent"] = array("q")
        self.updated["BasicEvent"] = array("q")
        self.updated_keys["BasicEvent"] = array("q")
        #: What line items need of product ``p`` (see :func:`~shopsync.simulator.catalog_records.product_core`).
        self.product_core: Callable[[int], tuple] = lru_cache(maxsize=8192)(partial(product_core, self))
        #: (available, committed, incoming, reserved) of inventory level ``level``.
        self.level_quantities: Callable[[int], tuple[int, int, int, int]] = lru_cache(maxsize=16384)(
            partial(level_quantities, self)
        )
        # Money bags are immutable and repeat a lot (unit prices): share them between records.
        self.bag: Callable[[int, tuple[str, int, int] | None], dict] = lru_cache(maxsize=4096)(money_bag)

    # -- timestamps ------------------------------------------------------------------------------
    def _delta(self, x: float, span: int) -> int:
        # How long after creation a record was last updated: often seconds (payment capture),
        # often days (fulfilment), sometimes weeks or most of the history.
        if x < 0.3:
            return int(x / 0.3 * 120)
        if x < 0.7:
            return int((x - 0.3) / 0.4 * 3 * 86_400)
        if x < 0.95:
            return int((x - 0.7) / 0.25 * 60 * 86_400)
        return int((x - 0.95) / 0.05 * span)

    def _times(self, n: int, type_name: str, end: float | None = None) -> tuple[array, array]:
        start, anchor = self.start, self.anchor
        end = anchor if end is None else min(int(end), anchor)
        span = max(1, end - start)
        rand = random.Random(seed_of(self.seed, SALT["times"], SALT[type_name])).random
        created = array("q", bytes(8 * n))
        updated = array("q", bytes(8 * n))
        step = span / n if n else 0.0
        delta = self._delta
        hist = anchor - start
        for i in range(n):
            c = start + int((i + rand()) * step)  # non-decreasing in i: ids grow with time
            u = c + delta(rand(), hist)
            created[i] = c
            updated[i] = u if u < anchor else anchor
        return created, updated

    def _derived_times(self) -> None:
        # Inventory items are created with their product; levels with their item.
        p_created = self.created["Product"]
        offsets = self.variant_offsets
        n_items = self.counts["InventoryItem"]
        n_loc = self.counts["Location"]
        anchor = self.anchor
        hist = anchor - self.start
        rand = random.Random(seed_of(self.seed, SALT["times"], SALT["InventoryItem"])).random
        ic = array("q", bytes(8 * n_items))
        iu = array("q", bytes(8 * n_items))
        for p in range(len(offsets) - 1):
            for j in range(offsets[p], offsets[p + 1]):
                ic[j] = p_created[p]
                u = ic[j] + self._delta(rand(), hist)
                iu[j] = u if u < anchor else anchor
        rand = random.Random(seed_of(self.seed, SALT["times"], SALT["InventoryLevel"])).random
        lc = array("q", bytes(8 * n_items * n_loc))
        lu = array("q", bytes(8 * n_items * n_loc))
        k = 0
        for j in range(n_items):
            c = ic[j]
            for _ in range(n_loc):
                lc[k] = c
                u = c + self._delta(rand(), hist)
                lu[k] = u if u < anchor else anchor
                k += 1
        self.created["InventoryItem"], self.updated["InventoryItem"] = ic, iu
        self.created["InventoryLevel"], self.updated["InventoryLevel"] = lc, lu

    def _apply_tie_groups(self) -> list[tuple[int, int, int]]:
        """Blocks of orders whose updatedAt is one shared second: (first idx, size, second)."""
        n = self.counts["Order"]
        g = self.config.tie_groups
        if g <= 0 or n <= 1:
            return []
        size = min(self.config.tie_group_size, n // g)
        if size < 2:
            return []
        created, updated = self.created["Order"], self.updated["Order"]
        groups = []
        per = n // g
        for k in range(g):
            first = k * per + (per - size) // 2
            last = first + size - 1
            second = min(self.anchor, created[last] + 3_600 + k)  # ≥ every member's createdAt
            for i in range(first, last + 1):
                updated[i] = second
            groups.append((first, size, second))
        return groups

    def _pick_big_orders(self) -> frozenset[int]:
        n = self.counts["Order"]
        b = min(self.config.big_orders, n)
        if b <= 0 or self.config.big_order_line_items <= 0:
            return frozenset()
        if n <= b:
            return frozenset(range(n))
        return frozenset((k + 1) * n // (b + 1) for k in range(b))

    # -- ids --------------------------------------------------------------------------------------
    def count(self, type_name: str) -> int:
        return self.counts[type_name]

    def gid(self, type_name: str, idx: int) -> str:
        if type_name == "InventoryLevel":
            item = idx // max(1, self.counts["Location"])
            return f"gid://shopify/InventoryLevel/{ID_BASE['InventoryLevel'] + idx}?inventory_item_id={ID_BASE['InventoryItem'] + item}"
        return f"gid://shopify/{type_name}/{ID_BASE[type_name] + idx}"

    def locate(self, gid: str) -> tuple[str, int, str | None, int] | None:
        """A GID → ``(top type, top idx, child type or None, child number)``; ``None`` if unknown.

        Child objects (LineItem, ProductVariant, OrderTransaction, Refund, ProductOption) are
        located inside their parent record; ``child number`` is their numeric id.
        """
        t = gid_type(gid)
        num = gid_number(gid) if t else None
        if t is None or num is None:
            return None
        if t in ID_BASE:
            return (t, num - ID_BASE[t], None, 0)
        if t == "LineItem":
            return ("Order", (num - LINE_ITEM_BASE) // 1000, t, num)
        if t == "OrderTransaction":
            return ("Order", (num - TRANSACTION_BASE) // 16, t, num)
        if t == "Refund":
            return ("Order", (num - REFUND_BASE) // 16, t, num)
        if t == "ProductVariant":
            return ("Product", (num - VARIANT_BASE) // 64, t, num)
        if t == "ProductOption":
            return ("Product", (num - OPTION_BASE) // 8, t, num)
        return None

    def product_of_item(self, item_idx: int) -> tuple[int, int]:
        p = bisect_right(self.variant_offsets, item_idx) - 1
        return p, item_idx - self.variant_offsets[p]

    def level_idx(self, item_idx: int, location_idx: int) -> int:
        return item_idx * self.counts["Location"] + location_idx

    # -- generation -------------------------------------------------------------------------------
    def rng(self, type_name: str, idx: int) -> random.Random:
        """The random stream of record ``idx`` of ``type_name`` (a salt name of :data:`~shopsync.simulator.ids.SALT`)."""
        return random.Random(seed_of(self.seed, SALT[type_name], idx))

    def generate(
        self,
        type_name: str,
        idx: int,
        *,
        created: int | None = None,
        updated: int | None = None,
        line_items: int | None = None,
    ) -> dict:
        """Record ``idx`` of ``type_name`` as a plain dict keyed by schema field names.

        ``created``/``updated`` override the base timestamps (used for records created after
        start, whose idx lies beyond the base arrays); ``line_items`` the number of line items of
        an order.
        """
        if created is None:
            created = self.created[type_name][idx]
        if updated is None:
            updated = self.updated[type_name][idx]
        if type_name == "Order":
            return generate_order(self, idx, created, updated, line_items)
        return _GENERATORS[type_name](self, idx, created, updated)

    def make_event(self, idx: int, *, subject_type: str, subject_id: str, subject_name: str, at: int) -> dict:
        """A ``destroy`` BasicEvent for a deleted record."""
        return destroy_event(idx, subject_type=subject_type, subject_id=subject_id, subject_name=subject_name, at=at)


def _no_base_events(d: ShopData, idx: int, created: int, updated: int) -> dict:
    raise KeyError("events have no base data")


#: The generator of each top-level type's base records (orders take one more argument).
_GENERATORS: dict[str, Callable[[ShopData, int, int, int], dict]] = {
    "Customer": generate_customer,
    "Product": generate_product,
    "InventoryItem": generate_inventory_item,
    "InventoryLevel": generate_inventory_level,
    "Location": generate_location,
    "Collection": generate_collection,
    "BasicEvent": _no_base_events,
    "ShopifyPaymentsBalanceTransaction": generate_balance_transaction,
    "ShopifyPaymentsPayout": generate_payout,
    "ShopifyPaymentsDispute": generate_dispute,
    "GiftCard": generate_gift_card,
    "Metafield": generate_metafield,
    "DraftOrder": generate_draft_order,
    "AbandonedCheckout": generate_abandoned_checkout,
    "FulfillmentOrder": generate_fulfillment_order,
    "Market": generate_market,
    "DiscountNode": generate_discount_node,
}
