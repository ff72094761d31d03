"""Each fault mode, asserted by what the client receives, and whether it cost bucket points."""

from __future__ import annotations

import time

import aiohttp
import orjson
import pytest

from shopsync.errors import ConfigError
from shopsync.simulator.config import FaultConfig
from shopsync.simulator.faults import REQUEST_FAULTS, Faults

PROBE = "{ orders(first: 1) { nodes { id } } }"  # requested 3, actual 3


async def available_after_probe(gql, shop) -> int:
    ans = await gql(shop, PROBE)
    assert ans.status == 200
    return ans.body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"]


@pytest.mark.parametrize(
    ("kind", "status", "body_start"),
    [
        ("http_500", 500, b'{"errors":"Internal Server Error"}'),
        ("http_502", 502, b"<html>"),
        ("http_503", 503, b'{"errors":"Unavailable"}'),
        ("http_504", 504, b"<html>"),
        ("http_429", 429, b'{"errors":"Exceeded'),
    ],
)
async def test_http_error_faults_cost_nothing(server, gql, http, kind: str, status: int, body_start: bytes) -> None:
    shop = server.shop()
    size, _ = shop.config.bucket_limits()
    with shop.faults.override(**{kind: 1.0}, retry_after=2.5):
        async with http.post(shop.graphql_url, json={"query": PROBE}, headers={"X-Shopify-Access-Token": shop.token}) as r:
            assert r.status == status
            assert (await r.read()).startswith(body_start)
            if status in (429, 503):
                assert r.headers["Retry-After"] == "2.5"
    assert shop.counters.faults[kind] == 1
    assert shop.counters.http_status[status] == 1
    # The request never ran: only the probe's own 3 points are gone.
    assert await available_after_probe(gql, shop) == int(size - 3)


async def test_dropped_connection_mid_body_is_charged(server, gql, http) -> None:
    shop = server.shop()
    size, _ = shop.config.bucket_limits()
    with shop.faults.override(drop_connection=1.0):
        with pytest.raises(aiohttp.ClientPayloadError):
            async with http.post(shop.graphql_url, json={"query": PROBE}, headers={"X-Shopify-Access-Token": shop.token}) as r:
                assert r.status == 200  # headers arrived; the body never completes
                await r.read()
    assert shop.counters.faults["drop_connection"] == 1
    # The query ran before the connection dropped, so it was charged like any other.
    assert await available_after_probe(gql, shop) == int(size - 6)


async def test_truncated_body_is_a_complete_http_message_with_cut_json(server, http) -> None:
    shop = server.shop()
    with shop.faults.override(truncated_body=1.0):
        async with http.post(shop.graphql_url, json={"query": PROBE}, headers={"X-Shopify-Access-Token": shop.token}) as r:
            raw = await r.read()
            assert r.status == 200
            assert int(r.headers["Content-Length"]) == len(raw)
    assert raw.startswith(b'{"data":')
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)


async def test_malformed_body_is_not_json(server, http) -> None:
    shop = server.shop()
    with shop.faults.override(malformed_body=1.0):
        async with http.post(shop.graphql_url, json={"query": PROBE}, headers={"X-Shopify-Access-Token": shop.token}) as r:
            assert r.status == 200
            assert r.content_type == "application/json"
            raw = await r.read()
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(raw)


async def test_slow_response_is_delayed_by_slow_seconds_over_time_scale(server, gql) -> None:
    shop = server.shop()
    delay = 0.3
    with shop.faults.override(slow=1.0, slow_seconds=delay * shop.config.time_scale):
        started = time.perf_counter()
        ans = await gql(shop, PROBE)
        took = time.perf_counter() - started
    assert ans.status == 200 and ans.body["data"]["orders"]["nodes"]
    assert took >= delay
    fast_start = time.perf_counter()
    await gql(shop, PROBE)
    assert time.perf_counter() - fast_start < delay


async def test_fault_rate_over_http_matches_the_switch(server, gql) -> None:
    shop = server.shop()
    shop.faults.set(http_503=0.3)
    statuses = [(await gql(shop, PROBE)).status for _ in range(120)]
    shop.faults.reset()
    assert set(statuses) == {200, 503}
    assert 18 <= statuses.count(503) <= 54  # 0.3 × 120 = 36, generous bounds for a fixed seed
    assert shop.counters.faults["http_503"] == statuses.count(503)


# -- the switchboard (pure) ---------------------------------------------------------------------
def test_same_seed_same_fault_sequence() -> None:
    cfg = FaultConfig(http_500=0.1, http_503=0.2, drop_connection=0.1)
    a = Faults(cfg, seed=42)
    b = Faults(cfg, seed=42)
    c = Faults(cfg, seed=43)
    run_a = [getattr(a.roll_request(), "kind", None) for _ in range(500)]
    run_b = [getattr(b.roll_request(), "kind", None) for _ in range(500)]
    run_c = [getattr(c.roll_request(), "kind", None) for _ in range(500)]
    assert run_a == run_b
    assert run_a != run_c
    assert 25 <= run_a.count("http_500") <= 75
    assert 70 <= run_a.count("http_503") <= 130
    assert a.injected["http_503"] == run_a.count("http_503")


def test_every_request_fault_kind_is_reachable() -> None:
    for kind in REQUEST_FAULTS:
        fault = Faults(FaultConfig(**{kind: 1.0}), seed=1).roll_request()
        assert fault is not None and fault.kind == kind
        assert fault.runs_query == (fault.status is None)


def test_override_restores_and_unknown_switch_is_refused() -> None:
    f = Faults(FaultConfig(http_500=0.5), seed=1)
    with f.override(http_500=0.0, http_503=1.0):
        assert f.settings.http_503 == 1.0
    assert f.settings.http_500 == 0.5 and f.settings.http_503 == 0.0
    with pytest.raises(ConfigError, match="http_999"):
        f.set(http_999=1.0)
    with pytest.raises(ConfigError):
        f.set(bulk_fail="NOPE")
    with pytest.raises(ConfigError, match="bulk_order"):
        f.set(bulk_order="backwards")
    f.set(bulk_order="by_id")
    assert f.settings.bulk_order == "by_id" and "bulk_order" in repr(f)
    f.reset()
    assert f.roll_request() is None and f.settings.bulk_order == "sorted"


def test_bulk_failure_budget_lets_a_retry_succeed() -> None:
    f = Faults(FaultConfig(), seed=1)
    f.set(bulk_fail="TIMEOUT", bulk_fail_count=2, bulk_fail_after=0.25)
    first, second, third = (f.take_bulk_failure() for _ in range(3))
    assert first is not None and first.error_code == "TIMEOUT" and first.after == 0.25
    assert second is not None
    assert third is None
    f.set(bulk_fail="INTERNAL_SERVER_ERROR")  # a new kind starts a fresh budget of the same count
    assert [f.take_bulk_failure() is not None for _ in range(3)] == [True, True, False]
    f.set(bulk_fail_count=None)  # no count: every operation fails
    assert all(f.take_bulk_failure() is not None for _ in range(5))


def test_download_cut_only_first_n() -> None:
    f = Faults(FaultConfig(download_cut=1.0, download_cut_count=1, download_cut_at=0.3), seed=1)
    assert f.take_download_cut() == 0.3
    assert f.take_download_cut() is None
    assert f.injected["download_cut"] == 1
