"""``shopsync sync``: copy every configured shop and resource up to now, then exit.

Exit codes: 0 every stream reached now; 1 a stream failed (one line per failure on stderr);
2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys

from shopsync.config import load_settings
from shopsync.daemon.progress import BarDisplay, LogReporter, Progress
from shopsync.engine.engine import SyncEngine, SyncReport
from shopsync.storage import open_storage

log = logging.getLogger("shopsync.sync")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: $SHOPSYNC_CONFIG or ./shopsync.toml)")
    parser.add_argument("--shop", action="append", help="sync only this shop (by name; repeatable)")
    parser.add_argument("--resource", action="append", help="sync only this resource (repeatable)")
    parser.add_argument("--log-format", choices=("auto", "json", "text"), help="override [daemon] log_format")
    parser.add_argument(
        "--progress",
        choices=("auto", "bar", "log", "off"),
        default="auto",
        help="progress display: bars on a terminal, periodic log lines otherwise (auto), or off",
    )


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
    progress = Progress([(s.name, r) for s in shops for r in s.resources])
    presenter = _presenter(progress, args.progress)
    if isinstance(presenter, BarDisplay):
        # Log lines go above the bars (through the display), not through them.
        _setup_logging(settings, args.log_format, stream=presenter.log_stream)
    report = asyncio.run(_sync(settings, shops, progress, presenter))
    print_report(report, sys.stdout, sys.stderr)
    return report.exit_code


def _presenter(progress: Progress, mode: str) -> BarDisplay | LogReporter | None:
    if mode == "off":
        return None
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        return BarDisplay(progress, sys.stderr)
    return LogReporter(progress)


def _setup_logging(settings, override: str | None, stream=None) -> None:
    from shopsync.daemon.app import register_secrets
    from shopsync.daemon.logs import setup_logging

    register_secrets(settings)
    setup_logging(
        format=override or settings.daemon.log_format, level=settings.daemon.log_level, stream=stream or sys.stderr
    )


async def _sync(settings, shops, progress: Progress | None = None, presenter=None) -> SyncReport:
    storage = await open_storage(settings)
    task = None
    try:
        async with SyncEngine(settings, storage.state, work_dir=settings.work_dir, observer=progress) as engine:
            if presenter is not None:
                task = asyncio.create_task(presenter.run(), name="progress")
            report = await engine.run_once(shops)
            if progress is not None:
                progress.finish(report.streams)
            return report
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            presenter.close()
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
