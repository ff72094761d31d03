"""HTTP-level hostile answers (issue 10) at the client's seams: redirects are never followed,
Retry-After is sane and capped, nonsense throttleStatus is ignored, huge bodies are refused unread.

The pure decisions (``redirect_target``, ``classify_http_status``, ``retry_after_seconds``,
``throttle_figures``, ``RetryPolicy``) are tested without a network; the rest with a real local
aiohttp server and a second one standing for "another host" that records every request.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from email.utils import formatdate
from pathlib import Path

import aiohttp
import orjson
import pytest
from aiohttp import web

from shopsync.client.auth import ClientCredentialsToken, StaticToken
from shopsync.client.budget import CostBudget
from shopsync.client.graphql import ShopClient
from shopsync.client.retry import RetryPolicy
from shopsync.client.transport import (
    TOKEN_HEADER,
    BodyTooLargeError,
    make_session,
    read_limited,
    request_args,
    session_credentials,
    throttle_status_problem,
)
from shopsync.engine.download import MAX_REDIRECTS, download_to_file
from shopsync.errors import FatalError, ShopUnavailableError, TransientError, UrlExpiredError
from shopsync.shopify.answers import (
    classify_http_status,
    redirect_target,
    retry_after_seconds,
    throttle_figures,
)
from tests.support import AutoTime

TOKEN = "shpat_hostile_test_token_never_elsewhere"
PIN = "2026-10"
SHOP_QUERY = "{ shop { name } }"
REPO = Path(__file__).resolve().parents[2]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- pure: where a redirect points ------------------------------------------------------------
ENDPOINT = "https://acme.myshopify.com/admin/api/2026-10/graphql.json"


@pytest.mark.parametrize(
    ("location", "host", "same_origin", "relation"),
    [
        ("https://evil.example/steal?Signature=s3cr3t", "evil.example", False, "another host"),
        ("/admin/api/2026-10/graphql.json?x=1", "acme.myshopify.com", True, "same host"),
        ("https://ACME.myshopify.com:443/other", "acme.myshopify.com:443", True, "same host"),
        ("http://acme.myshopify.com/admin", "acme.myshopify.com", False, "another scheme or port"),
        ("https://acme.myshopify.com:8443/admin", "acme.myshopify.com:8443", False, "another scheme or port"),
        ("https://user:pw@evil.example:444/x", "evil.example:444", False, "another host"),
        ("http://[::1]:9/x", "[::1]:9", False, "another host"),
        ("https://evil.example:99999/x", "?", False, "another host"),
    ],
)
def test_redirect_target_names_host_and_port_only(location, host, same_origin, relation):
    target = redirect_target(location, ENDPOINT)
    assert (target.host, target.same_origin, target.relation) == (host, same_origin, relation)


def test_redirect_to_another_host_is_unavailable_for_the_shop_and_never_repeats_the_query():
    location = "https://evil.example/collect/path?token=abc&Signature=zzz"
    v = classify_http_status(307, b"<html>moved</html>", {"Location": location}, shop="acme",
                             operation="orders page", endpoint=ENDPOINT)
    assert v.outcome == "redirect" and v.budget == "cancel"
    assert isinstance(v.error, ShopUnavailableError) and v.error.status == 307
    message = str(v.error)
    assert message == (
        "shop acme: orders page: answered 307 redirect to evil.example (another host): not followed, "
        "the access token is only sent to acme.myshopify.com"
    )
    for secret_part in ("token=abc", "Signature", "/collect/path"):
        assert secret_part not in message and secret_part not in v.error.reason


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_redirect_back_to_the_endpoint_is_transient(status):
    v = classify_http_status(status, b"", {"Location": "/_moved/admin/api/2026-10/graphql.json"}, shop="acme",
                             endpoint=ENDPOINT)
    assert isinstance(v.error, TransientError) and v.error.reason == "redirect"
    assert f"answered {status} redirect to acme.myshopify.com (same host)" in str(v.error)


def test_a_3xx_without_location_is_a_bad_answer_not_a_redirect():
    v = classify_http_status(302, b"", {}, shop="acme", endpoint=ENDPOINT)
    assert v.outcome == "bad_body" and isinstance(v.error, TransientError)


def test_request_args_never_follow_redirects_and_carry_the_token_per_request():
    args = request_args(TOKEN, aiohttp.ClientTimeout(total=5))
    assert args["allow_redirects"] is False
    assert args["headers"] == {TOKEN_HEADER: TOKEN}


# -- pure: Retry-After -----------------------------------------------------------------------------
NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("0", 0.0),
        ("86400", 86_400.0),  # taken as sent here; the policy caps it
        ("-5", None),
        ("nan", None),
        ("inf", None),
        ("soon", None),
        ("", None),
        (formatdate(NOW - 86_400, usegmt=True), None),  # a date in the past
        (formatdate(NOW, usegmt=True), None),  # now: nothing to wait for
        (formatdate(NOW + 120, usegmt=True), 120.0),  # a date ahead: honoured (the policy caps it)
        ("Mon, 32 Foo 2026 99:00:00 GMT", None),
    ],
)
def test_retry_after_seconds(value, expected):
    got = retry_after_seconds({"Retry-After": value}, now=NOW)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_retry_after_date_without_a_clock_says_nothing():
    assert retry_after_seconds({"Retry-After": formatdate(NOW + 120, usegmt=True)}) is None
    assert retry_after_seconds({}) is None


def test_http_status_passes_a_future_date_on_as_seconds():
    v = classify_http_status(429, b"", {"Retry-After": formatdate(NOW + 30, usegmt=True)}, shop="acme", now=NOW)
    assert isinstance(v.error, TransientError) and v.error.retry_after == pytest.approx(30.0)
    v = classify_http_status(503, b"", {"Retry-After": "soon"}, shop="acme", now=NOW)
    assert isinstance(v.error, TransientError) and v.error.retry_after is None


def test_the_policy_caps_retry_after_at_the_backoff_cap():
    policy = RetryPolicy(max_attempts=5, base=0.5, cap=8.0, rng=random.Random(1))
    day = policy.decide(TransientError("429", reason="http_429", retry_after=86_400.0), 1)
    assert (day.action, day.delay) == ("retry", 8.0)
    assert "86400" in day.reason and "capped at 8s" in day.reason
    short = policy.decide(TransientError("429", reason="http_429", retry_after=1.5), 1)
    assert short.delay == 1.5 and "capped" not in short.reason


@pytest.mark.parametrize("nonsense", [-5.0, math.nan, math.inf])
def test_the_policy_ignores_a_nonsense_retry_after_and_backs_off_normally(nonsense):
    policy = RetryPolicy(max_attempts=5, base=0.5, cap=8.0, rng=random.Random(1))
    twin = RetryPolicy(max_attempts=5, base=0.5, cap=8.0, rng=random.Random(1))
    d = policy.decide(TransientError("503", reason="http_503", retry_after=nonsense), 3)
    assert d.action == "retry" and d.delay == twin.backoff(3) and "server asked" not in d.reason


# -- pure: throttleStatus --------------------------------------------------------------------------
GOOD = {"maximumAvailable": 2000.0, "currentlyAvailable": 1500, "restoreRate": 100.0}


@pytest.mark.parametrize(
    "status",
    [
        {**GOOD, "maximumAvailable": 0.0},
        {**GOOD, "restoreRate": 0},
        {**GOOD, "restoreRate": -100.0},
        {**GOOD, "maximumAvailable": -2000.0},
        {**GOOD, "currentlyAvailable": -5},
        {**GOOD, "restoreRate": None},
        {k: v for k, v in GOOD.items() if k != "maximumAvailable"},
        {**GOOD, "restoreRate": "100"},
        {**GOOD, "maximumAvailable": True},
        {"maximumAvailable": None, "currentlyAvailable": None, "restoreRate": None},
        {},
        [1, 2, 3],
    ],
)
def test_unusable_throttle_status(status):
    assert throttle_figures(status) is None
    assert throttle_status_problem({"cost": {"throttleStatus": status}}) is not None


def test_usable_throttle_status_and_an_empty_bucket():
    assert throttle_figures({**GOOD, "currentlyAvailable": 0}) == (2000.0, 0.0, 100.0)
    assert throttle_status_problem({"cost": {"throttleStatus": GOOD}}) is None
    assert throttle_status_problem({"cost": {"requestedQueryCost": 1}}) is None  # absent: some accounts


def test_throttle_status_problem_names_the_figures_shortened():
    problem = throttle_status_problem({"cost": {"throttleStatus": {"maximumAvailable": 0, "restoreRate": "x" * 100}}})
    assert problem is not None
    assert problem.startswith("maximumAvailable=0, currentlyAvailable=missing, restoreRate=")
    assert len(problem) < 120


@pytest.mark.parametrize(
    "bad",
    [
        {"maximumAvailable": 0.0, "currentlyAvailable": 0, "restoreRate": 0.0},
        {"maximumAvailable": -1.0, "currentlyAvailable": -1, "restoreRate": -1.0},
        {"maximumAvailable": None, "currentlyAvailable": None, "restoreRate": None},
        {},
    ],
)
async def test_budget_keeps_its_last_good_model_and_never_waits_for_ever(bad):
    t = AutoTime(start=0.0)
    budget = CostBudget(clock=t.clock, sleep=t.sleep, capacity=1000, restore_rate=50)
    r = await budget.reserve(10)
    budget.settle(r, requested=10, actual=10, throttle_status=GOOD)
    assert (budget.capacity, budget.restore_rate) == (2000, 100)
    r = await budget.reserve(10)
    budget.settle(r, requested=10, actual=10, throttle_status=bad)
    assert (budget.capacity, budget.restore_rate) == (2000, 100)
    # A THROTTLED answer with nonsense figures and a nonsense requested cost: the hold is at most
    # a full bucket at the last good rate, never infinite or negative.
    r = await budget.reserve(10)
    wait = budget.on_throttled(r, 1e12, bad)
    assert 0 < wait <= 2000 / 100
    r = await budget.reserve(10)
    assert t.now <= wait + 2000 / 100
    budget.settle(r, requested=-50, actual=-50, throttle_status=bad)  # negative costs: the estimate counts
    assert budget.snapshot().points_spent == 30


# -- a local shop and "another host" -----------------------------------------------------------
class Host:
    """A local aiohttp server answering GraphQL and token POSTs from a script; records requests."""

    def __init__(self, address: str = "127.0.0.1") -> None:
        self.address = address
        self.script: list[Handler] = []
        self.requests: list[dict] = []
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        self.requests.append({
            "path": request.path,
            "token": request.headers.get(TOKEN_HEADER),
            "authorization": request.headers.get("Authorization"),
            "secret": b"client_secret" in raw,
        })
        if self.script:
            return await self.script.pop(0)(request)
        if request.path.endswith("/oauth/access_token"):
            return web.json_response({"access_token": "shpat_issued", "scope": "read_orders", "expires_in": 86399})
        if request.method == "GET":
            return web.Response(body=b"file body")
        return web.json_response({"data": {"shop": {"name": "Acme"}}, "extensions": {"cost": {
            "requestedQueryCost": 1, "actualQueryCost": 1, "throttleStatus": GOOD}}})

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address, 0)
        try:
            await site.start()
        except OSError:  # no 127.0.0.2 here: another port is another origin all the same
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            self.address = "127.0.0.1"
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://{self.address}:{port}"

    @property
    def host(self) -> str:
        return self.base.removeprefix("http://")

    @property
    def api_url(self) -> str:
        return f"{self.base}/admin/api/{PIN}/graphql.json"


@pytest.fixture
async def shop() -> AsyncIterator[Host]:
    h = Host()
    await h.start()
    yield h
    assert h.runner is not None
    await h.runner.cleanup()


@pytest.fixture
async def elsewhere() -> AsyncIterator[Host]:
    h = Host("127.0.0.2")
    await h.start()
    yield h
    assert h.runner is not None
    await h.runner.cleanup()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    s = make_session(max_connections=8, timeout=5.0)
    yield s
    await s.close()


def redirect(status: int, location: str) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(status=status, text="moved", headers={"Location": location})

    return handler


def client(shop: Host, session: aiohttp.ClientSession, sleeps: list[float], **kw) -> ShopClient:
    t = AutoTime(start=0.0)

    async def record(seconds: float) -> None:
        sleeps.append(seconds)

    return ShopClient(
        shop="acme", api_url=shop.api_url, api_version=PIN, session=session,
        budget=CostBudget(clock=t.clock, sleep=t.sleep), tokens=kw.pop("tokens", StaticToken(TOKEN)),
        retry=RetryPolicy(max_attempts=kw.pop("max_attempts", 3), base=0.5, cap=8.0, rng=random.Random(1)),
        request_timeout=5.0, sleep=record, **kw,
    )


async def test_graphql_redirect_to_another_host_is_not_followed(shop, elsewhere, session):
    shop.script = [redirect(307, f"{elsewhere.api_url}?steal=1")]
    sleeps: list[float] = []
    with pytest.raises(ShopUnavailableError) as info:
        await client(shop, session, sleeps).execute(SHOP_QUERY, operation="orders page")
    assert elsewhere.requests == []  # nothing, let alone the token, went there
    assert len(shop.requests) == 1 and sleeps == []  # not retried either: someone must look
    message = str(info.value)
    assert f"307 redirect to {elsewhere.host} (another host)" in message
    assert f"the access token is only sent to {shop.host}" in message
    assert TOKEN not in message and "steal" not in message
    assert info.value.status == 307


async def test_graphql_redirect_to_the_same_origin_is_retried_at_the_endpoint(shop, session):
    shop.script = [redirect(308, "/moved/admin/api/2026-10/graphql.json"), redirect(302, shop.api_url)]
    sleeps: list[float] = []
    resp = await client(shop, session, sleeps).execute(SHOP_QUERY)
    assert resp.data == {"shop": {"name": "Acme"}} and resp.attempts == 3
    assert [r["path"] for r in shop.requests] == [f"/admin/api/{PIN}/graphql.json"] * 3  # /moved never asked
    assert len(sleeps) == 2


async def test_graphql_redirects_to_the_same_origin_give_up_after_the_attempts(shop, session):
    shop.script = [redirect(307, "/elsewhere")] * 3
    with pytest.raises(TransientError, match=r"answered 307 redirect to 127\.0\.0\.1:\d+ \(same host\)"):
        await client(shop, session, [], max_attempts=3).execute(SHOP_QUERY)
    assert len(shop.requests) == 3


async def test_a_day_of_retry_after_is_capped(shop, session):
    async def day(request: web.Request) -> web.Response:
        return web.json_response({"errors": "slow down"}, status=429, headers={"Retry-After": "86400"})

    async def past(request: web.Request) -> web.Response:
        return web.json_response({"errors": "down"}, status=503, headers={"Retry-After": formatdate(0, usegmt=True)})

    shop.script = [day, past]
    sleeps: list[float] = []
    resp = await client(shop, session, sleeps).execute(SHOP_QUERY)
    assert resp.attempts == 3
    assert sleeps[0] == 8.0  # the policy's cap, not a day
    assert 0 <= sleeps[1] <= 1.0  # a date in the past: the normal backoff of attempt 2


async def test_unusable_throttle_status_is_warned_about_once_and_ignored(shop, session, caplog):
    def answering(status: object) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response({"data": {"shop": {"name": "Acme"}}, "extensions": {"cost": {
                "requestedQueryCost": 1, "actualQueryCost": 1, "throttleStatus": status}}})
        return handler

    zero = {"maximumAvailable": 0.0, "currentlyAvailable": 0, "restoreRate": 0.0}
    shop.script = [answering(GOOD), answering(zero), answering({"restoreRate": None}), answering(zero)]
    c = client(shop, session, [])
    with caplog.at_level(logging.DEBUG, logger="shopsync.client.graphql"):
        for _ in range(4):
            assert (await c.execute(SHOP_QUERY)).data
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "throttleStatus" in r.getMessage()]
    assert len(warnings) == 1
    assert "shop acme" in warnings[0].getMessage() and "maximumAvailable=0.0" in warnings[0].getMessage()
    assert (c.budget.capacity, c.budget.restore_rate) == (2000.0, 100.0)  # the last good figures


def huge(size: int, *, chunked: bool) -> Handler:
    chunk = b" " * (1 << 20)

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200)
        resp.content_type = "application/json"
        if not chunked:
            resp.content_length = size
        await resp.prepare(request)
        try:
            sent = 0
            while sent < size:
                await resp.write(chunk)
                sent += len(chunk)
            await resp.write_eof()
        except (ConnectionError, RuntimeError):
            pass  # the client hung up: that is the point
        return resp

    return handler


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_over_the_cap_is_refused_without_reading_it_whole(shop, session, chunked):
    size = 256 << 20  # far more than the socket buffers between the two ends can hold
    shop.script = [huge(size, chunked=chunked) for _ in range(2)]
    sleeps: list[float] = []
    with pytest.raises(TransientError) as info:
        await client(shop, session, sleeps, max_attempts=2, max_response_bytes=1 << 20).execute(SHOP_QUERY)
    message = str(info.value)
    assert info.value.reason == "too_large" and message.startswith("shop acme: query: answer ")
    assert "max_response_bytes (1048576)" in message
    if chunked:
        found = re.search(r"at (\d+) bytes read \(no Content-Length\)", message)
        assert found and (1 << 20) < int(found.group(1)) <= (1 << 20) + (1 << 16)  # stopped at the cap
    else:
        assert f"answer of {size} bytes (Content-Length)" in message
    assert len(shop.requests) == 2 and len(sleeps) == 1  # retried, then failed


class CountingContent:
    """A response body that counts what was taken from it."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.taken = 0

    async def iter_chunked(self, n: int) -> AsyncIterator[bytes]:
        while self.taken < self.total:
            self.taken += n
            yield b"x" * n


