"""Pieces of Shopify answers for the tests that classify or account them."""

from __future__ import annotations


def cost_extension(requested=1, actual=1, available=999.0, maximum=1000.0, rate=50.0) -> dict:
    """A GraphQL answer's ``extensions`` with Shopify's cost and throttle status."""
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": {
                "maximumAvailable": maximum,
                "currentlyAvailable": available,
                "restoreRate": rate,
            },
        }
    }
