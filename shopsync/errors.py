"""The one error hierarchy of shopsync, grouped by how the caller recovers.

Foreign exceptions (aiohttp, sqlite3, asyncpg, graphql-core) are translated into these at the
boundary where they happen (``raise ... from exc``), so the engine and the daemon decide what to do
by class alone:

* :class:`ConfigError` — fatal before start: refuse to run, exit code 2.
* :class:`TransientError` — retry with exponential backoff (5xx, timeouts, dropped connections,
  malformed bodies, HTTP 429 with ``retry_after``).
* :class:`ThrottledError` — not an error of the shop: wait for the cost budget, then resend.
* :class:`QueryTooCostlyError` — ``MAX_COST_EXCEEDED``: shrink the page, never resend as is.
* :class:`ShopUnavailableError` — permanent for a shop (401/402/404/423) or for one resource
  (403, missing scope): park it with a reason, keep the others running.
* :class:`QueryError` — the API rejected a document (validation, unknown field): a bug or a bad
  user query file; the resource fails, other resources continue.
* :class:`IntegrityError` — a guard found a mismatch (counts); the window is re-read.
* :class:`StorageError` — the sink or state store failed to write; nothing advances.
"""

from __future__ import annotations


class ShopsyncError(Exception):
    """Base class of every error shopsync raises on purpose."""


class ConfigError(ShopsyncError):
    """The configuration or a query file is wrong. ``str()`` names the file, the key and the fault."""


class QueryDocumentError(ConfigError):
    """A GraphQL document does not validate against the pinned schema (names origin, line, field)."""


class TransientError(ShopsyncError):
    """A failure that is expected to pass: retry with backoff.

    ``reason`` is a short stable label used in metrics (``http_503``, ``timeout``, ``connection``,
    ``bad_body``, ``http_429`` …). ``retry_after`` is the server's ``Retry-After`` in seconds, if any.
    """

    def __init__(self, message: str, *, reason: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.retry_after = retry_after


class OutcomeUnknownError(TransientError):
    """A request that is not safe to repeat (it starts something) may or may not have run: the
    answer was lost (timeout, dropped connection, 500/504). The caller must look before retrying."""


class ThrottledError(ShopsyncError):
    """Shopify answered ``THROTTLED``: the bucket could not hold the requested cost."""

    def __init__(self, message: str, *, requested: float, available: float | None, restore_rate: float | None):
        super().__init__(message)
        self.requested = requested
        self.available = available
        self.restore_rate = restore_rate


class QueryTooCostlyError(ShopsyncError):
    """``MAX_COST_EXCEEDED``: the requested cost is over the single-query cap."""

    def __init__(self, message: str, *, cost: float, max_cost: float) -> None:
        super().__init__(message)
        self.cost = cost
        self.max_cost = max_cost


class ShopUnavailableError(ShopsyncError):
    """The shop (or, with ``resource_only``, one resource) cannot be synced until someone acts.

    ``status`` is the HTTP status (401, 402, 403, 404, 423). ``reason`` is a human sentence safe to log
    (it never contains a token).
    """

    def __init__(self, message: str, *, status: int, reason: str, resource_only: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.resource_only = resource_only


class QueryError(ShopsyncError):
    """The API answered with GraphQL errors that retrying will not fix."""

    def __init__(self, message: str, *, errors: list[dict] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class IntegrityError(ShopsyncError):
    """A guard failed (for example the records synced differ from Shopify's count for the window)."""


class StorageError(ShopsyncError):
    """The sink or the state store could not durably write; the checkpoint did not move."""