class FakeResponse:
    def __init__(self, total: int, declared: int | None) -> None:
        self.content = CountingContent(total)
        self.content_length = declared


@pytest.mark.parametrize(("declared", "taken_at_most"), [(100 << 20, 0), (None, (1 << 20) + (1 << 16))])
async def test_read_limited_checks_the_length_first_and_counts_while_reading(declared, taken_at_most):
    resp = FakeResponse(100 << 20, declared)
    with pytest.raises(BodyTooLargeError) as info:
        await read_limited(resp, 1 << 20)  # type: ignore[arg-type]
    assert resp.content.taken <= taken_at_most
    assert info.value.limit == 1 << 20 and info.value.declared is (declared is not None)
    small = FakeResponse(1000, None)
    assert len(await read_limited(small, 1 << 20)) >= 1000  # type: ignore[arg-type]


async def test_a_body_under_the_cap_is_read(shop, session):
    assert (await client(shop, session, [], max_response_bytes=4096).execute(SHOP_QUERY)).data


# -- the token endpoint ----------------------------------------------------------------------------
async def test_token_endpoint_redirect_to_another_host_is_not_followed(shop, elsewhere, session):
    shop.script = [redirect(302, f"{elsewhere.base}/admin/oauth/access_token?x=1")]
    tokens = ClientCredentialsToken(session, f"{shop.base}/admin/oauth/access_token", "cid", "client-secret-value")
    with pytest.raises(ShopUnavailableError) as info:
        await tokens.token()
    assert elsewhere.requests == [] and len(shop.requests) == 1 and shop.requests[0]["secret"]
    message = str(info.value)
    assert f"302 redirect to {elsewhere.host} (another host)" in message
    assert f"the client secret is only sent to {shop.host}" in message
    assert "client-secret-value" not in message and "x=1" not in message


