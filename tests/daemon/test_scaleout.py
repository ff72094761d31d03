"""Several ``shopsync run`` processes sharing the shops through one PostgreSQL state database.

The daemons are child processes (so one can be killed with SIGKILL or paused with SIGSTOP); the
simulated shops, with live mutators, run in the test process. Each daemon connects with its own
``application_name``, and an audit trigger on every table a daemon writes (the sink's tables,
``stream_state``, ``bulk_operations``) records, inside the writing transaction, who wrote and the
shop's lease as that transaction saw it. That audit is the log of owners and epochs over time the
tests judge: every write must come from the lease's owner while its lease was live.

Lease times are scaled down (lease 3 s, renewed every 0.75 s); every wait is on a condition with
a bound.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest

from shopsync.simulator.config import MutatorConfig, SimConfig
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state import Record
from shopsync.state.open import open_sink, open_storage
from shopsync.state.postgres import split_schema
from shopsync.timeutil import format_ts, from_epoch, parse_ts
from tests.storage.conftest import pg_url  # noqa: F401 - the fresh-schema fixture
from tests.support import diff_records
from tests.support.daemon import DaemonProcess, get_json, token_env, write_config
from tests.support.simulator import small_config

LEASE, RENEW = 3.0, 0.75
RESOURCES = ("orders", "customers")
#: The tables a daemon writes, each audited.
AUDITED = (*RESOURCES, "stream_state", "bulk_operations")


# -- the audit ---------------------------------------------------------------------------------


def _audit_sql(schema: str) -> str:
    s = f'"{schema}"'
    triggers = "\n".join(
        f'CREATE TRIGGER "audit_{t}" BEFORE INSERT OR UPDATE ON {s}."{t}" FOR EACH ROW EXECUTE FUNCTION {s}.audit_write();'
        for t in AUDITED
    )
    return f"""
