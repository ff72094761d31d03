"""Every scheme of the one registry opens, as a sink and (where it can) as the state database."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shopsync.errors import ConfigError
from shopsync.settings.urls import SCHEMES, StorageScheme, scheme_names
from shopsync.state import Record, StreamState
from shopsync.state.open import make_sink, open_sink, open_storage, read_state

# A URL for each registered scheme; {pg} is the test's PostgreSQL schema. A scheme added to the
# registry without an entry here fails test_every_scheme_has_a_test_url.
URLS = {
    "sqlite": "sqlite:{spelling}.db",
    "jsonl": "jsonl:{spelling}-out",
    "postgresql": "{pg}",
}


def url_for(scheme: StorageScheme, spelling: str, request: pytest.FixtureRequest) -> str:
    url = URLS[scheme.name].format(spelling=spelling, pg="{pg}")
    if "{pg}" in url:
        pg = request.getfixturevalue("pg_url")
        url = spelling + pg[pg.index(":") :]  # the same server, spelt with this alias
    return url


def test_every_scheme_has_a_test_url() -> None:
    assert set(URLS) == {s.name for s in SCHEMES}


@pytest.mark.parametrize(
    ("scheme", "spelling"),
    [(s, n) for s in SCHEMES for n in s.spellings],
    ids=lambda v: v if isinstance(v, str) else v.name,
)
async def test_every_scheme_opens(
    scheme: StorageScheme, spelling: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = url_for(scheme, spelling, request)
    if scheme.sink:
        sink = await open_sink(url, base_dir=tmp_path)
        try:
            await sink.write([Record(shop="acme", resource="orders", id="1", updated_at=None, data={})])
            assert set(await sink.read_latest("acme", "orders")) == {"1"}
        finally:
            await sink.close()
    if scheme.state:
        async with await open_storage(url, base_dir=tmp_path) as storage:
            assert storage.shared_transaction == scheme.sink  # the default sink is the database itself
            await storage.state.save_stream(StreamState(shop="acme", resource="orders"))
        states, bulk = await asyncio.to_thread(read_state, url, tmp_path)  # it runs its own loop
        assert [(s.shop, s.resource) for s in states] == [("acme", "orders")] and bulk == []
    else:
        with pytest.raises(ConfigError, match=rf"unsupported scheme '{spelling}' \(use sqlite: or postgresql:\)"):
            await open_storage(url, base_dir=tmp_path)
        with pytest.raises(ConfigError, match=f"database: unsupported scheme '{spelling}'"):
            read_state(url, tmp_path)


def test_unknown_schemes_name_the_registry() -> None:
    assert scheme_names("sink", aliases=False) == ("sqlite", "jsonl", "postgresql")
    with pytest.raises(ConfigError, match=r"unsupported scheme 's3' \(use sqlite:, jsonl: or postgresql:\)"):
        make_sink("s3://bucket/x")
    with pytest.raises(ConfigError, match="has no scheme"):
        make_sink("out")
