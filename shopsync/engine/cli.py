"""``shopsync sync``: copy every configured shop and resource up to now, then exit.

Exit codes: 0 every stream reached now; 1 a stream failed (one line per failure on stderr);
2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from shopsync.config import load_settings
from shopsync.engine.engine import SyncEngine, SyncReport
from shopsync.storage import open_storage

log = logging.getLogger("shopsync.sync")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: $SHOPSYNC_CONFIG or ./shopsync.toml)")
    parser.add_argument("--shop", action="append", help="sync only this shop (by name; repeatable)")
    parser.add_argument("--resource", action="append", help="sync only this resource (repeatable)")
    parser.add_argument("--log-format", choices=("auto", "json", "text"), help="override [daemon] log_format")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    _setup_logging(settings, args.log_format)
    shops = list(settings.shops)
    if args.shop:
        unknown = set(args.shop) - {s.name for s in shops}
        if unknown:
            print(f"shopsync sync: unknown shop(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        shops = [s for s in shops if s.name in args.shop]
    if args.resource:
        unknown = set(args.resource) - set(settings.resources)
        if unknown:
            print(f"shopsync sync: unknown resource(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        shops = [s.with_resources(tuple(r for r in s.resources if r in args.resource)) for s in shops]
    report = asyncio.run(_sync(settings, shops))
    print_report(report, sys.stdout, sys.stderr)
    return report.exit_code


def _setup_logging(settings, override: str | None) -> None:
    from shopsync.daemon.logs import setup_logging

    setup_logging(format=override or settings.daemon.log_format, level=settings.daemon.log_level, stream=sys.stderr)


async def _sync(settings, shops) -> SyncReport:
    storage = await open_storage(settings)
    try:
        async with SyncEngine(settings, storage.state, work_dir=settings.work_dir) as engine:
            return await engine.run_once(shops)
    finally:
        await storage.close()


def print_report(report: SyncReport, out, err) -> None:
    for s in report.streams:
        if s.ok:
            how = f" via {s.path}" if s.path else ""
            print(f"{s.shop}/{s.resource}: ok, {s.records} records{how}, up to {s.watermark or '-'}", file=out)
    for shop in report.shops:
        print(
            f"{shop.shop}: {shop.requests} requests, {shop.throttled} THROTTLED "
            f"({100 * shop.throttled_ratio:.2f}%), points spent {shop.points_spent:.0f} = "
            f"{100 * shop.utilisation:.1f}% of what the restore rate allowed",
            file=out,
        )
    for s in report.failures():
        print(f"FAILED {s.shop}/{s.resource}: {s.error}", file=err)
