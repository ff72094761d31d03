"""``shopsync status``: per-shop sync state read from the state database alone, as a table or JSON.

The state database is opened read-only, so this works while the daemon writes (SQLite WAL readers
never block the writer). The document is the daemon's own ``/status`` document
(:func:`shopsync.daemon.status.build_status`), without what only a running daemon knows.

Exit codes: 0 printed, 1 the state database could not be read, 2 a bad configuration or an
unknown ``--shop``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from shopsync.commands.error_line import print_error
from shopsync.daemon.status import INTERNAL_MARK, build_status
from shopsync.errors import ConfigError, ShopsyncError, StorageError
from shopsync.queries import load_resources
from shopsync.settings import load_settings, resolve_config_path
from shopsync.state.open import read_leases, read_state

# --------------------------------------------------------------------------------------------
# reading the configuration


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
    rec = row.get("reconcile")
    if rec and rec["last_error"]:
        parts.append(f"reconcile failed {rec['last_error_at'] or ''}: {rec['last_error']}")
    elif rec and rec["last_at"] and (rec["missing"] or rec["drift"] or rec["deleted"]):
        parts.append(
            f"reconciled {rec['last_at']}: {rec['missing']} missing, {rec['drift']} drifted, {rec['deleted']} deleted"
        )
    if not parts:
        parts.append("ok" if row["watermark"] else "never synced")
    decision = row.get("path_decision")
    if decision and decision.get("paginated_seconds") is not None:
        parts.append(
            f"last path {decision['path']} ({decision['reason']}: {decision['records']} records, "
            f"paginated ~{decision['paginated_seconds']}s vs bulk ~{decision['bulk_seconds']}s)"
        )
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
    out.extend(
        f"{s['name']}: held by {lease['owner']} until {lease['expires_at']} (epoch {lease['epoch']})"
        if lease["owner"] else f"{s['name']}: no daemon holds it (lease expired {lease['expires_at']})"
        for s in doc["shops"]
        if (lease := s.get("lease"))
    )
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
        print_error("status", exc)
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
    try:
        leases = read_leases(source.database)
    except StorageError as exc:
        print_error("status", exc)
        return 1
    doc = build_status(states=states, bulk_operations=bulk, now=time.time(), shops=shops, leases=leases or None)
    if source.note:
        print(f"note: {source.note}", file=sys.stderr)
    if args.json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        width = shutil.get_terminal_size((200, 24)).columns if sys.stdout.isatty() else None
        sys.stdout.write(format_table(doc, width=width))
    return 0
