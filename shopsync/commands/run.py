"""``shopsync run``: the daemon in the foreground, for systemd, containers and terminals.

Exit codes: 0 stopped by SIGTERM/SIGINT (gracefully, within ``[daemon] stop_timeout``); 1 could not
start (state database, listening address); 2 a usage or configuration error (systemd's unit does
not restart on 2: ``RestartPreventExitStatus=2``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

from shopsync.settings import load_settings

log = logging.getLogger("shopsync.run")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: $SHOPSYNC_CONFIG or ./shopsync.toml)")
    parser.add_argument("--log-format", choices=("auto", "json", "text"), help="override [daemon] log_format")
    parser.add_argument(
        "--log-level", choices=("debug", "info", "warning", "error"), help="override [daemon] log_level"
    )


def run(args: argparse.Namespace) -> int:
    from shopsync.daemon.app import Daemon
    from shopsync.daemon.scheduler import quiet_apscheduler
    from shopsync.errors import StartupError
    from shopsync.observability.logs import as_log_format, register_secrets, setup_logging

    settings = load_settings(args.config)  # ConfigError: exit 2 with its message (shopsync.commands.main)
    register_secrets(settings)
    setup_logging(
        format=as_log_format(args.log_format or settings.daemon.log_format),
        level=args.log_level or settings.daemon.log_level,
        stream=sys.stderr,
    )
    quiet_apscheduler(logging.getLogger().level)
    # Command-line overrides pin the logging: a reload then leaves it alone.
    daemon = Daemon(settings, manage_logging=not (args.log_format or args.log_level))
    try:
        return asyncio.run(daemon.run_forever(handle_signals=True))
    except StartupError as exc:
        log.error("shopsync run: %s", exc)
        return 1
