"""ShopClient against a real local aiohttp server answering crafted Shopify-shaped responses."""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections.abc import Awaitable, Callable

import aiohttp
import orjson
import pytest
from aiohttp import web

from shopsync.client.auth import ClientCredentialsToken, StaticToken
from shopsync.client.budget import CostBudget
from shopsync.client.graphql import GraphQLResponse, ShopClient
from shopsync.client.retry import RetryPolicy
from shopsync.client.transport import TOKEN_HEADER, make_session
from shopsync.errors import (
    OutcomeUnknownError,
    QueryDocumentError,
    QueryError,
    QueryTooCostlyError,
    ShopUnavailableError,
    TransientError,
)
from shopsync.shopify.bucket import LeakyBucket
from tests.support import AutoTime
from tests.support import cost_extension as cost

TOKEN = "shpat_test_token_do_not_leak"
SHOP_QUERY = "{ shop { name } }"  # requested cost 1
ORDERS_QUERY = "query($first: Int!) { orders(first: $first) { edges { node { id } } } }"  # 2 + first
PIN = "2026-10"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# -- the fake shop -------------------------------------------------------------------------------------
def ok(data=None, *, headers=None, **cost_kw) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        body = {
            "data": data if data is not None else {"shop": {"name": "Acme"}},
            "extensions": cost(**cost_kw),
        }
        return web.json_response(body, headers={"X-Shopify-API-Version": PIN, **(headers or {})})

    return handler


def answer(body: dict, status: int = 200, headers: dict | None = None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.json_response(body, status=status, headers=headers)

    return handler


def raw(body: bytes, status: int = 200, content_type: str = "application/json") -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, status=status, content_type=content_type)

    return handler


def throttled(requested=752, available=666.0, maximum=1000.0, rate=50.0) -> Handler:
    body = {
        "errors": [
            {
                "message": "Throttled",
                "extensions": {
                    "code": "THROTTLED",
                    "documentation": "https://shopify.dev/api/usage/rate-limits",
                },
            }
        ],
        "extensions": {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": None,
                "throttleStatus": {
                    "maximumAvailable": maximum,
                    "currentlyAvailable": available,
                    "restoreRate": rate,
                },
            }
        },
    }
    return answer(body)


async def drop_mid_body(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200, headers={"Content-Type": "application/json", "Content-Length": "500"}
    )
    await resp.prepare(request)
    await resp.write(b'{"data": {"shop": {"na')
    assert request.transport is not None
    request.transport.close()
    return resp


