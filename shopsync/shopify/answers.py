"""What one answer of the GraphQL Admin API amounts to: pure classification, no I/O.

Shopify answers a GraphQL request with an HTTP status, a JSON body (``data``/``errors``/
``extensions``) and a few headers (shopify-api-facts §2, §5). The functions here turn what came
back into a :class:`Verdict` — an outcome label for metrics, how the cost reservation ends, and an
error of :mod:`shopsync.errors` — and read the cost figures of ``extensions.cost``:

    answer                                outcome           error
    ------------------------------------  ----------------  ------------------------------------------
    200 + data, no errors                 ok                (none; shape checked by the caller's check)
    200 + data null/not an object, no errors  bad_body      MalformedAnswerError
    200 + THROTTLED                       throttled         ThrottledError
    429 (Retry-After)                     http_429          TransientError (retry_after)
    500/502/503/504                       http_5xx          TransientError
    truncated or malformed JSON           bad_body          TransientError
    401                                   unauthorized      ShopUnavailableError (the client re-asks for a token)
    402 / 404 / 423                       payment_required/not_found/locked  ShopUnavailableError
    403, 200 + ACCESS_DENIED              forbidden         ResourceUnavailableError
    200 + MAX_COST_EXCEEDED               max_cost          QueryTooCostlyError
    200 + INTERNAL_SERVER_ERROR, no data  graphql_error     TransientError (reason internal_error)
    200 + other errors (with/without data) graphql_error    QueryError (partial pages are never used)

Failures with no answer at all (timeouts, dropped connections) depend on the HTTP library and are
classified by :func:`shopsync.client.transport.classify_failure`.

Checks of an answer's shape beyond "data is an object" (that a page's connection and cursor are
where the document put them, that a count is a number) depend on the document: they are the pure
functions of :mod:`shopsync.shopify.shape`, which the engine hands to
:meth:`shopsync.client.ShopClient.execute` with each request; a problem becomes a
:class:`~shopsync.errors.MalformedAnswerError` (``malformed``), retried like a 5xx.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urljoin, urlsplit

import orjson

from shopsync.errors import (
    MalformedAnswerError,
    QueryError,
    QueryTooCostlyError,
    ResourceUnavailableError,
    ShopsyncError,
    ShopUnavailableError,
    ThrottledError,
    TransientError,
)
from shopsync.shopify.cost import MAX_QUERY_COST
from shopsync.shopify.shape import kind

_SCOPE_RE = re.compile(r"\b(?:unauthenticated_)?(?:read|write)_[a-z_]+\b")
_THROTTLE_FIELDS = ("maximumAvailable", "currentlyAvailable", "restoreRate")
_MAX_COST_RE = re.compile(
    r"Query cost is (\d+(?:\.\d+)?), which exceeds the single query max cost limit \((\d+(?:\.\d+)?)\)"
)


# ---------------------------------------------------------------------------------------------
# extensions.cost
# ---------------------------------------------------------------------------------------------
def throttle_figures(throttle_status: Mapping[str, Any] | None) -> tuple[float, float, float] | None:
    """``(maximumAvailable, currentlyAvailable, restoreRate)`` as floats, or ``None``.

    Parses defensively: some accounts get no ``throttleStatus`` at all (facts §1), and a status
    with a figure that is missing, ``null``, not a JSON number (a string, a boolean), not finite,
    negative, or zero where it must be positive (the bucket size, the restore rate) is unusable as
    a whole: a model built from it would divide by zero or wait for ever. The caller keeps the
    model it had (see :class:`shopsync.client.budget.CostBudget`).
    """
    if not isinstance(throttle_status, Mapping):
        return None
    figures = [_number(throttle_status.get(name)) for name in _THROTTLE_FIELDS]
    maximum, current, rate = (f if f is not None and math.isfinite(f) else None for f in figures)
    if maximum is None or current is None or rate is None:
        return None
    if not (maximum > 0 and rate > 0 and current >= 0):
        return None
    return maximum, current, rate


@dataclass(frozen=True, kw_only=True)
class CostInfo:
    """``extensions.cost`` of one answer, parsed defensively (any part may be missing)."""

    requested: float | None = None
    actual: float | None = None
    throttle_status: Mapping[str, Any] | None = None


def cost_info(extensions: object) -> CostInfo:
    """The cost figures of an answer's ``extensions`` (as sent: any JSON value, or ``None``)."""
    cost = extensions.get("cost") if isinstance(extensions, Mapping) else None
    if not isinstance(cost, Mapping):
        return CostInfo()
    status = cost.get("throttleStatus")
    return CostInfo(
        requested=_number(cost.get("requestedQueryCost")),
        actual=_number(cost.get("actualQueryCost")),
        throttle_status=status if throttle_figures(status) is not None else None,
    )


