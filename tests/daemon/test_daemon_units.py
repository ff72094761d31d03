"""The daemon's pure parts — schedules, parking, reload plans, heartbeats, the stream view, the
status document, progress — and its deterministic ``run_once`` mode."""

from __future__ import annotations

import argparse
import asyncio
import io
import logging
import random
import sqlite3
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import orjson
import pytest
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from shopsync.commands import status as status_cli
from shopsync.commands.status import format_table, human_duration
from shopsync.daemon.app import Daemon
from shopsync.daemon.health import Heartbeats
from shopsync.daemon.parking import (
    TRANSIENT_RUNS_TO_PARK,
    Park,
    Parking,
    clear_persisted_park,
    persist_park,
)
from shopsync.daemon.reload import plan_reload
from shopsync.daemon.scheduler import (
    ScheduleSpec,
    StreamScheduler,
    crontab_fields,
    diff_specs,
    schedule_specs,
)
from shopsync.daemon.status import BudgetView, LiveView, build_status
from shopsync.daemon.view import StreamView, ViewObserver
from shopsync.errors import (
    ConfigError,
    QueryError,
    ResourceUnavailableError,
    ShopUnavailableError,
    StorageError,
    TransientError,
)
from shopsync.observability.logs import redact, register_secrets
from shopsync.observability.progress import BarDisplay, Progress
from shopsync.settings import load_settings
from shopsync.simulator.server import run_simulator
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.state.open import open_storage
from tests.support.daemon import ALL_RESOURCES, small_shop, token_env, write_config

# -- schedules ------------------------------------------------------------------------------


def _settings(tmp_path: Path, body: str) -> object:
    path = tmp_path / "shopsync.toml"
    path.write_text(f'database = "sqlite:///{tmp_path}/s.db"\n{body}')
    return load_settings(path, env={"T": "shpat_unit_test_token"})


SHOP = '[[shop]]\nname = "{n}"\ndomain = "{n}.myshopify.com"\naccess_token = {{ env = "T" }}\n'
NOW = 1_764_115_200.0  # 2025-11-26T00:00:00Z


def _state(shop: str, resource: str, **kw) -> StreamState:
    return StreamState(shop=shop, resource=resource, **kw)


def test_each_stream_gets_its_shops_schedule_or_the_default(tmp_path):
    settings = _settings(
        tmp_path,
        '[daemon]\nevery = "10m"\njitter = "30s"\n'
        + SHOP.format(n="a") + 'resources = ["orders", "products"]\n'
        + SHOP.format(n="b") + 'resources = ["orders"]\nevery = "2m"\n'
        + SHOP.format(n="c") + 'resources = ["customers"]\ncron = "*/15 * * * *"\n',
    )
    specs = schedule_specs(settings)
    assert set(specs) == {"a/orders", "a/products", "b/orders", "c/customers"}
    assert specs["a/orders"] == ScheduleSpec(shop="a", resource="orders", every=600.0, jitter=30.0)
    assert specs["b/orders"].every == 120.0 and specs["b/orders"].cron is None
    assert specs["c/customers"].cron == "*/15 * * * *" and specs["c/customers"].every is None
    interval = specs["a/orders"].trigger()
    # The phase spreads interval runs; no random delay is added to them (only to cron runs).
    assert isinstance(interval, IntervalTrigger) and interval.interval == timedelta(minutes=10) and interval.jitter is None
    first = interval.get_next_fire_time(None, datetime(2026, 1, 1, tzinfo=UTC))
    assert first is not None and interval.get_next_fire_time(first, first) == first + timedelta(minutes=10)
    cron = specs["c/customers"].trigger()
    assert isinstance(cron, CronTrigger) and cron.jitter == 30.0
    start = datetime(2026, 1, 1, 0, 1, tzinfo=UTC)
    cron.jitter = None
    assert cron.get_next_fire_time(None, start) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)


def test_a_global_cron_applies_to_shops_without_their_own(tmp_path):
    settings = _settings(tmp_path, '[daemon]\ncron = "0 * * * *"\n' + SHOP.format(n="a") + 'resources = ["orders"]\n')
    assert schedule_specs(settings)["a/orders"] == ScheduleSpec(shop="a", resource="orders", cron="0 * * * *", jitter=10.0)


def test_first_runs_spread_over_the_jitter():
    spec = ScheduleSpec(shop="a", resource="orders", every=300.0, jitter=20.0)
    rng = random.Random(1)
    delays = [spec.first_delay(rng) for _ in range(200)]
    assert all(0 <= d <= 20 for d in delays) and max(delays) > 15 and min(delays) < 5
    assert ScheduleSpec(shop="a", resource="o", every=5.0, jitter=60.0).first_delay(rng) <= 5.0
    assert ScheduleSpec(shop="a", resource="o", every=5.0).first_delay(rng) == 0.0


def test_diff_of_two_configurations():
    a = ScheduleSpec(shop="a", resource="orders", every=60.0)
    b = ScheduleSpec(shop="b", resource="orders", every=60.0)
    c = ScheduleSpec(shop="c", resource="orders", every=60.0)
    old = {s.job_id: s for s in (a, b)}
    new = {s.job_id: s for s in (ScheduleSpec(shop="a", resource="orders", every=120.0), c)}
    d = diff_specs(old, new)
    assert (d.added, d.removed, d.changed) == (("c/orders",), ("b/orders",), ("a/orders",))
    assert not diff_specs(old, dict(old))


