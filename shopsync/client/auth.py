"""Access-token providers for the Admin API header ``X-Shopify-Access-Token``.

* :class:`StaticToken` — a legacy custom app's ``shpat_`` token (or any token the user manages).
* :class:`ClientCredentialsToken` — a Dev Dashboard app on the developer's own store: the client
  credentials grant (RFC 6749 §4.4; shopify-api-facts §9), cached and refreshed before it expires.

Tokens and client secrets never appear in logs, exception messages or reprs.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

import aiohttp
import orjson

from shopsync.client.transport import BodyTooLargeError, read_limited
from shopsync.errors import ConfigError, ShopUnavailableError, TransientError
from shopsync.observability.logs import register_secret, unregister_secret
from shopsync.settings import ShopConfig
from shopsync.shopify.answers import endpoint_host, redirect_target, retry_after_seconds

log = logging.getLogger(__name__)

#: After a failed background refresh, wait this long before trying again (the old token is still
#: valid, so there is no hurry, and the token endpoint must not be hammered at request rate).
REFRESH_RETRY_SECONDS = 10.0
#: The longest token-endpoint answer read: a real one is a few hundred bytes.
TOKEN_BODY_LIMIT = 64 * 1024


@runtime_checkable
class TokenProvider(Protocol):
    """Where a shop client gets its access token."""

    async def token(self) -> str:
        """The token to send now. May wait for a fetch when no valid token is cached."""
        ...

    async def invalidate(self, token: str) -> None:
        """Shopify answered 401 to ``token``: forget it, so the next :meth:`token` fetches a new one.

        Called once per 401; concurrent callers reporting the same token cause one refresh. A
        provider that cannot get another token (a static one) keeps answering the same value, and
        the client's second 401 parks the shop.
        """
        ...


class StaticToken:
    """A fixed access token (legacy custom apps; tokens managed outside shopsync)."""

    def __init__(self, value: str) -> None:
        if not value:
            raise ValueError("an access token must not be empty")
        self._value = value

    async def token(self) -> str:
        return self._value

    async def invalidate(self, token: str) -> None:
        # Nothing to refresh: the client's second 401 reports the shop as unavailable.
        return None

    def __repr__(self) -> str:
        return "StaticToken(***)"


class ClientCredentialsToken:
    """Tokens from the client credentials grant, cached and refreshed before expiry.

    ``POST token_url`` (``https://{shop}.myshopify.com/admin/oauth/access_token``) with the form
    ``grant_type=client_credentials&client_id=…&client_secret=…``; the JSON answer carries
    ``access_token``, ``scope`` and ``expires_in`` (about 24 h).

    Once a token is within ``refresh_margin`` seconds of its expiry, the next :meth:`token` call
    starts one background refresh and callers keep receiving the still-valid token until the new
    one arrives, so running syncs are never held up. Only when no valid token is cached (first use,
    after :meth:`invalidate`, or after expiry) do callers wait — all of them on the same fetch.

    Errors: 400/401 → :class:`ShopUnavailableError` (status 401, "client credentials rejected");
    other 4xx → :class:`ShopUnavailableError` with that status; 429, 5xx, timeouts, network errors
    and malformed answers → :class:`TransientError`. A redirect is never followed (the client
    secret would go with it): one back to the token endpoint's own origin is a
    :class:`TransientError`, one elsewhere a :class:`ShopUnavailableError` with the 3xx status.
    An answer over :data:`TOKEN_BODY_LIMIT` bytes is a :class:`TransientError`, unread.
    """

    def __init__(
        self,
        session: aiohttp.ClientSession,
        token_url: str,
        client_id: str,
        client_secret: str,
        *,
        clock: Callable[[], float] = time.time,
        refresh_margin: float = 300.0,
    ) -> None:
        if not client_id or not client_secret:
            raise ValueError("client_id and client_secret must not be empty")
        self._session = session
        self._token_url = token_url
        self._host = endpoint_host(token_url) if urlsplit(token_url).hostname else token_url
        self._client_id = client_id
        self._client_secret = client_secret
        self._clock = clock
        self._margin = refresh_margin
        self._token: str | None = None
        self._expires_at = -math.inf
        self._scope: tuple[str, ...] = ()
        self._fetch: asyncio.Task[str] | None = None
        self._next_background_attempt = -math.inf
        # Tokens issued to this process and their expiry: each stays redacted until it has expired,
        # so a daemon refreshing daily does not grow its redaction list for ever.
        self._issued: list[tuple[str, float]] = []
        self.fetches = 0  # completed grant requests (any outcome), for tests and status output

    @property
    def scope(self) -> tuple[str, ...]:
        """The scopes granted with the current token (empty before the first fetch)."""
        return self._scope

    @property
    def expires_at(self) -> float:
        """When the cached token expires, on ``clock`` (``-inf`` if none, ``inf`` if unknown)."""
        return self._expires_at

    async def token(self) -> str:
        now = self._clock()
        if self._token is not None and now < self._expires_at:
            if now >= self._expires_at - self._margin and now >= self._next_background_attempt:
                self._start_fetch()  # refresh early; meanwhile the old token is still good
            return self._token
        task = self._fetch or self._start_fetch()
        # shield: a caller that is cancelled must not cancel the fetch others are waiting for.
        return await asyncio.shield(task)

    async def invalidate(self, token: str) -> None:
        if token == self._token:
            self._token = None
            self._expires_at = -math.inf

    def _start_fetch(self) -> asyncio.Task[str]:
        if self._fetch is None:
            self._fetch = asyncio.ensure_future(self._request_token())
            self._fetch.add_done_callback(self._fetch_done)
        return self._fetch

    def _fetch_done(self, task: asyncio.Task[str]) -> None:
        self._fetch = None
        if task.cancelled():
            return
        exc = task.exception()  # also marks it retrieved when no caller was waiting
        if exc is not None:
            self._next_background_attempt = self._clock() + REFRESH_RETRY_SECONDS
            if self._token is not None:
                log.warning(
                    "token refresh at %s failed, keeping the current token for now: %s", self._host, exc
                )

    async def _request_token(self) -> str:
        sent_at = self._clock()
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret,
        }
        try:
            # Never follow a redirect: aiohttp would resend the form, client secret and all, to
            # wherever Location points (issue 10).
            async with self._session.post(
                self._token_url, data=form, headers={"Accept": "application/json"}, allow_redirects=False
            ) as resp:
                status = resp.status
                location = resp.headers.get("Location")
                retry_after = retry_after_seconds(resp.headers, now=time.time())
                body = await read_limited(resp, TOKEN_BODY_LIMIT)
        except BodyTooLargeError as exc:
            raise TransientError(
                f"token endpoint {self._host} sent an answer over {exc.limit} bytes: refused", reason="too_large"
            ) from None
        except TimeoutError as exc:
            raise TransientError(f"token request to {self._host} timed out", reason="timeout") from exc
        except aiohttp.ClientError as exc:
            raise TransientError(
                f"token request to {self._host} failed: {type(exc).__name__}", reason="connection"
            ) from exc
        finally:
            self.fetches += 1
        self._refuse_unless_ok(status, location, retry_after, body)
        token, expires_in, answer = self._token_answer(body)
        # Every issued token is redacted from log lines, like the configured secrets, until it expires.
        register_secret(token)
        self._token = token
        # Counted from when the request was sent, so clock skew in transit only shortens the life.
        # No expires_in: no early refresh; a 401 will trigger one.
        self._expires_at = math.inf if expires_in is None else sent_at + expires_in
        self._forget_expired(self._clock())
        self._issued.append((token, self._expires_at))
        scope = answer.get("scope")
        self._scope = tuple(s for s in scope.split(",") if s) if isinstance(scope, str) else ()
        self._next_background_attempt = -math.inf
        log.info("obtained an access token from %s (expires in %s s)", self._host, expires_in)
        return token

    def _refuse_unless_ok(self, status: int, location: str | None, retry_after: float | None, body: bytes) -> None:
        """Raise for every answer but 200: a redirect (never followed), rejected credentials, a rate
        limit, a server error, anything else."""
        if 300 <= status < 400 and location:
            target = redirect_target(location, self._token_url)
            message = (
                f"token request to {self._host} answered {status} redirect to {target.host} "
                f"({target.relation}): not followed, the client secret is only sent to {self._host}"
            )
            if target.same_origin:
                raise TransientError(message, reason="redirect")
            raise ShopUnavailableError(
                message,
                status=status,
                reason=f"token endpoint redirects to {target.host} ({target.relation}); check api_url",
            )
        if status in (400, 401):
            raise ShopUnavailableError(
                f"client credentials rejected by {self._host} (HTTP {status}{_oauth_error(body)})",
                status=401,
                reason=f"client credentials rejected (HTTP {status}{_oauth_error(body)})",
            )
        if status == 429:
            raise TransientError(
                f"token request to {self._host} rate limited (HTTP 429)",
                reason="http_429",
                retry_after=retry_after,
            )
        if status >= 500:
            raise TransientError(
                f"token endpoint {self._host} answered HTTP {status}", reason=f"http_{status}"
            )
        if status != 200:
            raise ShopUnavailableError(
                f"token endpoint {self._host} answered HTTP {status}",
                status=status,
                reason=f"token endpoint answered HTTP {status}",
            )

    def _token_answer(self, body: bytes) -> tuple[str, float | None, dict[str, Any]]:
        """The token, its lifetime in seconds (None: not said) and the whole answer of a 200."""
        try:
            answer = orjson.loads(body)
            token = answer["access_token"]
            if not isinstance(token, str) or not token:
                raise TypeError("access_token is not a non-empty string")
            expires_in = answer.get("expires_in")
            expires_in = None if expires_in is None else float(expires_in)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TransientError(
                f"token endpoint {self._host} sent an unusable answer ({type(exc).__name__})",
                reason="bad_body",
            ) from None  # the body may hold a token: do not chain it into tracebacks
        return token, expires_in, answer

    def _forget_expired(self, now: float) -> None:
        """Stop redacting tokens that have expired (worthless to anyone reading a log)."""
        for token, expires_at in self._issued:
            if expires_at <= now:
                unregister_secret(token)
        self._issued = [(t, e) for t, e in self._issued if e > now]

    def __repr__(self) -> str:
        state = "none" if self._token is None else f"expires_at={self._expires_at:.0f}"
        return f"ClientCredentialsToken(token_url={self._token_url!r}, token={state})"


def _oauth_error(body: bytes) -> str:
    """``": invalid_client"`` from an OAuth error body, or ``""``. Only the short error code is
    kept: descriptions are free text that a server could fill with anything."""
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        return ""
    if isinstance(error, str) and error.replace("_", "").isalnum() and len(error) <= 64:
        return f": {error}"
    return ""


def token_provider_for(shop: ShopConfig, session: aiohttp.ClientSession) -> TokenProvider:
    """The provider a shop's configuration asks for: a static ``access_token``, else client
    credentials (``client_id``, ``client_secret``) exchanged at ``token_url``.

    A static token wins when both are configured."""
    if shop.access_token is not None:
        return StaticToken(shop.access_token.reveal())
    if shop.client_id is None or shop.client_secret is None:
        raise ConfigError(f"shop {shop.name}: neither an access token nor client credentials")
    return ClientCredentialsToken(session, shop.token_url, shop.client_id.reveal(), shop.client_secret.reveal())
