"""Chaos campaign: randomized faults and SIGKILLs against live-changing shops, checked exactly.

``make chaos`` = ``python -m bench.chaos [--quick] [--rounds N] [--seed S] [--verify-every K]``.

Two simulated shops run in this process (``run_simulator``), each with a live mutator (new orders,
updates with same-second bursts, deletions) and a search index lagging longer than the safety
margin, and each synced into its own *lane*: the ``sqlite`` lane writes the SQLite sink in the
state database, the ``jsonl`` lane the JSONL change log (state in SQLite beside it). Each round:

1. picks a lane, a ``[sync] path`` (auto, bulk, paginated) and a random mix of the shop's faults —
   HTTP 5xx, 429, dropped connections, slow answers, truncated and malformed bodies, bulk
   INTERNAL_SERVER_ERROR (with partial data), bulk TIMEOUT, cut result downloads;
2. runs ``python -m shopsync sync`` in a child process that is killed with SIGKILL — at a random
   instant, or at a named crash point (``SHOPSYNC_CRASHPOINT=name:N``,
   :mod:`shopsync.crashpoints`) — or, now and then, allowed to finish.

Every ``--verify-every`` rounds (and at the end) each lane used since its last check is verified:
faults off, mutator paused, the safety margin and the index lag waited out (the child engine uses
the real clock), then **one** clean ``shopsync sync`` must exit 0 and leave the sink equal to the
shop's own truth, record for record, for every resource (deleted records marked deleted); and no
bulk operation may have been started twice for the same window (the simulator's operations
compared with the lane's ``bulk_operations`` table: none unrecorded, none re-exported after it
completed). Any mismatch is printed with its diff and makes the exit code 1.

Deterministic given ``--seed``: the shops, the mutators' choices, the lanes, paths, fault mixes,
kill points and kill instants all come from it. What a kill interrupts still depends on timing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.config import write_shop_config
from shopsync.simulator.config import DataConfig, FaultConfig, MutatorConfig, SimConfig
from shopsync.simulator.server import SimulatedShop, run_simulator
from shopsync.state.jsonl import list_files, read_latest
from tests.support import ALL_RESOURCES, diff_records, sink_rows

TOKEN_ENV = "BENCH_CHAOS_TOKEN"
LANES = ("sqlite", "jsonl")
PATHS = ("auto", "bulk", "paginated")
TIME_SCALE = 10.0
SAFETY_MARGIN_S = 2.0
#: Simulated seconds (÷ TIME_SCALE = 3 s real): longer than the safety margin, so a window can miss
#: a change the index shows late and only the overlap brings it back.
INDEX_LAG = 30.0
#: The default overlap: it also keeps incremental windows long enough for a bulk TIMEOUT to be split.
OVERLAP = "5m"
#: A run that takes longer than this is hung: killed and reported as a failure.
RUN_DEADLINE_S = 180.0

#: Crash points and the hit numbers drawn for them. ``mid_page``/``after_commit`` are reached in
#: every run (locations are always paginated); the bulk ones when a bulk operation runs;
#: ``after_sink_write`` only with a sink apart from the state database (the JSONL lane).
PAGINATED_POINTS = {"mid_page": 8, "after_commit": 8}
BULK_POINTS = {"polling": 4, "mid_download": 3, "mid_bulk_write": 4}
SEPARATE_SINK_POINTS = {"after_sink_write": 8}

FAULT_KINDS = (
    "http_5xx", "http_429", "drop_connection", "slow", "truncated_body", "malformed_body",
    "bulk_internal_error", "bulk_timeout", "download_cut",
)  # fmt: skip


# ---------------------------------------------------------------------------------------------
# Plans (pure: a seeded Random in, a frozen plan out)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class RoundPlan:
    """What one round does; drawn from the campaign's Random before anything runs."""

    number: int
    lane: str
    path: str
    faults: dict[str, Any]
    fault_seed: int
    kill: str  # "crashpoint" | "instant" | "none"
    crashpoint: str | None = None  # "name:N"
    kill_fraction: float | None = None  # of the lane's last complete run time (instant kills)

    def describe(self) -> str:
        if self.kill == "crashpoint":
            return f"crash point {self.crashpoint}"
        if self.kill == "instant":
            return f"SIGKILL at {self.kill_fraction:.2f} of a run"
        return "no kill"