@pytest.mark.parametrize(
    ("expr", "dow"),
    [
        ("0 3 * * 0", "sun"),
        ("0 3 * * 7", "sun"),
        ("0 3 * * 1-5", "mon,tue,wed,thu,fri"),
        ("0 3 * * 5-7", "sun,fri,sat"),
        ("0 3 * * 0,6", "sun,sat"),
        ("0 3 * * */2", "sun,tue,thu,sat"),
        ("0 3 * * mon-fri", "mon-fri"),
        ("0 3 * * *", "*"),
    ],
)
def test_crontab_weekdays_count_from_sunday(expr, dow):
    # APScheduler 3 counts weekdays from Monday; crontab from Sunday. "0" must mean Sunday.
    assert crontab_fields(expr)[4] == dow
    trigger = ScheduleSpec(shop="a", resource="o", cron=expr).trigger()
    fire = trigger.get_next_fire_time(None, datetime(2026, 11, 23, 12, tzinfo=UTC))  # a Monday
    crontab_day = (fire.weekday() + 1) % 7  # Sunday = 0
    assert _days(expr) is None or crontab_day in _days(expr)


def _days(expr: str) -> set[int] | None:
    field = expr.split()[4]
    table = {"0": {0}, "7": {0}, "1-5": {1, 2, 3, 4, 5}, "5-7": {5, 6, 0}, "0,6": {0, 6}, "*/2": {0, 2, 4, 6}}
    return table.get(field)


def test_malformed_crontab_is_refused():
    for bad in ("* * * *", "0 3 * * 9", "0 3 * * 5-2", "0 3 * * x"):
        with pytest.raises(ValueError):
            crontab_fields(bad)


async def test_a_slow_run_is_never_started_twice_and_missed_runs_coalesce():
    """A job taking 5 intervals runs one instance at a time; its missed runs are skipped, not queued."""
    running = 0
    peak = 0
    started = 0
    finished = asyncio.Event()

    async def slow(shop: str, resource: str) -> None:
        nonlocal running, peak, started
        running += 1
        started += 1
        peak = max(peak, running)
        await asyncio.sleep(0.25)  # the workload: a sync longer than its interval
        running -= 1
        if started >= 2:
            finished.set()

    async def nothing() -> None:
        return None

    scheduler = StreamScheduler(slow, heartbeat=nothing, heartbeat_every=10.0)
    scheduler.start()
    try:
        scheduler.apply({"a/orders": ScheduleSpec(shop="a", resource="orders", every=0.05)})
        async with asyncio.timeout(5):
            await finished.wait()
    finally:
        scheduler.shutdown()
        await asyncio.sleep(0)
    assert peak == 1
    assert scheduler.skipped >= 3
    assert started == 2


async def test_a_run_that_came_due_during_a_slow_run_is_reported_for_a_run_right_after():
    """The scheduler tells ``on_skip`` which stream's run it could not start, so the daemon runs it
    once more as soon as the slow run ends instead of a whole interval later."""
    told: list[tuple[str, str]] = []
    was_told = asyncio.Event()
    release = asyncio.Event()

    async def slow(shop: str, resource: str) -> None:
        await release.wait()

    async def nothing() -> None:
        return None

    def on_skip(shop: str, resource: str) -> None:
        told.append((shop, resource))
        was_told.set()

    scheduler = StreamScheduler(slow, heartbeat=nothing, heartbeat_every=10.0, on_skip=on_skip)
    scheduler.start()
    try:
        scheduler.apply({"a/orders": ScheduleSpec(shop="a", resource="orders", every=0.05)})
        async with asyncio.timeout(5):
            await was_told.wait()
    finally:
        release.set()
        scheduler.shutdown()
        await asyncio.sleep(0)
    assert set(told) == {("a", "orders")}
    assert scheduler.skipped >= len(told)


async def test_next_runs_by_stream_for_the_status_document():
    async def job(shop: str, resource: str) -> None:
        return None

    async def nothing() -> None:
        return None

    scheduler = StreamScheduler(job, heartbeat=nothing, heartbeat_every=10.0)
    scheduler.start()
    try:
        when = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)
        scheduler.apply(
            {
                "a/orders": ScheduleSpec(shop="a", resource="orders", every=600.0),
                "b/products": ScheduleSpec(shop="b", resource="products", every=600.0),
            },
            first_runs={"a/orders": when, "b/products": when + timedelta(minutes=5)},
        )
        assert scheduler.next_runs() == {
            ("a", "orders"): when.timestamp(),
            ("b", "products"): when.timestamp() + 300.0,
        }
    finally:
        scheduler.shutdown()
        await asyncio.sleep(0)


# -- parking ----------------------------------------------------------------------------------


def test_parking_backs_off_exponentially_up_to_the_cap():
    p = Parking(base=300.0, maximum=1000.0)
    now = 1_000_000.0
    durations = []
    for _ in range(5):
        park, new = p.park_shop("a", "HTTP 402: frozen", now)
        assert new
        durations.append(park.until - now)
        assert p.active(("a", "orders"), now + 1) is park
        now = park.until + 1  # retried after the parking ended, and failed again
        assert p.active(("a", "orders"), now) is None
    assert durations == [300.0, 600.0, 1000.0, 1000.0, 1000.0]


def test_streams_failing_in_one_round_share_one_parking_and_success_resets():
    p = Parking(base=60.0, maximum=3600.0)
    first, new = p.park_shop("a", "HTTP 423: locked", 0.0)
    again, new2 = p.park_shop("a", "HTTP 423: locked", 0.5)  # a sibling stream of the same round
    assert new and not new2 and again is first and p.last_duration("a") == 60.0
    stream, _ = p.park_stream(("b", "customers"), "access denied", 0.0)
    assert p.active(("b", "customers"), 1.0) is stream and p.active(("b", "orders"), 1.0) is None
    assert p.was_parked("a")
    p.succeeded(("a", "orders"))
    assert not p.was_parked("a") and p.active(("a", "products"), 1.0) is None
    park, _ = p.park_shop("a", "HTTP 423: locked", 2.0)
    assert park.until == 62.0  # back to the first step


