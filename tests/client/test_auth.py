"""Token providers against a real local aiohttp token endpoint."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from shopsync.client.auth import (
    REFRESH_RETRY_SECONDS,
    ClientCredentialsToken,
    StaticToken,
    TokenProvider,
    token_provider_for,
)
from shopsync.errors import ConfigError, ShopUnavailableError, TransientError
from shopsync.observability.logs import redact
from tests.support import FakeClock
from tests.support.http import serve

CLIENT_ID = "client-id-123"
SECRET = "very-secret-client-secret"


class TokenEndpoint:
    """``POST /admin/oauth/access_token``, scripted: answers from ``plan`` (then the default)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.plan: list[tuple[int, object]] = []
        self.expires_in: object = 86_399
        self.gate: asyncio.Event | None = None  # when set up, answers wait for it
        self.issued = 0
        self.prefix = "shpat_issued_"
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests.append({"content_type": request.content_type, "form": dict(form)})
        if self.gate is not None:
            await self.gate.wait()
        if self.plan:
            status, body = self.plan.pop(0)
            if isinstance(body, bytes):
                return web.Response(status=status, body=body, content_type="application/json")
            return web.json_response(body, status=status)
        self.issued += 1
        answer = {"access_token": f"{self.prefix}{self.issued}", "scope": "read_orders,read_products"}
        if self.expires_in is not None:
            answer["expires_in"] = self.expires_in
        return web.json_response(answer)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/admin/oauth/access_token", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}/admin/oauth/access_token"

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.set()
        assert self.runner is not None
        await self.runner.cleanup()


def Clock() -> FakeClock:  # the clients' tests start at a fixed, recent epoch second
    return FakeClock(1_700_000_000.0)


@pytest.fixture
async def endpoint():
    ep = TokenEndpoint()
    await ep.start()
    yield ep
    await ep.stop()


@pytest.fixture
async def session():
    async with aiohttp.ClientSession() as s:
        yield s


def provider(session, endpoint, clock=None, **kw) -> ClientCredentialsToken:
    return ClientCredentialsToken(session, endpoint.url, CLIENT_ID, SECRET, clock=clock or Clock(), **kw)


async def until(predicate, rounds: int = 2000) -> None:
    """Wait for something the local server does (real I/O), yielding between checks."""
    for _ in range(rounds):
        if predicate():
            return
        await asyncio.sleep(0.001)
    raise AssertionError("condition not reached")


async def test_issues_a_token_with_the_client_credentials_form(session, endpoint):
    tokens = provider(session, endpoint)
    assert isinstance(tokens, TokenProvider)
    assert await tokens.token() == "shpat_issued_1"
    [req] = endpoint.requests
    assert req["content_type"] == "application/x-www-form-urlencoded"
    assert req["form"] == {
        "grant_type": "client_credentials",
        "client_id": CLIENT_ID,
        "client_secret": SECRET,
    }
    assert tokens.scope == ("read_orders", "read_products")


async def test_issued_tokens_are_redacted_from_logs_until_they_expire(session, endpoint):
    clock = Clock()
    # Not token-shaped, so only the registration redacts them.
    endpoint.prefix = "opaque-issued-token-"
    endpoint.expires_in = 1000
    tokens = provider(session, endpoint, clock)
    first = await tokens.token()
    assert redact(f"sent {first}") == "sent ***"
    clock.now += 999  # the first is still valid when the second is issued: both stay redacted
    await tokens.invalidate(first)
    second = await tokens.token()
    assert redact(f"{first} {second}") == "*** ***"
    clock.now += 500  # the first has expired: a third issue drops it from the list, not the second
    await tokens.invalidate(second)
    third = await tokens.token()
    assert redact(f"{first} {second} {third}") == f"{first} *** ***"