def plan_faults(rng: random.Random) -> dict[str, Any]:
    """A random mix of one to four fault kinds as ``Faults.set`` switches."""
    kinds = rng.sample(FAULT_KINDS, rng.randint(1, 4))
    if "bulk_internal_error" in kinds and "bulk_timeout" in kinds:  # one bulk_fail switch
        kinds.remove(rng.choice(["bulk_internal_error", "bulk_timeout"]))
    s: dict[str, Any] = {}
    for kind in sorted(kinds):
        if kind == "http_5xx":
            s[rng.choice(["http_500", "http_502", "http_503", "http_504"])] = round(rng.uniform(0.03, 0.15), 3)
            s["retry_after"] = round(rng.uniform(0.05, 0.5), 2)  # 503 sends Retry-After too
        elif kind == "http_429":
            s["http_429"] = round(rng.uniform(0.03, 0.12), 3)
            s["retry_after"] = round(rng.uniform(0.05, 0.5), 2)
        elif kind == "slow":
            s["slow"] = round(rng.uniform(0.05, 0.2), 3)
            s["slow_seconds"] = round(rng.uniform(1.0, 5.0), 1)  # simulated: ÷ time scale
        elif kind in ("drop_connection", "truncated_body", "malformed_body"):
            s[kind] = round(rng.uniform(0.02, 0.1), 3)
        elif kind == "bulk_internal_error":
            s.update(bulk_fail="INTERNAL_SERVER_ERROR", bulk_fail_after=round(rng.uniform(0.2, 0.9), 2),
                     bulk_fail_count=rng.randint(1, 2))  # fmt: skip
        elif kind == "bulk_timeout":
            s.update(bulk_fail="TIMEOUT", bulk_fail_after=round(rng.uniform(0.2, 0.8), 2), bulk_fail_count=1)
        elif kind == "download_cut":
            s.update(download_cut=round(rng.uniform(0.3, 1.0), 2), download_cut_at=round(rng.uniform(0.1, 0.9), 2),
                     download_cut_count=rng.randint(1, 3))  # fmt: skip
    return s


def plan_round(rng: random.Random, number: int, *, lane: str | None = None, kill: str | None = None) -> RoundPlan:
    """One round's plan; ``lane``/``kill`` force a choice (the quick campaign uses them so that
    both lanes and both kinds of kill are always covered)."""
    lane = lane or rng.choice(LANES)
    path = rng.choice(PATHS)
    faults = plan_faults(rng)
    fault_seed = rng.randrange(1 << 31)
    kill = kill or rng.choices(["crashpoint", "instant", "none"], weights=[5, 4, 1])[0]
    if kill == "crashpoint":
        # Unless the path is forced to paginated, the pages of a run are mostly the locations' one.
        points = dict(PAGINATED_POINTS) if path == "paginated" else dict.fromkeys(PAGINATED_POINTS, 2)
        if path != "paginated":
            points.update(BULK_POINTS)
        if lane == "jsonl":
            points.update(SEPARATE_SINK_POINTS)
        name = rng.choice(sorted(points))
        return RoundPlan(number=number, lane=lane, path=path, faults=faults, fault_seed=fault_seed, kill=kill,
                         crashpoint=f"{name}:{rng.randint(1, points[name])}")  # fmt: skip
    if kill == "instant":
        return RoundPlan(number=number, lane=lane, path=path, faults=faults, fault_seed=fault_seed, kill=kill,
                         kill_fraction=round(rng.uniform(0.15, 1.0), 2))  # fmt: skip
    return RoundPlan(number=number, lane=lane, path=path, faults=faults, fault_seed=fault_seed, kill="none")


def describe_faults(switches: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in switches.items()) or "none"


