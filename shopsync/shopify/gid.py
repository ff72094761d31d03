"""Shopify's global ids (``gid://shopify/LineItem/1``): the parts shopsync reads of them (pure)."""

from __future__ import annotations

__all__ = ["gid_type"]


def gid_type(gid: str) -> str | None:
    """The type part of a Shopify GID (``gid://shopify/LineItem/1`` → ``LineItem``)."""
    parts = gid.split("/", 4)  # ["gid:", "", "shopify", "LineItem", "1"]
    if len(parts) < 5 or parts[0] != "gid:" or parts[1]:
        return None
    return parts[3]
