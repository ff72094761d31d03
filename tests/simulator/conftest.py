"""Fixtures shared by the simulator's protocol tests (server, bulk, faults, auth, cost)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from shopsync.simulator.config import SimConfig
from shopsync.simulator.server import SimulatedShop, SimulatorServer, run_simulator
from tests.support import FakeClock, small_config


@dataclass
class Answer:
    status: int
    body: Any
    headers: Any


GqlCall = Callable[..., Awaitable[Answer]]


@pytest.fixture
def make_config() -> Callable[..., SimConfig]:
    """The :func:`small_config` factory (tests import nothing from conftest)."""
    return small_config


@pytest.fixture
def clock() -> FakeClock:
    """A wall clock the test moves by hand (epoch seconds), starting at the current second."""
    return FakeClock(float(int(time.time())))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def server(clock: FakeClock) -> AsyncIterator[SimulatorServer]:
    """One small shop on an ephemeral port, on the fake clock."""
    async with run_simulator(small_config(), clock=clock) as srv:
        yield srv


@pytest.fixture
def gql(http: aiohttp.ClientSession) -> GqlCall:
    """``await gql(shop, query, variables=None, token=<shop token>, url=<shop graphql url>)``."""

    async def call(
        shop: SimulatedShop, query: str, variables: dict | None = None, *, token: str | None = "", url: str | None = None
    ) -> Answer:
        headers = {}
        if token == "":
            token = shop.token
        if token is not None:
            headers["X-Shopify-Access-Token"] = token
        body: dict[str, Any] = {"query": query}
        if variables is not None:
            body["variables"] = variables
        async with http.post(url or shop.graphql_url, json=body, headers=headers) as resp:
            raw = await resp.read()
            try:
                parsed: Any = await resp.json(content_type=None)
            except ValueError:
                parsed = raw
            return Answer(resp.status, parsed, resp.headers)

    return call
