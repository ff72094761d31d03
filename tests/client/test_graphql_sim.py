"""ShopClient end to end against the simulated shop (shopsync.simulator.server.run_simulator)."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest

from shopsync.client.auth import ClientCredentialsToken, StaticToken
from shopsync.client.budget import CostBudget
from shopsync.client.graphql import ShopClient
from shopsync.client.retry import RetryPolicy
from shopsync.client.transport import make_session
from shopsync.errors import QueryTooCostlyError, ShopUnavailableError
from shopsync.simulator.config import DataConfig, FaultConfig, SimConfig
from shopsync.simulator.server import run_simulator

PAGE = "query($first: Int!) { orders(first: $first) { edges { node { id } } } }"  # 2 + first
TOO_COSTLY = "{ orders(first: 250) { edges { node { id lineItems(first: 10) { edges { node { id } } } } } } }"


class Recorder:
    def __init__(self) -> None:
        self.outcomes: list[str] = []
        self.retries: list[str] = []
        self.throttled = 0
        self.versions: list[str] = []

    def on_request(self, shop, outcome, duration, requested, actual):
        self.outcomes.append(outcome)

    def on_retry(self, shop, reason):
        self.retries.append(reason)

    def on_throttled(self, shop):
        self.throttled += 1

    def on_version_mismatch(self, shop, served):
        self.versions.append(served)

    def on_deprecated(self, shop, operation):
        return None

    def on_throttle_status(self, shop, available, maximum, restore_rate):
        return None


def sim_config(**kw) -> SimConfig:
    kw.setdefault("data", DataConfig(orders=200, seed=5))
    return SimConfig(**kw)


@pytest.fixture
async def session():
    s = make_session(max_connections=16, timeout=10.0)
    yield s
    await s.close()


def client_for(shop, session, *, tokens=None, budget=None, observer=None, sleeps=None, api_version="2026-10"):
    async def record(seconds: float) -> None:
        if sleeps is not None:
            sleeps.append(seconds)

    return ShopClient(
        shop=shop.name,
        api_url=shop.graphql_url.replace("2026-10", api_version),
        api_version=api_version,
        session=session,
        budget=budget or CostBudget(),
        tokens=tokens or StaticToken(shop.token),
        retry=RetryPolicy(max_attempts=12, base=0.01, cap=0.05, rng=random.Random(3)),
        observer=observer,
        request_timeout=10.0,
        sleep=record,
    )


async def test_a_burst_stays_within_the_simulated_bucket(session):
    async with run_simulator(sim_config(maximum_available=1000.0, restore_rate=2000.0)) as sim:
        shop = sim.shop()
        rec = Recorder()
        budget = CostBudget()
        client = client_for(shop, session, budget=budget, observer=rec)
        # 25 pages × 52 points = 1300 > the 1000-point bucket: the budget must pace the rest.
        results = await asyncio.gather(*(client.execute(PAGE, {"first": 50}) for _ in range(25)))
        assert all(len(r.data["orders"]["edges"]) == 50 for r in results)
        assert shop.counters.throttled == 0 and rec.throttled == 0
        assert rec.outcomes == ["ok"] * 25
        snap = budget.snapshot()
        assert snap.requests == 25 and snap.points_spent == 25 * 52
        assert (snap.capacity, snap.restore_rate) == (1000.0, 2000.0)


async def test_injected_faults_are_each_retried_once(session):
    faults = FaultConfig(
        http_500=0.1, http_503=0.1, drop_connection=0.1, truncated_body=0.1, malformed_body=0.05, seed=11
    )
    async with run_simulator(sim_config(faults=faults)) as sim:
        shop = sim.shop()
        rec = Recorder()
        sleeps: list[float] = []
        client = client_for(shop, session, observer=rec, sleeps=sleeps)
        for _ in range(30):
            response = await client.execute(PAGE, {"first": 5})
            assert len(response.data["orders"]["edges"]) == 5
        injected = sum(shop.faults.injected.values())
        assert injected > 0
        assert len(rec.retries) == injected == len(sleeps)
        assert set(rec.retries) <= {"http_500", "http_503", "connection", "bad_body"}
        assert rec.outcomes.count("ok") == 30


async def test_two_budgets_on_one_app_bucket_recover_from_throttling(session):
    # Two clients with separate budgets but the same app token over-draw one bucket: Shopify
    # (here the simulator) answers THROTTLED and both clients wait and resend until done. Each
    # budget sends its twelve pages (624 points) at once; together they ask 1,248 of a bucket of
    # 1,000 that restores 100 a second, so the bucket is over-drawn unless answering them took
    # 2.5 s (at 1,000 a second, a busy machine's 0.25 s was enough to hide it).
    async with run_simulator(sim_config(maximum_available=1000.0, restore_rate=100.0)) as sim:
        shop = sim.shop()
        rec = Recorder()
        a = client_for(shop, session, observer=rec)
        b = client_for(shop, session, observer=rec)
        results = await asyncio.gather(*(c.execute(PAGE, {"first": 50}) for c in [a, b] * 12))
        assert len(results) == 24 and all(r.data for r in results)
        assert shop.counters.throttled >= 1
        assert rec.throttled == shop.counters.throttled
        assert sum(r.throttled for r in results) == shop.counters.throttled


@pytest.mark.parametrize(("status", "resource_only"), [(402, False), (423, False), (403, True)])
async def test_shop_statuses_from_the_simulator(session, status, resource_only):
    async with run_simulator(sim_config(status_override=status)) as sim:
        client = client_for(sim.shop(), session)
        with pytest.raises(ShopUnavailableError) as info:
            await client.execute(PAGE, {"first": 5})
        assert info.value.status == status and info.value.resource_only is resource_only


async def test_a_missing_scope_is_named(session):
    async with run_simulator(sim_config()) as sim:
        shop = sim.shop()
        shop.set_scopes(["read_products"])
        client = client_for(shop, session)
        with pytest.raises(ShopUnavailableError) as info:
            await client.execute(PAGE, {"first": 5})
        assert info.value.resource_only and "read_orders" in info.value.reason


async def test_revoked_client_credentials_token_is_replaced(session):
    async with run_simulator(sim_config()) as sim:
        shop = sim.shop()
        tokens = ClientCredentialsToken(session, shop.token_url, "sim-client-id", "sim-client-secret")
        rec = Recorder()
        client = client_for(shop, session, tokens=tokens, observer=rec)
        await client.execute(PAGE, {"first": 5})
        assert shop.revoke_tokens() == 1
        response = await client.execute(PAGE, {"first": 5})
        assert response.data
        assert rec.outcomes == ["ok", "unauthorized", "ok"]
        assert shop.counters.auth_failures == 1


async def test_max_cost_from_the_simulator(session):
    async with run_simulator(sim_config()) as sim:
        shop = sim.shop()
        budget = CostBudget()
        client = client_for(shop, session, budget=budget)
        with pytest.raises(QueryTooCostlyError) as info:
            await client.execute(TOO_COSTLY)
        assert info.value.cost == 2 + 250 * (1 + 2 + 10) and info.value.max_cost == 1000
        assert shop.counters.max_cost_exceeded == 1
        assert budget.available() == pytest.approx(1000)


async def test_version_fall_forward_is_reported(session, caplog):
    async with run_simulator(sim_config()) as sim:
        rec = Recorder()
        client = client_for(sim.shop(), session, observer=rec, api_version="2024-01")
        with caplog.at_level(logging.WARNING, logger="shopsync.client.graphql"):
            response = await client.execute(PAGE, {"first": 5})
            await client.execute(PAGE, {"first": 5})
        assert response.api_version == "2026-10"
        assert rec.versions == ["2026-10"]
        assert sum("2026-10" in r.getMessage() for r in caplog.records) == 1
