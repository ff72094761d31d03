"""``shopsync reconcile``: compare streams with their shops now, repair what differs, print findings.

What the daemon does for each stream every ``[reconcile] every`` (:mod:`shopsync.engine.reconcile`),
on demand: ids missing from the shop are marked deleted (or removed with ``[reconcile]
delete_rows``), ids in the shop but not in the sink, or newer there, are read again by id.

Exit codes: 0 every reconciliation ran (findings or not: they are repaired and printed);
1 one failed; 2 a usage or configuration error.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from shopsync.commands.selection import select_streams
from shopsync.engine.engine import SyncEngine
from shopsync.engine.reconcile import Reconciler, ReconcileResult
from shopsync.observability.logs import as_log_format, register_secrets, setup_logging
from shopsync.settings import Settings, ShopConfig, load_settings
from shopsync.state.open import open_storage


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="configuration file (default: $SHOPSYNC_CONFIG or ./shopsync.toml)")
    parser.add_argument("--shop", action="append", help="only this shop (by name; repeatable)")
    parser.add_argument("--resource", action="append", help="only this resource (repeatable)")
    parser.add_argument("--log-format", choices=("auto", "json", "text"), help="override [daemon] log_format")


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    selected = select_streams(settings, args.shop, args.resource, command="reconcile")
    if selected is None:
        return 2
    shops = selected
    register_secrets(settings)
    setup_logging(
        format=as_log_format(args.log_format or settings.daemon.log_format),
        level=settings.daemon.log_level,
        stream=sys.stderr,
    )
    results = asyncio.run(reconcile(settings, shops))
    for result in results:
        print(result.summary(), file=sys.stdout if result.ok else sys.stderr)
    return 0 if all(r.ok for r in results) else 1


async def reconcile(settings: Settings, shops: Sequence[ShopConfig]) -> list[ReconcileResult]:
    """Reconcile every resource of ``shops``: a shop's streams one after another (they share its
    budget), shops concurrently."""
    storage = await open_storage(settings)
    try:
        async with SyncEngine(settings, storage.state, work_dir=settings.work_dir) as engine:
            reconciler = Reconciler(engine, storage.sink)

            async def one_shop(shop: ShopConfig) -> list[ReconcileResult]:
                return [
                    await reconciler.reconcile_stream(shop, settings.resources[name]) for name in shop.resources
                ]

            per_shop = await asyncio.gather(*(one_shop(s) for s in shops))
            return [r for results in per_shop for r in results]
    finally:
        await storage.close()
