"""Page sizing: page sizes whose requested cost fits Shopify's limit and the bucket.

Requested costs follow :mod:`shopsync.shopify.cost`; the root connection's cost is linear in
``first``, so two probes give the line and the largest ``first`` that fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from types import MappingProxyType
from typing import Any

from graphql import DocumentNode, parse

from shopsync.errors import QueryTooCostlyError
from shopsync.queries.builder.paginated import DRAIN_PAGE, drain_query, page_query
from shopsync.queries.model import MAX_PAGE_SIZE, NestedConnection, Resource
from shopsync.shopify.cost import MAX_QUERY_COST, requested_cost
from shopsync.shopify.schema import load_schema

#: Nested page sizes are rounded up to one of these, so small shifts in the observed child
#: counts do not produce a new document (and a new validation) every time.
PAGE_SIZE_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 75, 100, 125, 150, 200, 250)


@dataclass(frozen=True)
class PageSize:
    """``first`` for the root connection and the nested connections' page sizes (by path)."""

    first: int
    nested_first: Mapping[tuple[str, ...], int] = field(default_factory=dict, hash=False)


@lru_cache(maxsize=1024)
def _parsed(text: str) -> DocumentNode:
    return parse(text)


def requested_cost_of(document: str, variables: Mapping[str, Any] | None = None) -> int:
    """The static requested cost of a built ``document`` with ``variables`` (shopsync.shopify.cost rules)."""
    return requested_cost(load_schema(), _parsed(document), variables)


def round_page_size(observed: float) -> int:
    """The smallest of :data:`PAGE_SIZE_STEPS` that holds ``observed`` children (at least 1)."""
    need = max(1, math.ceil(observed))
    for step in PAGE_SIZE_STEPS:
        if step >= need:
            return step
    return MAX_PAGE_SIZE


def _cost_line(resource: Resource, sizes: dict[tuple[str, ...], int]) -> tuple[int, int]:
    """(a, b) with requested cost = a + b × first (the root connection is linear in ``first``)."""
    return _cached_cost_line(resource, tuple(sorted(sizes.items())))


@lru_cache(maxsize=1024)
def _cached_cost_line(resource: Resource, sizes: tuple[tuple[tuple[str, ...], int], ...]) -> tuple[int, int]:
    # Every page of every stream plans its size: the nested sizes are few rounded steps, so the
    # two costings of a (resource, sizes) are done once instead of on each page.
    doc = page_query(resource, None, dict(sizes))
    c1 = requested_cost_of(doc, {"first": 1})
    c2 = requested_cost_of(doc, {"first": 2})
    return c1 - (c2 - c1), c2 - c1


def record_cost(resource: Resource, child_counts: Mapping[tuple[str, ...], float]) -> int:
    """The requested cost one more record adds to a page when each nested list is sized to the
    given child counts (rounded up to a step; a list without a figure at its fragment's size).

    With typical child counts this is close to what Shopify charges a record (it charges the
    actual cost: objects returned), which a page sized for the longest lists is not."""
    sizes = {
        nc.path: round_page_size(child_counts[nc.path]) if nc.path in child_counts else nc.page_size
        for nc in resource.all_nested()
    }
    return _cost_line(resource, sizes)[1]


def plan_page_size(
    resource: Resource,
    *,
    child_counts: Mapping[tuple[str, ...], float] | None = None,
    max_cost: int = MAX_QUERY_COST,
    bucket_size: float | None = None,
) -> PageSize:
    """Page sizes whose requested cost stays ≤ ``max_cost`` (and ≤ ``bucket_size``).

    ``child_counts`` maps a nested connection's path to a high percentile (say p95) of the child
    counts seen so far. Each nested page size is that figure rounded up to a step, so nearly every
    record arrives whole and drains stay rare; without a figure the fragment's ``first`` is used.
    The outer ``first`` is then as large as fits (≤ 250): Shopify charges the *actual* cost, so a
    large requested cost only needs room in the bucket, while more records per request means fewer
    round trips. If even one record does not fit, the largest nested size is halved until it does;
    :class:`QueryTooCostlyError` if nothing fits.
    """
    limit = int(max_cost if bucket_size is None else min(max_cost, bucket_size))
    sizes: dict[tuple[str, ...], int] = {}
    for nc in resource.all_nested():
        seen = (child_counts or {}).get(nc.path)
        sizes[nc.path] = nc.page_size if seen is None else round_page_size(seen)
    while True:
        a, b = _cost_line(resource, sizes)
        if a + b <= limit:
            break
        shrinkable = [p for p, n in sizes.items() if n > 1]
        if not shrinkable:
            raise QueryTooCostlyError(
                f"{resource.path}: one record per page costs {a + b}, over the limit of {limit}",
                cost=a + b,
                max_cost=limit,
            )
        biggest = max(shrinkable, key=lambda p: sizes[p])
        sizes[biggest] = max(1, sizes[biggest] // 2)
    first = MAX_PAGE_SIZE if b <= 0 else max(1, min(MAX_PAGE_SIZE, (limit - a) // b))
    return PageSize(first=first, nested_first=MappingProxyType(sizes))


def drain_page_size(
    resource: Resource,
    nested: NestedConnection,
    *,
    nested_first: Mapping[tuple[str, ...], int] | None = None,
    max_cost: int = MAX_QUERY_COST,
    bucket_size: float | None = None,
) -> int:
    """The largest ``$first`` (≤ 250) for :func:`drain_query` whose requested cost fits."""
    limit = int(max_cost if bucket_size is None else min(max_cost, bucket_size))
    doc = drain_query(resource, nested, None, nested_first)
    c1 = requested_cost_of(doc, {"first": 1})
    b = requested_cost_of(doc, {"first": 2}) - c1
    a = c1 - b
    if c1 > limit:
        raise QueryTooCostlyError(
            f"{resource.path}: draining {nested.field} one node at a time costs {c1}, over {limit}",
            cost=c1,
            max_cost=limit,
        )
    return MAX_PAGE_SIZE if b <= 0 else max(1, min(MAX_PAGE_SIZE, (limit - a) // b))


@lru_cache(maxsize=256)
def drain_first(resource: Resource, nested: NestedConnection) -> int:
    """The ``$first`` shopsync drains ``nested`` with: :data:`DRAIN_PAGE`, or fewer where so many
    of its nodes would cost more than Shopify's cap (an order's line items with their tax lines
    and discount allocations: 3 + 71 × 14 = 997 points)."""
    return min(DRAIN_PAGE, drain_page_size(resource, nested))


def shrink(page_size: PageSize) -> PageSize:
    """After ``MAX_COST_EXCEEDED``: halve ``first``; at 1, halve the largest nested size.

    Returns ``page_size`` itself when everything is already 1 (nothing smaller exists: the caller
    compares and gives up).
    """
    if page_size.first > 1:
        return replace(page_size, first=page_size.first // 2)
    sizes = dict(page_size.nested_first)
    shrinkable = [p for p, n in sizes.items() if n > 1]
    if not shrinkable:
        return page_size
    biggest = max(shrinkable, key=lambda p: sizes[p])
    sizes[biggest] = max(1, sizes[biggest] // 2)
    return PageSize(first=1, nested_first=MappingProxyType(sizes))



__all__ = ["PAGE_SIZE_STEPS", "PageSize", "drain_first", "drain_page_size", "plan_page_size", "requested_cost_of", "round_page_size", "shrink"]
