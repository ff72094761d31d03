"""Choosing access scopes: a small set that satisfies every ``requiredAccess`` of a resource."""

from __future__ import annotations


def minimal_scopes(requirements: tuple[tuple[str, ...], ...] | list[tuple[str, ...]]) -> tuple[str, ...]:
    """A small set of scopes satisfying every requirement (each a tuple of alternatives).

    Greedy set cover: repeatedly take the scope that satisfies the most unsatisfied requirements,
    preferring the one Shopify lists first (``read_orders`` before ``read_marketplace_orders``).
    """
    pending = [r for r in dict.fromkeys(requirements) if r]
    chosen: list[str] = []
    while pending:
        order: dict[str, tuple[int, int]] = {}
        for req in pending:
            for pos, scope in enumerate(req):
                hits, best_pos = order.get(scope, (0, pos))
                order[scope] = (hits + 1, min(best_pos, pos))
        scope = max(order, key=lambda s: (order[s][0], -order[s][1]))
        chosen.append(scope)
        pending = [r for r in pending if scope not in r]
    return tuple(sorted(chosen))


__all__ = ["minimal_scopes"]
