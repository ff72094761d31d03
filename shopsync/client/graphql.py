"""The client of one Shopify shop's GraphQL Admin API.

:class:`ShopClient.execute` validates a document against the pinned schema (once per document
text), reserves its estimated cost in the shop's :class:`~shopsync.client.budget.CostBudget`,
sends it with the current access token (:class:`~shopsync.client.transport.GraphQLTransport`),
settles the budget from ``extensions.cost`` and acts on the answer's verdict
(:mod:`shopsync.shopify.answers`, shopify-api-facts §2, §5):

    outcome                       what happens
    ----------------------------  ---------------------------------------------------------------
    ok                            settle, return a GraphQLResponse
    throttled                     budget waits the deficit, resend (not a policy attempt)
    http_429                      retry after Retry-After (a policy attempt)
    http_5xx, timeout, connection retry with backoff, then TransientError
    bad_body, malformed (check)   retry with backoff, then MalformedAnswerError / TransientError
    unauthorized (401)            new token, resend once; again: ShopUnavailableError (shop parked)
    payment_required/not_found/locked  ShopUnavailableError
    forbidden                     ResourceUnavailableError
    max_cost                      QueryTooCostlyError (never resent as is)
    graphql_error                 internal error without data: retry with backoff; else QueryError
    redirect (3xx)                never followed; to the endpoint's own origin: retry with
                                  backoff, elsewhere: ShopUnavailableError (the shop is parked)
    too_large                     body over max_response_bytes: retry with backoff, then TransientError

Transient failures of a request that is not idempotent and may have run become
:class:`OutcomeUnknownError` instead of being resent.

A ``guard`` (:data:`SendGuard`), when given, is awaited right before every request goes out —
after its budget reservation and token, so a wait for either cannot come between the check and
the send — and told whether the document is a mutation; what it raises ends the call, nothing
sent. The daemon fences Shopify calls with it when several daemons share the shops.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from gql import GraphQLRequest
from graphql import DocumentNode, GraphQLSchema, OperationDefinitionNode, OperationType

from shopsync.client.auth import TokenProvider
from shopsync.client.budget import CostBudget, Reservation
from shopsync.client.documents import DOCUMENT_CACHE_SIZE, DocumentCache, TextRequest, shared_documents
from shopsync.client.retry import RetryPolicy
from shopsync.client.transport import DEFAULT_MAX_RESPONSE_BYTES, GraphQLTransport
from shopsync.errors import (
    MalformedAnswerError,
    OutcomeUnknownError,
    QueryTooCostlyError,
    ShopsyncError,
    ShopUnavailableError,
    TransientError,
)
from shopsync.observability.events import NullObserver, RequestObserver
from shopsync.shopify.answers import CostInfo, Verdict, throttle_figures
from shopsync.shopify.cost import MAX_QUERY_COST, CostError, requested_cost

log = logging.getLogger(__name__)

VERSION_HEADER = "X-Shopify-API-Version"
DEPRECATED_HEADER = "X-Shopify-API-Deprecated-Reason"
#: Distinct (query, reason) deprecation warnings logged per client at most (the rest only counted).
MAX_DEPRECATIONS_LOGGED = 256
#: Consecutive THROTTLED answers to one request before giving up. Each one is followed by the
#: computed wait, so reaching this means something else drains the bucket (another process with
#: the same app credentials) and the shop should be looked at rather than hammered.
MAX_CONSECUTIVE_THROTTLES = 50
#: Seconds between two warnings about an unusable ``throttleStatus`` from one shop (in between,
#: such answers are logged at debug level): a shop that always sends one must not flood the log.
THROTTLE_STATUS_WARNING_INTERVAL = 600.0

CostKey = tuple[str, tuple[tuple[str, int], ...]]

#: Awaited before each request is sent, with whether the document is a mutation (it changes
#: something at Shopify); raising stops the call before anything is sent.
SendGuard = Callable[[bool], Awaitable[None]]


def is_mutation(document: DocumentNode) -> bool:
    """Whether ``document`` holds a mutation (a bulk start, a cancel, a webhook subscription …)."""
    return any(
        isinstance(d, OperationDefinitionNode) and d.operation is OperationType.MUTATION for d in document.definitions
    )


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


def _cost_key(document: str, variables: Mapping[str, Any] | None) -> CostKey:
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
    data: dict[str, Any] | None
    token: str
    duration: float
    served_version: str | None


@dataclass
class _Call:
    """What one :meth:`ShopClient.execute` call has been through so far."""

    estimate: float
    attempt: int = 1  # policy attempts: throttled resends and the 401 resend do not count
    sent: int = 0
    throttled: int = 0
    reauthorised: bool = False


class ShopClient:
    """Sends GraphQL documents to one shop, within its cost budget, with retries.

    ``session`` is the process's shared session (:func:`shopsync.client.transport.make_session`);
    the client never closes it. ``retry`` decides about transient failures (``decide(error,
    attempt)``; its ``retry`` action's delay is slept, honouring ``Retry-After``).
    ``schema`` is the schema documents are validated and costed against (default: the pinned one).
    ``observer`` hears of every request and retry (default: :class:`NullObserver`).
    ``sleep`` is used for retry backoff; the budget has its own clock and sleep.
    ``max_response_bytes`` caps an answer's body (``[sync] max_response_bytes``).
    ``guard`` is awaited before each request is sent (see the module docstring).
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
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        guard: SendGuard | None = None,
    ) -> None:
        self.shop = shop
        self._guard = guard
        self.api_url = api_url
        self.api_version = api_version
        self.budget = budget
        self._tokens = tokens
        self._retry = retry
        self._schema = schema
        self._observer: RequestObserver = observer if observer is not None else NullObserver()
        self._clock = clock
        self._sleep = sleep
        self._transport = GraphQLTransport(
            api_url, session, request_timeout, max_response_bytes=max_response_bytes
        )
        self._throttle_status_warned_at = -math.inf
        self._documents = shared_documents() if schema is None else DocumentCache(schema)
        self._learned_costs: OrderedDict[CostKey, float] = OrderedDict()
        self._seen_versions: set[str] = set()
        self._seen_deprecations: set[str] = set()
        #: The ``X-Shopify-API-Version`` of the last answer that carried one.
        self.served_version: str | None = None

    def __repr__(self) -> str:
        return f"ShopClient(shop={self.shop!r}, api_url={self.api_url!r}, api_version={self.api_version!r})"

    async def __aenter__(self) -> ShopClient:
        await self._transport.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Release gql's session object (the shared aiohttp session stays open)."""
        await self._transport.aclose()

    # -- documents --------------------------------------------------------------------------------
    def prepare(self, document: str, *, origin: str = "query") -> DocumentNode:
        """Parse and validate ``document`` (cached by text). Raises :class:`QueryDocumentError`."""
        return self._prepare(document, origin)

    def _prepare(self, text: str, origin: str) -> DocumentNode:
        return self._documents.get(text, origin)

    def estimate(self, document: str, variables: Mapping[str, Any] | None = None) -> float:
        """The cost reserved for ``document``: the ``requestedQueryCost`` Shopify last reported for
        the same text and numeric variables (its own formula can be far below the documented one,
        facts §1), else the static cost by the documented rules (1000 if it cannot be computed)."""
        learned = self._learned_costs.get(_cost_key(document, variables))
        if learned is not None:
            return learned
        parsed = self._prepare(document, "query")
        try:
            return float(requested_cost(self._documents.schema, parsed, variables))
        except CostError as exc:
            log.debug("shop %s: cannot cost a document (%s); reserving the maximum", self.shop, exc)
            return float(MAX_QUERY_COST)

    def _learn_cost(self, document: str, variables: Mapping[str, Any] | None, requested: float) -> None:
        key = _cost_key(document, variables)
        self._learned_costs[key] = requested
        self._learned_costs.move_to_end(key)
        if len(self._learned_costs) > DOCUMENT_CACHE_SIZE:
            self._learned_costs.popitem(last=False)

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
        check: Callable[[dict[str, Any]], str | None] | None = None,
    ) -> GraphQLResponse:
        """Run ``document`` against the shop and return its data, or raise.

        ``idempotent=False`` (a mutation that starts something, like a bulk operation) is not
        resent after a failure that may have reached Shopify: it raises
        :class:`OutcomeUnknownError` so the caller can check whether it ran.

        ``operation`` is a label for logs and error messages (``"orders page"``, ``"bulk start"``).
        ``check`` looks at an ok answer's ``data`` (:mod:`shopsync.shopify.shape`): a problem it
        returns makes the answer a :class:`MalformedAnswerError`, retried like a 5xx.
        ``priority`` orders this request's budget reservation (0 before 1). Throttled answers are
        resent after the budget's computed wait; transient failures are retried per the policy;
        a 401 is retried once with a fresh token. Raises :class:`TransientError` (retries used up),
        :class:`ShopUnavailableError`, :class:`QueryTooCostlyError`, :class:`QueryError`,
        :class:`ThrottledError` (``MAX_CONSECUTIVE_THROTTLES`` in a row) or
        :class:`QueryDocumentError` (the document does not validate; nothing is sent).
        """
        parsed = self._prepare(document, operation)
        variables = dict(variables) if variables else None
        call = _Call(
            estimate=estimated_cost if estimated_cost is not None else self.estimate(document, variables)
        )
        request = TextRequest(document, parsed, variable_values=variables)
        mutation = is_mutation(parsed)
        while True:
            try:
                ex = await self._attempt(request, call.estimate, priority, operation, mutation)
            except TransientError as exc:  # only the token provider raises these (its endpoint failed)
                await self._backoff(exc, call.attempt, operation)
                call.attempt += 1
                continue
            call.sent += 1
            if ex.cost.requested is not None and math.isfinite(ex.cost.requested) and ex.cost.requested >= 0:
                # The server's figure is the truth for resends and for later calls of this shape.
                call.estimate = ex.cost.requested
                self._learn_cost(document, variables, call.estimate)
            error = ex.verdict.error
            if error is None and check is not None:
                problem = check(ex.data if ex.data is not None else {})
                if problem is not None:
                    error = MalformedAnswerError(f"shop {self.shop}: {operation}: malformed answer: {problem}")
            if error is None:
                return GraphQLResponse(
                    data=ex.data if ex.data is not None else {},  # an ok verdict always carries data
                    requested_cost=ex.cost.requested,
                    actual_cost=ex.cost.actual,
                    throttle_status=ex.cost.throttle_status,
                    api_version=ex.served_version,
                    duration=ex.duration,
                    attempts=call.sent,
                    throttled=call.throttled,
                )
            if ex.verdict.outcome == "throttled":
                self._after_throttled(ex, error, call, operation)
                continue  # the budget now holds every reservation for the computed deficit
            if ex.verdict.outcome == "unauthorized":
                await self._after_unauthorized(ex, error, call)
                continue
            if isinstance(error, TransientError):
                if not idempotent and (ex.verdict.budget == "abandon" or isinstance(error, MalformedAnswerError)):
                    raise OutcomeUnknownError(
                        f"{error} (not resent: it may have run)", reason=error.reason
                    ) from error
                await self._backoff(error, call.attempt, operation)
                call.attempt += 1
                continue
            raise error

    def _after_throttled(self, ex: _Exchange, error: ShopsyncError, call: _Call, operation: str) -> None:
        """Count a ``THROTTLED`` answer; raise if resending cannot help."""
        call.throttled += 1
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
        if call.throttled >= MAX_CONSECUTIVE_THROTTLES:
            raise error

    async def _after_unauthorized(self, ex: _Exchange, error: ShopsyncError, call: _Call) -> None:
        """A 401: drop the rejected token so the next attempt gets a new one; the second time, give up."""
        if call.reauthorised:
            raise ShopUnavailableError(
                f"shop {self.shop}: access token rejected (401 Unauthorized) twice, the second time "
                "after asking the token provider for a new one",
                status=401,
                reason="access token rejected (401 Unauthorized)",
            ) from error
        call.reauthorised = True
        self._observer.on_retry(self.shop, "unauthorized")
        log.info("shop %s: access token rejected (401); getting a new one", self.shop)
        await self._tokens.invalidate(ex.token)

    async def _backoff(self, error: TransientError, attempt: int, operation: str) -> None:
        """Sleep as the retry policy says after failed attempt ``attempt``, or raise ``error``."""
        decision = self._retry.decide(error, attempt)
        if decision.action != "retry":
            raise error
        delay = float(decision.delay or 0.0)
        self._observer.on_retry(self.shop, error.reason)
        log.warning("shop %s: %s: %s; retry %d in %.2fs", self.shop, operation, error.reason, attempt, delay)
        await self._sleep(delay)

    async def _attempt(
        self, request: GraphQLRequest, estimate: float, priority: int, operation: str, mutation: bool = False
    ) -> _Exchange:
        """One HTTP exchange: reserve, guard, send, classify, end the reservation. Never raises for
        an answer; raises only what the token provider or the guard raises, cancellation, or a
        document error."""
        reservation = await self.budget.reserve(estimate, priority=priority)
        try:
            token = await self._tokens.token()
            if self._guard is not None:
                await self._guard(mutation)  # last: nothing that may wait comes after it
        except BaseException:
            self.budget.cancel(reservation)
            raise
        started = self._clock()
        try:
            answer = await self._transport.send(request, token, shop=self.shop, operation=operation)
        except BaseException:
            # Cancelled mid-request (or a bug): it may have been charged.
            self.budget.abandon(reservation)
            raise
        duration = self._clock() - started
        verdict, cost = answer.verdict, answer.cost
        self._end_reservation(reservation, verdict, cost, estimate)
        served = self._note_headers(answer.headers, operation)
        if answer.throttle_status_problem is not None:
            self._note_bad_throttle_status(answer.throttle_status_problem)
        self._observer.on_request(self.shop, verdict.outcome, duration, cost.requested, cost.actual)
        if verdict.outcome == "throttled":
            self._observer.on_throttled(self.shop)
        figures = throttle_figures(cost.throttle_status)
        if figures is not None:
            self._observer.on_throttle_status(self.shop, figures[1], figures[0], figures[2])
        return _Exchange(
            verdict=verdict,
            cost=cost,
            data=answer.data,
            token=token,
            duration=duration,
            served_version=served,
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

    def _note_bad_throttle_status(self, problem: str) -> None:
        """An unusable ``throttleStatus`` was ignored (the budget keeps its model): say so, at most
        once per :data:`THROTTLE_STATUS_WARNING_INTERVAL`."""
        now = self._clock()
        if now - self._throttle_status_warned_at < THROTTLE_STATUS_WARNING_INTERVAL:
            log.debug("shop %s: unusable throttleStatus ignored (%s)", self.shop, problem)
            return
        self._throttle_status_warned_at = now
        log.warning(
            "shop %s: Shopify sent an unusable throttleStatus (%s): ignored, the cost budget keeps "
            "its last good figures (%g points, %g/s)",
            self.shop,
            problem,
            self.budget.capacity,
            self.budget.restore_rate,
        )

    def _note_headers(self, headers: Mapping[str, str], operation: str = "query") -> str | None:
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
        if deprecated:
            # Counted every time, logged once per query (operation) and reason.
            self._observer.on_deprecated(self.shop, operation)
            seen = f"{operation}\0{deprecated}"
            if seen not in self._seen_deprecations and len(self._seen_deprecations) < MAX_DEPRECATIONS_LOGGED:
                self._seen_deprecations.add(seen)
                log.warning(
                    "shop %s: Shopify reports deprecated API usage in %s: %s (see `shopsync check --api-version`)",
                    self.shop, operation, deprecated[:300],
                )  # fmt: skip
        return served


__all__ = [
    "DEPRECATED_HEADER",
    "MAX_CONSECUTIVE_THROTTLES",
    "THROTTLE_STATUS_WARNING_INTERVAL",
    "VERSION_HEADER",
    "GraphQLResponse",
    "ShopClient",
]
