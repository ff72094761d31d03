"""Sending GraphQL requests: gql over the process's one shared aiohttp session.

:func:`make_session` makes the session (one keep-alive pool for every shop and every bulk download).
:class:`GraphQLTransport` sends one request to one endpoint with a given access token and returns
an :class:`Answer`: what came back, classified by :mod:`shopsync.shopify.answers` (or, for a
request that got no answer, by :func:`classify_failure`). It never raises for an answer; it knows
nothing of budgets, tokens' lifetimes or retries — :class:`shopsync.client.graphql.ShopClient`
does. Access tokens travel in a per-request header and are never logged: no header is ever logged.

What is sent where (issue 10, "only Shopify gets the token"): the token goes only to the
configured ``api_url``. Redirects are never followed (:func:`request_args`); a 3xx answer is
classified by :func:`shopsync.shopify.answers.classify_http_status`. TLS certificates are always
verified (nothing here or in the session turns verification off). The session keeps no cookies and
has no default credential headers, so bulk result downloads over the same session carry none.
An answer's body is read only up to ``max_response_bytes`` (:func:`read_limited`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import orjson
from gql import Client, GraphQLRequest
from gql.client import AsyncClientSession
from gql.transport.aiohttp import AIOHTTPTransport
from gql.transport.exceptions import (
    TransportConnectionFailed,
    TransportError,
    TransportProtocolError,
    TransportQueryError,
    TransportServerError,
)
from graphql import ExecutionResult

from shopsync import __version__
from shopsync.errors import TransientError
from shopsync.shopify.answers import (
    CostInfo,
    Verdict,
    classify_answer,
    classify_http_status,
    throttle_figures,
)

TOKEN_HEADER = "X-Shopify-Access-Token"  # noqa: S105 -- a header name, not a token
#: Bytes of a non-200 body kept for the error message (Shopify's error text, never a token).
ERROR_BODY_LIMIT = 2048
#: The default ``[sync] max_response_bytes``: far above any real GraphQL answer (a query of at most
#: 1,000 cost points returns at most about a thousand objects), far below what hurts the process.
DEFAULT_MAX_RESPONSE_BYTES = 50 * 1024 * 1024
#: Request headers that carry a credential: never a default header of the shared session.
CREDENTIAL_HEADERS = frozenset({TOKEN_HEADER.lower(), "authorization", "cookie", "proxy-authorization"})
_READ_CHUNK = 1 << 16


def make_session(max_connections: int, timeout: float) -> aiohttp.ClientSession:
    """The process's one HTTP session: a keep-alive pool of at most ``max_connections`` sockets.

    ``timeout`` bounds connecting and each socket read, not the whole exchange, so the same session
    also serves long streaming downloads of bulk results; :class:`GraphQLTransport` adds a total
    timeout per GraphQL request. Request bodies given as ``json=`` are serialised with orjson. Must
    be created inside the running event loop; the creator closes it.
    """
    if max_connections < 1:
        raise ValueError("max_connections must be at least 1")
    # ssl=True: certificates are always verified (spelled out so that nobody "fixes" it).
    connector = aiohttp.TCPConnector(limit=max_connections, limit_per_host=0, keepalive_timeout=30.0, ssl=True)
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=None, connect=timeout, sock_connect=timeout, sock_read=timeout),
        json_serialize=_orjson_str,
        # No credential among the default headers and no cookie jar: whatever a request does not
        # carry itself (bulk downloads carry nothing) cannot reach another host.
        headers={"User-Agent": f"shopsync/{__version__}"},
        cookie_jar=aiohttp.DummyCookieJar(),
        raise_for_status=False,
    )


def session_credentials(session: aiohttp.ClientSession) -> list[str]:
    """The credentials every request of ``session`` would carry (names only): default headers such
    as ``Authorization`` or ``X-Shopify-Access-Token``, and a default ``auth``. Empty for a
    session made by :func:`make_session`."""
    found = sorted(name for name in session.headers if name.lower() in CREDENTIAL_HEADERS)
    if session.auth is not None:
        found.append("auth")
    return found


def _orjson_str(value: Any) -> str:
    return orjson.dumps(value).decode()


def request_args(token: str, timeout: aiohttp.ClientTimeout) -> dict[str, Any]:
    """The per-request arguments gql hands to ``aiohttp.ClientSession.post``.

    This is where the HTTP-level policy of a GraphQL request is set: the token header, the total
    timeout, and never following a redirect — aiohttp would resend the request, token header and
    all, to wherever ``Location`` points (issue 10). The 3xx answer comes back as it is and is
    classified instead (:func:`shopsync.shopify.answers.classify_http_status`).
    """
    return {"headers": {TOKEN_HEADER: token}, "timeout": timeout, "allow_redirects": False}


class BodyTooLargeError(TransportError):
    """An answer's body is longer than the cap: declared so (``Content-Length``) or found while
    reading. ``size`` is the declared length, or the bytes read when the cap was passed."""

    def __init__(self, size: int, limit: int, *, declared: bool) -> None:
        super().__init__(f"answer body of {size} bytes is over the limit of {limit} bytes")
        self.size = size
        self.limit = limit
        self.declared = declared


async def read_limited(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of ``response``, refused with :class:`BodyTooLargeError` once it is over ``limit``.

    A ``Content-Length`` over the limit is refused before anything is read; a body without one
    (chunked, or compressed: the limit counts the decoded bytes) is counted while it is read and
    refused as soon as it passes the limit. Either way the rest is never read: leaving the
    response unread closes its connection instead of returning it to the pool.
    """
    declared = response.content_length
    if declared is not None and declared > limit:
        raise BodyTooLargeError(declared, limit, declared=True)
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(_READ_CHUNK):
        total += len(chunk)
        if total > limit:
            raise BodyTooLargeError(total, limit, declared=False)
        chunks.append(chunk)
    return b"".join(chunks)