async def test_the_token_is_cached(session, endpoint):
    clock = Clock()
    tokens = provider(session, endpoint, clock)
    first = await tokens.token()
    clock.now += 80_000  # still more than the margin before expiry
    assert await tokens.token() == first
    assert len(endpoint.requests) == 1
    assert tokens.expires_at == pytest.approx(Clock().now + 86_399)


async def test_refreshes_before_expiry_while_callers_keep_the_old_token(session, endpoint):
    clock = Clock()
    endpoint.expires_in = 1000
    tokens = provider(session, endpoint, clock, refresh_margin=300)
    old = await tokens.token()
    clock.now += 701  # inside the refresh margin, not expired
    endpoint.gate = asyncio.Event()
    # Callers are not held up: they get the old, still valid token while the refresh runs.
    assert await tokens.token() == old
    await until(lambda: len(endpoint.requests) == 2)
    assert await tokens.token() == old
    assert len(endpoint.requests) == 2  # one refresh, not one per call
    endpoint.gate.set()
    await until(lambda: tokens.fetches == 2)
    assert await tokens.token() == "shpat_issued_2"
    assert tokens.expires_at == pytest.approx(clock.now + 1000)


async def test_concurrent_callers_share_one_fetch(session, endpoint):
    endpoint.gate = asyncio.Event()
    tokens = provider(session, endpoint)
    callers = [asyncio.create_task(tokens.token()) for _ in range(10)]
    await until(lambda: len(endpoint.requests) == 1)
    endpoint.gate.set()
    results = await asyncio.gather(*callers)
    assert set(results) == {"shpat_issued_1"}
    assert len(endpoint.requests) == 1


async def test_an_expired_token_is_never_handed_out(session, endpoint):
    clock = Clock()
    endpoint.expires_in = 100
    tokens = provider(session, endpoint, clock, refresh_margin=10)
    assert await tokens.token() == "shpat_issued_1"
    clock.now += 100
    assert await tokens.token() == "shpat_issued_2"


async def test_no_expires_in_means_no_early_refresh(session, endpoint):
    clock = Clock()
    endpoint.expires_in = None
    tokens = provider(session, endpoint, clock)
    await tokens.token()
    clock.now += 10 * 86_400
    assert await tokens.token() == "shpat_issued_1"
    assert len(endpoint.requests) == 1


async def test_invalidate_makes_the_next_call_fetch_a_fresh_token_once(session, endpoint):
    tokens = provider(session, endpoint)
    old = await tokens.token()
    # Three requests failed with 401 on the same token at about the same time.
    await asyncio.gather(*(tokens.invalidate(old) for _ in range(3)))
    results = await asyncio.gather(*(tokens.token() for _ in range(3)))
    assert set(results) == {"shpat_issued_2"}
    assert len(endpoint.requests) == 2
    await tokens.invalidate(old)  # a late report about the old token changes nothing
    assert await tokens.token() == "shpat_issued_2"
    assert len(endpoint.requests) == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_fetch(session, endpoint):
    endpoint.gate = asyncio.Event()
    tokens = provider(session, endpoint)
    a = asyncio.create_task(tokens.token())
    b = asyncio.create_task(tokens.token())
    await until(lambda: len(endpoint.requests) == 1)
    a.cancel()
    endpoint.gate.set()
    assert await b == "shpat_issued_1"
    with pytest.raises(asyncio.CancelledError):
        await a


@pytest.mark.parametrize("status", [400, 401])
async def test_rejected_credentials_park_the_shop_without_leaking_the_secret(session, endpoint, status):
    endpoint.plan = [(status, {"error": "invalid_client", "error_description": f"bad secret {SECRET}"})]
    tokens = provider(session, endpoint)
    with pytest.raises(ShopUnavailableError) as info:
        await tokens.token()
    err = info.value
    assert err.status == 401
    assert "client credentials rejected" in err.reason and "invalid_client" in err.reason
    assert SECRET not in str(err) and SECRET not in err.reason