def test_parking_restored_after_a_restart_keeps_its_step():
    p = Parking(base=60.0, maximum=3600.0)
    p.restore(("a", "orders"), Park(reason="x", until=1240.0), parked_at=1000.0)
    assert p.active(("a", "orders"), 1100.0) is not None
    park, _ = p.park_stream(("a", "orders"), "x", 1300.0)
    assert park.until - 1300.0 == 480.0


def _unavailable(status: int, reason: str, *, resource_only: bool = False) -> ShopUnavailableError:
    kind = ResourceUnavailableError if resource_only else ShopUnavailableError
    return kind(f"HTTP {status} from the shop", status=status, reason=reason)


def _transient(reason: str = "http_503") -> TransientError:
    return TransientError("503 Service Unavailable", reason=reason)


def test_which_failures_park_a_shop_and_which_only_a_stream():
    p = Parking(base=60.0, maximum=3600.0)
    frozen = p.failed(("a", "orders"), _unavailable(402, "shop is frozen (402 Payment Required)"), 0.0)
    assert frozen is not None and frozen.whole_shop
    assert frozen.park == Park(reason="HTTP 402: shop is frozen (402 Payment Required)", until=60.0)
    # A sibling failing the same way in the same round adopts that parking: nothing new to announce.
    assert p.failed(("a", "products"), _unavailable(402, "frozen"), 1.0) is None
    assert p.active(("a", "products"), 1.0) is frozen.park
    denied = p.failed(("b", "locations"), _unavailable(403, "missing scope read_locations", resource_only=True), 0.0)
    assert denied is not None and not denied.whole_shop
    assert denied.park == Park(reason="missing scope read_locations", until=60.0)
    assert p.active(("b", "orders"), 1.0) is None and "b" not in p.shops
    # Without a reason, the error's message is the reason.
    bare = p.failed(("c", "orders"), ShopUnavailableError("404 Not Found", status=404, reason=""), 0.0)
    assert bare is not None and bare.park.reason == "HTTP 404: 404 Not Found"
    # Other failures park nothing.
    assert p.failed(("d", "orders"), QueryError("Field 'x' doesn't exist"), 0.0) is None
    assert p.failed(("d", "orders"), None, 0.0) is None
    assert set(p.shop_parks(1.0)) == {"a", "c"} and set(p.stream_parks(1.0)) == {("b", "locations")}


def test_repeated_transient_failures_park_the_shop_and_one_more_reparks_it():
    p = Parking(base=60.0, maximum=3600.0)
    key = ("a", "orders")
    assert TRANSIENT_RUNS_TO_PARK == 3
    assert [p.failed(key, _transient(), 0.0) for _ in range(2)] == [None, None]
    # Counted per stream: a sibling's failure does not complete this stream's count.
    assert p.failed(("a", "products"), _transient(), 0.0) is None
    parked = p.failed(key, _transient(), 0.0)
    assert parked is not None and parked.whole_shop
    assert parked.park == Park(reason="repeated transient errors (http_503)", until=60.0)
    # Once the parking ends, the first transient failure re-parks at once, for twice as long.
    again = p.failed(key, _transient("timeout"), 61.0)
    assert again is not None and again.park == Park(reason="repeated transient errors (timeout)", until=181.0)
    # A success forgets the count and the back-off step.
    p.succeeded(key)
    assert not p.was_parked("a")
    assert [p.failed(key, _transient(), 200.0) for _ in range(2)] == [None, None]
    third = p.failed(key, _transient(), 200.0)
    assert third is not None and third.park.until == 260.0
    # A shop removed from the configuration (and added back) starts counting again.
    q = Parking(base=60.0, maximum=3600.0)
    q.failed(key, _transient(), 0.0)
    q.failed(key, _transient(), 0.0)
    q.forget_shop("a")
    assert q.failed(key, _transient(), 0.0) is None
    # Only runs in a row count: another kind of failure in between starts the count again.
    r = Parking(base=60.0, maximum=3600.0)
    r.failed(key, _transient(), 0.0)
    r.failed(key, _transient(), 0.0)
    assert r.failed(key, QueryError("Field 'x' doesn't exist"), 0.0) is None
    assert [r.failed(key, _transient(), 0.0) for _ in range(2)] == [None, None]
    assert r.failed(key, _transient(), 0.0) is not None