# ---------------------------------------------------------------------------------------------
# gql transport: shared session, per-request status/headers/body
# ---------------------------------------------------------------------------------------------
@dataclass
class ResponseMeta:
    """What the transport saw of one HTTP response (filled in by :class:`SharedSessionTransport`)."""

    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


_RESPONSE_META: ContextVar[ResponseMeta | None] = ContextVar("shopsync_response_meta", default=None)


class SharedSessionTransport(AIOHTTPTransport):
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

    def __init__(
        self, url: str, session: aiohttp.ClientSession, *, max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES
    ) -> None:
        if max_response_bytes < 1:
            raise ValueError("max_response_bytes must be at least 1")
        super().__init__(url, json_serialize=_orjson_str, json_deserialize=orjson.loads, ssl=True)
        self._shared_session = session
        self.max_response_bytes = max_response_bytes

    async def connect(self) -> None:
        self.session = self._shared_session

    async def close(self) -> None:
        self.session = None  # the session belongs to whoever created it

    async def execute(
        self,
        request: GraphQLRequest,
        *,
        extra_args: dict[str, Any] | None = None,
        upload_files: bool = False,
        meta: ResponseMeta | None = None,
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
        body = await read_limited(response, self.max_response_bytes)
        if response.status != 200:
            if meta is not None:
                meta.body = body[:ERROR_BODY_LIMIT]
            raise TransportServerError(f"HTTP {response.status}", response.status)
        try:
            result = self.json_deserialize(body)
        except ValueError as exc:
            raise TransportProtocolError("the answer is not valid JSON") from exc
        # The minimal shape check; finer ones are pure and belong in shopsync.shopify.answers.
        if not isinstance(result, dict):
            raise TransportProtocolError("the answer is not a JSON object")
        if not result.get("errors") and not isinstance(result.get("data"), dict):
            # gql refuses such a result; carry its extensions on, so that the answer is judged
            # (malformed, resent) with its cost figures, which the budget still learns from.
            raise NoDataAnswer(result.get("extensions"))
        return ExecutionResult(
            data=result.get("data"), errors=result.get("errors"), extensions=result.get("extensions")
        )


# ---------------------------------------------------------------------------------------------
# Sending one request
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Answer:
    """One HTTP exchange, classified: the verdict, the cost figures, the data (``ok`` only) and
    the response headers (empty when nothing answered)."""

    verdict: Verdict
    cost: CostInfo
    data: dict[str, Any] | None
    headers: Mapping[str, str]
    #: What was wrong with an ``extensions.cost.throttleStatus`` that came but was unusable
    #: (zero, negative, missing or null figures); ``None`` when it was usable or absent.
    throttle_status_problem: str | None = None


class NoDataAnswer(TransportProtocolError):
    """A 200 answer that is a JSON object with neither ``data`` nor ``errors``; ``extensions`` as sent."""

    def __init__(self, extensions: object) -> None:
        super().__init__("the answer has neither data nor errors")
        self.extensions = extensions


class GraphQLTransport:
    """Sends GraphQL requests to one endpoint over the shared ``session`` (never closed here).

    ``request_timeout`` bounds each request as a whole, on top of the session's connect and read
    bounds; ``max_response_bytes`` an answer's body (see :func:`read_limited`). ``clock`` (epoch
    seconds) places a ``Retry-After`` given as an HTTP date.
    """

    def __init__(
        self,
        api_url: str,
        session: aiohttp.ClientSession,
        request_timeout: float,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._api_url = api_url
        self._clock = clock
        base = session.timeout
        self._timeout = aiohttp.ClientTimeout(
            total=request_timeout,
            connect=base.connect,
            sock_connect=base.sock_connect,
            sock_read=base.sock_read,
        )
        self._transport = SharedSessionTransport(api_url, session, max_response_bytes=max_response_bytes)
        # No schema for gql itself: documents are validated once per text by the client, not on
        # every send. gql's own timeout is a backstop behind aiohttp's per-request one.
        self._gql = Client(transport=self._transport, execute_timeout=request_timeout + 5.0)
        self._gql_session: AsyncClientSession | None = None
        self._connect_lock = asyncio.Lock()

    async def connect(self) -> AsyncClientSession:
        """gql's session object, made on first use (concurrent first uses make one)."""
        if self._gql_session is None:
            async with self._connect_lock:
                if self._gql_session is None:
                    self._gql_session = await self._gql.connect_async()
        return self._gql_session

    async def aclose(self) -> None:
        """Release gql's session object (the shared aiohttp session stays open)."""
        if self._gql_session is not None:
            self._gql_session = None
            await self._gql.close_async()

    async def send(self, request: GraphQLRequest, token: str, *, shop: str, operation: str) -> Answer:
        """Send ``request`` with ``token`` and classify what came back.

        Never raises for an answer or a network failure (both become the :class:`Answer`'s
        verdict); cancellation and bugs propagate, and the caller must then assume the request may
        have been charged.
        """
        meta = ResponseMeta()
        data: dict[str, Any] | None = None
        cost = CostInfo()
        extensions: object = None
        try:
            session = await self.connect()
            result = await session.execute(
                request, get_execution_result=True, meta=meta, extra_args=request_args(token, self._timeout)
            )
        except TransportQueryError as exc:  # a 200 answer with errors (gql raises for those)
            extensions = exc.extensions
            verdict, cost = classify_answer(
                exc.errors, exc.data, exc.extensions, shop=shop, operation=operation
            )
        except TransportServerError:  # any non-200 answer (see SharedSessionTransport)
            verdict = classify_http_status(
                meta.status or 0,
                meta.body,
                meta.headers,
                shop=shop,
                operation=operation,
                endpoint=self._api_url,
                now=self._clock(),
            )
        except BodyTooLargeError as exc:
            verdict = too_large(exc, shop=shop, operation=operation)
        except NoDataAnswer as exc:
            extensions = exc.extensions
            verdict, cost = classify_answer(None, None, exc.extensions, shop=shop, operation=operation)
        except (TransportError, TimeoutError, aiohttp.ClientError, OSError) as exc:
            verdict = classify_failure(exc, shop=shop, operation=operation)
        else:
            extensions = result.extensions
            verdict, cost = classify_answer(
                result.errors, result.data, result.extensions, shop=shop, operation=operation
            )
            data = result.data
        return Answer(
            verdict=verdict,
            cost=cost,
            data=data,
            headers=meta.headers,
            throttle_status_problem=throttle_status_problem(extensions),
        )


def too_large(exc: BodyTooLargeError, *, shop: str, operation: str = "query") -> Verdict:
    """An answer refused for its size.

    Transient, not fatal: no real Shopify answer comes near the cap (a query of at most 1,000
    cost points returns about a thousand objects at most), so this is a broken or hostile front,
    which may pass; a deterministic one fails after the policy's attempts (each of which reads at
    most the cap, or nothing when ``Content-Length`` gives the size away) and the daemon's
    repeated-transient rule parks the shop. The budget is ``abandon``: the query may have run.
    """
    if exc.declared:
        what = f"answer of {exc.size} bytes (Content-Length) is over max_response_bytes ({exc.limit})"
    else:
        what = f"answer passed max_response_bytes ({exc.limit}) at {exc.size} bytes read (no Content-Length)"
    return Verdict(
        outcome="too_large",
        budget="abandon",
        error=TransientError(
            f"shop {shop}: {operation}: {what}: refused without reading the rest", reason="too_large"
        ),
    )


def throttle_status_problem(extensions: object) -> str | None:
    """What is wrong with an answer's ``extensions.cost.throttleStatus``, or ``None`` when it is
    usable or not there at all (some accounts get none: not worth a warning). The figures are
    shown shortened: the text comes from the server."""
    cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
    if not isinstance(cost, Mapping) or "throttleStatus" not in cost:
        return None
    status = cost["throttleStatus"]
    if throttle_figures(status) is not None:
        return None
    if not isinstance(status, Mapping):
        return f"throttleStatus is {_shown(status)}"
    names = ("maximumAvailable", "currentlyAvailable", "restoreRate")
    return ", ".join(f"{n}={_shown(status[n]) if n in status else 'missing'}" for n in names)


def _shown(value: object) -> str:
    text = orjson.dumps(value).decode() if isinstance(value, int | float | str | bool | None) else type(value).__name__
    return text if len(text) <= 24 else text[:21] + "..."


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


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


__all__ = [
    "CREDENTIAL_HEADERS",
    "DEFAULT_MAX_RESPONSE_BYTES",
    "ERROR_BODY_LIMIT",
    "TOKEN_HEADER",
    "Answer",
    "BodyTooLargeError",
    "GraphQLTransport",
    "ResponseMeta",
    "SharedSessionTransport",
    "classify_failure",
    "make_session",
    "read_limited",
    "request_args",
    "session_credentials",
    "throttle_status_problem",
    "too_large",
]
