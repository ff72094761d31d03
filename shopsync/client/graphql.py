"""The client of one Shopify shop's GraphQL Admin API: gql over a shared aiohttp session.

:class:`ShopClient.execute` validates a document against the pinned schema (once per document
text), reserves its estimated cost in the shop's :class:`~shopsync.client.budget.CostBudget`,
sends it with the current access token, settles the budget from ``extensions.cost`` and turns
every other outcome into the error hierarchy of :mod:`shopsync.errors` (shopify-api-facts §2, §5):

    answer                                outcome           what happens
    ------------------------------------  ----------------  ------------------------------------------
    200 + data, no errors                 ok                settle, return a GraphQLResponse
    200 + THROTTLED                       throttled         budget waits the deficit, resend (no attempt)
    429 (Retry-After)                     http_429          retry after Retry-After (a policy attempt)
    500/502/503/504                       http_5xx          retry with backoff, then TransientError
    timeout / dropped connection          timeout/connection  retry with backoff, then TransientError
    truncated or malformed JSON           bad_body          retry with backoff, then TransientError
    401                                   unauthorized      new token, resend once; again: shop parked
    402 / 404 / 423                       payment_required/not_found/locked  ShopUnavailableError
    403, 200 + ACCESS_DENIED              forbidden         ShopUnavailableError(resource_only=True)
    200 + MAX_COST_EXCEEDED               max_cost          QueryTooCostlyError (never resent as is)
    200 + INTERNAL_SERVER_ERROR, no data  graphql_error     retry with backoff (reason internal_error)
    200 + other errors (with/without data) graphql_error    QueryError (partial pages are never used)

The classification is pure (:func:`classify_answer`, :func:`classify_http_status`,
:func:`classify_failure`) and tested without a network; :class:`ShopClient` does the I/O.
Access tokens are sent in a per-request header and never logged: no header is ever logged.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
import orjson
from gql import Client, GraphQLRequest
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from graphql import DocumentNode, ExecutionResult, GraphQLError, GraphQLSchema, parse, validate

from shopsync import __version__
from shopsync.client.auth import TokenProvider
from shopsync.client.budget import CostBudget, Reservation, throttle_figures
from shopsync.client.retry import RetryPolicy
from shopsync.cost import MAX_QUERY_COST, CostError, requested_cost
from shopsync.errors import (
    OutcomeUnknownError,
    QueryDocumentError,
    QueryError,
    QueryTooCostlyError,
    ShopsyncError,
    ShopUnavailableError,
    ThrottledError,
    TransientError,
)
from shopsync.schema import format_graphql_error, load_schema

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Shopify-Access-Token"
VERSION_HEADER = "X-Shopify-API-Version"
DEPRECATED_HEADER = "X-Shopify-API-Deprecated-Reason"
#: Consecutive THROTTLED answers to one request before giving up. Each one is followed by the
#: computed wait, so reaching this means something else drains the bucket (another process with
#: the same app credentials) and the shop should be looked at rather than hammered.
MAX_CONSECUTIVE_THROTTLES = 50
#: Bytes of a non-200 body kept for the error message (Shopify's error text, never a token).
ERROR_BODY_LIMIT = 2048
#: Parsed and validated documents kept per client (documents are few: one per resource and shape).
DOCUMENT_CACHE_SIZE = 512

_SCOPE_RE = re.compile(r"\b(?:unauthenticated_)?(?:read|write)_[a-z_]+\b")
_MAX_COST_RE = re.compile(
    r"Query cost is (\d+(?:\.\d+)?), which exceeds the single query max cost limit \((\d+(?:\.\d+)?)\)"
)


# ---------------------------------------------------------------------------------------------
# Public records and protocols
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class GraphQLResponse:
    """A successful answer.

    ``requested_cost``/``actual_cost``/``throttle_status`` come from ``extensions.cost`` (``None``
    when absent). ``api_version`` is the ``X-Shopify-API-Version`` header (the version Shopify
    actually served). ``duration`` is the HTTP round trip of the answered request (seconds);
    ``attempts`` counts HTTP requests sent for this call (throttled resends included), ``throttled``
    how many of them were answered ``THROTTLED``.
    """

    data: dict[str, Any]
    requested_cost: float | None
    actual_cost: float | None
    throttle_status: Mapping[str, Any] | None
    api_version: str | None
    duration: float
    attempts: int = 1
    throttled: int = 0


class RequestObserver(Protocol):
    """Receives one event per HTTP request and per retry (the daemon's metrics implement it).

    ``outcome`` is one of ``ok``, ``throttled``, ``http_429``, ``http_5xx``, ``http_4xx`` (another
    client error, e.g. 400), ``timeout``, ``connection``, ``bad_body``, ``unauthorized``,
    ``forbidden``, ``payment_required``, ``locked``, ``not_found``, ``max_cost``, ``graphql_error``.
    ``requested``/``actual`` are the server's cost figures as reported (``None`` if absent; a
    throttled answer reports requested but no actual). Methods must be cheap and must not raise.
    """

    def on_request(
        self, shop: str, outcome: str, duration: float, requested: float | None, actual: float | None
    ) -> None: ...

    def on_retry(self, shop: str, reason: str) -> None: ...

    def on_throttled(self, shop: str) -> None: ...

    def on_version_mismatch(self, shop: str, served: str) -> None: ...


class NoopObserver:
    """The default :class:`RequestObserver`: ignores everything."""

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

    def on_throttle_status(self, shop: str, available: float, maximum: float, restore_rate: float) -> None:
        return None


def make_session(max_connections: int, timeout: float) -> aiohttp.ClientSession:
    """The process's one HTTP session: a keep-alive pool of at most ``max_connections`` sockets.

    ``timeout`` bounds connecting and each socket read, not the whole exchange, so the same session
    also serves long streaming downloads of bulk results; :class:`ShopClient` adds a total timeout
    per GraphQL request. Request bodies given as ``json=`` are serialised with orjson. Must be
    created inside the running event loop; the creator closes it.
    """
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, keepalive_timeout=30.0)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout),
        json_serialize=_orjson_str,
        headers={"User-Agent": f"shopsync/{__version__}"},
        raise_for_status=False,
    )


def _orjson_str(value: Any) -> str:
    return orjson.dumps(value).decode()


# ---------------------------------------------------------------------------------------------
# gql transport: shared session, per-request status/headers/body
# ---------------------------------------------------------------------------------------------
@dataclass
class _ResponseMeta:
    """What the transport saw of one HTTP response (filled in by :class:`_SharedSessionTransport`)."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


