"""The ``shopsync`` command line. Each subcommand lives in the module that owns its concept; this
file only wires them up. A subcommand module exposes ``add_arguments(parser)`` and
``run(args) -> int`` (the process exit code).

Exit codes: 0 success, 1 a sync or check failed, 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from shopsync import __version__
from shopsync.errors import ConfigError

#: subcommand -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "sync": ("shopsync.engine.cli", "copy every configured shop and resource up to now, then exit"),
    "check": ("shopsync.engine.check", "validate the configuration and queries; print needed access scopes"),
    "run": ("shopsync.daemon.cli", "run the daemon: keep every shop fresh on a schedule"),
    "status": ("shopsync.daemon.status", "print per-shop sync state from the state database"),
    "simulate": ("shopsync.simulator.cli", "serve a simulated Shopify shop on 127.0.0.1"),
    "demo": ("shopsync.demo", "start a simulated shop and the daemon syncing from it"),
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
        print(f"shopsync {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
