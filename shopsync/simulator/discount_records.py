"""Generated discounts: the ``DiscountNode`` records of ``discountNodes``, code and automatic.

A node holds its discount (the ``Discount`` union) as a plain object with its ``__typename``, one
of the eight members, in turn (node ``idx`` is member ``idx % 8``, so a shop of eight or more has
every kind). What the members share is stored: title, status, summary (not on the app members),
startsAt, endsAt, createdAt, updatedAt, asyncUsageCount and discountClasses; a code discount
also its redeem codes (``codes``, a child list served as a connection with its own cursors, each
code with an id, the code and its asyncUsageCount) and ``codesCount``, their number. Most code
discounts have one code, some a few dozen; the first (node 0) has ``DataConfig.big_discount_codes``,
more than a page of the resource's and of a drain's, so a sync must drain them. The node's own
timestamps are the table's (``created``/``updated``), kept inside the discount, where Shopify has them.

Every draw comes from the record's own seeded stream, in a fixed order: moving a draw changes the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopsync.simulator.formats import fmt_ts
from shopsync.simulator.ids import ID_BASE

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = ["DISCOUNT_CODE_BASE", "DISCOUNT_MEMBERS", "MAX_DISCOUNT_CODES", "generate_discount_node"]

#: The members of the ``Discount`` union, in the order nodes take them.
DISCOUNT_MEMBERS = (
    "DiscountCodeBasic", "DiscountCodeBxgy", "DiscountCodeFreeShipping", "DiscountCodeApp",
    "DiscountAutomaticBasic", "DiscountAutomaticBxgy", "DiscountAutomaticFreeShipping", "DiscountAutomaticApp",
)  # fmt: skip
_CLASSES = {"Basic": ("PRODUCT", "ORDER"), "Bxgy": ("PRODUCT",), "FreeShipping": ("SHIPPING",), "App": ("ORDER", "PRODUCT")}
#: Redeem code ``k`` of node ``idx`` has the id ``DISCOUNT_CODE_BASE + idx * 1000 + k``.
DISCOUNT_CODE_BASE = 1_180_000_000_000
MAX_DISCOUNT_CODES = 999
_CODE_CHARS = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
_TITLES = ("Summer sale", "Welcome 10%", "Buy 2 get 1", "Free shipping over $50", "VIP", "Black Friday", "הנחה", "🎉 Launch")


def generate_discount_node(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Discount node ``idx``: member ``idx % 8`` of the union, scheduled, active or expired."""
    rand = d.rng("DiscountNode", idx).random
    num = ID_BASE["DiscountNode"] + idx
    member = DISCOUNT_MEMBERS[idx % len(DISCOUNT_MEMBERS)]
    kind = member.removeprefix("DiscountCode").removeprefix("DiscountAutomatic")
    starts = created + int(rand() * 20 * 86_400)
    ends = starts + (7 + int(rand() * 60)) * 86_400 if rand() < 0.6 else None
    if starts > d.anchor:
        status = "SCHEDULED"
    elif ends is not None and ends < d.anchor:
        status = "EXPIRED"
    else:
        status = "ACTIVE"
    classes = _CLASSES[kind]
    discount: dict = {
        "__typename": member,
        "title": f"{_TITLES[int(rand() * len(_TITLES))]} #{idx + 1}",
        "status": status,
        "startsAt": fmt_ts(starts),
        "endsAt": fmt_ts(ends) if ends is not None else None,
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "asyncUsageCount": int(rand() * 500),
        "discountClasses": list(classes[: 1 + int(rand() * len(classes))]),
    }
    if member == "DiscountAutomaticBxgy":  # the one member that is a Node (its id is the node's)
        discount["id"] = f"gid://shopify/DiscountNode/{num}"
    if kind != "App":
        discount["summary"] = f"{5 + int(rand() * 30)}% off {classes[0].lower()}s"
    if member.startswith("DiscountCode"):
        n = 1 if rand() < 0.7 else 2 + int(rand() * 40)
        if idx == 0:
            n = d.config.big_discount_codes
        stem = discount["title"].split(" #")[0].upper().replace(" ", "")[:8] or "CODE"
        discount["codes"] = [
            {"__typename": "DiscountRedeemCode", "id": f"gid://shopify/DiscountRedeemCode/{DISCOUNT_CODE_BASE + idx * 1000 + k}",
             "code": stem + "".join(_CODE_CHARS[int(rand() * len(_CODE_CHARS))] for _ in range(6)),
             "asyncUsageCount": int(rand() * 20)}
            for k in range(n)
        ]  # fmt: skip
        discount["codesCount"] = {"count": n, "precision": "EXACT"}
    return {"__typename": "DiscountNode", "id": f"gid://shopify/DiscountNode/{num}", "discount": discount}