# ---------------------------------------------------------------------------------------------
# Lanes: one shop, one state directory, one sink
# ---------------------------------------------------------------------------------------------
@dataclass
class Lane:
    name: str
    shop: SimulatedShop
    directory: Path
    #: Wall time of the lane's last run that ended on its own (scales the instant kills).
    last_run_s: float | None = None
    rounds_since_check: list[int] = field(default_factory=list)
    checks: int = 0
    #: Every child run: (label, start, end epoch seconds, exit code), to place an operation in time.
    runs: list[tuple[str, float, float, int | None]] = field(default_factory=list)
    #: Bulk-operation problems already reported (each is reported by the first check that sees it).
    reported: set[str] = field(default_factory=set)

    @property
    def db(self) -> Path:
        return self.directory / "state.db"

    @property
    def out(self) -> Path:
        return self.directory / "out"

    def write_config(self, path: str) -> Path:
        sync = {
            "path": path, "safety_margin": f"{SAFETY_MARGIN_S:g}s", "overlap": OVERLAP, "bulk_threshold": 300,
            "bulk_poll_min": "0.05s", "bulk_poll_max": "0.5s", "backoff_base": "0.05s", "backoff_cap": "0.5s",
            "max_attempts": 12,
        }  # fmt: skip
        sink = f"jsonl://{self.out}" if self.name == "jsonl" else None
        return write_shop_config(self.directory / "shopsync.toml", self.shop, database=self.db, token_env=TOKEN_ENV,
                                 sync=sync, sink=sink)  # fmt: skip

    def live_records(self, resource: str) -> dict[str, Any]:
        """The sink's current, not-deleted records of one resource, keyed by id."""
        if self.name == "sqlite":
            return sink_rows(self.db, resource, self.shop.name)
        latest = read_latest(self.out, self.shop.name, resource)
        return {i: orjson.loads(row.data) for i, row in latest.items() if row.deleted_at is None and row.data is not None}

    def deleted_count(self, resource: str) -> int:
        if self.name == "sqlite":
            return len(sink_rows(self.db, resource, self.shop.name, deleted=True))
        return sum(1 for row in read_latest(self.out, self.shop.name, resource).values() if row.deleted_at is not None)

    def sink_size(self) -> int:
        """Rows in the SQLite sink, or lines in the JSONL log (replays included)."""
        if self.name == "jsonl":
            total = 0
            for resource in ALL_RESOURCES:
                for _, path in list_files(self.out / self.shop.name / resource):
                    with open(path, "rb") as fh:
                        total += sum(chunk.count(b"\n") for chunk in iter(lambda fh=fh: fh.read(1 << 20), b""))
            return total
        if not self.db.exists():
            return 0
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            total = 0
            for resource in ALL_RESOURCES:
                try:
                    total += con.execute(f'SELECT count(*) FROM "{resource}"').fetchone()[0]
                except sqlite3.OperationalError:
                    pass  # the table is created with the stream's first write
            return total
        finally:
            con.close()

    def recorded_bulk_operations(self) -> list[dict[str, Any]]:
        if not self.db.exists():
            return []
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        con.row_factory = sqlite3.Row
        try:
            rows = con.execute(
                "SELECT id, resource, window_start, window_end, status, error_code, finished FROM bulk_operations"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()
        return [dict(r) for r in rows]

    def streams_in_flight(self) -> list[str]:
        """Streams whose state holds a window left in flight (a killed run's)."""
        if not self.db.exists():
            return []
        con = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT resource, window_start, window_end, path FROM stream_state WHERE window_end IS NOT NULL"
            ).fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()
        return [f"{r} [{s or 'start'} .. {e}] {p}" for r, s, e, p in rows]


# ---------------------------------------------------------------------------------------------
# Running a child
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True, kw_only=True)
class ChildOutcome:
    returncode: int | None
    seconds: float
    killed_by_us: bool
    hung: bool
    stdout: str
    stderr: str