def test_parkings_recorded_by_an_earlier_process_are_restored():
    rows = [
        _state("a", "orders", parked_until="2025-11-26T01:00:00Z", parked_reason="HTTP 402: frozen",
               updated_at="2025-11-26T00:00:00Z"),
        _state("a", "products", parked_until="2025-11-26T00:30:00Z", parked_reason="HTTP 402: frozen",
               updated_at="2025-11-26T00:20:00Z"),
        _state("b", "orders", parked_until="2025-11-26T01:00:00Z", parked_reason="missing scope read_orders"),
        _state("b", "products", parked_until="2025-11-26T01:00:00Z", parked_reason="HTTP 423: locked"),
        _state("c", "orders", parked_until="2025-11-25T23:00:00Z", parked_reason="HTTP 402: frozen"),  # ended
        _state("e", "orders", parked_until="2025-11-26T01:00:00Z", parked_reason="missing scope read_orders"),
        _state("e", "products", watermark="2025-11-25T23:00:00Z"),
    ]
    shops = [("a", ["orders", "products"]), ("b", ["orders", "products"]), ("c", ["orders"]),
             ("e", ["orders", "products"])]
    p = Parking(base=60.0, maximum=3600.0)
    p.restore_all(rows, shops, NOW)
    assert set(p.streams) == {("a", "orders"), ("a", "products"), ("b", "orders"), ("b", "products"), ("e", "orders")}
    # Every stream of "a" parked for one reason: the shop was parked, until its latest stream's end.
    assert p.shops == {"a": Park(reason="HTTP 402: frozen", until=NOW + 3600)}
    assert p.last_duration(("a", "orders")) == 3600.0 and p.last_duration(("a", "products")) == 600.0
    assert p.last_duration(("b", "orders")) is None  # no updated_at: the step is unknown
    # The shop's back-off goes on from its longest stream's step: its next parking lasts twice that.
    assert p.last_duration("a") == 3600.0 and p.was_parked("a")
    assert p.park_shop("a", "HTTP 402: frozen", NOW + 3601)[0].until == NOW + 3601 + 3600
    assert p.active(("c", "orders"), NOW) is None and p.active(("e", "products"), NOW) is None


def test_a_parking_with_an_unreadable_end_is_ignored_with_a_warning(caplog):
    rows = [_state("a", "orders", parked_until="next tuesday", parked_reason="HTTP 423: locked")]
    p = Parking(base=60.0, maximum=3600.0)
    with caplog.at_level(logging.WARNING):
        p.restore_all(rows, [("a", ["orders"])], NOW)
    # Not parked for ever: the stream runs, and parks itself again if the shop still refuses.
    assert p.active(("a", "orders"), NOW) is None and not p.shops
    assert "a/orders: ignoring the parking" in caplog.text and "'next tuesday'" in caplog.text


def test_parked_streams_first_run_when_their_parking_ends():
    p = Parking(base=60.0, maximum=3600.0)
    p.park_shop("a", "HTTP 423: locked", NOW)
    p.park_stream(("b", "locations"), "missing scope read_locations", NOW)
    p.restore(("b", "orders"), Park(reason="until someone acts", until=None), parked_at=None)
    keys = [("a", "orders"), ("a", "products"), ("b", "locations"), ("b", "orders"), ("b", "products")]
    end = datetime(2025, 11, 26, 0, 1, tzinfo=UTC)
    assert p.first_runs(keys, NOW + 1) == {"a/orders": end, "a/products": end, "b/locations": end}
    assert p.first_runs(keys, NOW + 60) == {}


async def test_a_parking_is_recorded_in_the_state_row_once_and_cleared(tmp_path):
    storage = await open_storage(f"sqlite:///{tmp_path / 's.db'}")
    try:
        store = storage.state
        await store.save_stream(_state("a", "orders", watermark="2025-11-25T23:00:00Z"))
        park = Park(reason="HTTP 402: frozen", until=NOW + 300)
        saved = await persist_park(store, ("a", "orders"), park, NOW)
        assert saved is not None and saved.parked_until == "2025-11-26T00:05:00Z"
        assert saved.parked_reason == "HTTP 402: frozen" and saved.watermark == "2025-11-25T23:00:00Z"
        assert await store.get_stream("a", "orders") == saved
        assert await persist_park(store, ("a", "orders"), park, NOW + 1) is None  # already recorded
        # A stream that never synced gets a row of its own.
        fresh = await persist_park(store, ("a", "products"), park, NOW)
        assert fresh is not None and await store.get_stream("a", "products") == fresh
        cleared = await clear_persisted_park(store, ("a", "orders"), NOW + 400)
        assert cleared is not None and cleared.parked_reason is None and cleared.parked_until is None
        assert await store.get_stream("a", "orders") == cleared
        assert await clear_persisted_park(store, ("a", "orders"), NOW + 401) is None
        assert await clear_persisted_park(store, ("z", "orders"), NOW) is None
    finally:
        await storage.close()


class _BrokenStore:
    """A state store whose every call fails, as a full disk or a lost database connection does."""

    def __getattr__(self, name: str):
        async def fail(*args, **kwargs):
            raise StorageError("state.db: disk I/O error")

        return fail


async def test_a_failing_state_store_costs_the_record_not_the_daemon(caplog):
    with caplog.at_level(logging.ERROR, logger="shopsync.daemon.parking"):
        assert await persist_park(_BrokenStore(), ("a", "orders"), Park(reason="x", until=NOW), NOW) is None
        assert await clear_persisted_park(_BrokenStore(), ("a", "orders"), NOW) is None
    assert [r.getMessage() for r in caplog.records if r.name == "shopsync.daemon.parking"] == [
        "could not record the parking in the state database: state.db: disk I/O error",
        "could not clear the parking in the state database: state.db: disk I/O error",
    ]


def test_register_secrets_covers_tokens_and_database_passwords(tmp_path):
    (tmp_path / "id").write_text("client-id-1234567")
    (tmp_path / "secret").write_text("client-secret-abcdefgh")
    (tmp_path / "secret").chmod(0o600)  # secret files others can read are refused
    path = tmp_path / "shopsync.toml"
    path.write_text(
        'database = "postgresql://sync:pg-password-98765@db.example/shopsync"\n'
        + SHOP.format(n="a")
        + SHOP.format(n="b").replace('access_token = { env = "T" }', 'client_id = { file = "id" }\nclient_secret = { file = "secret" }')
    )
    settings = load_settings(path, env={"T": "shpat_registered_1234"})
    assert register_secrets(settings) == 4
    for secret in ("shpat_registered_1234", "client-secret-abcdefgh", "pg-password-98765", "client-id-1234567"):
        assert redact(f"x {secret} y") == "x *** y"


