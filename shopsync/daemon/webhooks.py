"""Shopify webhooks at ``/webhooks/shopify``: verified, de-duplicated, and turned into sooner work.

Off by default (``[webhooks] enabled = true``). Webhooks only make things sooner: the scheduled
runs and reconciliation stay the source of completeness, so a lost, late or repeated delivery
changes nothing but timing.

A delivery (shopify-api-facts §9, §10) is a POST whose raw body is signed with the app's secret:
``X-Shopify-Hmac-Sha256`` is the base64 HMAC-SHA256 of the body. The shop is the configured one
whose ``domain`` is ``X-Shopify-Shop-Domain``; its signing secret is ``webhook_secret``, else its
``client_secret``. :meth:`WebhookReceiver.receive` answers

* 401 (counted as ``rejected_unsigned``, ``rejected_signature``, ``rejected_unknown_shop`` or
  ``rejected_stale``) to a delivery without a signature, with a wrong one (compared in constant
  time), from a shop not configured, or whose ``X-Shopify-Triggered-At`` is older than
  ``[webhooks] max_age``;
* 200 to a repeated ``X-Shopify-Webhook-Id`` (``duplicate``; the last :data:`SEEN_IDS` ids of
  verified deliveries are remembered) and to a topic with nothing to do (``ignored``);
* 200 to the rest (``accepted``): ``bulk_operations/finish`` wakes the poll of that operation
  (:func:`shopsync.engine.bulk.wake_poll`); a topic of a configured resource (``orders/updated``,
  ``products/delete``, …, :data:`TOPIC_RESOURCES`) asks :class:`SyncTriggers` for a small sync of
  that shop and resource.

Nothing of a delivery's body, signature or the secret is logged, counted or answered.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from shopsync.observability.metrics import Metrics
from shopsync.settings import Settings, ShopConfig

log = logging.getLogger(__name__)

PATH = "/webhooks/shopify"
HMAC_HEADER = "X-Shopify-Hmac-Sha256"
SHOP_HEADER = "X-Shopify-Shop-Domain"
TOPIC_HEADER = "X-Shopify-Topic"
ID_HEADER = "X-Shopify-Webhook-Id"
TRIGGERED_HEADER = "X-Shopify-Triggered-At"
#: Verified webhook ids remembered for de-duplication (oldest forgotten first).
SEEN_IDS = 10_000
#: The largest body read (Shopify's order payloads with many line items run to a few MiB).
MAX_BODY = 8 * 1024 * 1024
#: Seconds between two log lines about refused deliveries.
REFUSAL_LOG_INTERVAL = 10.0
#: A future ``X-Shopify-Triggered-At`` is tolerated this much (clock skew).
CLOCK_SKEW = 60.0

BULK_FINISH = "bulk_operations/finish"

#: Topic → the resource whose stream a delivery of it makes sooner.
TOPIC_RESOURCES: Mapping[str, str] = {
    **{
        f"orders/{e}": "orders"
        for e in ("create", "updated", "delete", "cancelled", "edited", "paid", "fulfilled")
    },
    **{f"products/{e}": "products" for e in ("create", "update", "delete")},
    **{f"customers/{e}": "customers" for e in ("create", "update", "delete")},
    **{f"collections/{e}": "collections" for e in ("create", "update", "delete")},
    **{f"inventory_items/{e}": "inventory_items" for e in ("create", "update", "delete")},
    **{f"inventory_levels/{e}": "inventory_levels" for e in ("connect", "update", "disconnect")},
    **{f"locations/{e}": "locations" for e in ("create", "update", "delete")},
}
#: The topics ``shopsync check`` subscribes to per resource (the fewest that cover its changes).
SUBSCRIBED: Mapping[str, tuple[str, ...]] = {
    "orders": ("orders/updated", "orders/delete"),
    "products": ("products/update", "products/delete"),
    "customers": ("customers/update", "customers/delete"),
    "collections": ("collections/update", "collections/delete"),
    "inventory_items": ("inventory_items/update", "inventory_items/delete"),
    "inventory_levels": ("inventory_levels/update", "inventory_levels/disconnect"),
    "locations": ("locations/update", "locations/delete"),
}

#: Creates one subscription; validated against the pinned schema by ``shopsync check`` and the tests.
SUBSCRIPTION_MUTATION = """mutation WebhookSubscriptionCreate($topic: WebhookSubscriptionTopic!, $webhookSubscription: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $webhookSubscription) {
    webhookSubscription { id topic uri }
    userErrors { field message }
  }
}"""


def topic_enum(topic: str) -> str:
    """``orders/updated`` → ``ORDERS_UPDATED`` (the ``WebhookSubscriptionTopic`` value)."""
    return topic.upper().replace("/", "_")


def subscription_topics(resources: Iterable[str]) -> list[str]:
    """The topics to subscribe to for a shop syncing ``resources``: bulk finish first."""
    topics = [BULK_FINISH]
    for name in resources:
        topics.extend(SUBSCRIBED.get(name, ()))
    return topics


def sign(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256`` of ``body``: base64 of its HMAC-SHA256 with ``secret``."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def verify(secret: str, body: bytes, signature: str) -> bool:
    """Whether ``signature`` signs ``body`` with ``secret`` (constant-time comparison)."""
    return hmac.compare_digest(sign(secret, body).encode(), signature.strip().encode())


class SeenIds:
    """The last ``capacity`` webhook ids seen per shop: bounded memory, oldest forgotten first."""

    def __init__(self, capacity: int = SEEN_IDS) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[tuple[str, str], None] = OrderedDict()

    def seen(self, shop: str, webhook_id: str) -> bool:
        """True if seen before; else remember it and return False."""
        key = (shop, webhook_id)
        if key in self._ids:
            self._ids.move_to_end(key)
            return True
        self._ids[key] = None
        while len(self._ids) > self.capacity:
            self._ids.popitem(last=False)
        return False

    def __len__(self) -> int:
        return len(self._ids)


@dataclass(frozen=True)
class Answer:
    status: int
    outcome: str  # the metric's label
    detail: str  # the answer's text (never anything the request carried)


class SyncTriggers:
    """Small syncs asked by webhooks, coalesced per stream.

    ``request(shop, resource)`` arms one run of that stream ``delay()`` seconds from now (the
    window's safety margin: a change is in a window only that long after it happened). A request
    while one is armed, or when the stream's scheduled run is due before it, adds nothing
    (``coalesced``). When it fires and a run of the stream is in flight, one more run starts
    after it ends (that run's window may end before the change).
    """

    def __init__(
        self,
        *,
        spawn: Callable[[str, str], object | None],
        in_flight: Callable[[str, str], asyncio.Future[object] | None],
        next_run: Callable[[str, str], datetime | None],
        delay: Callable[[], float],
        clock: Callable[[], float],
    ) -> None:
        self._spawn = spawn
        self._in_flight = in_flight
        self._next_run = next_run
        self._delay = delay
        self._clock = clock
        self._armed: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._after: set[tuple[str, str]] = set()

    def request(self, shop: str, resource: str) -> str:
        key = (shop, resource)
        if key in self._armed or key in self._after:
            return "coalesced"
        delay = max(0.0, self._delay())
        scheduled = self._next_run(shop, resource)
        if scheduled is not None and scheduled.timestamp() - self._clock() <= delay:
            return "coalesced"
        self._armed[key] = asyncio.get_running_loop().call_later(delay, self._fire, key)
        return "sync"

    def _fire(self, key: tuple[str, str]) -> None:
        self._armed.pop(key, None)
        running = self._in_flight(*key)
        if running is None:
            self._spawn(*key)
            return
        self._after.add(key)

        def again(_: object) -> None:
            self._after.discard(key)
            self._spawn(*key)

        running.add_done_callback(again)

    def close(self) -> None:
        for handle in self._armed.values():
            handle.cancel()
        self._armed.clear()
        self._after.clear()

    @property
    def armed(self) -> frozenset[tuple[str, str]]:
        return frozenset(self._armed)


class WebhookReceiver:
    """Verifies a delivery and hands it on (see the module docstring). ``settings()`` is read at
    every delivery, so a reload's shops and secrets apply at once."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        *,
        metrics: Metrics,
        triggers: SyncTriggers | None,
        wake_bulk: Callable[[str, str], None],
        clock: Callable[[], float],
        seen: SeenIds | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._triggers = triggers
        self._wake_bulk = wake_bulk
        self._clock = clock
        self.seen = seen if seen is not None else SeenIds()
        self._next_refusal_log = -math.inf
        self._refusals_left_out = 0

    @property
    def enabled(self) -> bool:
        return self._settings().webhooks.enabled

    def _shop(self, domain: str) -> ShopConfig | None:
        domain = domain.strip().lower()
        for shop in self._settings().shops:
            if shop.domain.lower() == domain:
                return shop
        return None

    def receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        answer = self._receive(headers, body)
        self._metrics.webhooks_received.labels(answer.outcome).inc()
        if answer.status == 401:
            self._log_refusal(answer)
        return answer

    def _log_refusal(self, answer: Answer) -> None:
        """At most one line per :data:`REFUSAL_LOG_INTERVAL`: a flood of forged deliveries must
        not become a flood of log lines (the metric counts every one)."""
        now = self._clock()
        if now < self._next_refusal_log:
            self._refusals_left_out += 1
            return
        self._next_refusal_log = now + REFUSAL_LOG_INTERVAL
        more = (
            f"; {self._refusals_left_out} more refused since the last line" if self._refusals_left_out else ""
        )
        self._refusals_left_out = 0
        log.warning("webhook refused (401): %s%s", answer.detail, more)

    def _receive(self, headers: Mapping[str, str], body: bytes) -> Answer:
        signature = headers.get(HMAC_HEADER)
        if not signature:
            return Answer(401, "rejected_unsigned", f"no {HMAC_HEADER} header")
        shop = self._shop(headers.get(SHOP_HEADER, ""))
        if shop is None:
            return Answer(401, "rejected_unknown_shop", f"{SHOP_HEADER} names no configured shop")
        secret = shop.signing_secret
        if secret is None or not verify(secret.reveal(), body, signature):
            return Answer(
                401, "rejected_signature", f"shop {shop.name}: the signature does not match the body"
            )
        stale = self._stale(headers.get(TRIGGERED_HEADER))
        if stale is not None:
            return Answer(401, "rejected_stale", f"shop {shop.name}: {stale}")
        webhook_id = headers.get(ID_HEADER, "").strip()
        if webhook_id and self.seen.seen(shop.name, webhook_id[:200]):
            return Answer(200, "duplicate", "already received")
        topic = headers.get(TOPIC_HEADER, "").strip().lower()
        return self._act(shop, topic, body)

    def _stale(self, triggered_at: str | None) -> str | None:
        if not triggered_at:
            return None
        # Shopify sends nanoseconds (2026-12-03T17:00:27.877041743Z): keep microseconds.
        text = re.sub(r"(\.\d{6})\d+", r"\1", triggered_at.strip()).replace("Z", "+00:00")
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return f"{TRIGGERED_HEADER} is not a timestamp"
        at = (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).timestamp()
        age = self._clock() - at
        limit = self._settings().webhooks.max_age.total_seconds()
        if age > limit:
            return f"delivery triggered {age:.0f}s ago, more than [webhooks] max_age ({limit:.0f}s)"
        if age < -CLOCK_SKEW:
            return f"delivery triggered {-age:.0f}s in the future"
        return None

    def _act(self, shop: ShopConfig, topic: str, body: bytes) -> Answer:
        if topic == BULK_FINISH:
            op_id = _payload_id(body)
            if op_id is None or not op_id.startswith("gid://shopify/BulkOperation/"):
                return Answer(200, "ignored", "no bulk operation id in the payload")
            self._wake_bulk(shop.name, op_id)
            self._metrics.webhook_actions.labels(shop.name, "", "bulk_wake").inc()
            log.info("shop %s: bulk operation %s finished (webhook): polling it now", shop.name, op_id)
            return Answer(200, "accepted", "bulk poll woken")
        resource = TOPIC_RESOURCES.get(topic)
        if resource is None or resource not in shop.resources or self._triggers is None:
            return Answer(200, "ignored", "nothing to do for this topic")
        action = self._triggers.request(shop.name, resource)
        self._metrics.webhook_actions.labels(shop.name, resource, action).inc()
        log.info("shop %s: webhook %s: %s of %s", shop.name, topic,
                 "sync armed" if action == "sync" else "coalesced with a run in flight or due", resource)  # fmt: skip
        return Answer(200, "accepted", action)


def _payload_id(body: bytes) -> str | None:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    value = payload.get("admin_graphql_api_id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and len(value) < 200 else None


__all__ = [
    "BULK_FINISH",
    "PATH",
    "SUBSCRIBED",
    "SUBSCRIPTION_MUTATION",
    "TOPIC_RESOURCES",
    "Answer",
    "SeenIds",
    "SyncTriggers",
    "WebhookReceiver",
    "sign",
    "subscription_topics",
    "topic_enum",
    "verify",
]
