"""The one error hierarchy of shopsync, grouped by how the caller recovers.

Foreign exceptions (aiohttp, sqlite3, asyncpg, graphql-core) are translated into these at the
boundary where they happen (``raise ... from exc``), so the engine and the daemon decide what to do
by class alone. Every error shopsync raises on purpose is a :class:`ShopsyncError`::

    ShopsyncError
    ├── FatalError               refuse to run; a person fixes the cause and starts again
    │   ├── ConfigError          the configuration or a query file is wrong (exit code 2)
    │   │   └── QueryDocumentError   a document does not validate against the pinned schema
    │   └── StartupError         storage or the listening address cannot be opened (exit code 1)
    ├── TransientError           retry with backoff (5xx, timeouts, dropped connections, 429)
    │   ├── OutcomeUnknownError  a request that starts something may have run: look before resending
    │   ├── UrlExpiredError      a signed result URL stopped working: ask Shopify for a fresh one
    │   └── MalformedAnswerError a 200 answer of the wrong shape: resend with backoff, then fail
    ├── ThrottledError           not a fault of the shop: wait for the cost budget, then resend
    ├── ShopUnavailableError     permanent for a shop (401/402/404/423): park it, keep the others
    │   └── ResourceUnavailableError   permanent for one resource (403, missing scope): park that stream
    ├── QueryError               the API rejected a document: the resource fails, the others go on
    │   └── QueryTooCostlyError  MAX_COST_EXCEEDED: shrink the page, never resend as is
    ├── IntegrityError           a guard found a mismatch (counts, a file's shape): the window is read again
    │   ├── PaginationStalledError   a page that does not advance, read twice: the stream fails
    │   └── BulkFileError        a bad line or an orphan in a bulk file: exported again once, then fail
    └── StorageError             the sink or the state store could not write durably: nothing advances
        └── LeaseLostError       a write for a shop whose lease moved on was refused: stop that shop's work
"""

from __future__ import annotations

from typing import Any


class ShopsyncError(Exception):
    """Base class of every error shopsync raises on purpose."""


# --------------------------------------------------------------------------------------------
# fatal: refuse to run


class FatalError(ShopsyncError):
    """shopsync cannot run until a person changes something (configuration, storage, a port)."""


class ConfigError(FatalError):
    """The configuration or a query file is wrong. ``str()`` names the file, the key and the fault."""


class QueryDocumentError(ConfigError):
    """A GraphQL document does not validate against the pinned schema (names origin, line, field)."""


class StartupError(FatalError):
    """The daemon could not start (storage, listening address); exit code 1."""


# --------------------------------------------------------------------------------------------
# transient: retry


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


class UrlExpiredError(TransientError):
    """A signed bulk result URL is refused (403/404/410): ask Shopify for the operation again,
    which signs a fresh one. Resending to the same URL would not help."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="url_expired")


class MalformedAnswerError(TransientError):
    """A 200 answer whose shape is not what the document asked for (``data`` missing or null
    without errors, a connection without ``pageInfo`` or ``nodes``, a count that is not a number).

    Recovery: like a 5xx — the client resends the request with backoff (it was a read, so resending
    is safe; a request that starts something becomes :class:`OutcomeUnknownError` instead), and
    when the attempts are used up the stream fails with this message. Nothing of the answer is
    written and no checkpoint moves. ``str()`` names the shop, the resource and what was wrong.
    """

    def __init__(self, message: str, *, reason: str = "malformed") -> None:
        super().__init__(message, reason=reason)


class ThrottledError(ShopsyncError):
    """Shopify answered ``THROTTLED``: the bucket could not hold the requested cost."""

    def __init__(
        self, message: str, *, requested: float, available: float | None, restore_rate: float | None
    ) -> None:
        super().__init__(message)
        self.requested = requested
        self.available = available
        self.restore_rate = restore_rate


# --------------------------------------------------------------------------------------------
# permanent for a shop or a resource: park


class ShopUnavailableError(ShopsyncError):
    """The shop cannot be synced until someone acts (a token revoked, a frozen or closed shop).

    ``status`` is the HTTP status (401, 402, 403, 404, 423). ``reason`` is a human sentence safe to log
    (it never contains a token).
    """

    def __init__(self, message: str, *, status: int, reason: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason

    @property
    def resource_only(self) -> bool:
        """True when only the resource being read is unavailable (:class:`ResourceUnavailableError`)."""
        return False


class ResourceUnavailableError(ShopUnavailableError):
    """One resource of a shop cannot be read (403, a missing access scope); the shop's other
    resources go on."""

    @property
    def resource_only(self) -> bool:
        return True


# --------------------------------------------------------------------------------------------
# the document, the data, the storage


class QueryError(ShopsyncError):
    """The API answered with GraphQL errors that retrying will not fix."""

    def __init__(self, message: str, *, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class QueryTooCostlyError(QueryError):
    """``MAX_COST_EXCEEDED``: the requested cost is over the single-query cap."""

    def __init__(self, message: str, *, cost: float, max_cost: float) -> None:
        super().__init__(message)
        self.cost = cost
        self.max_cost = max_cost


class IntegrityError(ShopsyncError):
    """A guard failed (for example the records synced differ from Shopify's count for the window)."""


class StorageError(ShopsyncError):
    """The sink or the state store could not durably write; the checkpoint did not move."""


class LeaseLostError(StorageError):
    """A checkpoint, sink write or bulk-ledger write for a shop was refused because this daemon no
    longer holds the shop's lease (another daemon took it, it expired, or it was never held).

    Nothing of the write was applied (the check runs inside the write's transaction). Recovery: the
    daemon stops that shop's work at once, without parking it or recording an error in its state
    (the new owner writes that state now). ``shop`` names the shop; ``reason`` is a short stable
    label for metrics: ``not_held``, ``epoch``, ``expired`` or ``missing``; ``shopify_call`` when
    what was refused is a call to Shopify (checked against the lease before it is sent).
    """

    def __init__(self, message: str, *, shop: str, reason: str) -> None:
        super().__init__(message)
        self.shop = shop
        self.reason = reason


class PaginationStalledError(IntegrityError):
    """A page that does not advance: the same ``endCursor`` again, ``endCursor`` null while
    ``hasNextPage`` is true, or an empty page that says more follow.

    Recovery: the engine reads that page once more; if it still does not advance the stream fails
    with this message (following it would loop for ever). The pages committed before it stay
    committed and the cursor stays at the last of them, so the next run resumes there.
    """


class BulkFileError(IntegrityError):
    """A bulk result file that cannot be trusted: a line that is not a JSON object, or child lines
    whose parent is not in the file (records would be written without some of their children).

    Recovery: nothing of the file is written; the window is exported again by a new bulk operation,
    once. If that file is bad too the stream fails with this message, naming the shop, the
    resource and the file's line; the watermark does not move. ``line`` is that 1-based line.
    """

    def __init__(self, message: str, *, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line
