"""Run every benchmark module (or the named ones): ``python -m bench [NAME …] [--quick]``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import bench

#: Modules that are not benchmarks run by ``make bench`` (``make chaos`` runs bench.chaos itself).
_EXCLUDED = frozenset({"chaos"})


def discover() -> list[str]:
    """Benchmark module names under bench/, in name order."""
    names = []
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("_") or info.name in _EXCLUDED or info.ispkg:
            continue
        names.append(info.name)
    return sorted(names)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(discover())})")
    parser.add_argument("--quick", action="store_true", help="a small slice of each benchmark (seconds)")
    # Anything else (e.g. ``--orders 50000 --json out.json``) is passed on to each benchmark.
    args, extra = parser.parse_known_args(argv)
    names = args.names or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(unknown)}")
    worst = 0
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"== bench {name}{' (quick)' if args.quick else ''} ==", flush=True)
        worst = max(worst, int(module.main((["--quick"] if args.quick else []) + extra) or 0))
    return worst


if __name__ == "__main__":
    sys.exit(main())
