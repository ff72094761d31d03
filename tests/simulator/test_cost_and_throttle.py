"""Cost rules, bucket arithmetic and the exact THROTTLED / MAX_COST_EXCEEDED / extensions.cost shapes."""

from __future__ import annotations

import pytest
from graphql import parse

from shopsync.shopify.bucket import LeakyBucket
from shopsync.shopify.cost import actual_cost, requested_cost
from shopsync.shopify.schema import load_schema
from shopsync.simulator.config import PLANS, SimConfig
from shopsync.simulator.server import run_simulator

THREE_POINT = "{ orders(first: 250) { edges { node { id totalPriceSet { shopMoney { amount } } } } } }"
FOUR_POINT = "{ orders(first: 150) { edges { node { id totalPriceSet { shopMoney { amount } } customer { id } } } } }"


def cost(query: str, variables: dict | None = None) -> int:
    return requested_cost(load_schema(), parse(query), variables)


# -- the calculator on worked examples -------------------------------------------------------
def test_microsoft_connector_worked_examples() -> None:
    assert cost(THREE_POINT) == 752  # 2 + 250 × 3
    assert cost(FOUR_POINT) == 602  # 2 + 150 × 4


def test_nested_connections_multiply_through_their_parent() -> None:
    inner = "{ orders(first: 10) { nodes { id lineItems(first: 5) { nodes { id } } } } }"
    assert cost(inner) == 2 + 10 * (1 + (2 + 5 * 1))
    # `first` from a variable is costed like a literal.
    q = "query($n: Int!) { orders(first: $n) { nodes { id lineItems(first: 5) { nodes { id } } } } }"
    assert cost(q, {"n": 20}) == 2 + 20 * 8


def test_interface_costs_its_most_expensive_possible_selection() -> None:
    q = '{ node(id: "gid://shopify/Order/1") { id ... on Order { totalPriceSet { shopMoney { amount } } } ... on Product { id } } }'
    # node itself is 1; the Order branch adds totalPriceSet (1) + shopMoney (1); Product adds 0.
    assert cost(q) == 3


def test_mutation_costs_ten() -> None:
    assert cost('mutation { bulkOperationCancel(id: "gid://shopify/BulkOperation/1") { userErrors { message } } }') == 10


def test_actual_cost_counts_only_what_came_back() -> None:
    doc = parse(THREE_POINT)
    data = {"orders": {"edges": [{"node": {"id": "a", "totalPriceSet": {"shopMoney": {"amount": "1"}}}}] * 7}}
    assert actual_cost(load_schema(), doc, data) == 2 + 7 * 3


# -- bucket arithmetic -------------------------------------------------------------------------
def test_bucket_refills_at_restore_rate_up_to_capacity() -> None:
    b = LeakyBucket.full(2000.0, 100.0, now=0.0)
    assert b.try_take(752, now=0.0)
    assert b.level(0.0) == pytest.approx(1248.0)
    assert b.level(2.0) == pytest.approx(1448.0)  # +100/s
    assert b.level(100.0) == 2000.0  # never above capacity
    assert not b.try_take(1500, now=2.0)  # not enough: nothing taken
    assert b.level(2.0) == pytest.approx(1448.0)
    assert b.wait_time(1500, now=2.0) == pytest.approx(0.52)


def test_refund_of_requested_minus_actual() -> None:
    b = LeakyBucket.full(1000.0, 50.0, now=10.0)
    b.try_take(752, now=10.0)
    b.give_back(752 - 92, now=10.0)
    assert b.level(10.0) == pytest.approx(1000 - 92)
    b.give_back(10_000, now=10.0)
    assert b.level(10.0) == 1000.0  # a refund never overfills


def test_plan_limits_and_time_scale() -> None:
    assert SimConfig(plan="standard").bucket_limits() == (2000.0, 100.0)
    assert SimConfig(plan="plus").bucket_limits() == PLANS["plus"]
    assert SimConfig(plan="advanced", time_scale=10).bucket_limits() == (4000.0, 2000.0)


# -- over HTTP ---------------------------------------------------------------------------------
async def test_success_carries_shopify_cost_extension(server, gql, clock) -> None:
    shop = server.shop()
    ans = await gql(shop, THREE_POINT)
    assert ans.status == 200
    assert "errors" not in ans.body
    n = len(ans.body["data"]["orders"]["edges"])
    assert n > 0
    actual = 2 + 3 * n
    size, rate = shop.config.bucket_limits()
    assert ans.body["extensions"] == {
        "cost": {
            "requestedQueryCost": 752,
            "actualQueryCost": actual,
            "throttleStatus": {"maximumAvailable": size, "currentlyAvailable": int(size - actual), "restoreRate": rate},
        }
    }
    status = ans.body["extensions"]["cost"]["throttleStatus"]
    assert isinstance(status["maximumAvailable"], float) and isinstance(status["restoreRate"], float)
    assert shop.counters.points_requested == 752 and shop.counters.points_spent == actual


