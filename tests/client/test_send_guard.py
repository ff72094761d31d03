"""The client's send guard (how the daemon fences Shopify calls by the shop's lease): awaited
before every request with whether it is a mutation; what it raises stops the call unsent."""

from __future__ import annotations

import random

import pytest

from shopsync.client.auth import StaticToken
from shopsync.client.budget import CostBudget
from shopsync.client.graphql import ShopClient
from shopsync.client.retry import RetryPolicy
from shopsync.client.transport import make_session
from shopsync.errors import LeaseLostError
from shopsync.queries import builder
from shopsync.simulator.config import DataConfig, SimConfig
from shopsync.simulator.server import SimulatedShop, run_simulator

PAGE = "query($first: Int!) { orders(first: $first) { edges { node { id } } } }"


def _client(shop: SimulatedShop, session, guard, budget: CostBudget) -> ShopClient:
    return ShopClient(
        shop=shop.name, api_url=shop.graphql_url, api_version="2026-10", session=session, budget=budget,
        tokens=StaticToken(shop.token), retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.05, rng=random.Random(3)),
        request_timeout=10.0, guard=guard,
    )  # fmt: skip


async def test_the_guard_sees_each_request_and_a_refusal_sends_nothing() -> None:
    calls: list[bool] = []
    refuse = False

    async def guard(mutation: bool) -> None:
        calls.append(mutation)
        if refuse:
            raise LeaseLostError("refused by the test", shop="sim", reason="shopify_call")

    async with run_simulator(SimConfig(data=DataConfig(orders=20, seed=5))) as server:
        shop = server.shop()
        session = make_session(max_connections=4, timeout=10.0)
        budget = CostBudget()
        try:
            client = _client(shop, session, guard, budget)
            await client.execute(PAGE, {"first": 5})
            started = await client.execute(builder.bulk_mutation(), {"query": "{ orders { edges { node { id } } } }"},
                                           idempotent=False)  # fmt: skip
            assert started.data["bulkOperationRunQuery"]["bulkOperation"]["id"]
            assert calls == [False, True] and shop.bulk.stats["CREATED"] == 1
            requests = shop.counters.requests
            refuse = True
            for document, variables in ((PAGE, {"first": 5}), (builder.bulk_mutation(), {"query": "{ orders { edges { node { id } } } }"})):
                with pytest.raises(LeaseLostError):
                    await client.execute(document, variables, idempotent=document == PAGE)
            assert calls == [False, True, False, True]
            assert shop.counters.requests == requests and shop.bulk.stats["CREATED"] == 1
            assert budget.in_flight() == 0  # the refused calls' reservations were given back
        finally:
            await session.close()
