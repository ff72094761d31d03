"""Generated money records: Shopify Payments balance transactions, payouts and disputes, gift cards.

Each is a top-level type of its own (a table with its own ids and timestamps, see
:mod:`shopsync.simulator.data`), few per shop by default (``DataConfig.balance_transactions`` …).
Payments records hang from the one ``shopifyPaymentsAccount`` of the shop
(:func:`payments_account`; ``None`` when ``DataConfig.shopify_payments`` is off, as for a shop
without Shopify Payments). Balance transactions, payouts and disputes have no ``updatedAt`` on
Shopify, so none here either. References to orders and customers are :class:`Ref` objects (a
deleted order reads as null); a balance transaction's ``associatedOrder`` is a plain object on
Shopify (id and name), so it is written out.

Every draw comes from the record's own seeded stream, in a fixed order: moving a draw changes the data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopsync.simulator.formats import decimal_amount, fmt_ts
from shopsync.simulator.ids import ID_BASE, Ref
from shopsync.simulator.vocabulary import NOTES, SHOP_CURRENCY

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = [
    "PAYMENTS_TYPES",
    "generate_balance_transaction",
    "generate_dispute",
    "generate_gift_card",
    "generate_payout",
    "payments_account",
]

#: The top-level types listed under ``shopifyPaymentsAccount``, by its connection field.
PAYMENTS_TYPES = {
    "balanceTransactions": "ShopifyPaymentsBalanceTransaction",
    "payouts": "ShopifyPaymentsPayout",
    "disputes": "ShopifyPaymentsDispute",
}

_TX_KINDS = (("CHARGE", "CHARGE"), ("CHARGE", "CHARGE"), ("CHARGE", "CHARGE"), ("REFUND", "REFUND"),
             ("ADJUSTMENT", "ADJUSTMENT"), ("DISPUTE_WITHDRAWAL", "DISPUTE"), ("PAYOUT", "TRANSFER"))  # fmt: skip
_PAYOUT_STATUSES = ("PAID", "PAID", "PAID", "IN_TRANSIT", "SCHEDULED", "FAILED")
_DISPUTE_STATUSES = ("NEEDS_RESPONSE", "UNDER_REVIEW", "WON", "LOST", "ACCEPTED")
_DISPUTE_REASONS = ("FRAUDULENT", "PRODUCT_NOT_RECEIVED", "DUPLICATE", "CREDIT_NOT_PROCESSED", "GENERAL")
_CODE_CHARS = "abcdefghjkmnpqrstuvwxyz23456789"


def _money(cents: int) -> dict:
    return {"amount": decimal_amount(cents), "currencyCode": SHOP_CURRENCY}


def _order(d: ShopData, rand_value: float) -> int | None:
    """An order index drawn from ``rand_value`` (``None`` when the shop has no orders)."""
    n = d.counts["Order"]
    return int(rand_value * n) if n else None


def _order_ref(idx: int) -> Ref:
    return Ref(f"gid://shopify/Order/{ID_BASE['Order'] + idx}", ("Order", idx, None, 0))


def payments_account(d: ShopData) -> dict | None:
    """The shop's ``ShopifyPaymentsAccount`` (its connections are served from the tables)."""
    if not d.config.shopify_payments:
        return None
    return {
        "__typename": "ShopifyPaymentsAccount",
        "id": f"gid://shopify/ShopifyPaymentsAccount/{30_000_000 + (d.seed % 1_000_000)}",
        "activated": True,
        "country": "US",
        "defaultCurrency": SHOP_CURRENCY,
    }


