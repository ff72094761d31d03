"""The ``shopsync`` command line. Each subcommand is a module of this package
(``shopsync.commands.<name>``, which wires the layers below for it); this file only dispatches. A
subcommand module exposes ``add_arguments(parser)`` and ``run(args) -> int`` (the process exit code).

Exit codes: 0 success, 1 a sync or check failed, 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from shopsync import __version__, crashpoints
from shopsync.commands.error_line import print_error
from shopsync.errors import ConfigError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sync": ("shopsync.commands.sync", "copy every configured shop and resource up to now, then exit"),
    "check": ("shopsync.commands.check", "validate the configuration and queries; print needed access scopes"),
    "run": ("shopsync.commands.run", "run the daemon: keep every shop fresh on a schedule"),
    "status": ("shopsync.commands.status", "print per-shop sync state from the state database"),
    "reconcile": ("shopsync.commands.reconcile", "compare streams with their shops now; repair and print what differs"),
    "schema": ("shopsync.commands.schema", "print the analyst views of every resource (--sql: their DDL)"),
    "simulate": ("shopsync.commands.simulate", "serve a simulated Shopify shop on 127.0.0.1"),
    "demo": ("shopsync.commands.demo", "start a simulated shop and the daemon syncing from it"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopsync", description="Keep an exact, always-fresh copy of Shopify stores in your own database.")
    parser.add_argument("--version", action="version", version=f"shopsync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            p.set_defaults(_missing=module_name)
            continue
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    crashpoints.arm_from_environment(os.environ)  # the kill -9 tests' SHOPSYNC_CRASHPOINT
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if getattr(args, "_missing", None):
        print(f"shopsync {args.command}: not available in this build", file=sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        print_error(args.command, exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
