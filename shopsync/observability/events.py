"""What the client and the engine report as they work, and the observers that listen.

The client reports one event per HTTP request and per retry (:class:`RequestObserver`); the engine
reports records written, bulk operation progress, guard mismatches and checkpoints
(:class:`EngineObserver`). The daemon's metrics, its stream view and ``shopsync sync``'s progress
display implement them; :class:`NullObserver` implements both and ignores everything.

The protocols live here, below the client and the engine, so that the implementations beside them
(metrics, progress) are checked against the same definitions the callers use. Every method must be
cheap and must not raise: an observer's fault must never fail a request or a stream.
"""

from __future__ import annotations

from typing import Protocol


class RequestObserver(Protocol):
    """Receives one event per HTTP request and per retry (the daemon's metrics implement it).

    ``outcome`` is one of ``ok``, ``throttled``, ``http_429``, ``http_5xx``, ``http_4xx`` (another
    client error, e.g. 400), ``timeout``, ``connection``, ``bad_body``, ``unauthorized``,
    ``forbidden``, ``payment_required``, ``locked``, ``not_found``, ``max_cost``, ``graphql_error``.
    ``requested``/``actual`` are the server's cost figures as reported (``None`` if absent; a
    throttled answer reports requested but no actual).
    """

    def on_request(
        self, shop: str, outcome: str, duration: float, requested: float | None, actual: float | None
    ) -> None: ...

    def on_retry(self, shop: str, reason: str) -> None: ...

    def on_throttled(self, shop: str) -> None: ...

    def on_version_mismatch(self, shop: str, served: str) -> None: ...

    def on_deprecated(self, shop: str, operation: str) -> None:
        """An answer to ``operation`` carried ``X-Shopify-API-Deprecated-Reason``."""

    def on_throttle_status(self, shop: str, available: float, maximum: float, restore_rate: float) -> None:
        """The bucket's figures from an answer's ``throttleStatus`` (only when it carried usable ones)."""


class EngineObserver(Protocol):
    """Receives the engine's events per (shop, resource) stream."""

    def on_records(self, shop: str, resource: str, path: str, count: int) -> None: ...

    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None: ...

    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None: ...

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None: ...

    def on_path_decision(self, shop: str, resource: str, path: str, reason: str) -> None: ...

    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None: ...


class NullObserver:
    """A :class:`RequestObserver` and :class:`EngineObserver` that ignores every event."""

    def on_request(
        self, shop: str, outcome: str, duration: float, requested: float | None, actual: float | None
    ) -> None:
        return None

    def on_retry(self, shop: str, reason: str) -> None:
        return None

    def on_throttled(self, shop: str) -> None:
        return None

    def on_version_mismatch(self, shop: str, served: str) -> None:
        return None

    def on_deprecated(self, shop: str, operation: str) -> None:
        return None

    def on_throttle_status(self, shop: str, available: float, maximum: float, restore_rate: float) -> None:
        return None

    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        return None

    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None:
        return None

    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None:
        return None

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
        return None

    def on_path_decision(self, shop: str, resource: str, path: str, reason: str) -> None:
        return None

    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None:
        return None
