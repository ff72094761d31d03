"""Per-shop, per-resource sync state: the daemon's ``/status`` JSON and ``shopsync status``.

:func:`build_status` is the one builder (pure: state rows, bulk operation rows and "now" in, a JSON-able
dict out). The daemon adds what only it knows (:class:`LiveView`: what is syncing right now, budgets,
next runs, parking decided in memory); ``shopsync status`` reads the state database alone — opened
read-only, so it works while the daemon writes (SQLite WAL readers never block the writer) — and
prints the same rows as a table (or ``--json``).

Nothing here ever holds a token: rows carry names, timestamps, counts and error messages, and the
messages pass through :func:`shopsync.daemon.logs.redact` as a last line of defence.
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import sys
import time
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from shopsync.daemon.logs import redact
from shopsync.daemon.metrics import StateSnapshot, StreamSnapshot, format_status
from shopsync.errors import ConfigError, ShopsyncError, StorageError
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.timeutil import format_ts, from_epoch, parse_ts

#: State rows whose resource contains this are the engine's own bookkeeping (deletion events).
INTERNAL_MARK = "@"

StreamKey = tuple[str, str]


@dataclass(frozen=True, kw_only=True, slots=True)
class Park:
    """A stream or shop held back until ``until`` (epoch seconds; None: until someone acts)."""

    reason: str
    until: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetView:
    """A shop's cost budget as the daemon's client models it."""

    capacity: float
    restore_rate: float
    available: float
    utilisation: float
    requests: int
    throttled: int
    points_spent: float

    @classmethod
    def of(cls, budget: Any) -> BudgetView:
        """The view of a :class:`shopsync.client.budget.CostBudget` now (rounded for display)."""
        snap = budget.snapshot()
        return cls(
            capacity=snap.capacity,
            restore_rate=snap.restore_rate,
            available=round(snap.available, 1),
            utilisation=round(budget.utilisation(), 4),
            requests=snap.requests,
            throttled=snap.throttled,
            points_spent=snap.points_spent,
        )


@dataclass(frozen=True, kw_only=True)
class LiveView:
    """What only the running daemon knows; ``shopsync status`` has none of it."""

    syncing: frozenset[StreamKey] = frozenset()
    next_runs: Mapping[StreamKey, float] = field(default_factory=dict)
    budgets: Mapping[str, BudgetView] = field(default_factory=dict)
    parked_shops: Mapping[str, Park] = field(default_factory=dict)
    parked_streams: Mapping[StreamKey, Park] = field(default_factory=dict)
    #: (status, objectCount) of bulk operations being polled right now.
    bulk_progress: Mapping[StreamKey, tuple[str, int]] = field(default_factory=dict)
    daemon: Mapping[str, Any] = field(default_factory=dict)


def epoch_of(ts: str | None) -> float | None:
    """Epoch seconds of a stored timestamp, or None when it is missing or unreadable."""
    if not ts:
        return None
    try:
        return parse_ts(ts).timestamp()
    except ValueError:
        return None


def _ts(epoch: float | None) -> str | None:
    return format_ts(from_epoch(epoch)) if epoch is not None else None


def persisted_park(state: StreamState | None, now: float) -> Park | None:
    """The parking a state row records, if still in force at ``now``."""
    if state is None or state.parked_reason is None:
        return None
    until = epoch_of(state.parked_until)
    if until is None and state.parked_until:
        # An unreadable end would park the stream for ever; a failing stream parks itself again.
        return None
    if until is not None and until <= now:
        return None
    return Park(reason=state.parked_reason, until=until)


def build_status(
    *,
    states: Iterable[StreamState],
    bulk_operations: Iterable[BulkOperationRecord] = (),
    now: float,
    shops: Sequence[tuple[str, Sequence[str]]] | None = None,
    live: LiveView | None = None,
) -> dict[str, Any]:
    """The status document: ``{"generated_at", "summary", "shops": [{"name", "parked", "budget",
    "resources": [{"resource", "watermark", "lag_seconds", "last_success_at", "last_error", …}]}]}``.

    ``shops`` lists the configured (name, resources) in order; streams of other shops in the
    database are left out. Without it every stream in ``states`` is shown. Parking comes from
    ``live`` when given (the daemon's decisions), else from the rows' ``parked_until``/``parked_reason``.
    """
    by_key = {s.key: s for s in states if INTERNAL_MARK not in s.resource}
    if shops is None:
        names: dict[str, list[str]] = {}
        for shop, resource in sorted(by_key):
            names.setdefault(shop, []).append(resource)
        shops = [(name, resources) for name, resources in names.items()]
    ops: dict[StreamKey, list[BulkOperationRecord]] = {}
    for op in bulk_operations:
        if not op.finished:
            ops.setdefault((op.shop, op.resource), []).append(op)

    snapshot_streams: list[StreamSnapshot] = []
    parked_shops: dict[str, str] = {}
    out_shops = []
    for shop, resources in shops:
        shop_park = live.parked_shops.get(shop) if live is not None else None
        if shop_park is not None:
            parked_shops[shop] = shop_park.reason
        rows = []
        for resource in resources:
            key = (shop, resource)
            state = by_key.get(key)
            park = live.parked_streams.get(key) if live is not None else persisted_park(state, now)
            row = _stream_row(key, state, ops.get(key, []), now, park, live)
            rows.append(row)
            snapshot_streams.append(
                StreamSnapshot(
                    shop=shop,
                    resource=resource,
                    watermark=epoch_of(row["watermark"]),
                    last_success=epoch_of(row["last_success_at"]),
                    syncing=row["syncing"],
                    parked_reason=park.reason if park is not None else None,
                )
            )
        budget = live.budgets.get(shop) if live is not None else None
        out_shops.append(
            {
                "name": shop,
                "parked": _park_json(shop_park),
                "budget": dataclasses.asdict(budget) if budget is not None else None,
                "resources": rows,
            }
        )
    snapshot = StateSnapshot(streams=snapshot_streams, parked_shops=parked_shops)
    doc: dict[str, Any] = {
        "generated_at": _ts(now),
        "summary": format_status(snapshot, now),
        "shops": out_shops,
    }
    if live is not None and live.daemon:
        doc = {"daemon": dict(live.daemon), **doc}
    return doc


def _park_json(park: Park | None) -> dict[str, Any] | None:
    if park is None:
        return None
    return {"reason": redact(park.reason), "until": _ts(park.until)}


def _stream_row(
    key: StreamKey,
    state: StreamState | None,
    ops: list[BulkOperationRecord],
    now: float,
    park: Park | None,
    live: LiveView | None,
) -> dict[str, Any]:
    shop, resource = key
    s = state or StreamState(shop=shop, resource=resource)
    watermark = epoch_of(s.watermark)
    progress = live.bulk_progress.get(key) if live is not None else None
    bulk = []
    for op in ops:
        status, objects = op.status, op.object_count
        if progress is not None and op.id == s.bulk_operation_id:
            status, objects = progress
        bulk.append(
            {
                "id": op.id,
                "status": status,
                "object_count": objects,
                "root_object_count": op.root_object_count,
                "created_at": op.created_at,
                "window_start": op.window_start,
                "window_end": op.window_end,
                "lines_processed": op.lines_processed,
                "records_written": op.records_written,
            }
        )
    next_run = live.next_runs.get(key) if live is not None else None
    return {
        "resource": resource,
        "watermark": s.watermark,
        "lag_seconds": round(max(0.0, now - watermark), 1) if watermark is not None else None,
        "last_success_at": s.last_success_at,
        "last_error": redact(s.last_error) if s.last_error else None,
        "last_error_at": s.last_error_at,
        "syncing": bool(live is not None and key in live.syncing),
        "window": {"start": s.window_start, "end": s.window_end, "path": s.path} if s.window_end else None,
        "next_run_at": _ts(next_run),
        "parked": _park_json(park),
        "bulk_operations": bulk,
    }


# --------------------------------------------------------------------------------------------
# the table


def human_duration(seconds: float | None) -> str:
    """``42s``, ``3m05s``, ``2h10m``, ``3d04h`` (``-`` for None)."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def _state_text(row: Mapping[str, Any], shop_parked: Mapping[str, Any] | None) -> str:
    parked = shop_parked or row["parked"]
    if parked is not None:
        until = f" until {parked['until']}" if parked["until"] else ""
        return f"parked{until}: {parked['reason']}"
    parts = []
    if row["syncing"]:
        parts.append("syncing")
    for op in row["bulk_operations"]:
        parts.append(f"bulk {op['status']} {op['object_count']:,} objects")
    if row["window"] and not row["bulk_operations"]:
        parts.append(f"{row['window']['path']} window to {row['window']['end']} in flight")
    if row["last_error"]:
        parts.append(f"last error {row['last_error_at'] or ''}: {row['last_error']}")
    if not parts:
        parts.append("ok" if row["watermark"] else "never synced")
    return "; ".join(parts)


def format_table(doc: Mapping[str, Any], *, width: int | None = None) -> str:
    """The status document as a fixed-width table, one line per stream, then the summary."""
    header = ("SHOP", "RESOURCE", "WATERMARK", "LAG", "LAST SUCCESS", "STATE")
    lines: list[tuple[str, ...]] = []
    for shop in doc["shops"]:
        for row in shop["resources"]:
            lines.append(
                (
                    shop["name"],
                    row["resource"],
                    row["watermark"] or "-",
                    human_duration(row["lag_seconds"]),
                    row["last_success_at"] or "-",
                    _state_text(row, shop["parked"]),
                )
            )
    widths = [max(len(r[i]) for r in [header, *lines]) for i in range(len(header) - 1)]
    out = []
    for r in [header, *lines]:
        text = "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1]
        if width is not None and len(text) > width:
            text = text[: max(width - 1, 20)] + "…"
        out.append(text.rstrip())
    if not lines:
        out.append("(no streams: nothing configured or synced yet)")
    budget_lines = [
        f"{s['name']}: budget {b['available']:.0f}/{b['capacity']:.0f} points, restore {b['restore_rate']:g}/s, "
        f"{100 * b['utilisation']:.0f}% used, {b['requests']} requests, {b['throttled']} throttled"
        for s in doc["shops"]
        if (b := s.get("budget"))
    ]
    out.extend(budget_lines)
    out.append(doc["summary"])
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------
# reading the state database (``shopsync status``)


@dataclass(frozen=True, kw_only=True)
class StatusSource:
    """What ``shopsync status`` knows from the configuration file."""

    database: str
    base_dir: Path
    #: Configured shops and their resources, in order (None: show whatever the database holds).
    shops: list[tuple[str, list[str]]] | None
    #: Why the configuration could not be fully loaded (shown as a note), if so.
    note: str | None = None


def read_source(config: str | None) -> StatusSource:
    """The database and shops of the configuration file.

    The full loader is tried first (exact shops and resources). If it fails for a reason that does
    not concern the database — typically a token variable not set in the operator's shell — the
    file is read just enough to find ``database`` and the shop names, since status needs no token.
    """
    from shopsync.config import load_settings, resolve_config_path

    try:
        settings = load_settings(config)
        return StatusSource(
            database=settings.database,
            base_dir=settings.config_dir,
            shops=[(s.name, list(s.resources)) for s in settings.shops],
        )
    except ConfigError as exc:
        path = resolve_config_path(config)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            raise exc from None
        database = data.get("database")
        if not isinstance(database, str):
            raise
        return StatusSource(
            database=database,
            base_dir=path.resolve().parent,
            shops=_lenient_shops(data, path.resolve().parent),
            note=f"configuration not fully loaded ({exc}); showing what the state database holds",
        )


def _lenient_shops(data: Mapping[str, Any], base_dir: Path) -> list[tuple[str, list[str]]] | None:
    """Shop names and resources read straight from the TOML (no secrets needed); None if unclear."""
    from shopsync.queries import load_resources

    try:
        queries_dir = data.get("queries_dir")
        known = list(load_resources(base_dir / queries_dir if isinstance(queries_dir, str) else None))
    except ShopsyncError:
        return None
    shops = []
    for table in data.get("shop", []):
        if not isinstance(table, dict) or not isinstance(table.get("name"), str):
            return None
        resources = table.get("resources", known)
        if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
            return None
        shops.append((table["name"], list(resources)))
    return shops or None


def read_sqlite_state(path: Path) -> tuple[list[StreamState], list[BulkOperationRecord]]:
    """Every stream state and unfinished bulk operation of a SQLite state database, opened read-only."""
    if not path.exists():
        raise StorageError(f"no state database at {path} (nothing synced yet?)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the state database {path} read-only: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        streams = [_from_row(StreamState, row) for row in conn.execute("SELECT * FROM stream_state")]
        bulk = [
            _from_row(BulkOperationRecord, row)
            for row in conn.execute("SELECT * FROM bulk_operations WHERE finished = 0 ORDER BY created_at, id")
        ]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return [], []
        raise StorageError(f"reading the state database {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"reading the state database {path}: {exc}") from exc
    finally:
        conn.close()
    return streams, bulk


def _from_row(cls: type, row: sqlite3.Row) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: row[k] for k in row.keys() if k in names}  # noqa: SIM118 - sqlite3.Row has no items()
    if "finished" in values:
        values["finished"] = bool(values["finished"])
    return cls(**values)


async def _read_postgres_state(url: str) -> tuple[list[StreamState], list[BulkOperationRecord]]:
    from shopsync.state.postgres import PostgresDatabase, PostgresStateStore

    store = PostgresStateStore(PostgresDatabase(url))
    await store.open()
    try:
        return await store.list_streams(), await store.list_bulk_operations(unfinished_only=True)
    finally:
        await store.close()


def read_state(database: str, base_dir: Path) -> tuple[list[StreamState], list[BulkOperationRecord]]:
    """Stream states and unfinished bulk operations from the ``database`` URL."""
    from shopsync.sinks.base import path_from_url, url_scheme

    scheme = url_scheme(database)
    if scheme == "sqlite":
        return read_sqlite_state(path_from_url(database, base_dir=base_dir))
    if scheme in ("postgresql", "postgres"):
        import asyncio

        return asyncio.run(_read_postgres_state(database))
    raise ConfigError(f"database: unsupported scheme {scheme!r}")


# --------------------------------------------------------------------------------------------
# the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: $SHOPSYNC_CONFIG or ./shopsync.toml)")
    parser.add_argument("--json", action="store_true", help="print the status document as JSON (as /status serves it)")
    parser.add_argument("--shop", action="append", help="only this shop (repeatable)")


def run(args: argparse.Namespace) -> int:
    """``shopsync status``: 0 printed, 1 the state database could not be read, 2 bad configuration."""
    source = read_source(args.config)
    try:
        states, bulk = read_state(source.database, source.base_dir)
    except StorageError as exc:
        print(f"shopsync status: {exc}", file=sys.stderr)
        return 1
    shops = source.shops
    if args.shop:
        if shops is None:
            shops = [(name, sorted({s.resource for s in states if s.shop == name and INTERNAL_MARK not in s.resource})) for name in args.shop]
        else:
            unknown = set(args.shop) - {name for name, _ in shops}
            if unknown:
                print(f"shopsync status: unknown shop(s): {', '.join(sorted(unknown))}", file=sys.stderr)
                return 2
            shops = [s for s in shops if s[0] in args.shop]
    doc = build_status(states=states, bulk_operations=bulk, now=time.time(), shops=shops)
    if source.note:
        print(f"note: {source.note}", file=sys.stderr)
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        import shutil

        width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
        sys.stdout.write(format_table(doc, width=width))
    return 0