async def test_server_errors_are_transient_and_the_next_call_retries(session, endpoint):
    endpoint.plan = [(503, {"errors": "unavailable"})]
    tokens = provider(session, endpoint)
    with pytest.raises(TransientError) as info:
        await tokens.token()
    assert info.value.reason == "http_503"
    assert await tokens.token() == "shpat_issued_1"


async def test_rate_limit_carries_retry_after(session, endpoint):
    async def limited(request: web.Request) -> web.Response:
        return web.json_response({"errors": "slow down"}, status=429, headers={"Retry-After": "2.5"})

    app = web.Application()
    app.router.add_post("/t", limited)
    async with serve(app) as url:
        tokens = ClientCredentialsToken(session, f"{url}/t", CLIENT_ID, SECRET)
        with pytest.raises(TransientError) as info:
            await tokens.token()
        assert (info.value.reason, info.value.retry_after) == ("http_429", 2.5)


async def test_connection_refused_is_transient(session):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tokens = ClientCredentialsToken(
        session, f"http://127.0.0.1:{port}/admin/oauth/access_token", CLIENT_ID, SECRET
    )
    with pytest.raises(TransientError) as info:
        await tokens.token()
    assert info.value.reason == "connection"
    assert SECRET not in str(info.value)


@pytest.mark.parametrize(
    "body", [b'{"access_token": "shpat_half', b'{"scope": "read_orders"}', b'{"access_token": 5}', b"[]"]
)
async def test_an_unusable_answer_is_transient_and_not_echoed(session, endpoint, body):
    endpoint.plan = [(200, body)]
    tokens = provider(session, endpoint)
    with pytest.raises(TransientError) as info:
        await tokens.token()
    assert info.value.reason == "bad_body"
    assert "shpat" not in str(info.value)
    assert info.value.__cause__ is None  # the body is not chained into tracebacks


async def test_a_failed_background_refresh_keeps_the_token_and_backs_off(session, endpoint):
    clock = Clock()
    endpoint.expires_in = 1000
    tokens = provider(session, endpoint, clock, refresh_margin=300)
    old = await tokens.token()
    clock.now += 800
    endpoint.plan = [(500, {"errors": "boom"})]
    assert await tokens.token() == old  # starts the refresh, which fails
    await until(lambda: tokens.fetches == 2)
    assert await tokens.token() == old  # no new attempt right away
    await asyncio.sleep(0)
    assert len(endpoint.requests) == 2
    clock.now += REFRESH_RETRY_SECONDS
    assert await tokens.token() == old  # now it tries again
    await until(lambda: tokens.fetches == 3)
    assert await tokens.token() == "shpat_issued_2"


async def test_reprs_hide_secrets_and_tokens(session, endpoint):
    tokens = provider(session, endpoint)
    token = await tokens.token()
    text = repr(tokens)
    assert SECRET not in text and token not in text
    static = StaticToken("shpat_static_secret")
    assert "shpat_static_secret" not in repr(static)
    assert await static.token() == "shpat_static_secret"
    await static.invalidate("shpat_static_secret")
    assert await static.token() == "shpat_static_secret"  # nothing to refresh


@dataclass
class Secret:
    value: str

    def reveal(self) -> str:
        return self.value

    def __repr__(self) -> str:
        return "***"


@dataclass
class FakeShop:
    name: str = "acme"
    token_url: str = "http://127.0.0.1:1/admin/oauth/access_token"
    access_token: Secret | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = field(default=None)


async def test_token_provider_for_a_shop_config(session):
    assert isinstance(token_provider_for(FakeShop(access_token=Secret("shpat_x")), session), StaticToken)
    cc = token_provider_for(FakeShop(client_id=Secret("id"), client_secret=Secret("s")), session)
    assert isinstance(cc, ClientCredentialsToken)
    with pytest.raises(ConfigError, match="acme"):
        token_provider_for(FakeShop(), session)