CREATE TABLE {s}.audit (
    n BIGSERIAL PRIMARY KEY, tbl TEXT, shop TEXT, writer TEXT, owner TEXT, epoch BIGINT,
    expires_at TIMESTAMPTZ, at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE FUNCTION {s}.audit_write() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {s}.audit (tbl, shop, writer, owner, epoch, expires_at)
    SELECT TG_TABLE_NAME, NEW.shop, current_setting('application_name'), l.owner, l.epoch, l.expires_at
    FROM (SELECT 1) AS one LEFT JOIN {s}.leases AS l ON l.shop = NEW.shop;
    RETURN NEW;
END $$;
{triggers}
"""


async def _prepare_database(url: str) -> None:
    """The state schema and the sink's tables created (as a daemon would), then audited."""
    storage = await open_storage(url)
    try:
        sink = storage.sink
        assert hasattr(sink, "prepare")
        await sink.prepare([Record(shop="-", resource=r, id="-", updated_at=None, data={"id": "-"}) for r in RESOURCES], [])
    finally:
        await storage.close()
    conn = await _connect(url)
    try:
        await conn.execute(_audit_sql(split_schema(url)[1]))
    finally:
        await conn.close()


async def _connect(url: str) -> asyncpg.Connection:
    dsn, _ = split_schema(url)
    return await asyncpg.connect(dsn, timeout=10)


async def _fetch(url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    """The rows of ``sql`` (``{s}``: the test's quoted schema) on a connection of its own."""
    conn = await _connect(url)
    try:
        return await conn.fetch(sql.replace("{s}", f'"{split_schema(url)[1]}"'), *args)
    finally:
        await conn.close()


@dataclass(frozen=True)
class Write:
    tbl: str
    shop: str
    writer: str
    owner: str | None
    epoch: int | None
    live: bool
    at: float


async def _audit(url: str) -> list[Write]:
    rows = await _fetch(
        url,
        "SELECT tbl, shop, writer, owner, epoch, coalesce(expires_at > at, false) AS live,"
        " extract(epoch FROM at)::float8 AS at FROM {s}.audit ORDER BY n",
    )
    return [Write(**dict(r)) for r in rows]


def _check_exclusive(writes: list[Write]) -> dict[str, list[tuple[int, str]]]:
    """Every write by the shop's live lease owner; per shop, epochs only ever rise and each epoch
    has one writer. Returns per shop the (epoch, owner) sequence."""
    assert writes, "the daemons wrote nothing"
    strays = [w for w in writes if w.writer != w.owner or not w.live]
    assert not strays, f"{len(strays)} writes not by the live lease owner, e.g. {strays[:3]}"
    history: dict[str, list[tuple[int, str]]] = {}
    for w in writes:
        assert w.epoch is not None
        seq = history.setdefault(w.shop, [])
        if not seq or seq[-1] != (w.epoch, w.writer):
            assert not seq or w.epoch > seq[-1][0], f"{w.shop}: epoch {w.epoch} by {w.writer} after {seq[-1]}"
            seq.append((w.epoch, w.writer))
    return history


# -- the leases as the database has them ---------------------------------------------------------


async def _leases(url: str) -> dict[str, tuple[str | None, int, bool]]:
    """shop → (owner, epoch, live)."""
    rows = await _fetch(url, "SELECT shop, owner, epoch, expires_at > clock_timestamp() AS live FROM {s}.leases")
    return {r["shop"]: (r["owner"], r["epoch"], r["live"]) for r in rows}


async def _streams_done(url: str, shops: list[str]) -> set[str]:
    """The shops every resource of which has synced at least once."""
    rows = await _fetch(url, "SELECT shop, resource FROM {s}.stream_state WHERE last_success_at IS NOT NULL")
    done = Counter(r["shop"] for r in rows if r["resource"] in RESOURCES)
    return {s for s in shops if done[s] >= len(RESOURCES)}


async def _behind(url: str, shops: list[str], ts: str) -> list[str]:
    """The streams (``shop/resource`` with their watermark) of ``shops`` whose watermark is before ``ts``."""
    rows = await _fetch(url, "SELECT shop, resource, watermark FROM {s}.stream_state")
    marks = {(r["shop"], r["resource"]): r["watermark"] for r in rows}
    return [
        f"{s}/{r} at {marks.get((s, r))}"
        for s in shops for r in RESOURCES
        if marks.get((s, r)) is None or parse_ts(marks[(s, r)]) < parse_ts(ts)
    ]  # fmt: skip


async def until(what: str, check: Callable[[], Awaitable[Any]], *, within: float, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {what} (last: {value!r})")
        await asyncio.sleep(every)


async def _sink_differences(url: str, shops: list[SimulatedShop]) -> list[str]:
    sink = await open_sink(url)
    try:
        problems = []
        for shop in shops:
            for resource in RESOURCES:
                live = {
                    i: orjson.loads(row.data)
                    for i, row in (await sink.read_latest(shop.name, resource)).items()
                    if row.deleted_at is None and row.data is not None
                }
                truth = shop.truth(resource)
                d = diff_records(truth, live)
                if d:
                    changed = [i for i in truth if i in live and truth[i] != live[i]][:1]
                    detail = {
                        k: (truth[i].get(k), live[i].get(k))
                        for i in changed for k in set(truth[i]) | set(live[i]) if truth[i].get(k) != live[i].get(k)
                    }
                    problems.append(f"{shop.name}/{resource}: {d} {detail}")
        return problems
    finally:
        await sink.close()


# -- the set-up ----------------------------------------------------------------------------------


def _shop_config(name: str, seed: int, *, big: bool = False) -> SimConfig:
    """A small shop with a live mutator; ``big``: 3,000 orders exported slowly (a bulk backfill
    of some 15 s), so an export is running at the moment a test interferes with its daemon."""
    data: dict[str, Any] = {"seed": seed}
    slow: dict[str, Any] = {}
    if big:
        # Its base data ends ten minutes ago: what a run pages after the export is then only the
        # mutator's changes, not the newest base orders at its real-time cost budget.
        data.update(orders=3000, customers=200, anchor=float(int(time.time()) - 600))
        slow = {"bulk_objects_per_second": 800.0, "time_scale": 1.0}
    return small_config(
        shop_name=name,
        data=data,
        index_lag=0.5,
        mutator=MutatorConfig(orders_per_day=3_000, update_ratio=1.0, delete_ratio=0.05),
        **slow,
    )


def _daemon_config(directory: Path, shops: list[SimulatedShop], url: str, daemon_id: str, **sync: Any) -> Path:
    directory.mkdir()
    config = write_config(
        directory / "shopsync.toml",
        shops,
        daemon={"id": daemon_id, "lease": f"{LEASE}s", "lease_renew": f"{RENEW}s", "every": "1s", "jitter": "0.5s"},
        sync={"safety_margin": "1s", **sync},
        shop_keys={s.name: {"resources": list(RESOURCES)} for s in shops},
    )
    # Each daemon's connections carry its id: the audit trigger reads it as the writer. Each has
    # its own work directory, as daemons on separate hosts do: without one, every daemon of every
    # run shares the default (the system's temp directory), and a bulk result file left there by
    # an earlier run's shop of the same name and operation id would be taken for this one's.
    text = re.sub(
        r'(?m)^database = ".*"$',
        f'database = "{url}&application_name={daemon_id}"\nwork_dir = "{directory / "work"}"',
        config.read_text(),
    )
    config.write_text(text)
    return config


@pytest.fixture
async def fleet(tmp_path: Path, pg_url: str) -> AsyncIterator[Callable[..., Awaitable[list[DaemonProcess]]]]:  # noqa: F811
    """``await fleet(shops, n, **sync)``: n daemons on the shops; killed at the end if still running."""
    started: list[DaemonProcess] = []

    async def start(shops: list[SimulatedShop], n: int, **sync: Any) -> list[DaemonProcess]:
        await _prepare_database(pg_url)
        env = token_env(shops[0])
        env.pop("NOTIFY_SOCKET", None)
        for i in range(n):
            config = _daemon_config(tmp_path / f"d{i + 1}", shops, pg_url, f"d{i + 1}", **sync)
            started.append(await DaemonProcess.start(config, env))
        return list(started)

    yield start
    for d in started:
        if d.proc.returncode is None:
            os.kill(d.proc.pid, signal.SIGCONT)
        await d.kill()


def _owners(leases: dict[str, tuple[str | None, int, bool]]) -> Counter[str]:
    return Counter(owner for owner, _, live in leases.values() if live and owner is not None)


# -- the tests -------------------------------------------------------------------------------------


async def test_three_daemons_share_thirty_shops_one_owner_at_a_time_and_survive_a_kill(
    fleet: Callable[..., Awaitable[list[DaemonProcess]]], pg_url: str  # noqa: F811
) -> None:
    """30 shops with live mutators, three daemons: each shop synced by exactly one daemon at any
    instant, split 10 ± 2; one daemon is killed (SIGKILL) while one of its shops is in a bulk
    operation: its shops are taken over within the lease time (plus one renewal period), the
    bulk operation is re-attached (the shop saw no second export of that window), and once the
    mutators stop every sink table equals its shop's truth."""
    names = [f"shop{i:02d}" for i in range(30)]
    # shop00 is larger and exports slowly, so its backfill is a bulk operation that is still
    # running when its owner is killed.
    configs = [_shop_config(n, i + 1, big=n == "shop00") for i, n in enumerate(names)]
    async with run_simulator(*configs) as server:
        shops = [server.shops[n] for n in names]
        daemons = await fleet(shops, 3, bulk_threshold=1000)
        url = pg_url

        async def balanced() -> Counter[str] | None:
            owners = _owners(await _leases(url))
            ok = sum(owners.values()) == 30 and len(owners) == 3 and all(8 <= n <= 12 for n in owners.values())
            return owners if ok else None

        owners = await until("30 shops split 10 ± 2 over three daemons", balanced, within=30)
        await until("every shop but shop00 synced once", lambda: _done_all(url, names[1:]), within=30)
        assert await balanced() == owners, "the split moved although every daemon stayed alive"

        # Kill the owner of shop00 while its bulk export runs.
        bulk = server.shops["shop00"].bulk
        running = [op for op in bulk.operations.values() if op.status in ("CREATED", "RUNNING")]
        assert running, "shop00's backfill export is not running: make it slower"
        victim_id = (await _leases(url))["shop00"][0]
        assert victim_id is not None
        victim = daemons[int(victim_id[1:]) - 1]
        victims_shops = {s for s, (o, _, live) in (await _leases(url)).items() if o == victim_id and live}
        killed_at, killed_wall = time.monotonic(), time.time()
        victim.proc.kill()
        await victim.wait(10)

        async def taken_over() -> bool:
            leases = await _leases(url)
            return all(leases[s][0] not in (None, victim_id) and leases[s][2] for s in victims_shops)

        # Its leases run out at most LEASE after the kill; a survivor claims on its next cycle
        # (RENEW), plus the cycle itself and this poll on a loaded 2-core machine. (How long it
        # takes is measured by the scale-out benchmark; this bound only says "within the lease".)
        try:
            await until("the killed daemon's shops taken over", taken_over, within=LEASE + 2 * RENEW + 3)
        except AssertionError as exc:
            cycles = "\n".join(
                f"{d.argv[-5]}: {r.get('ts')} {r['msg']}" for d in daemons if d is not victim
                for r in [x for x in d.lines if "lease cycle took" in x.get("msg", "") or "acquired" in x.get("msg", "")][-30:]
            )  # fmt: skip, the last 30 of each survivor
            raise AssertionError(f"{exc}; killed at {killed_wall:.3f}; the survivors' cycles:\n{cycles}") from None
        takeover = time.monotonic() - killed_at
        print(f"split {dict(owners)}; {len(victims_shops)} shops of the killed {victim_id} taken over {takeover:.1f}s after the kill")
        survivors = _owners(await _leases(url))
        assert sum(survivors.values()) == 30 and all(n <= 16 for n in survivors.values()), survivors

        # The export is re-attached, not repeated, and the window finishes.
        async def shop00_synced() -> bool:
            return "shop00" in await _streams_done(url, ["shop00"]) and not any(
                op.status in ("CREATED", "RUNNING") for op in bulk.operations.values()
            )

        await until("shop00's export finished and committed", shop00_synced, within=60)
        queries = Counter(op.query for op in bulk.operations.values())
        assert queries[running[0].query] == 1, f"the export of that window was started again: {queries}"

        # Mutators stop; once the daemons catch up, the sinks equal the shops. Caught up: every
        # stream's watermark past the last change. (Not "synced once": a stream's first run may
        # still be paging the changes made during its export, at shop00's real-time cost budget.)
        for shop in shops:
            assert shop.mutator is not None
            shop.mutator.pause()
        last_change = format_ts(from_epoch(math.ceil(max(s.clock() for s in shops))))
        assert sum(s.mutator.counters.created for s in shops if s.mutator) > 30
        lagging: list[str] = []

        async def caught_up() -> bool:
            lagging[:] = await _behind(url, names, last_change)
            return not lagging

        try:
            await until("every stream's watermark past the mutators' last change", caught_up, within=180, every=0.5)
        except AssertionError as exc:
            raise AssertionError(f"{exc}: still behind {last_change}: {lagging[:10]}") from None

        differences: list[str] = []

        async def equal() -> bool:
            differences[:] = await _sink_differences(url, shops)
            return not differences

        try:
            await until("every sink table equal to its shop's truth", equal, within=60, every=0.5)
        except AssertionError as exc:
            bad = sorted({d.split("/", 1)[0] for d in differences})
            said = "\n".join(
                f"{d.argv[-5]}: {orjson.dumps(r).decode()}" for d in daemons for r in d.lines if r.get("shop") in bad
            )[-20000:]  # what each daemon logged of those shops, for the post-mortem
            raise AssertionError(f"{exc}: {differences[:5]}; state: {await _state_rows(url, bad)}; "
                                 f"leases: {[(s, x) for s, x in (await _leases(url)).items() if s in bad]}; "
                                 f"logs:\n{said}") from None

        history = _check_exclusive(await _audit(url))
        moved = [s for s in victims_shops if len({o for _, o in history.get(s, [])}) >= 2]
        assert moved, "no shop of the killed daemon was written by another daemon afterwards"

        # A clean stop releases every lease at once.
        for d in daemons:
            if d is not victim:
                d.send(signal.SIGTERM)
        for d in daemons:
            if d is not victim:
                assert await d.wait(20) == 0, d.output()[-3000:]
        leases = await _leases(url)
        assert all(owner is None and not live for owner, _, live in leases.values()), leases


async def _state_rows(url: str, shops: list[str]) -> list[dict[str, Any]]:
    rows = await _fetch(
        url,
        "SELECT shop, resource, watermark, window_start, window_end, path, bulk_operation_id, last_success_at,"
        " last_error, parked_until FROM {s}.stream_state WHERE shop = ANY($1::text[])",
        shops,
    )
    return [dict(r) for r in rows]


async def _done_all(url: str, names: list[str]) -> bool:
    return len(await _streams_done(url, names)) == len(names)


async def test_a_paused_daemon_is_fenced_out_and_gives_its_shops_up(
    fleet: Callable[..., Awaitable[list[DaemonProcess]]], pg_url: str  # noqa: F811
) -> None:
    """SIGSTOP past the lease: the other daemon takes the shops (new epochs), ending the paused
    one's session if it froze inside a write; on SIGCONT the paused one's writes and runs are
    refused, it gives the shops up, and none of its writes after the takeover is in the database
    (the audit sees only the live owner's)."""
    names = [f"p{i}" for i in range(6)]
    configs = [_shop_config(n, 40 + i, big=n == "p0") for i, n in enumerate(names)]
    async with run_simulator(*configs) as server:
        shops = [server.shops[n] for n in names]
        a, b = await fleet(shops, 2, bulk_threshold=1000)
        url = pg_url
        await until("both daemons hold shops", lambda: _both(url), within=30)
        # Pause the owner of p0 while its slow export runs: its run is in flight, polling.
        bulk = server.shops["p0"].bulk
        await until("p0's export running", lambda: _running(bulk), within=20)
        leases = await _leases(url)
        paused_id = leases["p0"][0]
        assert paused_id is not None
        paused, other = (a, b) if paused_id == "d1" else (b, a)
        other_id = "d2" if paused_id == "d1" else "d1"
        held = {s for s, (o, _, live) in leases.items() if o == paused_id and live}
        epochs = {s: leases[s][1] for s in held}
        exporting = [op for op in bulk.operations.values() if op.status == "RUNNING"]
        mark = len(paused.lines)
        # On waking, its lease loop would find the leases gone at its first renewal and stop the
        # shops, racing its runs: whichever comes first. The runs' refusals are what this test is
        # about, so its loop is held back until they happened: its heartbeat row is locked from
        # just before the pause (its loop then waits at its next heartbeat; nothing else of either
        # daemon touches that row), so its runs' writes and checks are its only way to find out.
        beat = await _lock_heartbeat(url, paused_id)
        try:
            paused.send(signal.SIGSTOP)
            try:
                seen: list[object] = []

                async def taken() -> bool:
                    now = await _leases(url)
                    seen[:] = [now]
                    return all(now[s][0] == other_id and now[s][1] > epochs[s] for s in held)

                try:
                    await until("the paused daemon's shops taken with new epochs", taken, within=LEASE + 2 * RENEW + 3)
                except AssertionError as exc:
                    tail = "\n".join(other.raw[-40:])
                    raise AssertionError(f"{exc}; held by {paused_id} {epochs}; leases {seen}; sessions:\n"
                                         f"{await _sessions(url)}\n{other_id}:\n{tail}") from None
            finally:
                paused.send(signal.SIGCONT)
            # Waking, it finds out from whichever comes first: its in-flight p0 run's write (refused
            # by the fence, or its session ended by the taker and then refused), or a new run's
            # check before calling Shopify; either names the lease that moved on.
            await paused.wait_line(
                lambda r: f"for shop p0 by daemon {paused_id} refused" in r.get("msg", "")
                and f"the lease moved on to {other_id}" in r.get("msg", ""),
                within=15, after=mark,
            )
            # It stops those shops' work and gives them up (each found out by a write or a run refused).
            for shop in held:
                await paused.wait_line(
                    lambda r, shop=shop: "stopping work on shop" in r.get("msg", "") and r.get("shop") == shop,
                    within=15, after=mark,
                )
        finally:
            await beat.close()  # rolls back: the heartbeat goes on
        await until("p0's export finished and committed by the other daemon", lambda: _p0_done(url, bulk), within=60)
        # The export running at the pause was re-attached by the new owner, not started again.
        queries = Counter(op.query for op in bulk.operations.values())
        assert exporting and all(queries[op.query] == 1 for op in exporting), queries
        # The old epochs are dead for good (once back, the daemon may win shops again, at new epochs).
        leases = await _leases(url)
        assert all(leases[s][1] > epochs[s] for s in held), leases
        history = _check_exclusive(await _audit(url))
        # p0 was written by the other daemon after the takeover (the re-attached export), and
        # nothing of the paused daemon at its old epoch came after that.
        after = [(e, o) for e, o in history["p0"] if e > epochs["p0"]]
        assert after and after[0][1] == other_id, history["p0"]
        # Who holds what, as /status and `shopsync status` show it, is what the database says.
        leases = await _leases(url)
        _, doc = await get_json(f"{await other.url()}/status")
        assert doc["daemon"]["id"] == other_id
        shown = {s["name"]: s["lease"] for s in doc["shops"]}
        for shop, (owner, epoch, _) in leases.items():
            if owner == other_id:  # its own leases are current in its view
                assert (shown[shop]["owner"], shown[shop]["epoch"], shown[shop]["mine"]) == (owner, epoch, True), shown[shop]
        command = await DaemonProcess.command(["status", "--json", "--config", str(other.argv[other.argv.index("--config") + 1])],
                                              token_env(shops[0]))  # fmt: skip
        assert await command.wait(30) == 0, command.output()
        printed = orjson.loads(command.output())
        now = await _leases(url)
        for entry in printed["shops"]:
            owner, epoch, _ = now[entry["name"]]
            assert entry["lease"]["owner"] == owner and entry["lease"]["epoch"] == epoch, (entry["name"], entry["lease"], now)
        for d in (a, b):
            d.send(signal.SIGTERM)
        for d in (a, b):
            assert await d.wait(20) == 0, d.output()[-3000:]


async def _lock_heartbeat(url: str, daemon: str) -> asyncpg.Connection:
    """A connection holding ``daemon``'s heartbeat row locked (``FOR UPDATE``) until it is closed."""
    conn = await _connect(url)
    sql = f'SELECT id FROM "{split_schema(url)[1]}".daemons WHERE id = $1 FOR UPDATE NOWAIT'

    async def locked() -> bool:
        await conn.execute("BEGIN")
        try:
            row = await conn.fetchrow(sql, daemon)
        except asyncpg.LockNotAvailableError:  # its heartbeat is being written: a moment later
            await conn.execute("ROLLBACK")
            return False
        assert row is not None, f"daemon {daemon} has no heartbeat row"
        return True

    try:
        await until(f"daemon {daemon}'s heartbeat row locked", locked, within=10, every=0.01)
    except BaseException:
        await conn.close()
        raise
    return conn


async def _sessions(url: str) -> str:
    """The daemons' database sessions: what each runs or waits for, and who blocks it (for a failure)."""
    conn = await _connect(url)
    try:
        rows = await conn.fetch(
            "SELECT pid, application_name AS app, state, wait_event_type AS wtype, wait_event AS wait,"
            " extract(epoch FROM clock_timestamp() - xact_start)::float8 AS xact_s, pg_blocking_pids(pid) AS blocked_by,"
            " left(query, 160) AS query FROM pg_stat_activity"
            " WHERE datname = current_database() AND application_name ~ '^d[0-9]+$' ORDER BY application_name, pid"
        )
    finally:
        await conn.close()
    return "\n".join(str(dict(r)) for r in rows)


async def _both(url: str) -> bool:
    owners = _owners(await _leases(url))
    return len(owners) == 2 and sum(owners.values()) == 6


async def _running(bulk: Any) -> bool:
    return any(op.status == "RUNNING" and op.object_count > 0 for op in bulk.operations.values())


async def _p0_done(url: str, bulk: Any) -> bool:
    return "p0" in await _streams_done(url, ["p0"]) and not any(
        op.status in ("CREATED", "RUNNING") for op in bulk.operations.values()
    )