# -- reload ------------------------------------------------------------------------------------


def test_a_reload_plan_names_added_removed_and_changed_shops(tmp_path):
    old = _settings(tmp_path, SHOP.format(n="a") + SHOP.format(n="b") + 'resources = ["orders"]\n' + SHOP.format(n="c"))
    new = _settings(
        tmp_path,
        '[sync]\nmax_connections = 8\n[daemon]\nlog_level = "debug"\n'
        + SHOP.format(n="a")
        + SHOP.format(n="b") + 'resources = ["orders", "products"]\n'
        + SHOP.format(n="d"),
    )
    plan = plan_reload(old, new)
    assert (plan.added, plan.removed, plan.changed) == (("d",), ("c",), ("b",))
    assert plan.logging_changed and plan.pool_kept == 64
    same = plan_reload(old, old)
    assert (same.added, same.removed, same.changed, same.logging_changed, same.pool_kept) == ((), (), (), False, None)


def test_a_reload_that_only_a_restart_can_apply_is_refused(tmp_path):
    old = _settings(tmp_path, SHOP.format(n="a"))
    changes = {
        "database": replace(old, database=f"sqlite:///{tmp_path}/other.db"),
        "sink.url": replace(old, sink=replace(old.sink, url=f"jsonl:///{tmp_path}/out")),
        "work_dir": replace(old, work_dir=tmp_path / "elsewhere"),
        "daemon.listen": replace(old, daemon=replace(old.daemon, listen_port=9999)),
    }
    for key, new in changes.items():
        with pytest.raises(ConfigError) as caught:
            plan_reload(old, new)
        assert str(caught.value) == f"{new.path}: {key}: changed; restart shopsync to apply this change"
    # Several at once: the first in that order is named.
    both = replace(changes["daemon.listen"], work_dir=tmp_path / "elsewhere")
    with pytest.raises(ConfigError, match=r": work_dir: changed"):
        plan_reload(old, both)


# -- heartbeats ----------------------------------------------------------------------------------


def test_heartbeats_notice_a_stall_and_remember_it_for_a_while():
    h = Heartbeats(stall_after=2.0, now=100.0)
    assert h.beat(101.0) is None and h.beat(103.0) is None  # a gap of exactly stall_after is no stall
    assert h.check(103.5) == (
        True, {"since_heartbeat_seconds": 0.5, "stall_after_seconds": 2.0, "stalled_recently": False}
    )
    # No beat for longer than stall_after: not fresh, though no stall was seen yet.
    fresh, detail = h.check(105.25)
    assert not fresh and detail["since_heartbeat_seconds"] == 2.25 and not detail["stalled_recently"]
    # The loop turns again: the late beat reports the gap, and the stall counts for stall_after.
    assert h.beat(110.0) == 10.0 - 3.0
    assert h.check(110.1) == (
        False, {"since_heartbeat_seconds": 0.1, "stall_after_seconds": 2.0, "stalled_recently": True}
    )
    assert h.beat(112.0) is None and not h.check(112.0)[0]
    assert h.check(112.5)[0]
    h.reset(200.0)
    assert h.check(201.0)[0]


# -- the stream view -----------------------------------------------------------------------------


class _ReadStore:
    """The state store's read calls over lists (``fail``: every read raises)."""

    def __init__(self, states: list[StreamState], ops: list[BulkOperationRecord]) -> None:
        self.states, self.ops, self.fail = states, ops, False

    def _check(self) -> None:
        if self.fail:
            raise StorageError("state.db: database is locked")

    async def list_streams(self) -> list[StreamState]:
        self._check()
        return list(self.states)

    async def get_stream(self, shop: str, resource: str) -> StreamState | None:
        self._check()
        return next((s for s in self.states if s.key == (shop, resource)), None)

    async def list_bulk_operations(self, *, shop=None, resource=None, unfinished_only=False):
        self._check()
        return [o for o in self.ops if shop in (None, o.shop) and resource in (None, o.resource)]