async def test_token_endpoint_redirect_to_itself_is_transient_and_a_huge_answer_refused(shop, session):
    shop.script = [redirect(307, "/admin/oauth/access_token"), huge(8 << 20, chunked=True)]
    tokens = ClientCredentialsToken(session, f"{shop.base}/admin/oauth/access_token", "cid", "secret")
    with pytest.raises(TransientError, match=r"\(same host\)") as info:
        await tokens.token()
    assert info.value.reason == "redirect"
    with pytest.raises(TransientError, match="over 65536 bytes") as info:
        await tokens.token()
    assert info.value.reason == "too_large"
    assert await tokens.token() == "shpat_issued"


# -- bulk result files ---------------------------------------------------------------------------
async def test_result_file_redirect_is_followed_without_any_credential(shop, elsewhere, session, tmp_path):
    shop.script = [redirect(302, f"{elsewhere.base}/files/result.jsonl?Signature=s")]
    size = await download_to_file(session, f"{shop.base}/files/result.jsonl", tmp_path / "f.jsonl")
    assert (tmp_path / "f.jsonl").read_bytes() == b"file body" and size == 9
    [hit] = elsewhere.requests
    assert hit["token"] is None and hit["authorization"] is None
    assert shop.requests[0]["token"] is None


async def test_result_file_redirect_loop_asks_for_a_fresh_url(shop, session, tmp_path):
    shop.script = [redirect(302, f"{shop.base}/again") for _ in range(20)]
    with pytest.raises(UrlExpiredError, match="redirected badly"):
        await download_to_file(session, f"{shop.base}/files/x.jsonl", tmp_path / "f.jsonl")
    assert len(shop.requests) == MAX_REDIRECTS  # aiohttp gives up once that many answers redirected