async def drop_before_answer(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.close()
    return web.Response()


class FakeShop:
    """``POST /admin/api/2026-10/graphql.json`` answering from a script; a token endpoint too."""

    def __init__(self) -> None:
        self.script: list[Handler] = []
        self.default: Handler = ok()
        self.requests: list[dict] = []
        self.token_requests = 0
        self.token_failures = 0  # the token endpoint answers 503 this many times first
        self.hang = asyncio.Event()  # never set: for timeouts
        self.runner: web.AppRunner | None = None
        self.base = ""

    async def graphql(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(
            {
                "token": request.headers.get(TOKEN_HEADER),
                "json": orjson.loads(body),
                "ctype": request.content_type,
            }
        )
        handler = self.script.pop(0) if self.script else self.default
        return await handler(request)

    async def token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        if self.token_failures:
            self.token_failures -= 1
            return web.json_response({"errors": "unavailable"}, status=503)
        return web.json_response(
            {
                "access_token": f"shpat_issued_{self.token_requests}",
                "scope": "read_orders",
                "expires_in": 86399,
            }
        )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(f"/admin/api/{PIN}/graphql.json", self.graphql)
        app.router.add_post("/admin/oauth/access_token", self.token)
        self.runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base = f"http://127.0.0.1:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base}/admin/api/{PIN}/graphql.json"

    async def hang_forever(self, request: web.Request) -> web.Response:
        await self.hang.wait()
        return web.json_response({})


class Recorder:
    """RequestObserver that records every event."""

    def __init__(self) -> None:
        self.events: list[tuple] = []

    def on_request(self, shop, outcome, duration, requested, actual):
        assert duration >= 0
        self.events.append(("request", shop, outcome, requested, actual))

    def on_retry(self, shop, reason):
        self.events.append(("retry", shop, reason))

    def on_throttled(self, shop):
        self.events.append(("throttled", shop))

    def on_version_mismatch(self, shop, served):
        self.events.append(("version", shop, served))

    def on_deprecated(self, shop, operation):
        self.events.append(("deprecated", shop, operation))

    def on_throttle_status(self, shop, available, maximum, restore_rate):
        self.events.append(("status", shop, available, maximum, restore_rate))

    def outcomes(self) -> list[str]:
        return [e[2] for e in self.events if e[0] == "request"]

    def of(self, kind: str) -> list[tuple]:
        return [e for e in self.events if e[0] == kind]


@pytest.fixture
async def shop():
    s = FakeShop()
    await s.start()
    yield s
    s.hang.set()
    assert s.runner is not None
    await s.runner.cleanup()


@pytest.fixture
async def session():
    s = make_session(max_connections=8, timeout=5.0)
    yield s
    await s.close()


class Harness:
    def __init__(self, shop: FakeShop, session: aiohttp.ClientSession, **kw) -> None:
        self.budget_time = AutoTime(0.0)
        self.retry_sleeps: list[float] = []
        self.observer = Recorder()
        self.budget = kw.pop("budget", None) or CostBudget(
            clock=self.budget_time.clock, sleep=self.budget_time.sleep
        )
        self.seed = kw.pop("seed", 1)
        self.max_attempts = kw.pop("max_attempts", 5)
        self.policy = RetryPolicy(
            max_attempts=self.max_attempts, base=0.5, cap=8.0, rng=random.Random(self.seed)
        )
        self.client = ShopClient(
            shop="acme",
            api_url=kw.pop("api_url", shop.api_url),
            api_version=PIN,
            session=session,
            budget=self.budget,
            tokens=kw.pop("tokens", None) or StaticToken(TOKEN),
            retry=self.policy,
            observer=self.observer,
            request_timeout=kw.pop("request_timeout", 5.0),
            sleep=self.record_sleep,
        )
        assert not kw

    async def record_sleep(self, seconds: float) -> None:
        self.retry_sleeps.append(seconds)

    def expected_backoffs(self, n: int) -> list[float]:
        twin = RetryPolicy(max_attempts=self.max_attempts, base=0.5, cap=8.0, rng=random.Random(self.seed))
        return [twin.backoff(i) for i in range(1, n + 1)]


# -- success -------------------------------------------------------------------------------------------
async def test_ok_answer_returns_data_costs_and_version(shop, session):
    shop.script = [ok(requested=1, actual=1, available=999.0)]
    h = Harness(shop, session)
    resp = await h.client.execute(SHOP_QUERY)
    assert isinstance(resp, GraphQLResponse)
    assert resp.data == {"shop": {"name": "Acme"}}
    assert (resp.requested_cost, resp.actual_cost) == (1.0, 1.0)
    assert resp.throttle_status == {
        "maximumAvailable": 1000.0,
        "currentlyAvailable": 999.0,
        "restoreRate": 50.0,
    }
    assert resp.api_version == PIN and resp.attempts == 1 and resp.throttled == 0
    [req] = shop.requests
    assert req["token"] == TOKEN
    assert req["ctype"] == "application/json"
    assert "shop" in req["json"]["query"]
    snap = h.budget.snapshot()
    assert (snap.requests, snap.points_spent, snap.available) == (1, 1.0, 999.0)
    assert h.observer.outcomes() == ["ok"]
    assert h.observer.of("status") == [("status", "acme", 999.0, 1000.0, 50.0)]


async def test_the_reservation_is_the_static_cost_of_the_document_and_variables(shop, session):
    shop.script = [answer({"data": {"orders": {"edges": []}}})]  # no extensions.cost at all
    h = Harness(shop, session)
    resp = await h.client.execute(ORDERS_QUERY, {"first": 250})
    assert resp.requested_cost is None and resp.throttle_status is None
    assert shop.requests[0]["json"]["variables"] == {"first": 250}
    # Without the server's figures the estimate (2 + 250 × 1) counts as spent, and the model stays.
    snap = h.budget.snapshot()
    assert snap.points_spent == 252 and snap.capacity == 1000
    assert h.client.estimate(ORDERS_QUERY, {"first": 10}) == 12


async def test_an_invalid_document_is_refused_before_sending(shop, session):
    h = Harness(shop, session)
    with pytest.raises(QueryDocumentError, match="noSuchField"):
        await h.client.execute("{ shop { noSuchField } }", operation="orders page")
    assert shop.requests == []
    assert h.budget.in_flight() == 0


# -- throttling and retries ----------------------------------------------------------------------------------
async def test_throttled_waits_the_deficit_and_resends_without_using_an_attempt(shop, session):
    shop.script = [throttled(requested=752, available=666.0), ok(requested=752, actual=300, available=400.0)]
    h = Harness(shop, session, max_attempts=1)  # a retry attempt would fail: throttling is not one
    resp = await h.client.execute(ORDERS_QUERY, {"first": 250}, estimated_cost=752)
    assert resp.data and resp.attempts == 2 and resp.throttled == 1
    # The budget held the resend for (752 − 666) / 50 s; the client's own backoff never ran.
    assert h.budget_time.sleeps == [pytest.approx(1.72)]
    assert h.retry_sleeps == []
    assert h.observer.outcomes() == ["throttled", "ok"]
    assert h.observer.of("throttled") == [("throttled", "acme")]
    assert h.observer.of("retry") == []
    snap = h.budget.snapshot()
    assert (snap.throttled, snap.requests, snap.points_spent) == (1, 1, 300)


async def test_a_throttled_request_the_bucket_can_never_hold_is_too_costly(shop, session):
    shop.script = [throttled(requested=1500, available=900.0, maximum=1000.0)]
    h = Harness(shop, session)
    with pytest.raises(QueryTooCostlyError) as info:
        await h.client.execute(SHOP_QUERY)
    assert (info.value.cost, info.value.max_cost) == (1500, 1000)
    assert len(shop.requests) == 1


async def test_429_honours_retry_after(shop, session):
    shop.script = [
        answer({"errors": "Exceeded 2 calls per second"}, status=429, headers={"Retry-After": "1.5"})
    ]
    h = Harness(shop, session)
    resp = await h.client.execute(SHOP_QUERY)
    assert resp.attempts == 2
    assert h.retry_sleeps == [1.5]
    assert h.observer.outcomes() == ["http_429", "ok"]
    assert h.observer.of("retry") == [("retry", "acme", "http_429")]
    assert h.budget.snapshot().points_spent == 1  # the 429 was not charged


async def test_5xx_are_retried_with_jittered_backoff(shop, session):
    shop.script = [
        raw(b"Internal Server Error", status=500, content_type="text/plain"),
        raw(b"<html>Bad Gateway</html>", status=502, content_type="text/html"),
        answer({"errors": "Unavailable"}, status=503),
        raw(b"<html>Gateway Timeout</html>", status=504, content_type="text/html"),
    ]
    h = Harness(shop, session, max_attempts=5)
    resp = await h.client.execute(SHOP_QUERY)
    assert resp.attempts == 5
    assert h.retry_sleeps == pytest.approx(h.expected_backoffs(4))
    assert all(0 <= d <= 8.0 for d in h.retry_sleeps)
    assert h.observer.outcomes() == ["http_5xx"] * 4 + ["ok"]
    assert [e[2] for e in h.observer.of("retry")] == ["http_500", "http_502", "http_503", "http_504"]


async def test_5xx_gives_up_after_max_attempts(shop, session):
    shop.default = answer({"errors": "Internal Server Error"}, status=500)
    h = Harness(shop, session, max_attempts=3)
    with pytest.raises(TransientError) as info:
        await h.client.execute(SHOP_QUERY)
    assert info.value.reason == "http_500"
    assert "acme" in str(info.value) and "500" in str(info.value)
    assert len(shop.requests) == 3
    assert len(h.retry_sleeps) == 2
    assert h.budget.in_flight() == 0


@pytest.mark.parametrize(
    ("handler", "reason"),
    [
        (drop_mid_body, "connection"),
        (drop_before_answer, "connection"),
        (raw(b'{"data": {"shop": {"na'), "bad_body"),  # truncated JSON, complete HTTP message
        (raw(b"<html>oops</html>", content_type="application/json"), "bad_body"),
        (answer({"data": None}), "bad_body"),
        (answer({"extensions": {}}), "bad_body"),
    ],
)
async def test_broken_answers_are_transient_and_retried(shop, session, handler, reason):
    shop.script = [handler]
    h = Harness(shop, session)
    resp = await h.client.execute(SHOP_QUERY)
    assert resp.data == {"shop": {"name": "Acme"}}
    assert resp.attempts == 2
    assert h.observer.outcomes() == [reason, "ok"]
    assert [e[2] for e in h.observer.of("retry")] == [reason]
    assert h.retry_sleeps == pytest.approx(h.expected_backoffs(1))
    assert h.budget.in_flight() == 0


@pytest.mark.parametrize(
    ("handler", "retried"),
    [
        (drop_mid_body, False),  # it may have run: not resent
        (raw(b'{"data": {"shop": {"na'), False),  # it ran (the body was cut): not resent
        (answer({"errors": "Service unavailable"}, status=503), True),  # refused at the edge: safe to resend
    ],
)
async def test_a_non_idempotent_request_is_not_resent_when_it_may_have_run(shop, session, handler, retried):
    shop.script = [handler]
    h = Harness(shop, session)
    if retried:
        resp = await h.client.execute(SHOP_QUERY, idempotent=False)
        assert resp.attempts == 2
    else:
        with pytest.raises(OutcomeUnknownError):
            await h.client.execute(SHOP_QUERY, idempotent=False)
        assert len(shop.requests) == 1
        assert h.retry_sleeps == []
    assert h.budget.in_flight() == 0


async def test_timeouts_are_retried_then_raised(shop, session):
    shop.default = shop.hang_forever
    h = Harness(shop, session, max_attempts=2, request_timeout=0.2)
    with pytest.raises(TransientError) as info:
        await h.client.execute(SHOP_QUERY)
    assert info.value.reason == "timeout"
    assert len(shop.requests) == 2
    assert h.observer.outcomes() == ["timeout", "timeout"]


async def test_connection_refused_is_transient_and_charges_nothing(session):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = FakeShop()
    h = Harness(
        fake, session, api_url=f"http://127.0.0.1:{port}/admin/api/{PIN}/graphql.json", max_attempts=2
    )
    with pytest.raises(TransientError) as info:
        await h.client.execute(SHOP_QUERY)
    assert info.value.reason == "connection"
    assert h.budget.available() == pytest.approx(1000)  # cancelled, not abandoned
    assert h.observer.outcomes() == ["connection", "connection"]


async def test_cancelling_a_request_in_flight_releases_the_reservation(shop, session):
    shop.default = shop.hang_forever
    h = Harness(shop, session)
    task = asyncio.create_task(h.client.execute(SHOP_QUERY))
    for _ in range(500):
        if shop.requests:
            break
        await asyncio.sleep(0.002)
    assert h.budget.in_flight() == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert h.budget.in_flight() == 0


async def test_internal_error_in_graphql_errors_is_retried(shop, session):
    shop.script = [
        answer({"errors": [{"message": "Internal error", "extensions": {"code": "INTERNAL_SERVER_ERROR"}}]})
    ]
    h = Harness(shop, session)
    resp = await h.client.execute(SHOP_QUERY)
    assert resp.attempts == 2
    assert [e[2] for e in h.observer.of("retry")] == ["internal_error"]


# -- authentication --------------------------------------------------------------------------------------------
async def test_401_gets_a_fresh_token_and_resends_once(shop, session):
    async def reject_first_token(request: web.Request) -> web.Response:
        if request.headers.get(TOKEN_HEADER) == "shpat_issued_1":
            return web.json_response({"errors": "[API] Invalid API key or access token"}, status=401)
        return await ok()(request)

    shop.default = reject_first_token
    tokens = ClientCredentialsToken(session, f"{shop.base}/admin/oauth/access_token", "cid", "csecret")
    h = Harness(shop, session, tokens=tokens, max_attempts=1)
    resp = await h.client.execute(SHOP_QUERY)
    assert resp.data
    assert [r["token"] for r in shop.requests] == ["shpat_issued_1", "shpat_issued_2"]
    assert shop.token_requests == 2
    assert h.observer.outcomes() == ["unauthorized", "ok"]
    assert h.observer.of("retry") == [("retry", "acme", "unauthorized")]
    assert h.retry_sleeps == []


async def test_a_failing_token_endpoint_is_retried_by_the_policy(shop, session):
    shop.token_failures = 1
    tokens = ClientCredentialsToken(session, f"{shop.base}/admin/oauth/access_token", "cid", "csecret")
    h = Harness(shop, session, tokens=tokens)
    resp = await h.client.execute(SHOP_QUERY)
    assert resp.attempts == 1  # one GraphQL request: the failure happened before sending
    assert shop.token_requests == 2
    assert h.observer.of("retry") == [("retry", "acme", "http_503")]
    assert h.retry_sleeps == pytest.approx(h.expected_backoffs(1))
    assert h.budget.in_flight() == 0 and h.budget.available() == pytest.approx(999)


async def test_a_second_401_parks_the_shop(shop, session):
    shop.default = answer({"errors": "[API] Invalid API key or access token"}, status=401)
    h = Harness(shop, session)
    with pytest.raises(ShopUnavailableError) as info:
        await h.client.execute(SHOP_QUERY)
    assert info.value.status == 401 and not info.value.resource_only
    assert len(shop.requests) == 2
    assert TOKEN not in str(info.value) and TOKEN not in info.value.reason


# -- shop- and resource-level refusals -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "outcome", "phrase"),
    [
        (402, "payment_required", "shop is frozen (402 Payment Required)"),
        (404, "not_found", "shop not found (404 Not Found)"),
        (423, "locked", "shop is locked (423 Locked)"),
    ],
)
async def test_shop_level_refusals_raise_at_once(shop, session, status, outcome, phrase):
    shop.default = answer({"errors": "Unavailable Shop"}, status=status)
    h = Harness(shop, session)
    with pytest.raises(ShopUnavailableError) as info:
        await h.client.execute(SHOP_QUERY)
    assert info.value.status == status and not info.value.resource_only
    assert phrase in info.value.reason
    assert len(shop.requests) == 1
    assert h.observer.outcomes() == [outcome]
    assert h.budget.available() == pytest.approx(1000)  # not charged


async def test_403_is_resource_level_and_names_the_missing_scope(shop, session):
    shop.default = answer(
        {"errors": "[API] This action requires merchant approval for read_orders scope."}, status=403
    )
    h = Harness(shop, session)
    with pytest.raises(ShopUnavailableError) as info:
        await h.client.execute(SHOP_QUERY)
    assert info.value.status == 403 and info.value.resource_only
    assert "read_orders" in info.value.reason
    assert h.observer.outcomes() == ["forbidden"]


async def test_access_denied_in_graphql_errors_is_resource_level(shop, session):
    shop.default = answer(
        {
            "data": None,
            "errors": [
                {
                    "message": "Access denied for orders field. Required access: `read_orders` access scope.",
                    "extensions": {"code": "ACCESS_DENIED"},
                }
            ],
            "extensions": cost(requested=252, actual=2, available=998.0),
        }
    )
    h = Harness(shop, session)
    with pytest.raises(ShopUnavailableError) as info:
        await h.client.execute(ORDERS_QUERY, {"first": 250})
    assert info.value.resource_only and info.value.status == 403
    assert "read_orders" in info.value.reason
    assert h.budget.snapshot().points_spent == 2


async def test_max_cost_exceeded_is_not_resent(shop, session):
    shop.default = answer(
        {
            "errors": [
                {
                    "message": "Query cost is 1066, which exceeds the single query max cost limit (1000).",
                    "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 1066, "maxCost": 1000},
                }
            ],
            "extensions": cost(requested=1066, actual=None, available=1000.0),
        }
    )
    h = Harness(shop, session)
    with pytest.raises(QueryTooCostlyError) as info:
        await h.client.execute(ORDERS_QUERY, {"first": 250})
    assert (info.value.cost, info.value.max_cost) == (1066, 1000)
    assert len(shop.requests) == 1
    assert h.observer.outcomes() == ["max_cost"]
    assert h.budget.snapshot().points_spent == 0
    assert h.budget.available() == pytest.approx(1000)


async def test_graphql_errors_without_data_are_query_errors(shop, session):
    shop.default = answer(
        {
            "errors": [
                {
                    "message": "Field 'bogus' doesn't exist on type 'Shop'",
                    "extensions": {"code": "undefinedField"},
                },
                {"message": "Second problem"},
            ]
        }
    )
    h = Harness(shop, session)
    with pytest.raises(QueryError) as info:
        await h.client.execute(SHOP_QUERY)
    assert "Field 'bogus' doesn't exist" in str(info.value) and "Second problem" in str(info.value)
    assert len(info.value.errors) == 2
    assert len(shop.requests) == 1
    assert h.observer.outcomes() == ["graphql_error"]


async def test_partial_data_with_errors_is_never_accepted(shop, session):
    shop.default = answer(
        {
            "data": {"shop": {"name": "Acme"}},
            "errors": [{"message": "Internal error on a nested field", "path": ["shop", "x"]}],
            "extensions": cost(),
        }
    )
    h = Harness(shop, session)
    with pytest.raises(QueryError, match="partial data"):
        await h.client.execute(SHOP_QUERY)


# -- headers, logging, secrets ---------------------------------------------------------------------------------
async def test_version_fall_forward_and_deprecation_are_logged_once(shop, session, caplog):
    headers = {"X-Shopify-API-Version": "2027-01", "X-Shopify-API-Deprecated-Reason": "https://shopify.dev/x"}
    shop.default = ok(headers=headers)
    h = Harness(shop, session)
    with caplog.at_level(logging.WARNING, logger="shopsync.client.graphql"):
        first = await h.client.execute(SHOP_QUERY)
        await h.client.execute(SHOP_QUERY)
    assert first.api_version == "2027-01" and h.client.served_version == "2027-01"
    assert h.observer.of("version") == [("version", "acme", "2027-01")]
    version_logs = [r for r in caplog.records if "2027-01" in r.getMessage()]
    deprecation_logs = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert len(version_logs) == 1 and len(deprecation_logs) == 1
    # Logged once per query: another operation with the same reason is logged again; all counted.
    with caplog.at_level(logging.WARNING, logger="shopsync.client.graphql"):
        await h.client.execute(SHOP_QUERY, operation="resource orders (count)")
    deprecation_logs = [r for r in caplog.records if "deprecated" in r.getMessage()]
    assert [r.getMessage().split(" in ")[1].split(":")[0] for r in deprecation_logs] == ["query", "resource orders (count)"]
    assert h.observer.of("deprecated") == [("deprecated", "acme", "query")] * 2 + [
        ("deprecated", "acme", "resource orders (count)")
    ]


async def test_the_token_never_reaches_logs_or_errors(shop, session, caplog):
    shop.script = [
        answer({"errors": "x"}, status=500),
        drop_mid_body,
        raw(b"{truncated"),
        answer({"errors": "[API] Invalid API key or access token"}, status=401),
    ]
    shop.default = answer({"errors": "[API] Invalid API key or access token"}, status=401)
    h = Harness(shop, session, max_attempts=8)
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(ShopUnavailableError) as info:
            await h.client.execute(SHOP_QUERY)
    assert TOKEN not in caplog.text
    assert TOKEN not in str(info.value) and TOKEN not in repr(h.client)
    assert TOKEN in {r["token"] for r in shop.requests}  # it was sent, only never shown


# -- sharing one session ----------------------------------------------------------------------------------------
async def test_clients_share_one_session_and_never_close_it(shop, session):
    a = Harness(shop, session)
    b = Harness(shop, session)
    async with a.client:
        await a.client.execute(SHOP_QUERY)
    await b.client.execute(SHOP_QUERY)
    await b.client.aclose()
    assert not session.closed
    async with session.post(shop.api_url, json={"query": SHOP_QUERY}) as resp:  # still usable
        assert resp.status == 200
    assert len(shop.requests) == 3


async def test_concurrent_requests_through_one_budget_are_never_throttled(shop, session):
    """The fake shop enforces a real leaky bucket on the budget's clock; twelve concurrent 252-point
    pages (3 fit in the bucket at once) must all pass without one THROTTLED answer."""
    h = Harness(shop, session)
    server_bucket = LeakyBucket.full(1000.0, 50.0, h.budget_time.now)

    async def enforcing(request: web.Request) -> web.Response:
        now = h.budget_time.now
        if not server_bucket.try_take(252, now):
            return await throttled(requested=252, available=server_bucket.level(now))(request)
        server_bucket.give_back(250, now)  # actual cost 2
        return await ok(requested=252, actual=2, available=server_bucket.level(now))(request)

    shop.default = enforcing
    results = await asyncio.gather(*(h.client.execute(ORDERS_QUERY, {"first": 250}) for _ in range(12)))
    assert len(results) == 12 and all(r.data and r.throttled == 0 for r in results)
    assert h.observer.outcomes() == ["ok"] * 12
    snap = h.budget.snapshot()
    assert snap.requests == 12 and snap.points_spent == 24 and snap.throttled == 0
    assert h.budget.in_flight() == 0 and h.budget.waiting() == 0


async def test_the_servers_requested_cost_is_learned_for_the_next_call(shop, session):
    seen: list[float] = []

    async def cheap(request: web.Request) -> web.Response:
        seen.append(h.budget.available())
        return await ok(requested=25, actual=5, available=995.0)(request)

    shop.default = cheap
    h = Harness(shop, session)
    await h.client.execute(ORDERS_QUERY, {"first": 250})
    assert h.client.estimate(ORDERS_QUERY, {"first": 250, "after": "cursor"}) == 25
    assert h.client.estimate(ORDERS_QUERY, {"first": 100}) == 102  # another shape: the static rule
    await h.client.execute(ORDERS_QUERY, {"first": 250, "after": "cursor"})
    assert seen == [pytest.approx(1000 - 252), pytest.approx(995 - 25)]
