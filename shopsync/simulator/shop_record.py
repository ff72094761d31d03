"""The ``shop`` object: the one Shop record of a simulated shop (pure).

Every field is derived from the shop's name and the data's seed and time span, so the same
configuration gives the same record. The simulator stores nothing else about the shop: the
values below are all it answers (``Shop.metafields`` come from the Metafield table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from shopsync.simulator.formats import fmt_ts
from shopsync.simulator.vocabulary import PRESENTMENT, SHOP_CURRENCY

if TYPE_CHECKING:
    from shopsync.simulator.data import ShopData

__all__ = ["shop_record"]


def shop_record(data: ShopData, name: str) -> dict:
    """The Shop of shop data ``data`` named ``name``: created at the start of the data's history,
    updated at its anchor."""
    seed = data.seed
    return {
        "__typename": "Shop",
        "id": f"gid://shopify/Shop/{70_000_000_000 + (seed % 1_000_000)}",
        "name": name,
        "email": f"owner@{name}.example.com",
        "contactEmail": f"support@{name}.example.com",
        "shopOwnerName": "Ada Lovelace",
        "description": f"The {name} test shop (shopsync simulator)",
        "myshopifyDomain": f"{name}.myshopify.com",
        "url": f"https://{name}.example.com",
        "plan": {"publicDisplayName": "Development", "partnerDevelopment": True, "shopifyPlus": False},
        "currencyCode": SHOP_CURRENCY,
        "enabledPresentmentCurrencies": [SHOP_CURRENCY, *(code for code, _rate, _digits in PRESENTMENT)],
        "ianaTimezone": "America/New_York",
        "timezoneAbbreviation": "EST",
        "timezoneOffset": "-0500",
        "primaryDomain": {
            "id": f"gid://shopify/Domain/{90_000_000_000 + (seed % 1_000_000)}",
            "host": f"{name}.example.com",
            "url": f"https://{name}.example.com",
            "sslEnabled": True,
        },
        "weightUnit": "KILOGRAMS",
        "unitSystem": "METRIC_SYSTEM",
        "taxesIncluded": False,
        "taxShipping": False,
        "setupRequired": False,
        "checkoutApiSupported": True,
        "createdAt": fmt_ts(data.start),
        "updatedAt": fmt_ts(data.anchor),
    }
