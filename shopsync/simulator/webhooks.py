"""Webhook deliveries from a simulated shop to a URL, signed like Shopify's.

    sender = WebhookSender.for_shop(shop, "http://127.0.0.1:9464/webhooks/shopify")
    await sender.deliver("orders/updated", sender.record_payload(gid))
    await sender.bulk_finished(op_gid)              # once the operation is finished
    await sender.deliver("orders/updated", payload, signature="forged")   # hostile cases

A delivery is a POST of the JSON payload with Shopify's headers (shopify-api-facts §10):
``X-Shopify-Topic``, ``X-Shopify-Hmac-Sha256`` (base64 HMAC-SHA256 of the raw body with the
shop's secret: the app's client secret unless another is given), ``X-Shopify-Shop-Domain``
(``<shop>.myshopify.com``), ``X-Shopify-API-Version``, ``X-Shopify-Webhook-Id`` (the same on a
redelivery: pass it again), ``X-Shopify-Triggered-At`` and ``X-Shopify-Event-Id``. The sender
delivers what it is asked to, when it is asked: tests decide which changes are announced, so a
lost or late webhook is as easy to simulate as a prompt one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from shopsync import API_VERSION

if TYPE_CHECKING:
    from shopsync.simulator.shop import SimulatedShop


def signature_of(secret: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def triggered_at(epoch: float) -> str:
    """Shopify's ``X-Shopify-Triggered-At`` form: ``2026-12-03T17:00:27.877041Z``."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Delivery:
    """One delivery made: what was sent and the status the receiver answered."""

    topic: str
    webhook_id: str
    status: int
    text: str


@dataclass
class WebhookSender:
    """Delivers one simulated shop's webhooks to ``url``; ``deliveries`` lists what it sent."""

    url: str
    domain: str
    secret: str
    get_record: Callable[[str], dict | None] = field(repr=False, default=lambda gid: None)
    clock: Callable[[], float] = time.time
    deliveries: list[Delivery] = field(default_factory=list)
    _events: itertools.count = field(default_factory=lambda: itertools.count(1), repr=False)

    @classmethod
    def for_shop(cls, shop: SimulatedShop, url: str, *, secret: str | None = None) -> WebhookSender:
        """A sender for ``shop`` (domain ``<name>.myshopify.com``), signing with its client secret."""
        key = secret if secret is not None else shop.config.client_secret
        if not key:
            raise ValueError(f"simulated shop {shop.name} has no client secret to sign webhooks with")
        return cls(url=url, domain=f"{shop.name}.myshopify.com", secret=key, get_record=shop.store.get, clock=shop.clock)

    def headers(
        self,
        topic: str,
        body: bytes,
        *,
        webhook_id: str | None = None,
        at: float | None = None,
        signature: str | None = None,
        unsigned: bool = False,
    ) -> dict[str, str]:
        headers = {
            "Content-Type": "application/json",
            "X-Shopify-Topic": topic,
            "X-Shopify-Shop-Domain": self.domain,
            "X-Shopify-API-Version": API_VERSION,
            "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
            "X-Shopify-Triggered-At": triggered_at(self.clock() if at is None else at),
            "X-Shopify-Event-Id": str(next(self._events)),
        }
        if not unsigned:
            headers["X-Shopify-Hmac-Sha256"] = signature if signature is not None else signature_of(self.secret, body)
        return headers

    async def deliver(
        self,
        topic: str,
        payload: Mapping[str, Any],
        *,
        webhook_id: str | None = None,
        at: float | None = None,
        signature: str | None = None,
        unsigned: bool = False,
        session: aiohttp.ClientSession | None = None,
    ) -> Delivery:
        """POST one delivery; ``signature`` replaces the real one, ``unsigned`` sends none,
        ``at`` is its trigger time (default now), ``webhook_id`` repeats an earlier delivery's id."""
        body = orjson.dumps(dict(payload))
        headers = self.headers(topic, body, webhook_id=webhook_id, at=at, signature=signature, unsigned=unsigned)
        own = session is None
        http = session or aiohttp.ClientSession()
        try:
            async with http.post(self.url, data=body, headers=headers) as response:
                delivery = Delivery(topic, headers["X-Shopify-Webhook-Id"], response.status, await response.text())
        finally:
            if own:
                await http.close()
        self.deliveries.append(delivery)
        return delivery

    def record_payload(self, gid: str) -> dict[str, Any]:
        """The part of a record webhook's payload shopsync reads: its ids and ``updated_at``."""
        record = self.get_record(gid) or {}
        return {
            "id": int(gid.rsplit("/", 1)[1]),
            "admin_graphql_api_id": gid,
            "updated_at": record.get("updatedAt"),
        }

    async def bulk_finished(self, operation_gid: str, *, status: str = "completed", **kwargs: Any) -> Delivery:
        """``bulk_operations/finish`` for an operation (Shopify's payload shape)."""
        payload = {
            "admin_graphql_api_id": operation_gid,
            "completed_at": triggered_at(self.clock()),
            "created_at": None,
            "error_code": None,
            "status": status,
            "type": "query",
        }
        return await self.deliver("bulk_operations/finish", payload, **kwargs)


@dataclass(frozen=True)
class Subscription:
    """One ``webhookSubscriptionCreate`` the shop accepted."""

    id: str
    topic: str  # the WebhookSubscriptionTopic value, ORDERS_UPDATED
    uri: str


@dataclass
class WebhookSubscriptions:
    """The shop's webhook subscriptions: ``webhookSubscriptionCreate`` (a mutation resolver)."""

    items: list[Subscription] = field(default_factory=list)

    def resolve_create(self, args: dict, context: Any = None) -> dict:
        topic = str(args.get("topic") or "")
        given = args.get("webhookSubscription") or {}
        uri = given.get("uri") or given.get("callbackUrl")
        if not uri:
            return _payload(None, [(["webhookSubscription", "uri"], "Address can't be blank")])
        if any(s.topic == topic and s.uri == uri for s in self.items):
            return _payload(None, [(["webhookSubscription", "callbackUrl"], "Address for this topic has already been taken")])
        sub = Subscription(id=f"gid://shopify/WebhookSubscription/{len(self.items) + 1}", topic=topic, uri=str(uri))
        self.items.append(sub)
        return _payload(sub, [])

    def uris(self, topic: str) -> list[str]:
        """Where deliveries of ``topic`` (``orders/updated`` or ``ORDERS_UPDATED``) go."""
        wanted = topic.upper().replace("/", "_")
        return [s.uri for s in self.items if s.topic == wanted]


def _payload(sub: Subscription | None, errors: list[tuple[list[str], str]]) -> dict:
    node = {"id": sub.id, "topic": sub.topic, "uri": sub.uri, "callbackUrl": sub.uri} if sub else None
    return {"webhookSubscription": node, "userErrors": [{"field": f, "message": m} for f, m in errors]}


__all__ = ["Delivery", "Subscription", "WebhookSender", "WebhookSubscriptions", "signature_of", "triggered_at"]
