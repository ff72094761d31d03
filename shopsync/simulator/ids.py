"""How generated records are numbered: ids, GIDs, references and the seeds of their random streams.

Ids: numeric id = ``ID_BASE[type] + idx`` (so ids sort like idx), GIDs ``gid://shopify/Order/<n>``.
Child objects have ids derived from their parent (line item ``j`` of order ``i`` is
``LINE_ITEM_BASE + i*1000 + j``), so any GID can be located without an index.
"""

from __future__ import annotations

#: The money records of :mod:`shopsync.simulator.finance_records` (few per shop by default).
FINANCE_TYPES = ("ShopifyPaymentsBalanceTransaction", "ShopifyPaymentsPayout", "ShopifyPaymentsDispute", "GiftCard")
#: The records of :mod:`shopsync.simulator.commerce_records` (few per shop by default).
COMMERCE_TYPES = ("DraftOrder", "AbandonedCheckout", "FulfillmentOrder", "Market")
#: The discounts of :mod:`shopsync.simulator.discount_records` (few per shop by default).
DISCOUNT_TYPES = ("DiscountNode",)

#: Composite index keys are ``value << SHIFT | idx``; at most 2**SHIFT records per type.
SHIFT = 24
MASK = (1 << SHIFT) - 1

TOP_TYPES = (
    "Order", "Customer", "Product", "InventoryItem", "InventoryLevel", "Location", "Collection", "BasicEvent",
    *FINANCE_TYPES, "Metafield", *COMMERCE_TYPES, *DISCOUNT_TYPES,
)  # fmt: skip

ID_BASE: dict[str, int] = {
    "Order": 5_200_000_000_000,
    "Customer": 6_800_000_000_000,
    "Product": 7_900_000_000_000,
    "InventoryItem": 44_100_000_000_000,
    "InventoryLevel": 98_700_000_000_000,
    "Location": 61_000_000_000,
    "Collection": 290_000_000_000,
    "BasicEvent": 9_100_000_000_000,
    "ShopifyPaymentsBalanceTransaction": 2_400_000_000_000,
    "ShopifyPaymentsPayout": 92_000_000_000,
    "ShopifyPaymentsDispute": 11_500_000_000,
    "GiftCard": 530_000_000_000,
    "Metafield": 19_800_000_000_000,
    "DraftOrder": 1_100_000_000_000,
    "AbandonedCheckout": 33_000_000_000_000,
    "FulfillmentOrder": 6_100_000_000_000,
    "Market": 2_000_000_000,
    "DiscountNode": 1_170_000_000_000,
}
LINE_ITEM_BASE = 13_000_000_000_000  # + order idx * 1000 + j
TRANSACTION_BASE = 6_300_000_000_000  # + order idx * 16 + k
REFUND_BASE = 880_000_000_000  # + order idx * 16 + k
VARIANT_BASE = 41_000_000_000_000  # + product idx * 64 + v
OPTION_BASE = 10_500_000_000_000  # + product idx * 8 + k
ADDRESS_BASE = 8_000_000_000_000  # + owner-specific offset
MAX_LINE_ITEMS = 999
MAX_VARIANTS = 5

#: Salts keep the random streams of different record types independent.
SALT = {
    "Order": 1, "Customer": 2, "Product": 3, "InventoryItem": 4, "InventoryLevel": 5, "Location": 6,
    "Collection": 7, "ProductDetail": 8, "times": 20, "variants": 21, "update": 22, "bulk": 23,
    "ShopifyPaymentsBalanceTransaction": 30, "ShopifyPaymentsPayout": 31, "ShopifyPaymentsDispute": 32, "GiftCard": 33,
    "Metafield": 34, "DraftOrder": 35, "AbandonedCheckout": 36, "FulfillmentOrder": 37, "Market": 38,
    "CustomerAddress": 39, "DiscountNode": 40,
}  # fmt: skip


class Ref:
    """A link to another record by GID, resolved by the executor through the store at read time.

    ``loc`` is the target's location as :meth:`~shopsync.simulator.data.ShopData.locate` gives it — ``(top type, top idx,
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


def gid_type(gid: str) -> str | None:
    """``gid://shopify/Order/1`` → ``"Order"`` (``None`` if not a Shopify GID)."""
    if not gid.startswith("gid://shopify/"):
        return None
    rest = gid[14:]
    slash = rest.find("/")
    return rest[:slash] if slash > 0 else None


def gid_number(gid: str) -> int | None:
    """The numeric tail of a GID (query string ignored); ``None`` if it is not a number."""
    slash = gid.rfind("/")
    tail = gid[slash + 1 :]
    q = tail.find("?")
    if q >= 0:
        tail = tail[:q]
    return int(tail) if tail.isdigit() else None


def seed_of(seed: int, salt: int, idx: int) -> int:
    """The seed of the random stream of record ``idx`` of one salt."""
    # Distinct (seed, salt, idx) give distinct integers, so distinct Random streams.
    return ((seed & 0xFFFFFFFF) << 64) | (salt << 48) | (idx & 0xFFFFFFFFFFFF)