async def run_child(lane: Lane, config: Path, *, label: str, crashpoint: str | None = None,
                    kill_after: float | None = None, deadline: float = RUN_DEADLINE_S) -> ChildOutcome:  # fmt: skip
    """``python -m shopsync sync`` for one lane, killed with SIGKILL after ``kill_after`` seconds
    if it is still running (or after ``deadline``: then it is reported as hung)."""
    env = {**os.environ, TOKEN_ENV: lane.shop.token}
    env.pop("SHOPSYNC_CRASHPOINT", None)
    if crashpoint:
        env["SHOPSYNC_CRASHPOINT"] = crashpoint
    cmd = [sys.executable, "-m", "shopsync", "sync", "--config", str(config), "--log-format", "json", "--progress", "off"]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        started_at = time.time()
        proc = await asyncio.create_subprocess_exec(*cmd, env=env, stdout=out, stderr=err)
        limit = min(kill_after, deadline) if kill_after is not None else deadline
        killed = hung = False
        try:
            await asyncio.wait_for(proc.wait(), timeout=limit)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            killed = True
            hung = kill_after is None or kill_after >= deadline
        seconds = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        outcome = ChildOutcome(returncode=proc.returncode, seconds=seconds, killed_by_us=killed, hung=hung,
                               stdout=out.read().decode(errors="replace"), stderr=err.read().decode(errors="replace"))  # fmt: skip
    lane.runs.append((label, started_at, time.time(), outcome.returncode))
    # Kept with the work directory (on failure, or with --keep) for the post-mortem.
    logs = lane.directory / "logs"
    logs.mkdir(exist_ok=True)
    (logs / f"{label}.log").write_text(
        f"# exit {outcome.returncode} after {outcome.seconds:.2f} s; crash point {crashpoint}; kill after {kill_after}\n"
        + outcome.stdout + outcome.stderr
    )
    return outcome


def failure_lines(outcome: ChildOutcome) -> list[str]:
    return [line for line in outcome.stderr.splitlines() if line.startswith("FAILED ")]


def log_tail(outcome: ChildOutcome, n: int = 12) -> str:
    lines = [ln for ln in outcome.stderr.splitlines() if ln.strip()]
    return "\n".join("      " + ln[:400] for ln in lines[-n:])


# ---------------------------------------------------------------------------------------------
# Rounds and checks
# ---------------------------------------------------------------------------------------------
@dataclass
class RoundResult:
    plan: RoundPlan
    outcome: str
    ok: bool
    seconds: float
    killed: bool
    fired: dict[str, int]
    sink_records: int
    note: str = ""


@dataclass
class CheckResult:
    lane: str
    rounds: list[int]
    ok: bool
    syncs: int
    seconds: float
    resumed: list[str]
    records: dict[str, int]
    deleted: dict[str, int]
    bulk_at_shop: int
    bulk_recorded: int
    problems: list[str]

    @property
    def caught_up_late(self) -> bool:
        """Equal only after more than one clean sync (allowed by ``--catch-up-runs``)."""
        return self.ok and self.syncs > 1


async def play_round(lane: Lane, plan: RoundPlan) -> RoundResult:
    shop = lane.shop
    shop.faults.reset()
    # The fault seed is recorded in the switches, but the dice keep the stream seeded when the
    # shop was built (FaultConfig(seed=…) there): Faults.set(seed=…) does not reseed them.
    shop.faults.set(seed=plan.fault_seed, **plan.faults)
    before = Counter(shop.faults.injected)
    config = lane.write_config(plan.path)
    kill_after = None
    if plan.kill == "instant":
        kill_after = max(0.3, (plan.kill_fraction or 0.5) * (lane.last_run_s or 3.0))
    try:
        outcome = await run_child(
            lane, config, label=f"round-{plan.number:03d}", crashpoint=plan.crashpoint, kill_after=kill_after
        )
    finally:
        shop.faults.reset()
    fired = dict(Counter(shop.faults.injected) - before)
    killed = outcome.returncode == -9
    failures = failure_lines(outcome)
    ok = True
    note = ""
    if outcome.hung:
        ok, text = False, f"FAIL: hung for {outcome.seconds:.0f} s, killed"
        note = log_tail(outcome)
    elif killed:
        how = "at the crash point" if plan.kill == "crashpoint" and not outcome.killed_by_us else "by SIGKILL"
        text = f"killed {how} after {outcome.seconds:.1f} s"
    elif outcome.returncode == 0:
        text = f"completed in {outcome.seconds:.1f} s" + (" (crash point not reached)" if plan.kill == "crashpoint" else "")
        lane.last_run_s = outcome.seconds
    elif outcome.returncode == 1:
        # A stream that ran out of retries under the injected faults: allowed, as long as the
        # next clean run recovers (the check says).
        text = f"exit 1 after {outcome.seconds:.1f} s: {len(failures)} stream(s) failed"
        note = "\n".join("      " + ln[:300] for ln in failures)
        lane.last_run_s = outcome.seconds
    else:
        ok, text = False, f"FAIL: exit {outcome.returncode} after {outcome.seconds:.1f} s"
        note = log_tail(outcome)
    return RoundResult(plan=plan, outcome=text, ok=ok, seconds=outcome.seconds, killed=killed, fired=fired,
                       sink_records=lane.sink_size(), note=note)  # fmt: skip