class _Recorder:
    """A metrics observer that records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name: str):
        return lambda *args: self.calls.append((name, *args))


async def test_the_stream_view_reads_the_store_and_follows_engine_events(caplog):
    op = BulkOperationRecord(id="gid://shopify/BulkOperation/1", shop="a", resource="products", status="RUNNING",
                             object_count=5)
    store = _ReadStore(
        [
            _state("a", "orders", watermark="2025-11-25T23:59:00Z", last_success_at="2025-11-25T23:59:30Z"),
            _state("a", "products", last_error="QueryError: boom", bulk_operation_id=op.id),
        ],
        [op],
    )
    view = StreamView()
    await view.refresh(store)
    shops = [("a", ["orders", "products", "customers"])]
    snap = view.snapshot(
        shops,
        syncing={("a", "products")},
        parked_shops={"b": Park(reason="HTTP 402: frozen", until=None)},
        parked_streams={("a", "customers"): Park(reason="missing scope read_customers", until=None)},
    )
    by = {s.resource: s for s in snap.streams}
    assert list(by) == ["orders", "products", "customers"]
    assert by["orders"].watermark == NOW - 60 and by["orders"].last_success == NOW - 30 and not by["orders"].syncing
    assert by["products"].syncing and by["products"].watermark is None
    assert by["customers"].parked_reason == "missing scope read_customers" and by["orders"].parked_reason is None
    assert snap.parked_shops == {"b": "HTTP 402: frozen"}

    metrics = _Recorder()
    observer = ViewObserver(metrics, view, clock=lambda: NOW)
    observer.on_bulk_status("a", "products", "RUNNING", 40)
    doc = view.status(shops=shops, live=LiveView(bulk_progress=view.bulk_progress), now=NOW)
    products = doc["shops"][0]["resources"][1]
    assert products["bulk_operations"][0]["object_count"] == 40  # the live count, not the stored 5
    observer.on_checkpoint("a", "products", "2025-11-25T23:59:50Z")
    observer.on_checkpoint("a", "orders", None)
    assert view.state(("a", "products")).watermark == "2025-11-25T23:59:50Z"
    assert view.state(("a", "products")).last_success_at == "2025-11-26T00:00:00Z"
    assert view.state(("a", "products")).last_error is None
    assert view.state(("a", "orders")).watermark == "2025-11-25T23:59:00Z"  # kept when none is given
    observer.on_bulk_finished("a", "products", "COMPLETED", 3.0, 40)
    observer.on_throttle_status("a", 1000.0, 2000.0, 100.0)  # not the view's business: forwarded
    assert not view.bulk_progress
    assert [c[0] for c in metrics.calls] == [
        "on_bulk_status", "on_checkpoint", "on_checkpoint", "on_bulk_finished", "on_throttle_status"
    ]
    # No catch-all: an event outside the protocols is an AttributeError, not silently dropped.
    assert not hasattr(ViewObserver(metrics, view, clock=lambda: NOW), "on_some_future_hook")

    store.ops = []
    await view.refresh_stream(store, ("a", "products"))
    doc = view.status(shops=shops, live=LiveView(), now=NOW)
    assert doc["shops"][0]["resources"][1]["bulk_operations"] == []

    # A failing read keeps what the view had, with a warning.
    store.fail = True
    with caplog.at_level(logging.WARNING, logger="shopsync.daemon.view"):
        await view.refresh(store)
        await view.refresh_stream(store, ("a", "orders"))
    assert view.state(("a", "orders")) is not None and len(view.states()) == 2
    assert [r.getMessage() for r in caplog.records if r.name == "shopsync.daemon.view"] == [
        "could not refresh the status from the state database: state.db: database is locked",
        "could not refresh the stream's status: state.db: database is locked",
    ]
    view.forget_shop("a")
    assert view.states() == [] and view.state(("a", "orders")) is None


# -- status -----------------------------------------------------------------------------------


def test_status_document_from_state_rows():
    states = [
        _state("acme", "orders", watermark="2025-11-25T23:59:00Z", last_success_at="2025-11-25T23:59:30Z",
               window_start="2025-11-25T23:59:00Z", window_end="2025-11-25T23:59:50Z", path="bulk",
               bulk_operation_id="gid://shopify/BulkOperation/7"),
        _state("acme", "orders@deletions", watermark="2025-11-25T23:59:00Z"),
        _state("acme", "customers", last_error="ShopUnavailableError: X-Shopify-Access-Token: shpat_leaky123",
               last_error_at="2025-11-25T23:58:00Z", parked_until="2025-11-26T01:00:00Z",
               parked_reason="access denied (403 Forbidden): missing scope read_customers"),
        _state("other", "orders", watermark="2025-11-20T00:00:00Z"),
    ]
    ops = [BulkOperationRecord(id="gid://shopify/BulkOperation/7", shop="acme", resource="orders", status="RUNNING",
                               object_count=1234, url="https://signed.example/secret-url")]
    doc = build_status(states=states, bulk_operations=ops, now=NOW, shops=[("acme", ["orders", "customers", "products"])])
    assert doc["generated_at"] == "2025-11-26T00:00:00Z"
    (shop,) = doc["shops"]
    rows = {r["resource"]: r for r in shop["resources"]}
    assert list(rows) == ["orders", "customers", "products"]
    assert rows["orders"]["lag_seconds"] == 60.0 and rows["orders"]["window"]["path"] == "bulk"
    assert rows["orders"]["bulk_operations"][0]["object_count"] == 1234
    assert rows["customers"]["parked"] == {
        "reason": "access denied (403 Forbidden): missing scope read_customers", "until": "2025-11-26T01:00:00Z",
    }
    assert rows["products"]["watermark"] is None and rows["products"]["lag_seconds"] is None
    text = orjson.dumps(doc).decode()
    assert "shpat_leaky123" not in text and "signed.example" not in text  # redacted / never included
    assert doc["summary"] == "1 shop, 0 syncing, max lag 60s"
    table = format_table(doc)
    assert "acme  orders" in table and "1m00s" in table and "bulk RUNNING 1,234 objects" in table
    assert "parked until 2025-11-26T01:00:00Z: access denied" in table
    assert "never synced" in table and table.rstrip().endswith("max lag 60s")


def test_live_view_overrides_parking_and_adds_budgets():
    live = LiveView(
        syncing=frozenset({("acme", "orders")}),
        parked_shops={"acme": Park(reason="HTTP 402: frozen", until=NOW + 300)},
        next_runs={("acme", "orders"): NOW + 60},
    )
    doc = build_status(states=[_state("acme", "orders", watermark="2025-11-25T23:00:00Z")], now=NOW,
                       shops=[("acme", ["orders"])], live=live)
    (shop,) = doc["shops"]
    assert shop["parked"]["reason"] == "HTTP 402: frozen" and shop["resources"][0]["syncing"]
    assert shop["resources"][0]["next_run_at"] == "2025-11-26T00:01:00Z"
    assert doc["summary"] == "1 shop, 1 syncing, max lag n/a, 1 parked"


def test_budget_view_of_a_shops_cost_budget():
    budget = SimpleNamespace(
        snapshot=lambda: SimpleNamespace(capacity=2000.0, restore_rate=100.0, available=1234.56, requests=7,
                                         throttled=1, points_spent=800.0),
        utilisation=lambda: 0.123456,
    )
    assert BudgetView.of(budget) == BudgetView(
        capacity=2000.0, restore_rate=100.0, available=1234.6, utilisation=0.1235, requests=7, throttled=1,
        points_spent=800.0,
    )


def test_human_durations():
    assert [human_duration(s) for s in (None, 5, 65, 3_700, 90_000)] == ["-", "5s", "1m05s", "1h01m", "1d01h"]


async def test_status_command_reads_the_database_while_a_writer_holds_it(tmp_path, capsys):
    """`shopsync status` opens the database read-only and is not blocked by the daemon writing."""
    db = tmp_path / "state.db"
    config = tmp_path / "shopsync.toml"
    config.write_text(f'database = "sqlite:///{db}"\n' + SHOP.format(n="acme") + 'resources = ["orders", "products"]\n')
    storage = await open_storage(f"sqlite:///{db}")
    try:
        await storage.state.save_stream(_state("acme", "orders", watermark="2025-11-25T23:59:00Z",
                                               last_success_at="2025-11-25T23:59:30Z"))
    finally:
        await storage.close()
    writer = sqlite3.connect(db, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE stream_state SET last_error = 'in progress' WHERE resource = 'orders'")
    try:
        # Without the token variable in this shell: status needs no token.
        code = status_cli.run(argparse.Namespace(config=str(config), json=False, shop=None))
        out, err = capsys.readouterr()
        assert code == 0, err
        assert "acme  orders" in out and "2025-11-25T23:59:00Z" in out and "products" in out
        assert "in progress" not in out  # an uncommitted write is not seen
        assert "configuration not fully loaded" in err
        code = status_cli.run(argparse.Namespace(config=str(config), json=True, shop=["acme"]))
        doc = orjson.loads(capsys.readouterr().out)
        assert code == 0 and doc["shops"][0]["resources"][0]["watermark"] == "2025-11-25T23:59:00Z"
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    missing = tmp_path / "nothing.toml"
    missing.write_text(f'database = "sqlite:///{tmp_path}/none.db"\n' + SHOP.format(n="acme"))
    assert status_cli.run(argparse.Namespace(config=str(missing), json=False, shop=None)) == 1
    assert "no state database" in capsys.readouterr().err


# -- progress ---------------------------------------------------------------------------------


def test_progress_bars_and_log_lines():
    t = [100.0]
    p = Progress([("acme", "orders"), ("acme", "products"), ("acme", "customers")], clock=lambda: t[0])
    p.on_bulk_status("acme", "orders", "RUNNING", 4000)
    p.on_records("acme", "products", "paginated", 250)
    t[0] = 102.0
    p.update_rates()
    p.on_records("acme", "products", "paginated", 250)
    t[0] = 104.0
    p.update_rates()
    lines = p.lines(width=120, height=10)
    assert lines[0].startswith("acme/orders ") and "bulk RUNNING 4,000 objects" in lines[0]
    assert "500 records" in lines[1] and "125/s" in lines[1]
    assert lines[2].startswith("acme/customers") and lines[2].endswith("waiting")
    assert lines[-1].startswith("0/3 streams done, 2 running, 1 waiting")
    p.on_checkpoint("acme", "products", "2025-11-26T00:00:00Z")
    p.finish([SimpleNamespace(shop="acme", resource="customers", ok=False, error="QueryError: boom", watermark=None, path=None)])
    lines = p.lines(width=120, height=10)
    assert any("FAILED: QueryError: boom" in line for line in lines)
    assert any("done: 500 records via paginated, up to 2025-11-26T00:00:00Z" in line for line in lines)
    # Many streams on a short terminal: the block is cut with a count of the rest.
    many = Progress([("s", f"r{i}") for i in range(50)], clock=lambda: 0.0)
    cut = many.lines(width=80, height=6)
    assert len(cut) == 6 and cut[-1].startswith("… 45 more; ")

    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("test.progress")
    logger.addHandler(Keep())
    logger.setLevel(logging.INFO)
    logger.propagate = False
    p.on_records("acme", "orders", "bulk", 42)
    assert p.log_lines(logger) == 2  # one moving stream, one summary
    assert records[0].shop == "acme" and records[0].resource == "orders" and "42 records" in records[0].getMessage()
    assert p.log_lines(logger) == 1  # nothing moved: only the summary


def test_bar_display_prints_log_lines_above_the_bars():
    p = Progress([("acme", "orders")], clock=lambda: 0.0)
    out = io.StringIO()
    display = BarDisplay(p, out)
    display.draw()
    display.log_stream.write("a log line\n")
    text = out.getvalue()
    # The block (2 lines) is erased, the log line written, the block drawn again below it.
    assert text.count("\x1b[2F\x1b[J") == 1
    after = text.split("\x1b[2F\x1b[J", 1)[1]
    assert after.startswith("a log line\nacme/orders")


# -- the deterministic test mode ----------------------------------------------------------------


async def test_run_once_mode_parks_a_locked_shop_until_its_backoff_ends(tmp_path):
    """start(schedule=False) + run_once(): the same per-stream path as scheduled runs, no timers.
    A locked shop (423) is parked; run_once skips it until the injected clock passes the parking."""
    offset = [0.0]

    def clock() -> float:
        import time

        return time.time() + offset[0]

    async with run_simulator(small_shop("alpha", data={"orders": 60, "tie_group_size": 10, "big_orders": 0}),
                             small_shop("beta", seed=4, data={"orders": 60, "tie_group_size": 10, "big_orders": 0})) as server:
        alpha, beta = server.shops["alpha"], server.shops["beta"]
        config = write_config(tmp_path / "shopsync.toml", [alpha, beta], daemon={"park_backoff": "5m", "park_backoff_max": "1h"})
        env = token_env(alpha)
        daemon = Daemon(load_settings(config, env=env), env=env, clock=clock)
        await daemon.start(schedule=False)
        try:
            results = await daemon.run_once()
            assert len(results) == 2 * len(ALL_RESOURCES) and all(r.ok for r in results)
            beta.set_status(423)
            results = await daemon.run_once()
            assert {r.shop for r in results if not r.ok} == {"beta"}
            assert "423" in daemon.parking.shops["beta"].reason
            assert daemon.parking.last_duration("beta") == 300.0
            results = await daemon.run_once()
            assert {r.shop for r in results} == {"alpha"}  # beta is skipped while parked
            beta.set_status(None)
            offset[0] = 301.0
            results = await daemon.run_once()
            assert {r.shop for r in results} == {"alpha", "beta"} and all(r.ok for r in results)
            assert "beta" not in daemon.parking.shops
            assert daemon.scheduler is not None and not daemon.scheduler.specs  # nothing armed
        finally:
            await daemon.stop()


def test_a_resource_with_its_own_every_runs_on_it_unless_the_shop_overrides_it(tmp_path):
    # gift_cards' file says every: 1h, the payouts' 6h; orders have none and keep the shop's.
    settings = _settings(
        tmp_path,
        '[daemon]\nevery = "10m"\n'
        + SHOP.format(n="a") + 'resources = ["orders", "gift_cards", "shopify_payments_payouts"]\ncron = "*/5 * * * *"\n'
        + 'resource_every = { shopify_payments_payouts = "30m" }\n',
    )  # fmt: skip
    specs = schedule_specs(settings)
    assert specs["a/orders"].cron == "*/5 * * * *" and specs["a/orders"].every is None
    assert specs["a/gift_cards"] == ScheduleSpec(shop="a", resource="gift_cards", every=3600.0, jitter=10.0)
    assert specs["a/shopify_payments_payouts"].every == 1800.0 and specs["a/shopify_payments_payouts"].cron is None


def test_resource_every_must_name_the_shops_resources(tmp_path):
    with pytest.raises(ConfigError, match=r"shop\[0\] \(a\)\.resource_every\.gift_cards: 'gift_cards' is not one of this shop's resources"):
        _settings(tmp_path, SHOP.format(n="a") + 'resources = ["orders"]\nresource_every = { gift_cards = "2h" }\n')
    with pytest.raises(ConfigError, match=r"resource_every\.orders: must be longer than 0"):
        _settings(tmp_path, SHOP.format(n="a") + 'resources = ["orders"]\nresource_every = { orders = 0 }\n')


def test_interval_streams_run_at_fixed_phases_spread_over_the_interval():
    """1,400 streams every 30 s: their next runs fall evenly over the interval (not within the
    jitter of the daemon's start), each at the same phase whenever its trigger is made."""
    specs = [ScheduleSpec(shop=f"sim{i}", resource=r, every=30.0) for i in range(200) for r in "abcdefg"]
    now = datetime(2026, 12, 4, 12, 0, 0, 500_000, tzinfo=UTC)
    due = [(s.trigger().get_next_fire_time(None, now) - now).total_seconds() for s in specs]
    assert all(0 <= d <= 30 for d in due)
    per_second = Counter(int(d) for d in due)
    assert len(per_second) == 30 and max(per_second.values()) < 3 * len(specs) / 30, per_second
    again = specs[7].trigger().get_next_fire_time(None, now)
    assert again == specs[7].trigger().get_next_fire_time(None, now)
    intervals = ((again - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() - specs[7].phase()) / 30
    assert intervals == pytest.approx(round(intervals), abs=1e-4)


def test_after_a_run_off_its_phase_a_stream_runs_at_its_phase_again():
    """The first run comes at now plus a part of the jitter (a parked stream's retry at its
    parking's end): the runs after it are back at the stream's phase, not that time's."""
    spec = ScheduleSpec(shop="sim7", resource="orders", every=30.0, jitter=5.0)

    def intervals_from_grid(t: datetime) -> float:
        return ((t - datetime(2000, 1, 1, tzinfo=UTC)).total_seconds() - spec.phase()) / 30

    trigger = spec.trigger()
    for off in (datetime(2026, 12, 4, 12, 0, 0, 123_456, tzinfo=UTC), datetime(2026, 12, 4, 12, 0, 17, tzinfo=UTC)):
        assert intervals_from_grid(off) != pytest.approx(round(intervals_from_grid(off)), abs=1e-3)
        # As APScheduler asks after the run at ``off``: when is the next?
        second = trigger.get_next_fire_time(off, off)
        assert second is not None
        assert intervals_from_grid(second) == pytest.approx(round(intervals_from_grid(second)), abs=1e-4)
        assert 15 <= (second - off).total_seconds() <= 45  # never a second run right after the first
        third = trigger.get_next_fire_time(second, second)
        assert third is not None and (third - second).total_seconds() == pytest.approx(30, abs=1e-4)
    # Coalesced after a pause: the run times APScheduler walks to catch up stay on the grid and end.
    first = trigger.get_next_fire_time(None, datetime(2026, 12, 4, 12, 0, tzinfo=UTC))
    assert first is not None
    walked, t = [], first
    while t is not None and t <= first + timedelta(minutes=5):
        walked.append(t)
        t = trigger.get_next_fire_time(t, first + timedelta(minutes=5))
    assert len(walked) == 11 and {round(intervals_from_grid(w), 4) % 1 for w in walked} == {0.0}