async def test_a_node_drain_without_typename_is_charged_what_it_returned(server, gql) -> None:
    """``node(id:)`` with only an inline fragment (how the engine drains nested connections):
    requested is the static worst case, actual counts the line items of the Order returned."""
    shop = server.shop()
    page = await gql(shop, "{ orders(first: 3) { nodes { id lineItems(first: 250) { nodes { id } } } } }")
    order = min(page.body["data"]["orders"]["nodes"], key=lambda o: len(o["lineItems"]["nodes"]))
    drain = "query($id: ID!) { node(id: $id) { ... on Order { lineItems(first: 250) { nodes { id } } } } }"
    spent_before = shop.counters.points_spent
    ans = await gql(shop, drain, {"id": order["id"]})
    returned = len(ans.body["data"]["node"]["lineItems"]["nodes"])
    assert returned == len(order["lineItems"]["nodes"]) < 250
    assert ans.body["extensions"]["cost"]["requestedQueryCost"] == 1 + 2 + 250
    assert ans.body["extensions"]["cost"]["actualQueryCost"] == 1 + 2 + returned
    assert shop.counters.points_spent - spent_before == 1 + 2 + returned


async def test_throttled_shape_then_refill(gql, clock, make_config) -> None:
    cfg = make_config(maximum_available=800.0, restore_rate=100.0, time_scale=1.0)
    async with run_simulator(cfg, clock=clock) as srv:
        shop = srv.shop()
        first = await gql(shop, THREE_POINT)
        left = first.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        assert left == 800 - first.body["extensions"]["cost"]["actualQueryCost"]
        assert left < 752

        ans = await gql(shop, THREE_POINT)
        assert ans.status == 200
        assert ans.body == {
            "errors": [
                {
                    "message": "Throttled",
                    "extensions": {"code": "THROTTLED", "documentation": "https://shopify.dev/api/usage/rate-limits"},
                }
            ],
            "extensions": {
                "cost": {
                    "requestedQueryCost": 752,
                    "actualQueryCost": None,
                    "throttleStatus": {"maximumAvailable": 800.0, "currentlyAvailable": left, "restoreRate": 100.0},
                }
            },
        }
        assert shop.counters.throttled == 1
        # A throttled request took nothing: the wait the facts prescribe is exactly enough.
        clock.advance((752 - left) / 100.0)
        again = await gql(shop, THREE_POINT)
        assert "errors" not in again.body and again.body["data"]["orders"]["edges"]


async def test_max_cost_exceeded_shape_and_nothing_charged(server, gql) -> None:
    shop = server.shop()
    q = "{ orders(first: 250) { nodes { id totalPriceSet { shopMoney { amount } } customer { id } } } }"
    ans = await gql(shop, q)
    assert ans.status == 200
    assert ans.body == {
        "errors": [
            {
                "message": "Query cost is 1002, which exceeds the single query max cost limit (1000).",
                "extensions": {"code": "MAX_COST_EXCEEDED", "cost": 1002, "maxCost": 1000},
            }
        ]
    }
    assert shop.counters.max_cost_exceeded == 1
    probe = await gql(shop, "{ orders(first: 1) { nodes { id } } }")
    size, _ = shop.config.bucket_limits()
    # Only the probe itself (actual 3) left the bucket: the over-cap query cost nothing.
    assert probe.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == int(size - 3)


async def test_mutation_is_charged_ten(server, gql) -> None:
    shop = server.shop()
    ans = await gql(shop, 'mutation { bulkOperationCancel(id: "gid://shopify/BulkOperation/999") { userErrors { message } } }')
    assert ans.body["extensions"]["cost"]["requestedQueryCost"] == 10
    assert ans.body["extensions"]["cost"]["actualQueryCost"] == 10


async def test_one_bucket_per_app_and_shop(gql, clock, http, make_config) -> None:
    cfg = make_config(access_tokens=("app-a", "app-b"), maximum_available=800.0, time_scale=1.0)
    other = make_config(shop_name="other", access_tokens=("app-a",), maximum_available=800.0, time_scale=1.0)
    async with run_simulator(cfg, other, clock=clock) as srv:
        shop = srv.shop()
        a1 = await gql(shop, THREE_POINT, token="app-a")
        a_left = a1.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]
        b1 = await gql(shop, "{ orders(first: 1) { nodes { id } } }", token="app-b")
        assert b1.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 800 - 3
        o1 = await gql(srv.shops["other"], "{ orders(first: 1) { nodes { id } } }", token="app-a")
        assert o1.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 800 - 3
        a2 = await gql(shop, "{ orders(first: 1) { nodes { id } } }", token="app-a")
        assert a2.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == a_left - 3

        # Tokens issued to one client id share that app's bucket across refreshes.
        tokens = []
        for _ in range(2):
            async with http.post(shop.token_url, data={"grant_type": "client_credentials", "client_id": "sim-client-id", "client_secret": "sim-client-secret"}) as r:
                tokens.append((await r.json())["access_token"])
        c1 = await gql(shop, "{ orders(first: 1) { nodes { id } } }", token=tokens[0])
        c2 = await gql(shop, "{ orders(first: 1) { nodes { id } } }", token=tokens[1])
        assert c1.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 797
        assert c2.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 794