def compare_with_truth(lane: Lane) -> tuple[list[str], dict[str, int], dict[str, int]]:
    """Per resource: the diff between the shop's truth and the lane's sink (empty when equal)."""
    problems, records, deleted = [], {}, {}
    for resource in ALL_RESOURCES:
        truth = lane.shop.truth(resource)
        got = lane.live_records(resource)
        records[resource] = len(got)
        deleted[resource] = lane.deleted_count(resource)
        d = diff_records(truth, got)
        if d:
            problems.append(f"{lane.shop.name}/{resource}: {d}{_example(truth, got)}")
    return problems, records, deleted


def _example(truth: dict[str, dict], got: dict[str, Any]) -> str:
    """One concrete difference, with the timestamps that usually explain it."""
    missing = sorted(set(truth) - set(got))
    if missing:
        rec = truth[missing[0]]
        return f"\n        first missing: {missing[0]} updatedAt {rec.get('updatedAt')}"
    changed = sorted(i for i in set(truth) & set(got) if truth[i] != got[i])
    if changed:
        i = changed[0]
        return f"\n        first differing: {i} updatedAt shop {truth[i].get('updatedAt')} vs sink {(got[i] or {}).get('updatedAt')}"
    return ""


def check_bulk_operations(lane: Lane) -> tuple[list[str], int, int]:
    """No bulk operation started twice for the same window: every operation the shop ran is
    recorded in the lane's state, and no recorded window was exported again after an operation
    for it completed. Returns (problems, operations at the shop, operations recorded)."""
    at_shop = {op.gid: op for op in lane.shop.bulk.operations.values()}
    recorded = {row["id"]: row for row in lane.recorded_bulk_operations()}
    problems = []
    unrecorded = sorted(set(at_shop) - set(recorded), key=lambda g: int(g.rsplit("/", 1)[1]))
    for gid in unrecorded:
        op = at_shop[gid]
        query = " ".join(op.query.split())[:160]
        run = next((r for r in lane.runs if r[1] <= op.created_at <= r[2]), None)
        when = f"started during {run[0]}, which exited {run[3]}" if run else "started outside any run"
        problems.append(f"bulk operation {gid} ({op.status}) ran at the shop but is not in the state database; {when} "
                        f"(killed between its start and its record, or a start resent after its answer was lost): {query}")  # fmt: skip
    unknown = sorted(set(recorded) - set(at_shop))
    if unknown:
        problems.append(f"operations recorded but unknown to the shop: {unknown[:5]}")
    windows: dict[tuple[str, str | None, str | None], list[dict]] = {}
    for row in recorded.values():
        windows.setdefault((row["resource"], row["window_start"], row["window_end"]), []).append(row)
    for (resource, start, end), rows in sorted(windows.items(), key=lambda kv: str(kv[0])):
        rows.sort(key=lambda r: int(r["id"].rsplit("/", 1)[1]))
        for row in rows[:-1]:
            op = at_shop.get(row["id"])
            status = op.status if op is not None else row["status"]
            if status not in ("FAILED", "CANCELED", "EXPIRED"):
                later = [r["id"] for r in rows if int(r["id"].rsplit("/", 1)[1]) > int(row["id"].rsplit("/", 1)[1])]
                problems.append(f"{resource} window [{start or 'start'} .. {end}] exported again by {later} after "
                                f"{row['id']} ended {status}{_file_roots(op)}")  # fmt: skip
    return problems, len(at_shop), len(recorded)