def generate_balance_transaction(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Balance transaction ``idx``: a charge, refund, adjustment, dispute withdrawal or payout transfer."""
    rand = d.rng("ShopifyPaymentsBalanceTransaction", idx).random
    num = ID_BASE["ShopifyPaymentsBalanceTransaction"] + idx
    kind, source = _TX_KINDS[int(rand() * len(_TX_KINDS))]
    gross = 500 + int(rand() * 40_000)
    if kind in ("REFUND", "DISPUTE_WITHDRAWAL", "PAYOUT"):
        gross = -gross
    fee = 30 + abs(gross) * 29 // 1000 if kind == "CHARGE" else 0
    order = _order(d, rand()) if source in ("CHARGE", "REFUND", "DISPUTE") else None
    n_payouts = d.counts["ShopifyPaymentsPayout"]
    payout = int(rand() * n_payouts) if n_payouts else None
    paid = rand() < 0.8
    return {
        "__typename": "ShopifyPaymentsBalanceTransaction",
        "id": f"gid://shopify/ShopifyPaymentsBalanceTransaction/{num}",
        "type": kind,
        "test": rand() < 0.05,
        "transactionDate": fmt_ts(created),
        "sourceType": source,
        "sourceId": str(num - 1_000),
        "sourceOrderTransactionId": str(6_300_000_000_000 + order * 16) if order is not None else None,
        "adjustmentReason": "reserve" if kind == "ADJUSTMENT" else None,
        "amount": _money(gross),
        "fee": _money(fee),
        "net": _money(gross - fee),
        "associatedOrder": (
            {"id": f"gid://shopify/Order/{ID_BASE['Order'] + order}", "name": f"#{1001 + order}"}
            if order is not None else None
        ),
        "associatedPayout": {
            "id": f"gid://shopify/ShopifyPaymentsPayout/{ID_BASE['ShopifyPaymentsPayout'] + payout}"
            if payout is not None and paid else None,
            "status": ("PAID" if paid else "PENDING") if payout is not None else None,
        },
    }  # fmt: skip


def generate_payout(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Payout ``idx`` to the shop's bank account."""
    rand = d.rng("ShopifyPaymentsPayout", idx).random
    num = ID_BASE["ShopifyPaymentsPayout"] + idx
    net = 10_000 + int(rand() * 2_000_000)
    fees = net * 3 // 100
    status = _PAYOUT_STATUSES[int(rand() * len(_PAYOUT_STATUSES))]
    return {
        "__typename": "ShopifyPaymentsPayout",
        "id": f"gid://shopify/ShopifyPaymentsPayout/{num}",
        "legacyResourceId": str(num),
        "status": status,
        "transactionType": "DEPOSIT" if rand() < 0.95 else "WITHDRAWAL",
        "issuedAt": fmt_ts(created),
        "externalTraceId": f"TRACE{num % 10_000_000:07d}" if status == "PAID" else None,
        "gross": _money(net + fees),
        "net": _money(net),
    }


def generate_dispute(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Dispute ``idx``: a chargeback or inquiry on an order."""
    rand = d.rng("ShopifyPaymentsDispute", idx).random
    num = ID_BASE["ShopifyPaymentsDispute"] + idx
    status = _DISPUTE_STATUSES[int(rand() * len(_DISPUTE_STATUSES))]
    order = _order(d, rand())
    sent = rand() < 0.6
    return {
        "__typename": "ShopifyPaymentsDispute",
        "id": f"gid://shopify/ShopifyPaymentsDispute/{num}",
        "legacyResourceId": str(num),
        "status": status,
        "type": "CHARGEBACK" if rand() < 0.85 else "INQUIRY",
        "initiatedAt": fmt_ts(created),
        "evidenceDueBy": fmt_ts(created + 14 * 86_400),
        "evidenceSentOn": fmt_ts(created + 3 * 86_400)[:10] if sent else None,
        "finalizedOn": fmt_ts(updated)[:10] if status in ("WON", "LOST", "ACCEPTED") else None,
        "amount": _money(1_000 + int(rand() * 30_000)),
        "order": _order_ref(order) if order is not None else None,
        "reasonDetails": {
            "reason": _DISPUTE_REASONS[int(rand() * len(_DISPUTE_REASONS))],
            "networkReasonCode": f"{10 + int(rand() * 80)}.{1 + int(rand() * 9)}" if rand() < 0.7 else None,
        },
    }


def generate_gift_card(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Gift card ``idx``: issued manually or bought in an order, partly spent."""
    rand = d.rng("GiftCard", idx).random
    num = ID_BASE["GiftCard"] + idx
    initial = (2_500, 5_000, 10_000, 20_000)[int(rand() * 4)]
    balance = initial - int(rand() * initial) if rand() < 0.6 else initial
    code_tail = "".join(_CODE_CHARS[int(rand() * len(_CODE_CHARS))] for _ in range(4))
    n_customers = d.counts["Customer"]
    customer = int(rand() * n_customers) if n_customers and rand() < 0.7 else None
    order = _order(d, rand()) if rand() < 0.5 else None
    disabled = rand() < 0.1
    expires = fmt_ts(created + 365 * 86_400)[:10] if rand() < 0.3 else None
    return {
        "__typename": "GiftCard",
        "id": f"gid://shopify/GiftCard/{num}",
        "createdAt": fmt_ts(created),
        "updatedAt": fmt_ts(updated),
        "deactivatedAt": fmt_ts(updated) if disabled else None,
        "enabled": not disabled,
        "expiresOn": expires,
        "lastCharacters": code_tail,
        "maskedCode": f"•••• •••• •••• {code_tail}",
        "note": NOTES[int(rand() * len(NOTES))] if rand() < 0.2 else None,
        "templateSuffix": None,
        "balance": _money(balance),
        "initialValue": _money(initial),
        "customer": (
            Ref(f"gid://shopify/Customer/{ID_BASE['Customer'] + customer}", ("Customer", customer, None, 0))
            if customer is not None else None
        ),
        "order": _order_ref(order) if order is not None else None,
    }  # fmt: skip
