"""The simulated shop's canned answers: shop status, cost extension, throttling, API version.

Pure functions building the bodies Shopify answers with (shopify-api-facts §5), so the server's
request handling only decides *which* answer to give.
"""

from __future__ import annotations

import re

from shopsync.shopify.bucket import LeakyBucket
from shopsync.shopify.cost import MAX_QUERY_COST
from shopsync.simulator.config import SimConfig

__all__ = [
    "STATUS_BODIES",
    "THROTTLE_DOC",
    "cost_extension",
    "max_cost_body",
    "served_version",
    "throttle_status",
    "throttled_body",
]

THROTTLE_DOC = "https://shopify.dev/api/usage/rate-limits"
_VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")

#: Whole-shop answers (shopify-api-facts §5).
STATUS_BODIES: dict[int, dict] = {
    402: {"errors": "Unavailable Shop"},
    403: {"errors": "[API] This action requires merchant approval for read_orders scope."},
    423: {"errors": "Unavailable Shop"},
}


def throttle_status(bucket: LeakyBucket, now: float) -> dict:
    """Shopify's ``throttleStatus``: floats for the bucket size and rate, whole points available."""
    return {
        "maximumAvailable": float(bucket.capacity),
        "currentlyAvailable": int(bucket.level(now)),
        "restoreRate": float(bucket.rate),
    }


def cost_extension(requested: int, actual: int | None, bucket: LeakyBucket, now: float) -> dict:
    """The ``extensions.cost`` of an answer: requested and actual cost, and the bucket after it."""
    return {
        "cost": {
            "requestedQueryCost": requested,
            "actualQueryCost": actual,
            "throttleStatus": throttle_status(bucket, now),
        }
    }


def throttled_body(requested: int, bucket: LeakyBucket, now: float) -> dict:
    """The 200 + ``THROTTLED`` answer (no ``data``; ``actualQueryCost`` null)."""
    return {
        "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED", "documentation": THROTTLE_DOC}}],
        "extensions": cost_extension(requested, None, bucket, now),
    }


def max_cost_body(requested: int) -> dict:
    """The 200 + ``MAX_COST_EXCEEDED`` answer; nothing ran and nothing is charged."""
    return {
        "errors": [
            {
                "message": f"Query cost is {requested}, which exceeds the single query max cost limit ({MAX_QUERY_COST}).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": requested, "maxCost": MAX_QUERY_COST},
            }
        ]
    }


def served_version(requested: str, config: SimConfig) -> str | None:
    """The version served for a path version: itself if supported, else the pinned one (fall
    forward); ``None`` for a malformed version (404)."""
    if not _VERSION_RE.match(requested):
        return None
    return requested if requested in config.supported_versions else config.api_version
