"""The daemon warns (log, metric, /status) when its API version nears the end of its support."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest

from shopsync.daemon.app import Daemon
from shopsync.settings import load_settings
from shopsync.simulator.server import run_simulator
from tests.support.daemon import get_json, small_shop, token_env, write_config

pytestmark = pytest.mark.usefixtures("quiet_logs")

CONFIG = """
api_version = "2026-10"
database = "sqlite:///state.db"
[[shop]]
name = "acme"
domain = "acme.myshopify.com"
access_token = { env = "ACME_TOKEN" }
"""


def at(year: int, month: int, day: int) -> float:
    return datetime(year, month, day, tzinfo=UTC).timestamp()


def gauge(daemon: Daemon, name: str) -> float | None:
    return daemon.metrics.registry.get_sample_value(name, {"api_version": "2026-10"})


@pytest.mark.parametrize(("now", "warns"), [(at(2027, 7, 15), True), (at(2027, 1, 1), False)])
def test_warning_within_90_days_of_the_end_of_support(tmp_path, caplog, now, warns):
    path = tmp_path / "shopsync.toml"
    path.write_text(CONFIG)
    daemon = Daemon(load_settings(path, env={"ACME_TOKEN": "t"}), env={}, clock=lambda: now)
    with caplog.at_level(logging.WARNING, logger="shopsync.daemon.app"):
        daemon._warn_api_version()
    assert gauge(daemon, "shopsync_api_version_support_end_timestamp_seconds") == at(2027, 10, 1)
    assert gauge(daemon, "shopsync_api_version_expiring") == (1.0 if warns else 0.0)
    lines = [r.getMessage() for r in caplog.records if "API version 2026-10" in r.getMessage()]
    assert lines == (["API version 2026-10 is supported until 2027-10-01 (78 days left): upgrade api_version "
                      "before then (see `shopsync check --api-version`)"] if warns else [])


async def test_status_shows_the_support_window(tmp_path, start_daemon):
    async with run_simulator(small_shop("sim")) as server:
        shop = server.shop()
        config = write_config(tmp_path / "shopsync.toml", [shop], daemon={"every": "1h"})
        daemon = await start_daemon(config, token_env(shop))
        code, doc = await get_json(f"{daemon.http_url}/status")
        assert code == 200
        support = doc["daemon"]["api_version"]
        assert support["version"] == "2026-10" and support["support_ends"] == "2027-10-01"
        days = (datetime(2027, 10, 1, tzinfo=UTC).date() - datetime.now(UTC).date()).days
        assert support["days_left"] == days
        assert (support["warning"] is not None) == (days <= 90)