_RESPONSE_META: ContextVar[_ResponseMeta | None] = ContextVar("shopsync_response_meta", default=None)


class _SharedSessionTransport(AIOHTTPTransport):
    """gql's :class:`AIOHTTPTransport`, minimally adapted. Why a subclass:

    * ``connect``/``close``: the base class creates (and closes) a ``ClientSession`` of its own per
      transport. shopsync shares ONE session per process — one connection pool with keep-alive,
      one global connection limit, also used for bulk-result downloads — so ``connect`` adopts the
      given session and ``close`` leaves it open for its owner.
    * ``_prepare_result``: the base class keeps response headers in one attribute of the transport
      (overwritten by concurrent requests), returns a JSON body of a 4xx/5xx answer as if it were a
      normal result (the HTTP status is lost, so a 429 or 503 could not be told apart), and copies
      whole bodies into exception messages. Here the status, the headers and (for non-200) a
      bounded body go into a per-request record (a context variable set around each request), and
      every non-200 answer raises :class:`TransportServerError` with its status.

    Everything else — building the payload, per-request ``extra_args`` (headers, timeout),
    connection-error wrapping, ``ExecutionResult`` with ``extensions`` — is gql's own.
    """

    def __init__(self, url: str, session: aiohttp.ClientSession) -> None:
        super().__init__(url, json_serialize=_orjson_str, json_deserialize=orjson.loads)
        self._shared_session = session

    async def connect(self) -> None:
        self.session = self._shared_session

    async def close(self) -> None:
        self.session = None  # the session belongs to whoever created it

    async def execute(  # type: ignore[override]
        self,
        request: GraphQLRequest,
        *,
        extra_args: dict[str, Any] | None = None,
        upload_files: bool = False,
        meta: _ResponseMeta | None = None,
    ) -> ExecutionResult:
        token = _RESPONSE_META.set(meta)
        try:
            return await super().execute(request, extra_args=extra_args, upload_files=upload_files)
        finally:
            _RESPONSE_META.reset(token)

    async def _prepare_result(self, response: aiohttp.ClientResponse) -> ExecutionResult:
        meta = _RESPONSE_META.get()
        if meta is not None:  # recorded before the body is read: a dropped body still has a status
            meta.status = response.status
            meta.headers = response.headers
        body = await response.read()
        if response.status != 200:
            if meta is not None:
                meta.body = body[:ERROR_BODY_LIMIT]
            raise TransportServerError(f"HTTP {response.status}", response.status)
        try:
            result = self.json_deserialize(body)
        except ValueError as exc:
            raise TransportProtocolError("the answer is not valid JSON") from exc
        if not isinstance(result, dict) or (
            not result.get("errors") and not isinstance(result.get("data"), dict)
        ):
            raise TransportProtocolError("the answer has neither data nor errors")
        return ExecutionResult(
            data=result.get("data"), errors=result.get("errors"), extensions=result.get("extensions")
        )