def _file_roots(op: Any) -> str:
    """What the simulator's result file of ``op`` holds: root lines against distinct root ids
    (the engine's rootObjectCount guard compares the operation's count with the file)."""
    if op is None or not op.path.exists():
        return ""
    lines, ids = 0, Counter()
    with open(op.path, "rb") as fh:
        for raw in fh:
            row = orjson.loads(raw)
            if "__parentId" not in row:
                lines += 1
                ids[row.get("id")] += 1
    twice = [i for i, n in ids.items() if n > 1]
    return (f"; the shop's file of {op.gid}: rootObjectCount {op.root_object_count}, {lines} root lines, "
            f"{len(ids)} distinct roots" + (f" ({len(twice)} twice, e.g. {twice[0]})" if twice else ""))  # fmt: skip


async def check_lanes(lanes: list[Lane], *, catch_up_runs: int) -> list[CheckResult]:
    """Faults off, mutators paused, time past the safety margin and the index lag, then one clean
    sync per lane (``catch_up_runs`` allows more) and the exact comparison."""
    for lane in lanes:
        lane.shop.faults.reset()
        if lane.shop.mutator is not None:
            lane.shop.mutator.pause()
    # The child engine uses the real clock: wait until every change made before the pause is
    # inside a window (one whole second beyond margin + lag, as window ends are whole seconds).
    await asyncio.sleep(SAFETY_MARGIN_S + INDEX_LAG / TIME_SCALE + 1.5)
    results = []
    for lane in lanes:
        lane.checks += 1
        started = time.perf_counter()
        resumed = lane.streams_in_flight()
        problems: list[str] = []
        records: dict[str, int] = {}
        deleted: dict[str, int] = {}
        syncs = 0
        config = lane.write_config("auto")
        while True:
            syncs += 1
            outcome = await run_child(lane, config, label=f"check-{lane.checks:03d}-sync-{syncs}")
            if outcome.returncode != 0:
                problems = [f"clean sync #{syncs} exited {outcome.returncode}" + (" (hung)" if outcome.hung else "")]
                problems += [ln[:400] for ln in failure_lines(outcome)] or [log_tail(outcome)]
                break
            problems, records, deleted = compare_with_truth(lane)
            if not problems or syncs >= catch_up_runs:
                break
        if problems and resumed and outcome.returncode == 0 and syncs == 1:
            # Tell a clean sync that stopped short of now (it only finished the window a killed run
            # left in flight) from lost data, by what one more sync does.
            extra = await run_child(lane, config, label=f"check-{lane.checks:03d}-extra")
            again = compare_with_truth(lane)[0] if extra.returncode == 0 else [f"exit {extra.returncode}"]
            hint = ("a second clean sync makes the sink equal: the first one only finished the window(s) left "
                    "in flight and stopped short of now") if not again else "a second clean sync does not repair it"
            problems.append(f"({hint}; windows in flight before the clean sync: {'; '.join(resumed)})")
        bulk_problems, at_shop, recorded = check_bulk_operations(lane)
        problems += [p for p in bulk_problems if p not in lane.reported]
        lane.reported.update(bulk_problems)
        results.append(CheckResult(
            lane=lane.name, rounds=list(lane.rounds_since_check), ok=not problems, syncs=syncs,
            seconds=time.perf_counter() - started, resumed=resumed, records=records, deleted=deleted,
            bulk_at_shop=at_shop, bulk_recorded=recorded, problems=problems,
        ))  # fmt: skip
        lane.rounds_since_check.clear()
    for lane in lanes:
        if lane.shop.mutator is not None:
            lane.shop.mutator.resume()
    return results


