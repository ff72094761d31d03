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

Ids: numeric id = ``ID_BASE[type] + idx`` (so ids sort like idx), GIDs ``gid://shopify/Order/<n>``.
Child objects have ids derived from their parent (line item ``j`` of order ``i`` is
``LINE_ITEM_BASE + i*1000 + j``), so any GID can be located without an index.

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
"""

from __future__ import annotations

import copy
import random
from array import array
from bisect import bisect_right
from collections.abc import Callable
from functools import lru_cache
from time import gmtime, strftime
from typing import Any

from shopsync.simulator.config import DataConfig

__all__ = [
    "ID_BASE",
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
]

#: Composite index keys are ``value << SHIFT | idx``; at most 2**SHIFT records per type.
SHIFT = 24
MASK = (1 << SHIFT) - 1

TOP_TYPES = ("Order", "Customer", "Product", "InventoryItem", "InventoryLevel", "Location", "Collection", "BasicEvent")

ID_BASE: dict[str, int] = {
    "Order": 5_200_000_000_000,
    "Customer": 6_800_000_000_000,
    "Product": 7_900_000_000_000,
    "InventoryItem": 44_100_000_000_000,
    "InventoryLevel": 98_700_000_000_000,
    "Location": 61_000_000_000,
    "Collection": 290_000_000_000,
    "BasicEvent": 9_100_000_000_000,
}
LINE_ITEM_BASE = 13_000_000_000_000  # + order idx * 1000 + j
TRANSACTION_BASE = 6_300_000_000_000  # + order idx * 16 + k
REFUND_BASE = 880_000_000_000  # + order idx * 16 + k
VARIANT_BASE = 41_000_000_000_000  # + product idx * 64 + v
OPTION_BASE = 10_500_000_000_000  # + product idx * 8 + k
ADDRESS_BASE = 8_000_000_000_000  # + owner-specific offset
MAX_LINE_ITEMS = 999
MAX_VARIANTS = 5

SHOP_CURRENCY = "USD"
# (code, rate ×10000 from USD, decimals)
PRESENTMENT = (("EUR", 9200, 2), ("CAD", 13600, 2), ("ILS", 37000, 2), ("AED", 36700, 2), ("JPY", 1_490_000, 0))

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Zoë", "José", "Søren", "Ayşe", "محمد", "فاطمة", "נועה", "אברהם",
    "Yuki", "李", "Oluwaseun", "Chloé", "Mateo", "Amélie", "Ingrid", "Priya", "Łukasz", "Björn",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "García", "Müller", "O'Brien", "Nguyen", "Kowalski", "العلي", "حداد", "כהן", "לוי", "Tanaka",
    "王", "Dubois", "Rossi", "Ivanova", "Okafor", "Johansson", "Da Silva", "Ørsted", "van der Berg",
)  # fmt: skip
COMPANIES = ("Acme Corp", "Globex GmbH", "שלום בע״מ", "شركة النور", "Initech 🚀", "Café Société")
ADJECTIVES = ("Classic", "Organic", "Vintage", "Ultra-light", "Handmade", "Recycled", "Cozy", "Premium", "Café")
NOUNS = ("T-Shirt", "Hoodie", "Mug", "Backpack", "Sneakers", "Candle", "Notebook", "Scarf", "Water Bottle", "Sunglasses")
UNICODE_TITLES = ("قميص قطني", "כוס קפה ☕", "Bonsai 🌱 kit", "Crème brûlée torch 🔥", "ספר מתכונים", "وشاح حريري")
VENDORS = ("Acme Co", "Nordic Threads", "Café Ümlaut", "Tel Aviv Makers", "دار الحرف", "🌈 Rainbow Goods")
PRODUCT_TYPES = ("Apparel", "Home", "Accessories", "Footwear", "Stationery", "")
TAGS = ("vip", "wholesale", "gift", "eco", "sale", "preorder", "returning", "מבצע", "هدية", "🔥hot")
NOTES = (
    "Please gift wrap 🎁",
    "Leave at the back door",
    "اتصل قبل التوصيل",
    "נא להשאיר ליד הדלת",
    'Multi-line\nnote with "quotes" and a \\ backslash',
    "Délivrer après 18h",
    "👍",
)
SIZES = ("XS", "S", "M", "L", "XL")
COLORS = ("Black", "White", "Navy", "ירוק", "أحمر", "🌈 Multi")
GATEWAYS = ("shopify_payments", "paypal", "manual", "gift_card")
CANCEL_REASONS = ("CUSTOMER", "DECLINED", "FRAUD", "INVENTORY", "OTHER", "STAFF")
COLLECTION_SORTS = ("MANUAL", "BEST_SELLING", "ALPHA_ASC", "ALPHA_DESC", "CREATED", "CREATED_DESC", "PRICE_ASC")
LOCALES = ("en", "en", "en", "fr", "de", "he", "ar", "ja", "pt-BR")
# city, province, provinceCode, zip, country, countryCodeV2, phone prefix, tax rate ‰, streets
ADDRESSES = (
    ("New York", "New York", "NY", "10001", "United States", "US", "+1212555", 88, ("350 5th Ave", "11 Wall St")),
    ("San Francisco", "California", "CA", "94103", "United States", "US", "+1415555", 86, ("1 Market St",)),
    ("Toronto", "Ontario", "ON", "M5V 2T6", "Canada", "CA", "+1416555", 130, ("290 Bremner Blvd",)),
    ("Berlin", "Berlin", "BE", "10115", "Germany", "DE", "+4930555", 190, ("Hauptstraße 5", "Unter den Linden 1")),
    ("Tel Aviv", None, None, "6100000", "Israel", "IL", "+9723555", 170, ("שדרות רוטשילד 10",)),
    ("Dubai", "Dubai", "DU", "00000", "United Arab Emirates", "AE", "+9714555", 50, ("شارع الشيخ زايد 1",)),
    ("Tokyo", "Tokyo", "JP-13", "100-0001", "Japan", "JP", "+8135555", 100, ("1-1 Chiyoda",)),
    ("London", None, None, "SW1A 1AA", "United Kingdom", "GB", "+4420555", 200, ("10 Downing St",)),
    ("São Paulo", "São Paulo", "SP", "01000-000", "Brazil", "BR", "+5511555", 170, ("Av. Paulista 1000",)),
)
LOCATION_NAMES = ("Main Warehouse", "מחסן תל אביב", "متجر دبي", "Pop-up 🎪 Store", "Legacy 3PL", "Berlin Lager")

# Salts keep the random streams of different record types independent.
_SALT = {
    "Order": 1, "Customer": 2, "Product": 3, "InventoryItem": 4, "InventoryLevel": 5, "Location": 6,
    "Collection": 7, "ProductDetail": 8, "times": 20, "variants": 21, "update": 22, "bulk": 23,
}  # fmt: skip

_ADDR_FIELDS = (
    "name", "firstName", "lastName", "company", "address1", "address2", "city", "province", "provinceCode",
    "zip", "country", "countryCodeV2", "phone",
)  # fmt: skip
_MONEY = frozenset({"amount", "currencyCode"})

#: The fields the simulator models, per schema type. Anything else selected on these types is
#: answered with an explicit "not modelled" error. Connection/Edge/PageInfo types are generic.
MODELLED_FIELDS: dict[str, frozenset[str]] = {
    "Order": frozenset({
        "id", "legacyResourceId", "name", "email", "phone", "createdAt", "updatedAt", "processedAt", "cancelledAt",
        "cancelReason", "closedAt", "closed", "confirmed", "displayFinancialStatus",
        "displayFulfillmentStatus", "currencyCode", "presentmentCurrencyCode", "note", "tags", "test",
        "taxesIncluded", "subtotalLineItemsQuantity", "totalPriceSet", "subtotalPriceSet", "totalTaxSet",
        "totalDiscountsSet", "totalShippingPriceSet", "customer", "shippingAddress", "billingAddress",
        "transactions", "refunds", "lineItems",
    }),
    "LineItem": frozenset({
        "id", "name", "title", "sku", "vendor", "quantity", "currentQuantity", "taxable", "requiresShipping",
        "variantTitle", "variant", "product", "originalUnitPriceSet", "discountedUnitPriceSet",
    }),
    "OrderTransaction": frozenset({"id", "kind", "status", "gateway", "createdAt", "processedAt", "amountSet", "test"}),
    "Refund": frozenset({"id", "createdAt", "updatedAt", "note", "totalRefundedSet"}),
    "Customer": frozenset({
        "id", "legacyResourceId", "firstName", "lastName", "displayName", "defaultEmailAddress",
        "defaultPhoneNumber", "note", "tags", "state", "locale", "taxExempt", "verifiedEmail", "numberOfOrders",
        "amountSpent", "createdAt", "updatedAt", "defaultAddress",
    }),
    "CustomerEmailAddress": frozenset({"emailAddress", "marketingState"}),
    "CustomerPhoneNumber": frozenset({"phoneNumber", "marketingState"}),
    "Product": frozenset({
        "id", "legacyResourceId", "title", "handle", "descriptionHtml", "vendor", "productType", "status", "tags",
        "createdAt", "updatedAt", "publishedAt", "templateSuffix", "options", "variants", "totalInventory",
    }),
    "ProductOption": frozenset({"id", "name", "position", "values"}),
    "SelectedOption": frozenset({"name", "value"}),
    "ProductVariant": frozenset({
        "id", "legacyResourceId", "title", "displayName", "sku", "barcode", "price", "compareAtPrice", "position",
        "taxable", "inventoryPolicy", "inventoryQuantity", "createdAt", "updatedAt", "selectedOptions",
        "inventoryItem", "product",
    }),
    "InventoryItem": frozenset({
        "id", "legacyResourceId", "sku", "tracked", "requiresShipping", "countryCodeOfOrigin",
        "harmonizedSystemCode", "unitCost", "createdAt", "updatedAt", "variant", "inventoryLevels", "inventoryLevel",
    }),
    "InventoryLevel": frozenset({"id", "createdAt", "updatedAt", "isActive", "canDeactivate", "item", "location", "quantities"}),
    "InventoryQuantity": frozenset({"id", "name", "quantity", "updatedAt"}),
    "Location": frozenset({
        "id", "legacyResourceId", "name", "isActive", "fulfillsOnlineOrders", "shipsInventory", "createdAt",
        "updatedAt", "deactivatedAt", "address", "isFulfillmentService", "inventoryLevels", "inventoryLevel",
    }),
    "LocationAddress": frozenset({"address1", "address2", "city", "province", "provinceCode", "zip", "country", "countryCode", "phone"}),
    "Collection": frozenset({"id", "legacyResourceId", "title", "handle", "descriptionHtml", "sortOrder", "templateSuffix", "updatedAt", "productsCount"}),
    "BasicEvent": frozenset({
        "id", "action", "subjectType", "subjectId", "createdAt", "message", "appTitle", "attributeToApp",
        "attributeToUser", "criticalAlert", "hasAdditionalContent", "arguments", "additionalContent",
        "additionalData", "secondaryMessage", "subject",
    }),
    "MailingAddress": frozenset({"id", *_ADDR_FIELDS}),
    "MoneyBag": frozenset({"shopMoney", "presentmentMoney"}),
    "MoneyV2": _MONEY,
    "Count": frozenset({"count", "precision"}),
    "PageInfo": frozenset({"hasNextPage", "hasPreviousPage", "startCursor", "endCursor"}),
    "Shop": frozenset({"id", "name", "myshopifyDomain", "currencyCode", "ianaTimezone"}),
}


class Ref:
    """A link to another record by GID, resolved by the executor through the store at read time.

    ``loc`` is the target's location as :meth:`ShopData.locate` gives it — ``(top type, top idx,
    child type or None, child number)`` — when the generator knows it, so that existence checks of
    references (``lineItems { variant { id } }``) need not parse the GID.
    """

    __slots__ = ("gid", "loc")

    def __init__(self, gid: str, loc: tuple[str, int, str | None, int] | None = None) -> None:
        self.gid = gid
        self.loc = loc

    def __repr__(self) -> str:
        return f"Ref({self.gid!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Ref) and other.gid == self.gid

    def __hash__(self) -> int:
        return hash(self.gid)

    def __deepcopy__(self, memo: dict) -> Ref:
        return self  # immutable


def fmt_ts(seconds: int | float) -> str:
    """Epoch seconds → ``2026-11-25T23:18:05Z`` (Shopify's timestamp format)."""
    return strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(int(seconds)))