@pytest.mark.parametrize(
    "make",
    [
        lambda: aiohttp.ClientSession(headers={"Authorization": "Bearer x"}),
        lambda: aiohttp.ClientSession(headers={TOKEN_HEADER: TOKEN}),
        lambda: aiohttp.ClientSession(headers={"Cookie": "session=1"}),
    ],
)
async def test_result_files_are_never_fetched_with_a_session_carrying_credentials(shop, tmp_path, make):
    async with make() as bad:
        assert session_credentials(bad)
        with pytest.raises(FatalError, match="without credentials"):
            await download_to_file(bad, f"{shop.base}/files/x.jsonl", tmp_path / "f.jsonl")
    assert shop.requests == []


async def test_the_shared_session_carries_no_credential_and_keeps_no_cookies(session):
    assert session_credentials(session) == []
    assert isinstance(session.cookie_jar, aiohttp.DummyCookieJar)


def test_no_code_turns_tls_verification_off():
    pattern = re.compile(r"\b(ssl|verify_ssl)\s*=\s*False\b|CERT_NONE|check_hostname\s*=\s*False")
    offenders = [
        f"{path.relative_to(REPO)}:{n}"
        for path in sorted((REPO / "shopsync").rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert offenders == []


def test_throttle_status_problem_shortens_what_the_server_sent():
    text = throttle_status_problem({"cost": {"throttleStatus": "x" * 1000}})
    assert text is not None and len(text) < 60 and orjson.dumps(text)
