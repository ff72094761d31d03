"""Generated customers, and the mailing addresses that customers and orders share.

Every draw comes from the record's own seeded stream, in a fixed order: moving a draw changes the data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from shopsync.simulator.formats import decimal_amount, fmt_ts
from shopsync.simulator.ids import ADDRESS_BASE, ID_BASE
from shopsync.simulator.vocabulary import (
    ADDRESSES,
    COMPANIES,
    FIRST_NAMES,
    LAST_NAMES,
    LOCALES,
    NOTES,
    SHOP_CURRENCY,
    TAGS,
)

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = ["generate_customer", "mailing_address"]


def mailing_address(rand: Callable[[], float], owner: int, first: str, last: str, region: int, company: bool) -> dict:
    """A ``MailingAddress`` in ``ADDRESSES[region]``; ``owner`` numbers it (its id is ``ADDRESS_BASE + owner``)."""
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


def generate_customer(d: ShopData, idx: int, created: int, updated: int) -> dict:
    """Customer ``idx`` of shop data ``d``."""
    rand = d.rng("Customer", idx).random
    num = ID_BASE["Customer"] + idx
    first = FIRST_NAMES[int(rand() * len(FIRST_NAMES))] if rand() < 0.97 else None
    last = LAST_NAMES[int(rand() * len(LAST_NAMES))]
    region = int(rand() * len(ADDRESSES))
    email = f"customer{idx}@example.com" if rand() < 0.95 else None
    phone = f"{ADDRESSES[region][6]}{int(rand() * 9000) + 1000}" if rand() < 0.35 else None
    orders = int(rand() ** 2 * 12)
    spent = orders * (1500 + int(rand() * 15_000))
    display = f"{first} {last}" if first else last
    record: dict[str, Any] = {
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
        "defaultAddress": mailing_address(rand, 2_000_000_000 + idx, first or "", last, region, rand() < 0.15)
        if rand() < 0.8
        else None,
    }
    default = record["defaultAddress"]
    record["addressesV2"] = _addresses(d, idx, default, first or "", last)
    return record


#: Extra addresses per customer at most (Customer.addressesV2 beyond the default one).
MAX_EXTRA_ADDRESSES = 3


def _addresses(d: ShopData, idx: int, default: dict | None, first: str, last: str) -> list[dict]:
    """Every address of customer ``idx``: the default one first, then up to three more (from a
    stream of their own, so adding them moved no draw of the customer)."""
    rand = d.rng("CustomerAddress", idx).random
    out = [default] if default is not None else []
    for k in range(int(rand() ** 2 * (MAX_EXTRA_ADDRESSES + 1))):
        region = int(rand() * len(ADDRESSES))
        out.append(mailing_address(rand, 3_000_000_000 + idx * 4 + k, first, last, region, rand() < 0.1))
    return out