# ---------------------------------------------------------------------------------------------
# Verdicts
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What one HTTP exchange amounts to.

    ``budget`` says how the reservation ends: ``settle`` (it ran), ``throttled``, ``cancel`` (not
    charged) or ``abandon`` (unknown). ``error`` is ``None`` only for ``outcome == "ok"``.
    """

    outcome: str
    budget: str
    error: ShopsyncError | None = None


def classify_answer(
    errors: object, data: object, extensions: object, *, shop: str, operation: str = "query"
) -> tuple[Verdict, CostInfo]:
    """Classify a 200 answer with a JSON body (``errors``/``data``/``extensions`` as sent)."""
    cost = cost_info(extensions)
    errs = _normalise_errors(errors)
    if not errs:
        if isinstance(data, dict):
            # What the object must hold depends on the document: the caller's check
            # (shopsync.shopify.shape, through ShopClient.execute(check=...)) looks at it.
            return Verdict(outcome="ok", budget="settle"), cost
        what = "no data and no errors" if data is None else f"data is {kind(data)}, not an object"
        # The query ran when the answer says what it cost: the budget learns from that as from any
        # answer; without cost figures it may have been charged or not (abandon: assume the worst).
        ran = cost.actual is not None or cost.throttle_status is not None
        return (
            Verdict(
                outcome="bad_body",
                budget="settle" if ran else "abandon",
                error=MalformedAnswerError(
                    f"shop {shop}: {operation}: malformed answer: {what}", reason="bad_body"
                ),
            ),
            cost,
        )
    codes = {_code(e) for e in errs}
    where = f"shop {shop}: {operation}"
    if "THROTTLED" in codes:
        return _throttled(cost, where), cost
    if "MAX_COST_EXCEEDED" in codes:
        return _max_cost(errs, cost, where), cost
    if "ACCESS_DENIED" in codes:
        return _access_denied(errs, where), cost
    if data is None and codes <= {"INTERNAL_SERVER_ERROR"} and "INTERNAL_SERVER_ERROR" in codes:
        return (
            Verdict(
                outcome="graphql_error",
                budget="settle",
                error=TransientError(
                    f"{where}: Shopify internal error ({_messages(errs)})", reason="internal_error"
                ),
            ),
            cost,
        )
    partial = " with partial data" if data else ""
    return (
        Verdict(
            outcome="graphql_error",
            budget="settle",
            error=QueryError(f"{where}: GraphQL errors{partial}: {_messages(errs)}", errors=errs),
        ),
        cost,
    )


def _throttled(cost: CostInfo, where: str) -> Verdict:
    figures = throttle_figures(cost.throttle_status)
    return Verdict(
        outcome="throttled",
        budget="throttled",
        error=ThrottledError(
            f"{where}: throttled",
            requested=cost.requested or 0.0,
            available=figures[1] if figures else None,
            restore_rate=figures[2] if figures else None,
        ),
    )


def _max_cost(errs: list[dict[str, Any]], cost: CostInfo, where: str) -> Verdict:
    err = next(e for e in errs if _code(e) == "MAX_COST_EXCEEDED")
    ext = err.get("extensions") or {}
    found = _MAX_COST_RE.search(str(err.get("message", "")))
    value = _number(ext.get("cost")) or (float(found.group(1)) if found else None) or cost.requested or 0.0
    max_cost = (
        _number(ext.get("maxCost")) or (float(found.group(2)) if found else None) or float(MAX_QUERY_COST)
    )
    return Verdict(
        outcome="max_cost",
        budget="cancel",  # checked before execution: nothing ran, nothing was charged
        error=QueryTooCostlyError(
            f"{where}: query cost {value:g} exceeds the single query limit {max_cost:g}",
            cost=value,
            max_cost=max_cost,
        ),
    )


def _access_denied(errs: list[dict[str, Any]], where: str) -> Verdict:
    denied = [e for e in errs if _code(e) == "ACCESS_DENIED"]
    scopes = sorted({s for e in denied for s in _SCOPE_RE.findall(str(e.get("message", "")))})
    reason = (
        "access denied"
        + (f": missing scope {', '.join(scopes)}" if scopes else "")
        + f" ({_messages(denied, 2)})"
    )
    return Verdict(
        outcome="forbidden",
        budget="settle",
        error=ResourceUnavailableError(f"{where}: {reason}", status=403, reason=reason),
    )


def classify_http_status(
    status: int,
    body: bytes,
    headers: Mapping[str, str],
    *,
    shop: str,
    operation: str = "query",
    endpoint: str | None = None,
    now: float | None = None,
) -> Verdict:
    """Classify a non-200 answer. ``body`` is a bounded prefix (Shopify's error text).

    ``endpoint`` is the URL the request was sent to: a redirect (3xx with ``Location``) is never
    followed (the token would go with it), and is a :class:`TransientError` when ``Location``
    points back at the endpoint's own scheme, host and port (resending there is harmless and may
    work next time), else a :class:`ShopUnavailableError` for the shop (someone must look at the
    endpoint). ``now`` (epoch seconds) lets a ``Retry-After`` HTTP date count
    (:func:`retry_after_seconds`).
    """
    # Long on purpose: one branch per status Shopify documents, in one place, so that the table of
    # what each status means reads top to bottom ("How a sync works" in the README says the same).
    if 300 <= status < 400 and headers.get("Location"):
        return _redirect(status, headers["Location"], endpoint, shop=shop, operation=operation)
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
            error=ResourceUnavailableError(f"shop {shop}: {operation}: {reason}", status=403, reason=reason),
        )
    if status == 429:
        retry_after = retry_after_seconds(headers, now=now)
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
                retry_after=retry_after_seconds(headers, now=now),
            ),
        )
    if 400 <= status < 500:
        return Verdict(
            outcome="http_4xx",
            budget="cancel",
            error=QueryError(f"shop {shop}: {operation}: HTTP {status}{detail}"),
        )
    # 1xx, another 2xx, a 3xx without Location: nothing usable came back.
    return Verdict(
        outcome="bad_body",
        budget="abandon",
        error=TransientError(f"shop {shop}: {operation}: unexpected HTTP {status}", reason="bad_body"),
    )


@dataclass(frozen=True, kw_only=True)
class RedirectTarget:
    """Where a ``Location`` header points, as far as it may be told: ``host`` is the host name
    and port only (never a path or query string: signed URLs carry secrets there), and
    ``same_origin`` says whether it is the scheme, host and port the request was sent to, and
    ``other_host`` whether even the host name differs."""

    host: str
    same_origin: bool
    other_host: bool

    @property
    def relation(self) -> str:
        """``"same host"``, ``"another host"`` or ``"another scheme or port"`` (for messages)."""
        if self.same_origin:
            return "same host"
        return "another host" if self.other_host else "another scheme or port"


def redirect_target(location: str, endpoint: str | None) -> RedirectTarget:
    """Where ``location`` (a ``Location`` header, absolute or relative) points, seen from ``endpoint``.

    Without an ``endpoint`` a relative location cannot be placed and nothing counts as the same
    origin. Unparsable locations are "another host" named ``?``.
    """
    try:
        base = urlsplit(endpoint) if endpoint else None
        target = urlsplit(urljoin(endpoint, location) if endpoint else location)
        host, port = target.hostname, target.port
    except ValueError:
        return RedirectTarget(host="?", same_origin=False, other_host=True)
    if not host:
        return RedirectTarget(host="?", same_origin=False, other_host=True)
    shown = f"[{host}]" if ":" in host else host
    if target.port is not None:
        shown = f"{shown}:{target.port}"
    if base is None or not base.hostname:
        return RedirectTarget(host=shown, same_origin=False, other_host=True)
    try:
        base_port = base.port
    except ValueError:
        base_port = None
    same_host = host.lower() == base.hostname.lower()
    default = {"http": 80, "https": 443}
    same_origin = (
        same_host
        and target.scheme.lower() == base.scheme.lower()
        and (port or default.get(target.scheme.lower())) == (base_port or default.get(base.scheme.lower()))
    )
    return RedirectTarget(host=shown, same_origin=same_origin, other_host=not same_host)


def endpoint_host(endpoint: str | None) -> str:
    """The host (and port) of ``endpoint``, for messages: never its path or query."""
    if not endpoint:
        return "?"
    try:
        parts = urlsplit(endpoint)
        host, port = parts.hostname, parts.port
    except ValueError:
        return "?"
    if not host:
        return "?"
    shown = f"[{host}]" if ":" in host else host
    return f"{shown}:{port}" if port is not None else shown


def _redirect(status: int, location: str, endpoint: str | None, *, shop: str, operation: str) -> Verdict:
    """A 3xx answer: never followed (issue 10, "only Shopify gets the token")."""
    target = redirect_target(location, endpoint)
    message = (
        f"shop {shop}: {operation}: answered {status} redirect to {target.host} ({target.relation}): "
        f"not followed, the access token is only sent to {endpoint_host(endpoint)}"
    )
    if target.same_origin:
        # Resending to the configured endpoint is harmless, and a redirect back to it is most
        # likely a passing front-end hiccup: retry with backoff like a 503.
        return Verdict(outcome="redirect", budget="cancel", error=TransientError(message, reason="redirect"))
    reason = f"GraphQL endpoint redirects to {target.host} ({target.relation}); check api_url"
    return Verdict(
        outcome="redirect",
        budget="cancel",  # answered before anything ran
        error=ShopUnavailableError(message, status=status, reason=reason),
    )


def retry_after_seconds(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The ``Retry-After`` header in seconds, or ``None`` when it says nothing usable.

    Delay-seconds (``"2"``, ``"0.5"``) count when finite and not negative. An HTTP date counts
    only when ``now`` (epoch seconds) is given and the date lies ahead of it: a date in the past,
    a negative number, NaN, text ("soon") or an empty value are nonsense, and ``None`` makes the
    policy's normal backoff apply. Taken as sent otherwise: the cap on how long a (hostile or
    broken) answer may make a client wait is the retry policy's
    (:meth:`shopsync.client.retry.RetryPolicy.decide`), which keeps this function pure.
    """
    value = headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    if now is None:
        return None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; an unzoned one is read as UTC
        when = when.replace(tzinfo=UTC)
    seconds = when.timestamp() - now
    return seconds if math.isfinite(seconds) and seconds > 0 else None


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------
def _normalise_errors(errors: object) -> list[dict[str, Any]]:
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


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


__all__ = [
    "CostInfo",
    "RedirectTarget",
    "Verdict",
    "classify_answer",
    "classify_http_status",
    "cost_info",
    "endpoint_host",
    "redirect_target",
    "retry_after_seconds",
    "throttle_figures",
]