def decimal_amount(cents: int, decimals: int = 2) -> str:
    """Shopify's ``Decimal`` output: trailing zeros dropped but one decimal kept (``"10.0"``)."""
    if decimals == 0:
        return f"{cents}.0"
    whole, frac = divmod(cents, 100)
    if frac == 0:
        return f"{whole}.0"
    if frac % 10 == 0:
        return f"{whole}.{frac // 10}"
    return f"{whole}.{frac:02d}"


def money_amount(cents: int) -> str:
    """The ``Money`` scalar (e.g. ``ProductVariant.price``): always two decimals."""
    whole, frac = divmod(cents, 100)
    return f"{whole}.{frac:02d}"


def gid_type(gid: str) -> str | None:
    """``gid://shopify/Order/1`` → ``"Order"`` (``None`` if not a Shopify GID)."""
    if not gid.startswith("gid://shopify/"):
        return None
    rest = gid[14:]
    slash = rest.find("/")
    return rest[:slash] if slash > 0 else None


def _gid_number(gid: str) -> int | None:
    slash = gid.rfind("/")
    tail = gid[slash + 1 :]
    q = tail.find("?")
    if q >= 0:
        tail = tail[:q]
    return int(tail) if tail.isdigit() else None


def _seed_of(seed: int, salt: int, idx: int) -> int:
    # Distinct (seed, salt, idx) give distinct integers, so distinct Random streams.
    return ((seed & 0xFFFFFFFF) << 64) | (salt << 48) | (idx & 0xFFFFFFFFFFFF)


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

        # Variants per product (1..5), as prefix sums: item idx j belongs to product
        # bisect_right(offsets, j) - 1.
        rv = random.Random(_seed_of(self.seed, _SALT["variants"], 0)).random
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
        }
        for t, n in self.counts.items():
            if n > MASK // 2:
                raise ValueError(f"too many {t} records for the simulator: {n} (max {MASK // 2})")

        self.created: dict[str, array] = {}
        self.updated: dict[str, array] = {}
        for t in ("Order", "Customer", "Product", "Collection"):
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
        self._product_core = lru_cache(maxsize=8192)(self._product_core_uncached)
        self._level_quantities = lru_cache(maxsize=16384)(self._level_quantities_uncached)
        # Money bags are immutable and repeat a lot (unit prices): share them between records.
        self._bag = lru_cache(maxsize=4096)(self._bag_uncached)

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

    def _times(self, n: int, type_name: str, end: int | None = None) -> tuple[array, array]:
        start, anchor = self.start, self.anchor
        end = anchor if end is None else min(int(end), anchor)
        span = max(1, end - start)
        rand = random.Random(_seed_of(self.seed, _SALT["times"], _SALT[type_name])).random
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
        rand = random.Random(_seed_of(self.seed, _SALT["times"], _SALT["InventoryItem"])).random
        ic = array("q", bytes(8 * n_items))
        iu = array("q", bytes(8 * n_items))
        for p in range(len(offsets) - 1):
            for j in range(offsets[p], offsets[p + 1]):
                ic[j] = p_created[p]
                u = ic[j] + self._delta(rand(), hist)
                iu[j] = u if u < anchor else anchor
        rand = random.Random(_seed_of(self.seed, _SALT["times"], _SALT["InventoryLevel"])).random
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
        num = _gid_number(gid) if t else None
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
    def _rng(self, type_name: str, idx: int) -> random.Random:
        return random.Random(_seed_of(self.seed, _SALT[type_name], idx))

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
            return self._gen_Order(idx, created, updated, line_items)
        gen: Callable[..., dict] = getattr(self, f"_gen_{type_name}")
        return gen(idx, created, updated)

    def _address(self, rand: Callable[[], float], owner: int, first: str, last: str, region: int, company: bool) -> dict:
        city, prov, pcode, zip_, country, cc, phone, _tax, streets = ADDRESSES[region]
        return {
            "id": f"gid://shopify/MailingAddress/{ADDRESS_BASE + owner}?model_name=Address",
            "name": f"{first} {last}",
            "firstName": first,
            "lastName": last,
            "company": COMPANIES[int(rand() * len(COMPANIES))] if company else None,
            "address1": streets[int(rand() * len(streets))],
            "address2": f"Apt {1 + int(rand() * 40)}" if rand() < 0.3 else None,
            "city": city,
            "province": prov,
            "provinceCode": pcode,
            "zip": zip_,
            "country": country,
            "countryCodeV2": cc,
            "phone": f"{phone}{int(rand() * 9000) + 1000}" if rand() < 0.5 else None,
        }

    def _product_core_uncached(self, p: int) -> tuple:
        """What line items need of a product, computed once: title, vendor and variants as
        (numeric id, title or None, sku, price cents, taxable, requires shipping)."""
        r = self._rng("Product", p)
        rand = r.random
        if rand() < 0.15:
            title = UNICODE_TITLES[int(rand() * len(UNICODE_TITLES))]
        else:
            title = f"{ADJECTIVES[int(rand() * len(ADJECTIVES))]} {NOUNS[int(rand() * len(NOUNS))]}"
        vendor = VENDORS[int(rand() * len(VENDORS))]
        base = 500 + int(rand() * 19_500)  # $5 .. $200
        n = self.variant_offsets[p + 1] - self.variant_offsets[p]
        option_name = "Title" if n == 1 else ("Size" if rand() < 0.6 else "Color")
        values = ("Default Title",) if n == 1 else (SIZES if option_name == "Size" else COLORS)[:n]
        taxable = rand() < 0.9
        shipping = rand() < 0.92
        variants = []
        for v in range(n):
            price = base + (v * 200 if option_name == "Size" else 0)
            vt = None if n == 1 else values[v]
            variants.append((VARIANT_BASE + p * 64 + v, vt, f"SKU-{p:05d}-{v}", price, taxable, shipping))
        return title, vendor, option_name, values, tuple(variants)

    def _level_quantities_uncached(self, level: int) -> tuple[int, int, int, int]:
        rand = self._rng("InventoryLevel", level).random
        available = int(rand() * 130) - 10  # a few oversold (negative) levels
        committed = int(rand() * 6) if rand() < 0.5 else 0
        incoming = int(rand() * 50) if rand() < 0.2 else 0
        reserved = 1 + int(rand() * 2) if rand() < 0.1 else 0
        return available, committed, incoming, reserved

    def _bag_uncached(self, cents: int, pres: tuple[str, int, int] | None) -> dict:
        shop = {"amount": decimal_amount(cents), "currencyCode": SHOP_CURRENCY}
        if pres is None:
            return {"shopMoney": shop, "presentmentMoney": shop}
        code, rate, decimals = pres
        converted = cents * rate // 10_000
        if decimals == 0:
            converted //= 100
        return {"shopMoney": shop, "presentmentMoney": {"amount": decimal_amount(converted, decimals), "currencyCode": code}}

    def _gen_Order(self, idx: int, created: int, updated: int, line_items: int | None = None) -> dict:
        r = self._rng("Order", idx)
        rand = r.random
        num = ID_BASE["Order"] + idx
        gid = f"gid://shopify/Order/{num}"
        n_customers = self.counts["Customer"]
        n_orders = max(1, self.counts["Order"])
        # Customers are numbered by creation time too: pick one who existed when the order was placed.
        customer_idx = int(rand() * n_customers * min(1.0, (idx + 1) / n_orders)) if n_customers else -1
        has_customer = customer_idx >= 0 and rand() >= 0.04
        first = FIRST_NAMES[int(rand() * len(FIRST_NAMES))]
        last = LAST_NAMES[int(rand() * len(LAST_NAMES))]
        region = int(rand() * len(ADDRESSES))
        pres = PRESENTMENT[int(rand() * len(PRESENTMENT))] if rand() < 0.3 else None
        taxes_included = ADDRESSES[region][5] not in ("US", "CA")
        tax_rate = ADDRESSES[region][7]

        n_items = 1 + int(rand() ** 2 * 5)
        if line_items is not None:
            n_items = max(0, min(MAX_LINE_ITEMS, line_items))
        elif idx in self.big_orders:
            n_items = self.config.big_order_line_items
        n_products = self.counts["Product"]
        line_items = []
        subtotal = 0
        discounts = 0
        quantity_total = 0
        li_base = LINE_ITEM_BASE + idx * 1000
        for j in range(n_items if n_products else 0):
            p = int(rand() * n_products)
            title, vendor, _on, _vals, variants = self._product_core(p)
            vnum, vtitle, sku, price, taxable, shipping = variants[int(rand() * len(variants))]
            qty = 1 + int(rand() ** 3 * 4)
            disc = price - (price * (5 + int(rand() * 20)) // 100 if rand() < 0.15 else 0)
            subtotal += disc * qty
            discounts += (price - disc) * qty
            quantity_total += qty
            line_items.append({
                "__typename": "LineItem",
                "id": f"gid://shopify/LineItem/{li_base + j}",
                "name": title if vtitle is None else f"{title} - {vtitle}",
                "title": title,
                "sku": sku,
                "vendor": vendor,
                "quantity": qty,
                "currentQuantity": qty,
                "taxable": taxable,
                "requiresShipping": shipping,
                "variantTitle": vtitle,
                "variant": Ref(f"gid://shopify/ProductVariant/{vnum}", ("Product", p, "ProductVariant", vnum)),
                "product": Ref(f"gid://shopify/Product/{ID_BASE['Product'] + p}", ("Product", p, None, 0)),
                "originalUnitPriceSet": self._bag(price, pres),
                "discountedUnitPriceSet": self._bag(disc, pres),
            })
        shipping_cents = (0, 499, 999, 1500)[int(rand() * 4)]
        tax = subtotal * tax_rate // (1000 + tax_rate) if taxes_included else subtotal * tax_rate // 1000
        total = subtotal + shipping_cents + (0 if taxes_included else tax)

        x = rand()
        financial = (
            "PAID" if x < 0.8 else "PARTIALLY_REFUNDED" if x < 0.86 else "REFUNDED" if x < 0.9
            else "PENDING" if x < 0.95 else "AUTHORIZED" if x < 0.98 else "VOIDED"
        )  # fmt: skip
        cancelled = financial == "VOIDED" or (financial == "REFUNDED" and rand() < 0.5)
        y = rand()
        fulfillment = (
            "UNFULFILLED" if cancelled or financial in ("PENDING", "AUTHORIZED")
            else "FULFILLED" if y < 0.65 else "UNFULFILLED" if y < 0.9 else "PARTIALLY_FULFILLED" if y < 0.95 else "IN_PROGRESS"
        )  # fmt: skip
        created_s = fmt_ts(created)
        updated_s = fmt_ts(updated)
        span = updated - created

        def between() -> str:
            return fmt_ts(created + int(rand() * span)) if span > 0 else created_s

        transactions = []
        refunds = []
        tx_base = TRANSACTION_BASE + idx * 16
        gateway = GATEWAYS[int(rand() * len(GATEWAYS))]

        def tx(k: int, kind: str, status: str, cents: int, at: str) -> dict:
            return {
                "__typename": "OrderTransaction",
                "id": f"gid://shopify/OrderTransaction/{tx_base + k}",
                "kind": kind,
                "status": status,
                "gateway": gateway,
                "createdAt": at,
                "processedAt": at,
                "amountSet": self._bag(cents, pres),
                "test": False,
            }

        if financial == "PENDING":
            transactions.append(tx(0, "SALE", "PENDING", total, created_s))
        elif financial in ("AUTHORIZED", "VOIDED"):
            transactions.append(tx(0, "AUTHORIZATION", "SUCCESS", total, created_s))
            if financial == "VOIDED":
                transactions.append(tx(1, "VOID", "SUCCESS", total, updated_s))
        else:
            if rand() < 0.2:
                transactions.append(tx(0, "AUTHORIZATION", "SUCCESS", total, created_s))
                transactions.append(tx(1, "CAPTURE", "SUCCESS", total, between()))
            else:
                transactions.append(tx(0, "SALE", "SUCCESS", total, created_s))
            if financial in ("PARTIALLY_REFUNDED", "REFUNDED"):
                refunded = total if financial == "REFUNDED" else max(1, total * (10 + int(rand() * 60)) // 100)
                at = between()
                transactions.append(tx(len(transactions), "REFUND", "SUCCESS", refunded, at))
                refunds.append({
                    "__typename": "Refund",
                    "id": f"gid://shopify/Refund/{REFUND_BASE + idx * 16}",
                    "createdAt": at,
                    "updatedAt": at,
                    "note": NOTES[int(rand() * len(NOTES))] if rand() < 0.4 else None,
                    "totalRefundedSet": self._bag(refunded, pres),
                })
                if financial == "REFUNDED":
                    for li in line_items:
                        li["currentQuantity"] = 0

        ship = self._address(rand, idx * 4, first, last, region, rand() < 0.1) if rand() < 0.95 else None
        bill = (dict(ship) if ship and rand() < 0.8 else self._address(rand, idx * 4 + 1, first, last, region, False))
        if bill is not None:
            bill["id"] = f"gid://shopify/MailingAddress/{ADDRESS_BASE + idx * 4 + 1}?model_name=Address"
        tags = sorted({TAGS[int(rand() * len(TAGS))] for _ in range(int(rand() * 3.5))})
        closed = financial == "PAID" and fulfillment == "FULFILLED" and rand() < 0.6
        return {
            "__typename": "Order",
            "id": gid,
            "legacyResourceId": str(num),
            "name": f"#{1001 + idx}",
            "email": f"customer{customer_idx}@example.com" if has_customer and rand() < 0.97 else None,
            "phone": f"{ADDRESSES[region][6]}{int(rand() * 9000) + 1000}" if rand() < 0.15 else None,
            "createdAt": created_s,
            "updatedAt": updated_s,
            "processedAt": created_s,
            "cancelledAt": updated_s if cancelled else None,
            "cancelReason": CANCEL_REASONS[int(rand() * len(CANCEL_REASONS))] if cancelled else None,
            "closedAt": updated_s if closed or cancelled else None,
            "closed": closed or cancelled,
            "confirmed": True,
            "displayFinancialStatus": financial,
            "displayFulfillmentStatus": fulfillment,
            "currencyCode": SHOP_CURRENCY,
            "presentmentCurrencyCode": pres[0] if pres else SHOP_CURRENCY,
            "note": NOTES[int(rand() * len(NOTES))] if rand() < 0.2 else None,
            "tags": tags,
            "test": rand() < 0.01,
            "taxesIncluded": taxes_included,
            "subtotalLineItemsQuantity": quantity_total,
            "totalPriceSet": self._bag(total, pres),
            "subtotalPriceSet": self._bag(subtotal, pres),
            "totalTaxSet": self._bag(tax, pres),
            "totalDiscountsSet": self._bag(discounts, pres),
            "totalShippingPriceSet": self._bag(shipping_cents, pres),
            "customer": Ref(f"gid://shopify/Customer/{ID_BASE['Customer'] + customer_idx}", ("Customer", customer_idx, None, 0))
            if has_customer
            else None,
            "shippingAddress": ship,
            "billingAddress": bill,
            "transactions": transactions,
            "refunds": refunds,
            "lineItems": line_items,
        }

    def _gen_Customer(self, idx: int, created: int, updated: int) -> dict:
        rand = self._rng("Customer", idx).random
        num = ID_BASE["Customer"] + idx
        first = FIRST_NAMES[int(rand() * len(FIRST_NAMES))] if rand() < 0.97 else None
        last = LAST_NAMES[int(rand() * len(LAST_NAMES))]
        region = int(rand() * len(ADDRESSES))
        email = f"customer{idx}@example.com" if rand() < 0.95 else None
        phone = f"{ADDRESSES[region][6]}{int(rand() * 9000) + 1000}" if rand() < 0.35 else None
        orders = int(rand() ** 2 * 12)
        spent = orders * (1500 + int(rand() * 15_000))
        display = f"{first} {last}" if first else last
        return {
            "__typename": "Customer",
            "id": f"gid://shopify/Customer/{num}",
            "legacyResourceId": str(num),
            "firstName": first,
            "lastName": last,
            "displayName": display,
            "defaultEmailAddress": {
                "emailAddress": email,
                "marketingState": ("SUBSCRIBED", "NOT_SUBSCRIBED", "UNSUBSCRIBED", "PENDING")[int(rand() ** 0.7 * 4)],
            } if email else None,
            "defaultPhoneNumber": {
                "phoneNumber": phone,
                "marketingState": ("NOT_SUBSCRIBED", "SUBSCRIBED", "UNSUBSCRIBED")[int(rand() * 3)],
            } if phone else None,
            "note": NOTES[int(rand() * len(NOTES))] if rand() < 0.1 else None,
            "tags": sorted({TAGS[int(rand() * len(TAGS))] for _ in range(int(rand() * 2.5))}),
            "state": ("ENABLED", "DISABLED", "INVITED", "DECLINED")[int(rand() ** 3 * 4)],
            "locale": LOCALES[int(rand() * len(LOCALES))],
            "taxExempt": rand() < 0.03,
            "verifiedEmail": email is not None and rand() < 0.9,
            "numberOfOrders": str(orders),  # UnsignedInt64 is serialised as a string
            "amountSpent": {"amount": decimal_amount(spent), "currencyCode": SHOP_CURRENCY},
            "createdAt": fmt_ts(created),
            "updatedAt": fmt_ts(updated),
            "defaultAddress": self._address(rand, 2_000_000_000 + idx, first or "", last, region, rand() < 0.15)
            if rand() < 0.8
            else None,
        }

    def _gen_Product(self, idx: int, created: int, updated: int) -> dict:
        title, vendor, option_name, values, variants = self._product_core(idx)
        rand = self._rng("ProductDetail", idx).random
        num = ID_BASE["Product"] + idx
        gid = f"gid://shopify/Product/{num}"
        x = rand()
        status = "ACTIVE" if x < 0.85 else "DRAFT" if x < 0.95 else "ARCHIVED"
        created_s, updated_s = fmt_ts(created), fmt_ts(updated)
        ascii_title = title.isascii()
        handle = (title.lower().replace(" ", "-") + f"-{idx}") if ascii_title else f"product-{idx}"
        offset = self.variant_offsets[idx]
        n_loc = self.counts["Location"]
        out_variants = []
        total_inventory = 0
        for v, (vnum, vtitle, sku, price, taxable, _shipping) in enumerate(variants):
            item = offset + v
            qty = 0
            for loc in range(n_loc):
                qty += self._level_quantities(item * n_loc + loc)[0]
            total_inventory += qty
            vt = vtitle if vtitle is not None else "Default Title"
            out_variants.append({
                "__typename": "ProductVariant",
                "id": f"gid://shopify/ProductVariant/{vnum}",
                "legacyResourceId": str(vnum),
                "title": vt,
                "displayName": f"{title} - {vt}",
                "sku": sku,
                "barcode": str(4_000_000_000_000 + vnum % 1_000_000_000) if rand() < 0.7 else None,
                "price": money_amount(price),
                "compareAtPrice": money_amount(price + 500) if rand() < 0.2 else None,
                "position": v + 1,
                "taxable": taxable,
                "inventoryPolicy": "CONTINUE" if rand() < 0.1 else "DENY",
                "inventoryQuantity": qty,
                "createdAt": created_s,
                "updatedAt": updated_s,
                "selectedOptions": [{"name": option_name, "value": vt}],
                "inventoryItem": Ref(f"gid://shopify/InventoryItem/{ID_BASE['InventoryItem'] + item}", ("InventoryItem", item, None, 0)),
                "product": Ref(gid, ("Product", idx, None, 0)),
            })
        return {
            "__typename": "Product",
            "id": gid,
            "legacyResourceId": str(num),
            "title": title,
            "handle": handle,
            "descriptionHtml": f"<p>{title} by <strong>{vendor}</strong>.</p>" if rand() < 0.9 else "",
            "vendor": vendor,
            "productType": PRODUCT_TYPES[int(rand() * len(PRODUCT_TYPES))],
            "status": status,
            "tags": sorted({TAGS[int(rand() * len(TAGS))] for _ in range(int(rand() * 3.5))}),
            "createdAt": created_s,
            "updatedAt": updated_s,
            "publishedAt": None if status == "DRAFT" else created_s,
            "templateSuffix": "alternate" if rand() < 0.1 else None,
            "totalInventory": total_inventory,
            "options": [{"id": f"gid://shopify/ProductOption/{OPTION_BASE + idx * 8}", "name": option_name, "position": 1, "values": list(values)}],
            "variants": out_variants,
        }

    def _gen_InventoryItem(self, idx: int, created: int, updated: int) -> dict:
        rand = self._rng("InventoryItem", idx).random
        p, v = self.product_of_item(idx)
        vnum, _vt, sku, price, _tax, shipping = self._product_core(p)[4][v]
        num = ID_BASE["InventoryItem"] + idx
        return {
            "__typename": "InventoryItem",
            "id": f"gid://shopify/InventoryItem/{num}",
            "legacyResourceId": str(num),
            "sku": sku,
            "tracked": rand() < 0.9,
            "requiresShipping": shipping,
            "countryCodeOfOrigin": ("US", "CN", "DE", "IL", "JP")[int(rand() * 5)] if rand() < 0.4 else None,
            "harmonizedSystemCode": ("610910", "420292", "691200", "330741")[int(rand() * 4)] if rand() < 0.3 else None,
            "unitCost": {"amount": decimal_amount(price * 4 // 10), "currencyCode": SHOP_CURRENCY} if rand() < 0.7 else None,
            "createdAt": fmt_ts(created),
            "updatedAt": fmt_ts(updated),
            "variant": Ref(f"gid://shopify/ProductVariant/{vnum}", ("Product", p, "ProductVariant", vnum)),
        }

    def _gen_InventoryLevel(self, idx: int, created: int, updated: int) -> dict:
        n_loc = max(1, self.counts["Location"])
        item, loc = divmod(idx, n_loc)
        available, committed, incoming, reserved = self._level_quantities(idx)
        updated_s = fmt_ts(updated)
        q = {
            "available": available,
            "committed": committed,
            "incoming": incoming,
            "reserved": reserved,
            "on_hand": available + committed + reserved,
            "damaged": 0,
            "quality_control": 0,
            "safety_stock": 0,
        }
        return {
            "__typename": "InventoryLevel",
            "id": self.gid("InventoryLevel", idx),
            "createdAt": fmt_ts(created),
            "updatedAt": updated_s,
            "isActive": True,
            "canDeactivate": True,
            "item": Ref(f"gid://shopify/InventoryItem/{ID_BASE['InventoryItem'] + item}", ("InventoryItem", item, None, 0)),
            "location": Ref(f"gid://shopify/Location/{ID_BASE['Location'] + loc}", ("Location", loc, None, 0)),
            "_quantities": q,
            # When each quantity last changed; never-touched zero quantities have none.
            "_quantities_at": {k: (updated_s if v else None) for k, v in q.items()},
        }

    def _gen_Location(self, idx: int, created: int, updated: int) -> dict:
        rand = self._rng("Location", idx).random
        n = self.counts["Location"]
        # With 3+ locations the last is deactivated; with 4+ the one before is a legacy
        # fulfilment-service location (hidden unless includeLegacy / includeInactive).
        inactive = n >= 3 and idx == n - 1
        legacy = n >= 4 and idx == n - 2
        region = idx % len(ADDRESSES)
        city, prov, pcode, zip_, country, cc, phone, _t, streets = ADDRESSES[region]
        name = LOCATION_NAMES[idx % len(LOCATION_NAMES)] + ("" if idx < len(LOCATION_NAMES) else f" {idx}")
        return {
            "__typename": "Location",
            "id": f"gid://shopify/Location/{ID_BASE['Location'] + idx}",
            "legacyResourceId": str(ID_BASE["Location"] + idx),
            "name": name,
            "isActive": not inactive,
            "fulfillsOnlineOrders": not inactive and rand() < 0.8,
            "shipsInventory": not inactive,
            "createdAt": fmt_ts(created),
            "updatedAt": fmt_ts(updated),
            "deactivatedAt": fmt_ts(updated) if inactive else None,
            "isFulfillmentService": legacy,
            "address": {
                "address1": streets[0],
                "address2": None,
                "city": city,
                "province": prov,
                "provinceCode": pcode,
                "zip": zip_,
                "country": country,
                "countryCode": cc,
                "phone": f"{phone}0000" if rand() < 0.7 else None,
            },
            "_legacy": legacy,
        }

    def _gen_Collection(self, idx: int, created: int, updated: int) -> dict:
        rand = self._rng("Collection", idx).random
        num = ID_BASE["Collection"] + idx
        title = (f"{ADJECTIVES[idx % len(ADJECTIVES)]} picks" if rand() < 0.8 else UNICODE_TITLES[idx % len(UNICODE_TITLES)])
        return {
            "__typename": "Collection",
            "id": f"gid://shopify/Collection/{num}",
            "legacyResourceId": str(num),
            "title": title,
            "handle": f"collection-{idx}",
            "descriptionHtml": f"<p>{title}</p>" if rand() < 0.7 else "",
            "sortOrder": COLLECTION_SORTS[int(rand() * len(COLLECTION_SORTS))],
            "templateSuffix": None if rand() < 0.85 else "",
            "updatedAt": fmt_ts(updated),
            "productsCount": {"count": int(rand() * min(60, self.counts["Product"] + 1)), "precision": "EXACT"},
        }

    def _gen_BasicEvent(self, idx: int, created: int, updated: int) -> dict:  # pragma: no cover - events are stored
        raise KeyError("events have no base data")

    def make_event(self, idx: int, *, subject_type: str, subject_id: str, subject_name: str, at: int) -> dict:
        """A ``destroy`` BasicEvent for a deleted record."""
        noun = subject_type.capitalize()
        return {
            "__typename": "BasicEvent",
            "id": f"gid://shopify/BasicEvent/{ID_BASE['BasicEvent'] + idx}",
            "action": "destroy",
            "subjectType": subject_type,
            "subjectId": subject_id,
            "createdAt": fmt_ts(at),
            "message": f"{noun} {subject_name} was deleted.",
            "appTitle": None,
            "attributeToApp": False,
            "attributeToUser": True,
            "criticalAlert": False,
            "hasAdditionalContent": False,
            "arguments": [subject_name],
            "additionalContent": None,
            "additionalData": None,
            "secondaryMessage": None,
            "subject": None,
        }


# -- changes ---------------------------------------------------------------------------------------
def apply_update(type_name: str, record: dict, rand: Callable[[], float], at: int) -> dict:
    """A changed copy of ``record`` (never mutated): updatedAt := ``at`` plus a few realistic edits."""
    rec = copy.deepcopy(record)
    ts = fmt_ts(at)
    rev = rec.get("_rev", 0) + 1
    rec["_rev"] = rev
    rec["updatedAt"] = ts
    x = rand()
    if type_name == "Order":
        if x < 0.35:
            rec["tags"] = sorted(set(rec["tags"]) | {TAGS[int(rand() * len(TAGS))]})
        elif x < 0.6:
            rec["note"] = NOTES[int(rand() * len(NOTES))] + f" (#{rev})"
        elif rec["displayFulfillmentStatus"] != "FULFILLED" and rec["cancelledAt"] is None:
            rec["displayFulfillmentStatus"] = "FULFILLED"
            if rec["displayFinancialStatus"] == "PAID":
                rec["closedAt"] = ts
                rec["closed"] = True
        else:
            rec["note"] = None
    elif type_name == "Product":
        if x < 0.4 and rec["variants"]:
            v = rec["variants"][int(rand() * len(rec["variants"]))]
            cents = int(round(float(v["price"]) * 100)) + 100 * (1 + int(rand() * 5))
            v["price"] = money_amount(cents)
            v["updatedAt"] = ts
        elif x < 0.7:
            rec["tags"] = sorted(set(rec["tags"]) ^ {TAGS[int(rand() * len(TAGS))]})
        else:
            rec["status"] = "ACTIVE" if rec["status"] != "ACTIVE" else "ARCHIVED"
    elif type_name == "Customer":
        if x < 0.5:
            rec["note"] = NOTES[int(rand() * len(NOTES))] + f" (#{rev})"
        else:
            rec["tags"] = sorted(set(rec["tags"]) ^ {TAGS[int(rand() * len(TAGS))]})
    elif type_name == "InventoryLevel":
        q = rec["_quantities"]
        at_map = rec["_quantities_at"]
        moved = 1 + int(rand() * 3)
        if x < 0.7:  # a sale commits stock
            q["available"] -= moved
            q["committed"] += moved
            at_map["available"] = at_map["committed"] = ts
        else:  # a restock
            q["available"] += moved * 10
            at_map["available"] = ts
        q["on_hand"] = q["available"] + q["committed"] + q["reserved"]
        at_map["on_hand"] = ts
    elif type_name == "InventoryItem":
        rec["tracked"] = not rec["tracked"]
    elif type_name == "Location":
        if rec["isActive"]:
            rec["fulfillsOnlineOrders"] = not rec["fulfillsOnlineOrders"]
    elif type_name == "Collection":
        rec["title"] = rec["title"].split(" (")[0] + f" ({rev})"
    return rec


def sample_records(data: ShopData) -> dict[str, dict]:
    """One generated record per type (used to check :data:`MODELLED_FIELDS` against the generator)."""
    out: dict[str, Any] = {}
    for t in ("Order", "Customer", "Product", "InventoryItem", "InventoryLevel", "Location", "Collection"):
        if data.count(t):
            out[t] = data.generate(t, 0)
    return out