# ---------------------------------------------------------------------------------------------
# Pure classification
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class CostInfo:
    """``extensions.cost`` of one answer, parsed defensively (any part may be missing)."""

    requested: float | None = None
    actual: float | None = None
    throttle_status: Mapping[str, Any] | None = None


def cost_info(extensions: Any) -> CostInfo:
    cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
    if not isinstance(cost, Mapping):
        return CostInfo()
    status = cost.get("throttleStatus")
    return CostInfo(
        requested=_number(cost.get("requestedQueryCost")),
        actual=_number(cost.get("actualQueryCost")),
        throttle_status=status if throttle_figures(status) is not None else None,
    )


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What one HTTP exchange amounts to.

    ``budget`` says how the reservation ends: ``settle`` (it ran), ``throttled``, ``cancel`` (not
    charged) or ``abandon`` (unknown). ``error`` is ``None`` only for ``outcome == "ok"``.
    """

    outcome: str
    budget: str
    error: ShopsyncError | None = None


def _normalise_errors(errors: Any) -> list[dict[str, Any]]:
    if not errors:
        return []
    if isinstance(errors, str):
        return [{"message": errors}]
    if isinstance(errors, Mapping):
        return [dict(errors)]
    out = []
    for e in errors if isinstance(errors, list) else [errors]:
        out.append(dict(e) if isinstance(e, Mapping) else {"message": str(e)})
    return out


def _code(error: Mapping[str, Any]) -> str | None:
    ext = error.get("extensions")
    code = ext.get("code") if isinstance(ext, Mapping) else None
    return code if isinstance(code, str) else None


def _messages(errors: list[dict[str, Any]], limit: int = 5) -> str:
    msgs = [str(e.get("message", "?")) for e in errors[:limit]]
    more = f" (+{len(errors) - limit} more)" if len(errors) > limit else ""
    return "; ".join(msgs) + more


def classify_answer(
    errors: Any, data: Any, extensions: Any, *, shop: str, operation: str = "query"
) -> tuple[Verdict, CostInfo]:
    """Classify a 200 answer with a JSON body (``errors``/``data``/``extensions`` as sent)."""
    cost = cost_info(extensions)
    errs = _normalise_errors(errors)
    if not errs:
        if isinstance(data, dict):
            return Verdict(outcome="ok", budget="settle"), cost
        return (
            Verdict(
                outcome="bad_body",
                budget="abandon",
                error=TransientError(
                    f"shop {shop}: {operation}: answer without data or errors", reason="bad_body"
                ),
            ),
            cost,
        )
    codes = {_code(e) for e in errs}
    if "THROTTLED" in codes:
        figures = throttle_figures(cost.throttle_status)
        return (
            Verdict(
                outcome="throttled",
                budget="throttled",
                error=ThrottledError(
                    f"shop {shop}: {operation}: throttled",
                    requested=cost.requested or 0.0,
                    available=figures[1] if figures else None,
                    restore_rate=figures[2] if figures else None,
                ),
            ),
            cost,
        )
    if "MAX_COST_EXCEEDED" in codes:
        err = next(e for e in errs if _code(e) == "MAX_COST_EXCEEDED")
        ext = err.get("extensions") or {}
        found = _MAX_COST_RE.search(str(err.get("message", "")))
        value = (
            _number(ext.get("cost")) or (float(found.group(1)) if found else None) or cost.requested or 0.0
        )
        max_cost = (
            _number(ext.get("maxCost")) or (float(found.group(2)) if found else None) or float(MAX_QUERY_COST)
        )
        return (
            Verdict(
                outcome="max_cost",
                budget="cancel",  # checked before execution: nothing ran, nothing was charged
                error=QueryTooCostlyError(
                    f"shop {shop}: {operation}: query cost {value:g} exceeds the single query limit {max_cost:g}",
                    cost=value,
                    max_cost=max_cost,
                ),
            ),
            cost,
        )
    if "ACCESS_DENIED" in codes:
        denied = [e for e in errs if _code(e) == "ACCESS_DENIED"]
        scopes = sorted({s for e in denied for s in _SCOPE_RE.findall(str(e.get("message", "")))})
        reason = (
            "access denied"
            + (f": missing scope {', '.join(scopes)}" if scopes else "")
            + f" ({_messages(denied, 2)})"
        )
        return (
            Verdict(
                outcome="forbidden",
                budget="settle",
                error=ShopUnavailableError(
                    f"shop {shop}: {operation}: {reason}", status=403, reason=reason, resource_only=True
                ),
            ),
            cost,
        )
    if data is None and codes <= {"INTERNAL_SERVER_ERROR"} and "INTERNAL_SERVER_ERROR" in codes:
        return (
            Verdict(
                outcome="graphql_error",
                budget="settle",
                error=TransientError(
                    f"shop {shop}: {operation}: Shopify internal error ({_messages(errs)})",
                    reason="internal_error",
                ),
            ),
            cost,
        )
    partial = " with partial data" if data else ""
    return (
        Verdict(
            outcome="graphql_error",
            budget="settle",
            error=QueryError(
                f"shop {shop}: {operation}: GraphQL errors{partial}: {_messages(errs)}", errors=errs
            ),
        ),
        cost,
    )


def classify_http_status(
    status: int, body: bytes, headers: Mapping[str, str], *, shop: str, operation: str = "query"
) -> Verdict:
    """Classify a non-200 answer. ``body`` is a bounded prefix (Shopify's error text)."""
    text = _error_text(body)
    detail = f": {text}" if text else ""
    if status == 401:
        reason = "access token rejected (401 Unauthorized)"
        return Verdict(
            outcome="unauthorized",
            budget="cancel",
            error=ShopUnavailableError(f"shop {shop}: {reason}", status=401, reason=reason),
        )
    if status in (402, 404, 423):
        outcome, reason = {
            402: ("payment_required", "shop is frozen (402 Payment Required)"),
            404: ("not_found", "shop not found (404 Not Found): closed or renamed? check the domain"),
            423: ("locked", "shop is locked (423 Locked): needs Shopify support"),
        }[status]
        return Verdict(
            outcome=outcome,
            budget="cancel",
            error=ShopUnavailableError(f"shop {shop}: {reason}{detail}", status=status, reason=reason),
        )
    if status == 403:
        scopes = sorted(set(_SCOPE_RE.findall(text)))
        reason = "access denied (403 Forbidden)" + (
            f": missing scope {', '.join(scopes)}" if scopes else detail
        )
        return Verdict(
            outcome="forbidden",
            budget="cancel",
            error=ShopUnavailableError(
                f"shop {shop}: {operation}: {reason}", status=403, reason=reason, resource_only=True
            ),
        )
    if status == 429:
        retry_after = _retry_after(headers)
        return Verdict(
            outcome="http_429",
            budget="cancel",
            error=TransientError(
                f"shop {shop}: {operation}: rate limited (HTTP 429"
                + (f", Retry-After {retry_after:g}s)" if retry_after is not None else ")"),
                reason="http_429",
                retry_after=retry_after,
            ),
        )
    if status >= 500 or status == 430:
        return Verdict(
            outcome="http_5xx" if status >= 500 else "http_4xx",
            # 502/503 come from the edge before the query runs: nothing was charged, so the points
            # go back (keeping them would make a shop that answers 503 from its first request wait
            # a whole bucket refill per retry). A 500 or 504 may have run: keep the points taken.
            budget="cancel" if status in (502, 503) else "abandon",
            error=TransientError(
                f"shop {shop}: {operation}: HTTP {status}{detail}",
                reason=f"http_{status}",
                retry_after=_retry_after(headers),
            ),
        )
    if 400 <= status < 500:
        return Verdict(
            outcome="http_4xx",
            budget="cancel",
            error=QueryError(f"shop {shop}: {operation}: HTTP {status}{detail}"),
        )
    return Verdict(
        outcome="bad_body",
        budget="abandon",
        error=TransientError(f"shop {shop}: {operation}: unexpected HTTP {status}", reason="bad_body"),
    )


def classify_failure(exc: BaseException, *, shop: str, operation: str = "query") -> Verdict:
    """Classify an exchange that produced no HTTP answer (or an unreadable one)."""
    cause = exc.__cause__ if isinstance(exc, TransportConnectionFailed) and exc.__cause__ else exc
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return Verdict(
            outcome="timeout",
            budget="cancel",  # never connected: never reached Shopify
            error=TransientError(f"shop {shop}: {operation}: connect timed out", reason="timeout"),
        )
    if isinstance(cause, TimeoutError):
        return Verdict(
            outcome="timeout",
            budget="abandon",
            error=TransientError(f"shop {shop}: {operation}: request timed out", reason="timeout"),
        )
    if isinstance(cause, aiohttp.ClientConnectorError):
        return Verdict(
            outcome="connection",
            budget="cancel",
            error=TransientError(
                f"shop {shop}: {operation}: cannot connect: {_short(cause)}", reason="connection"
            ),
        )
    if isinstance(exc, TransportProtocolError):
        return Verdict(
            outcome="bad_body",
            budget="abandon",  # it ran (Shopify charged it); the cost is unknown
            error=TransientError(f"shop {shop}: {operation}: malformed answer: {exc}", reason="bad_body"),
        )
    return Verdict(
        outcome="connection",
        budget="abandon",
        error=TransientError(
            f"shop {shop}: {operation}: connection lost ({type(cause).__name__}: {_short(cause)})",
            reason="connection",
        ),
    )


def _error_text(body: bytes) -> str:
    """Shopify's error message from a non-200 body (``{"errors": …}`` or text), one line, short."""
    if not body:
        return ""
    try:
        parsed = orjson.loads(body)
    except orjson.JSONDecodeError:
        text = body.decode("utf-8", "replace")
        if "<" in text[:100]:  # an HTML error page says nothing useful
            return ""
    else:
        errors = parsed.get("errors", parsed) if isinstance(parsed, dict) else parsed
        if isinstance(errors, list):
            text = "; ".join(str(e.get("message", e)) if isinstance(e, Mapping) else str(e) for e in errors)
        elif isinstance(errors, Mapping):
            text = "; ".join(f"{k}: {v}" for k, v in errors.items())
        else:
            text = str(errors)
    return " ".join(text.split())[:300]


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None  # an HTTP date: rare from Shopify; the policy's backoff applies
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


# ---------------------------------------------------------------------------------------------
# The client
# ---------------------------------------------------------------------------------------------
def _cost_key(document: str, variables: Mapping[str, Any] | None) -> tuple[str, tuple[tuple[str, int], ...]]:
    """Costs depend on the text and on integer variables (``first``/``last``), not on cursors or
    search strings: requests of one shape share a learned cost."""
    numbers = tuple(
        sorted((k, v) for k, v in (variables or {}).items() if isinstance(v, int) and not isinstance(v, bool))
    )
    return document, numbers


@dataclass(frozen=True, kw_only=True)
class _Exchange:
    """One HTTP exchange, classified (internal to :class:`ShopClient`)."""

    verdict: Verdict
    cost: CostInfo
    data: Any
    token: str
    duration: float
    served_version: str | None


class ShopClient:
    """Sends GraphQL documents to one shop, within its cost budget, with retries.

    ``session`` is the process's shared session (:func:`make_session`); the client never closes
    it. ``retry`` decides about transient failures (``decide(error, attempt)``; its ``retry``
    action's delay is slept, honouring ``Retry-After``).
    ``schema`` is the schema documents are validated and costed against (default: the pinned one).
    ``sleep`` is used for retry backoff; the budget has its own clock and sleep.
    """

    def __init__(
        self,
        *,
        shop: str,
        api_url: str,
        api_version: str,
        session: aiohttp.ClientSession,
        budget: CostBudget,
        tokens: TokenProvider,
        retry: RetryPolicy,
        schema: GraphQLSchema | None = None,
        observer: RequestObserver | None = None,
        request_timeout: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.shop = shop
        self.api_url = api_url
        self.api_version = api_version
        self.budget = budget
        self._tokens = tokens
        self._retry = retry
        self._schema = schema
        self._observer: Any = observer if observer is not None else NoopObserver()
        # A total bound per GraphQL request, keeping the session's connect/read bounds.
        base = session.timeout
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout,
            connect=base.connect,
            sock_connect=base.sock_connect,
            sock_read=base.sock_read,
        )
        self._clock = clock
        self._sleep = sleep
        self._transport = _SharedSessionTransport(api_url, session)
        # No schema for gql itself: documents are validated once per text here, not on every send.
        # gql's own timeout is a backstop behind aiohttp's per-request one.
        self._gql = Client(transport=self._transport, execute_timeout=request_timeout + 5.0)
        self._gql_session: Any = None
        self._connect_lock = asyncio.Lock()
        self._documents: OrderedDict[str, DocumentNode] = OrderedDict()
        self._learned_costs: OrderedDict[tuple[str, tuple[tuple[str, int], ...]], float] = OrderedDict()
        self._seen_versions: set[str] = set()
        self._seen_deprecations: set[str] = set()
        #: The ``X-Shopify-API-Version`` of the last answer that carried one.
        self.served_version: str | None = None

    def __repr__(self) -> str:
        return f"ShopClient(shop={self.shop!r}, api_url={self.api_url!r}, api_version={self.api_version!r})"

    async def __aenter__(self) -> ShopClient:
        await self._connected()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release gql's session object (the shared aiohttp session stays open)."""
        if self._gql_session is not None:
            self._gql_session = None
            await self._gql.close_async()

    async def _connected(self) -> Any:
        if self._gql_session is None:
            async with self._connect_lock:
                if self._gql_session is None:
                    self._gql_session = await self._gql.connect_async()
        return self._gql_session

    # -- documents --------------------------------------------------------------------------------
    def prepare(self, document: str, *, origin: str = "query") -> DocumentNode:
        """Parse and validate ``document`` (cached by text). Raises :class:`QueryDocumentError`."""
        return self._prepare(document, origin)

    def _prepare(self, text: str, origin: str) -> DocumentNode:
        cached = self._documents.get(text)
        if cached is not None:
            self._documents.move_to_end(text)
            return cached
        schema = self._schema if self._schema is not None else load_schema()
        try:
            document = parse(text)
        except GraphQLError as exc:
            raise QueryDocumentError(format_graphql_error(exc, origin)) from exc
        errors = validate(schema, document)
        if errors:
            raise QueryDocumentError("; ".join(format_graphql_error(e, origin) for e in errors))
        self._documents[text] = document
        if len(self._documents) > DOCUMENT_CACHE_SIZE:
            self._documents.popitem(last=False)
        return document

    def estimate(self, document: str, variables: Mapping[str, Any] | None = None) -> float:
        """The cost reserved for ``document``: the ``requestedQueryCost`` Shopify last reported for
        the same text and numeric variables (its own formula can be far below the documented one,
        facts §1), else the static cost by the documented rules (1000 if it cannot be computed)."""
        learned = self._learned_costs.get(_cost_key(document, variables))
        if learned is not None:
            return learned
        parsed = self._prepare(document, "query")
        schema = self._schema if self._schema is not None else load_schema()
        try:
            return float(requested_cost(schema, parsed, variables))
        except CostError as exc:
            log.debug("shop %s: cannot cost a document (%s); reserving the maximum", self.shop, exc)
            return float(MAX_QUERY_COST)

    # -- execution --------------------------------------------------------------------------------
    async def execute(
        self,
        document: str,
        variables: Mapping[str, Any] | None = None,
        *,
        priority: int = 0,
        estimated_cost: float | None = None,
        operation: str = "query",
        idempotent: bool = True,
    ) -> GraphQLResponse:
        """Run ``document`` against the shop and return its data, or raise.

        ``idempotent=False`` (a mutation that starts something, like a bulk operation) is not
        resent after a failure that may have reached Shopify: it raises
        :class:`OutcomeUnknownError` so the caller can check whether it ran.

        ``operation`` is a label for logs and error messages (``"orders page"``, ``"bulk start"``).
        ``priority`` orders this request's budget reservation (0 before 1). Throttled answers are
        resent after the budget's computed wait; transient failures are retried per the policy;
        a 401 is retried once with a fresh token. Raises :class:`TransientError` (retries used up),
        :class:`ShopUnavailableError`, :class:`QueryTooCostlyError`, :class:`QueryError`,
        :class:`ThrottledError` (``MAX_CONSECUTIVE_THROTTLES`` in a row) or
        :class:`QueryDocumentError` (the document does not validate; nothing is sent).
        """
        parsed = self._prepare(document, operation)
        variables = dict(variables) if variables else None
        estimate = estimated_cost if estimated_cost is not None else self.estimate(document, variables)
        request = GraphQLRequest(parsed, variable_values=variables)
        attempt = 1  # policy attempts: throttled resends and the 401 resend do not count
        sent = 0
        throttled = 0
        reauthorised = False
        while True:
            try:
                ex = await self._attempt(request, estimate, priority, operation)
            except TransientError as exc:  # only the token provider raises these (its endpoint failed)
                await self._backoff(exc, attempt, operation)
                attempt += 1
                continue
            sent += 1
            if ex.cost.requested is not None:
                # The server's figure is the truth for resends and for later calls of this shape.
                estimate = ex.cost.requested
                self._learn_cost(document, variables, estimate)
            error = ex.verdict.error
            if error is None:
                return GraphQLResponse(
                    data=ex.data,
                    requested_cost=ex.cost.requested,
                    actual_cost=ex.cost.actual,
                    throttle_status=ex.cost.throttle_status,
                    api_version=ex.served_version,
                    duration=ex.duration,
                    attempts=sent,
                    throttled=throttled,
                )
            if ex.verdict.outcome == "throttled":
                throttled += 1
                figures = throttle_figures(ex.cost.throttle_status)
                requested = ex.cost.requested or 0.0
                if figures is not None and requested > figures[0]:
                    # The bucket can never hold it: resending would be throttled forever.
                    raise QueryTooCostlyError(
                        f"shop {self.shop}: {operation}: requested cost {requested:g} exceeds the "
                        f"bucket size {figures[0]:g}",
                        cost=requested,
                        max_cost=figures[0],
                    ) from error
                if throttled >= MAX_CONSECUTIVE_THROTTLES:
                    raise error
                continue  # the budget now holds every reservation for the computed deficit
            if ex.verdict.outcome == "unauthorized":
                if reauthorised:
                    raise ShopUnavailableError(
                        f"shop {self.shop}: access token rejected (401 Unauthorized) twice, the second time "
                        "after asking the token provider for a new one",
                        status=401,
                        reason="access token rejected (401 Unauthorized)",
                    ) from error
                reauthorised = True
                self._observer.on_retry(self.shop, "unauthorized")
                log.info("shop %s: access token rejected (401); getting a new one", self.shop)
                await self._tokens.invalidate(ex.token)
                continue
            if isinstance(error, TransientError):
                if not idempotent and ex.verdict.budget == "abandon":
                    raise OutcomeUnknownError(
                        f"{error} (not resent: it may have run)", reason=error.reason
                    ) from error
                await self._backoff(error, attempt, operation)
                attempt += 1
                continue
            raise error

    async def _backoff(self, error: TransientError, attempt: int, operation: str) -> None:
        """Sleep as the retry policy says after failed attempt ``attempt``, or raise ``error``."""
        decision = self._retry.decide(error, attempt)
        if decision.action != "retry":
            raise error
        delay = float(decision.delay or 0.0)
        self._observer.on_retry(self.shop, error.reason)
        log.warning("shop %s: %s: %s; retry %d in %.2fs", self.shop, operation, error.reason, attempt, delay)
        await self._sleep(delay)

    def _learn_cost(self, document: str, variables: Mapping[str, Any] | None, requested: float) -> None:
        key = _cost_key(document, variables)
        self._learned_costs[key] = requested
        self._learned_costs.move_to_end(key)
        if len(self._learned_costs) > DOCUMENT_CACHE_SIZE:
            self._learned_costs.popitem(last=False)

    async def _attempt(
        self, request: GraphQLRequest, estimate: float, priority: int, operation: str
    ) -> _Exchange:
        """One HTTP exchange: reserve, send, classify, end the reservation. Never raises for an
        answer; raises only what the token provider raises, cancellation, or a document error."""
        reservation = await self.budget.reserve(estimate, priority=priority)
        try:
            token = await self._tokens.token()
        except BaseException:
            self.budget.cancel(reservation)
            raise
        meta = _ResponseMeta()
        started = self._clock()
        data: Any = None
        cost = CostInfo()
        try:
            session = await self._connected()
            result = await session.execute(
                request,
                get_execution_result=True,
                meta=meta,
                extra_args={"headers": {TOKEN_HEADER: token}, "timeout": self._timeout},
            )
        except TransportQueryError as exc:  # a 200 answer with errors (gql raises for those)
            verdict, cost = classify_answer(
                exc.errors, exc.data, exc.extensions, shop=self.shop, operation=operation
            )
        except TransportServerError:  # any non-200 answer (see _SharedSessionTransport)
            verdict = classify_http_status(
                meta.status or 0, meta.body, meta.headers, shop=self.shop, operation=operation
            )
        except (TransportError, TimeoutError, aiohttp.ClientError, OSError) as exc:
            verdict = classify_failure(exc, shop=self.shop, operation=operation)
        except BaseException:
            # Cancelled mid-request (or a bug): it may have been charged.
            self.budget.abandon(reservation)
            raise
        else:
            verdict, cost = classify_answer(
                result.errors, result.data, result.extensions, shop=self.shop, operation=operation
            )
            data = result.data
        duration = self._clock() - started
        self._end_reservation(reservation, verdict, cost, estimate)
        served = self._note_headers(meta.headers)
        self._observer.on_request(self.shop, verdict.outcome, duration, cost.requested, cost.actual)
        if verdict.outcome == "throttled":
            self._observer.on_throttled(self.shop)
        figures = throttle_figures(cost.throttle_status)
        if figures is not None:
            note = getattr(self._observer, "on_throttle_status", None)
            if note is not None:
                note(self.shop, figures[1], figures[0], figures[2])
        return _Exchange(
            verdict=verdict, cost=cost, data=data, token=token, duration=duration, served_version=served
        )

    def _end_reservation(
        self, reservation: Reservation, verdict: Verdict, cost: CostInfo, estimate: float
    ) -> None:
        if verdict.budget == "settle":
            self.budget.settle(
                reservation,
                requested=cost.requested,
                actual=cost.actual,
                throttle_status=cost.throttle_status,
            )
        elif verdict.budget == "throttled":
            self.budget.on_throttled(
                reservation, cost.requested if cost.requested is not None else estimate, cost.throttle_status
            )
        elif verdict.budget == "cancel":
            self.budget.cancel(reservation, throttle_status=cost.throttle_status)
        else:
            self.budget.abandon(reservation)

    def _note_headers(self, headers: Mapping[str, str]) -> str | None:
        served = headers.get(VERSION_HEADER)
        if served:
            self.served_version = served
            if served != self.api_version and served not in self._seen_versions:
                self._seen_versions.add(served)
                log.warning(
                    "shop %s: Shopify served API version %s, not the pinned %s (it falls forward from an "
                    "unsupported version): upgrade shopsync",
                    self.shop,
                    served,
                    self.api_version,
                )
                self._observer.on_version_mismatch(self.shop, served)
        deprecated = headers.get(DEPRECATED_HEADER)
        if deprecated and deprecated not in self._seen_deprecations:
            self._seen_deprecations.add(deprecated)
            log.warning("shop %s: Shopify reports deprecated API usage: %s", self.shop, deprecated[:300])
        return served


__all__ = [
    "DEPRECATED_HEADER",
    "MAX_CONSECUTIVE_THROTTLES",
    "TOKEN_HEADER",
    "VERSION_HEADER",
    "CostInfo",
    "GraphQLResponse",
    "NoopObserver",
    "RequestObserver",
    "ShopClient",
    "Verdict",
    "classify_answer",
    "classify_failure",
    "classify_http_status",
    "cost_info",
    "make_session",
]