# ---------------------------------------------------------------------------------------------
# The campaign
# ---------------------------------------------------------------------------------------------
def shop_config(name: str, seed: int, orders: int) -> SimConfig:
    data = DataConfig(
        seed=seed, orders=orders, customers=max(50, orders // 4), products=40, locations=3, collections=8,
        big_orders=1, big_order_line_items=300, tie_groups=1, tie_group_size=min(200, orders // 4),
        anchor=float(int(time.time()) - 300),
    )  # fmt: skip
    # About one new order a second (real time), two updates each, a deletion every ~5 s, and a
    # burst of 60 orders sharing one updatedAt second every 5 s.
    mutator = MutatorConfig(orders_per_day=8_640, update_ratio=2.0, delete_ratio=0.2, burst_every=50.0, burst_size=60)
    return SimConfig(
        shop_name=name, plan="enterprise", time_scale=TIME_SCALE, index_lag=INDEX_LAG, bulk_objects_per_second=1_000.0,
        data=data, mutator=mutator, faults=FaultConfig(seed=seed),
    )  # fmt: skip


def print_round(r: RoundResult, total: int) -> None:
    p = r.plan
    fired = " ".join(f"{k}x{v}" for k, v in sorted(r.fired.items())) or "none"
    print(f"round {p.number:>3}/{total} {p.lane:<6} path={p.path:<9} kill: {p.describe():<28} -> {r.outcome}; "
          f"faults set: {describe_faults(p.faults)}; fired: {fired}; sink {r.sink_records:,} records  "
          f"{'ok' if r.ok else 'FAIL'}", flush=True)  # fmt: skip
    if r.note:
        print(r.note, flush=True)


def print_check(c: CheckResult) -> None:
    rounds = ",".join(map(str, c.rounds)) or "-"
    live = sum(c.records.values())
    gone = sum(c.deleted.values())
    resumed = f", {len(c.resumed)} window(s) left in flight" if c.resumed else ""
    if c.caught_up_late:
        resumed += " (the first one stopped short of now)"
    print(f"check {c.lane:<6} after rounds {rounds}: {c.syncs} clean sync(s) in {c.seconds:.1f} s{resumed}; "
          f"sink {live:,} live records ({c.records.get('orders', 0):,} orders) + {gone:,} marked deleted; "
          f"bulk operations: {c.bulk_at_shop} at the shop, {c.bulk_recorded} recorded  "
          f"{'PASS' if c.ok else 'FAIL'}", flush=True)  # fmt: skip
    for problem in c.problems:
        print(f"    MISMATCH {problem}", flush=True)


async def campaign(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rng = random.Random(args.seed)
    configs = [shop_config(name, args.seed * 10 + i, args.orders) for i, name in enumerate(LANES)]
    async with run_simulator(*configs) as server:
        lanes = {}
        for name in LANES:
            (work / name).mkdir()
            lanes[name] = Lane(name=name, shop=server.shops[name], directory=work / name)
        rounds: list[RoundResult] = []
        checks: list[CheckResult] = []
        for number in range(1, args.rounds + 1):
            forced_lane = forced_kill = None
            if args.quick:  # both lanes and both kinds of kill, whatever the seed
                forced_lane = LANES[(number - 1) % len(LANES)] if number <= len(LANES) else None
                forced_kill = ("crashpoint", "instant")[(number - 1) % 2]
            plan = plan_round(rng, number, lane=forced_lane, kill=forced_kill)
            lane = lanes[plan.lane]
            result = await play_round(lane, plan)
            lane.rounds_since_check.append(number)
            rounds.append(result)
            print_round(result, args.rounds)
            if number % args.verify_every == 0 or number == args.rounds:
                due = [lane for lane in lanes.values() if lane.rounds_since_check]
                for check in await check_lanes(due, catch_up_runs=args.catch_up_runs):
                    checks.append(check)
                    print_check(check)
        mutations = {name: asdict(lane.shop.mutator.counters) for name, lane in lanes.items() if lane.shop.mutator}
    return {"rounds": rounds, "checks": checks, "mutations": mutations}


def summarize(args: argparse.Namespace, out: dict[str, Any], seconds: float) -> tuple[bool, str]:
    rounds: list[RoundResult] = out["rounds"]
    checks: list[CheckResult] = out["checks"]
    kills = [r for r in rounds if r.killed]
    at_points = sum(1 for r in kills if r.plan.kill == "crashpoint")
    fired: Counter[str] = Counter()
    for r in rounds:
        fired.update(r.fired)
    failed_rounds = [r.plan.number for r in rounds if not r.ok]
    failed_checks = [c for c in checks if not c.ok]
    ok = not failed_rounds and not failed_checks
    late = [c for c in checks if c.caught_up_late]
    created = sum(m["created"] for m in out["mutations"].values())
    updated = sum(m["updated"] + m["burst_updates"] for m in out["mutations"].values())
    deleted = sum(m["deleted"] for m in out["mutations"].values())
    print(f"faults fired: {' '.join(f'{k}x{v}' for k, v in sorted(fired.items())) or 'none'}")
    print(f"live changes during the campaign: {created:,} orders created, {updated:,} updates, {deleted:,} deletions")
    line = (
        f"chaos summary: seed={args.seed} rounds={len(rounds)} rounds_failed={len(failed_rounds)} "
        f"kills={len(kills)} (crash points {at_points}, random instants {len(kills) - at_points}) "
        f"checks={len(checks)} checks_failed={len(failed_checks)} late_catch_up={len(late)} seconds={seconds:.0f} "
        f"result={'PASS' if ok else 'FAIL'}"
    )
    print(line)
    if late:
        print(f"NOTE: {len(late)} of {len(checks)} checks needed more than one clean sync: the first sync after a kill "
              "only finished the window the killed run left in flight (strict with --catch-up-runs 1)")  # fmt: skip
    if ok:
        print("all rounds passed: every check found the sinks equal to the shops and no window exported twice")
    else:
        for c in failed_checks:
            print(f"FAILED check of lane {c.lane} after rounds {c.rounds} (seed {args.seed}):")
            for problem in c.problems:
                print(f"    {problem}")
        if failed_rounds:
            print(f"FAILED rounds (seed {args.seed}): {failed_rounds}")
    return ok, line


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="3 short rounds on small shops (well under a minute)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 30; quick 3)")
    parser.add_argument("--seed", type=int, default=1, help="seed of everything random in the campaign (default 1)")
    parser.add_argument("--orders", type=int, default=None, help="orders per shop (default 3,000; quick 400)")
    parser.add_argument("--verify-every", type=int, default=None, help="rounds between checks (default 3; quick: at the end)")
    parser.add_argument(
        "--catch-up-runs", type=int, default=1,
        help="clean syncs allowed per check before the sink must equal the shop (default 1: `shopsync sync` "
             "promises to copy up to now)",
    )  # fmt: skip
    parser.add_argument("--keep", action="store_true", help="keep the work directory (kept anyway on failure)")
    parser.add_argument("--json", type=Path, default=None, help="also write rounds and checks to this file")
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 30)
    args.orders = args.orders or (400 if args.quick else 3_000)
    args.verify_every = args.verify_every or (args.rounds if args.quick else 3)
    work = Path(tempfile.mkdtemp(prefix="shopsync-chaos-"))
    print(f"chaos campaign: seed {args.seed}, {args.rounds} rounds, lanes {', '.join(LANES)}, {args.orders:,} orders "
          f"per shop, time scale {TIME_SCALE:g}, check every {args.verify_every} rounds; work dir {work}", flush=True)  # fmt: skip
    started = time.perf_counter()
    try:
        out = asyncio.run(campaign(args, work))
    except BaseException:
        print(f"campaign aborted; work directory kept: {work}", file=sys.stderr)
        raise
    ok, _ = summarize(args, out, time.perf_counter() - started)
    if args.json:
        doc = {
            "seed": args.seed, "ok": ok,
            "rounds": [{**asdict(r.plan), **{k: v for k, v in asdict(r).items() if k != "plan"}} for r in out["rounds"]],
            "checks": [asdict(c) for c in out["checks"]], "mutations": out["mutations"],
        }  # fmt: skip
        args.json.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    if ok and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work directory kept: {work}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
