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
from collections.abc import Sequence
from typing import IO

from shopsync.commands.error_line import print_error
from shopsync.commands.selection import select_streams
from shopsync.engine.engine import SyncEngine, SyncReport
from shopsync.errors import StorageError
from shopsync.observability.logs import LogStream, as_log_format, redact, register_secrets, setup_logging
from shopsync.observability.progress import BarDisplay, LogReporter, Progress
from shopsync.settings import Settings, ShopConfig, load_settings
from shopsync.state.open import open_storage

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
    selected = select_streams(settings, args.shop, args.resource, command="sync")
    if selected is None:
        return 2
    shops = selected
    progress = Progress([(s.name, r) for s in shops for r in s.resources])
    presenter = _presenter(progress, args.progress)
    if isinstance(presenter, BarDisplay):
        # Log lines go above the bars (through the display), not through them.
        _setup_logging(settings, args.log_format, stream=presenter.log_stream)
    try:
        report = asyncio.run(_sync(settings, shops, progress, presenter))
    except StorageError as exc:  # the state database cannot be opened (or is another process's)
        print_error("sync", exc)
        return 1
    print_report(report, sys.stdout, sys.stderr)
    return report.exit_code


def _presenter(progress: Progress, mode: str) -> BarDisplay | LogReporter | None:
    if mode == "off":
        return None
    if mode == "bar" or (mode == "auto" and sys.stderr.isatty()):
        return BarDisplay(progress, sys.stderr)
    return LogReporter(progress)


def _setup_logging(settings: Settings, override: str | None, stream: LogStream | None = None) -> None:
    register_secrets(settings)
    setup_logging(
        format=as_log_format(override or settings.daemon.log_format),
        level=settings.daemon.log_level,
        stream=stream or sys.stderr,
    )


async def _sync(
    settings: Settings,
    shops: Sequence[ShopConfig],
    progress: Progress | None = None,
    presenter: BarDisplay | LogReporter | None = None,
) -> SyncReport:
    # exclusive: beside a daemon on the same SQLite state, a sync would redo its windows and split
    # the shops' budgets, so it is refused (``shopsync status`` reads without the lock).
    storage = await open_storage(settings, exclusive=True)
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
            if presenter is not None:  # it is: the task is the presenter's
                presenter.close()
        await storage.close()


def print_report(report: SyncReport, out: IO[str], err: IO[str]) -> None:
    """One line per stream that reached now and per shop (``out``), one per failure (``err``)."""
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
        print(f"FAILED {s.shop}/{s.resource}: {redact(s.error or '')}", file=err)
