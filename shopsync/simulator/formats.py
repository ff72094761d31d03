"""Shopify's value formats: timestamps, ``Decimal`` and ``Money`` amounts, money bags."""

from __future__ import annotations

from time import gmtime, strftime

from shopsync.simulator.vocabulary import SHOP_CURRENCY


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


def money_bag(cents: int, pres: tuple[str, int, int] | None) -> dict:
    """A ``MoneyBag``: the shop amount (USD) and its presentment-currency conversion (``pres`` is an
    entry of :data:`~shopsync.simulator.vocabulary.PRESENTMENT`; ``None``: presented in USD)."""
    shop = {"amount": decimal_amount(cents), "currencyCode": SHOP_CURRENCY}
    if pres is None:
        return {"shopMoney": shop, "presentmentMoney": shop}
    code, rate, decimals = pres
    converted = cents * rate // 10_000
    if decimals == 0:
        converted //= 100
    return {"shopMoney": shop, "presentmentMoney": {"amount": decimal_amount(converted, decimals), "currencyCode": code}}
