"""``shopsync simulate``: serve simulated Shopify shops on 127.0.0.1 until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from typing import Any

from shopsync.errors import ConfigError
from shopsync.simulator.config import (
    BULK_FAILURES,
    BULK_ORDERS,
    HOSTILE_MODES,
    HOSTILE_VARIANTS,
    PLANS,
    REDIRECT_ENDPOINTS,
    THROTTLE_STATUS_FIELDS,
    DataConfig,
    FaultConfig,
    MutatorConfig,
    SimConfig,
)

#: Shops listed by URL at start-up (the rest are summarised).
_LISTED = 5

#: command-line flag → FaultConfig field
_FAULT_FLAGS: dict[str, str] = {
    "--fault-500": "http_500",
    "--fault-502": "http_502",
    "--fault-503": "http_503",
    "--fault-504": "http_504",
    "--fault-429": "http_429",
    "--fault-drop": "drop_connection",
    "--fault-slow": "slow",
    "--fault-truncated": "truncated_body",
    "--fault-malformed": "malformed_body",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``shopsync simulate``."""
    parser.add_argument("--port", type=int, default=8080, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=1, help="data seed: the same seed gives the same shop")
    parser.add_argument("--orders", type=int, default=10_000, help="orders in each shop")
    parser.add_argument("--products", type=int, default=200)
    parser.add_argument("--customers", type=int, default=None, help="default: orders / 4")
    parser.add_argument("--plan", choices=sorted(PLANS), default="standard", help="sets the bucket size and restore rate")
    parser.add_argument("--time-scale", type=float, default=1.0, help="multiplies every simulated rate (restore rate, mutator, bulk speed)")
    parser.add_argument("--index-lag", type=float, default=2.0, help="simulated seconds before search filters see a change (divided by --time-scale)")
    parser.add_argument("--mutate-orders-per-day", type=float, default=0.0, help="live order creations per simulated day (0: off)")
    parser.add_argument(
        "--mutate-hidden-updates", type=float, default=0.0,
        help="share of the mutator's updates the search index never sees (the drift reconciliation repairs)",
    )  # fmt: skip
    parser.add_argument("--shops", type=int, default=1, help="number of shops (shop names sim, sim2, …)")
    parser.add_argument("--token", default="shpat_simulated_token", help="the static access token to accept")
    parser.add_argument("--bulk-objects-per-second", type=float, default=20_000.0)
    for flag, name in _FAULT_FLAGS.items():
        parser.add_argument(flag, type=float, default=0.0, dest=name, metavar="RATE", help=f"probability of {name} per request")
    parser.add_argument("--retry-after", type=float, default=1.0, help="seconds sent in Retry-After with 429/503")
    parser.add_argument("--slow-seconds", type=float, default=2.0)
    parser.add_argument("--bulk-fail", choices=BULK_FAILURES, default=None, help="bulk operations fail with this error code")
    parser.add_argument("--bulk-fail-after", type=float, default=0.5, help="fraction of the objects written before failing")
    parser.add_argument("--bulk-fail-count", type=int, default=None, help="fail only the next N bulk operations")
    parser.add_argument("--bulk-order", choices=BULK_ORDERS, default="sorted",
                        help="order of an export's root rows: the sort key's, blocks of 50 shuffled, or by id")
    parser.add_argument("--download-cut", type=float, default=0.0, metavar="RATE", help="probability a result download is cut mid-file")
    parser.add_argument("--download-cut-count", type=int, default=None, help="cut only the first N downloads")
    _add_hostile_arguments(parser)


def _add_hostile_arguments(parser: argparse.ArgumentParser) -> None:
    """``--fault-<mode> VALUE`` with ``--fault-<mode>-count N`` and ``--fault-<mode>-match NAME``."""
    helps = {
        "redirect": "answer with a redirect to the trap server (other_host) or another path here (same_host)",
        "cursor": "pages that do not advance (hasNextPage true)",
        "bad_data": "answers whose data is missing or of the wrong shape",
        "retry_status": "answer 429/503 (never ran) with --retry-after / --retry-after-text",
        "throttle_status": "spoil extensions.cost.throttleStatus",
        "huge_body": "pad GraphQL answers past this many bytes (streamed)",
        "bulk_bad_line": "one bad line in each bulk result file",
    }
    for mode in HOSTILE_MODES:
        flag = f"--fault-{mode.replace('_', '-')}"
        if mode == "huge_body":
            parser.add_argument(flag, type=int, default=0, dest=mode, metavar="BYTES", help=helps[mode])
        else:
            choices = HOSTILE_VARIANTS[mode]
            kind = int if isinstance(choices[0], int) else str
            parser.add_argument(flag, type=kind, choices=choices, default=None, dest=mode, help=helps[mode])
        parser.add_argument(f"{flag}-count", type=int, default=None, dest=f"{mode}_count", metavar="N", help="only the next N times (default: every time)")
        if mode != "bulk_bad_line":
            parser.add_argument(f"{flag}-match", default=None, dest=f"{mode}_match", metavar="NAME", help="only requests with this operation or root field name")
    parser.add_argument("--fault-redirect-on", default=",".join(REDIRECT_ENDPOINTS), metavar="LIST", help=f"endpoints redirected (comma list of {', '.join(REDIRECT_ENDPOINTS)})")
    parser.add_argument("--fault-redirect-status", type=int, default=None, dest="redirect_status", help="redirect status (default 307 for GraphQL, 302 otherwise)")
    parser.add_argument("--retry-after-text", default=None, help='Retry-After sent verbatim with 429/503 ("soon", "-5"; "past": an HTTP date a day ago)')
    parser.add_argument("--fault-throttle-status-fields", default=",".join(THROTTLE_STATUS_FIELDS), metavar="LIST", help="throttleStatus fields spoilt")
    parser.add_argument("--fault-huge-body-chunked", action="store_true", dest="huge_body_chunked", help="send the huge body without Content-Length")


def _hostile_faults(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for mode in HOSTILE_MODES:
        out[mode] = getattr(args, mode)
        out[f"{mode}_count"] = getattr(args, f"{mode}_count")
        if mode != "bulk_bad_line":
            out[f"{mode}_match"] = getattr(args, f"{mode}_match")
    out["redirect_on"] = tuple(p.strip() for p in args.fault_redirect_on.split(",") if p.strip())
    out["redirect_status"] = args.redirect_status
    out["retry_after_text"] = args.retry_after_text
    out["throttle_status_fields"] = tuple(p.strip() for p in args.fault_throttle_status_fields.split(",") if p.strip())
    out["huge_body_chunked"] = args.huge_body_chunked
    return out


def configs_from_args(args: argparse.Namespace) -> list[SimConfig]:
    """The shops described by the parsed flags."""
    if args.shops < 1:
        raise ConfigError("simulate: --shops must be at least 1")
    faults = FaultConfig(
        **{name: getattr(args, name) for name in _FAULT_FLAGS.values()},
        retry_after=args.retry_after,
        slow_seconds=args.slow_seconds,
        bulk_fail=args.bulk_fail,
        bulk_fail_after=args.bulk_fail_after,
        bulk_fail_count=args.bulk_fail_count,
        bulk_order=args.bulk_order,
        download_cut=args.download_cut,
        download_cut_count=args.download_cut_count,
        **_hostile_faults(args),
    )
    out = []
    anchor = float(int(time.time()) // 60 * 60)
    for i in range(args.shops):
        data = DataConfig(
            seed=args.seed + i, orders=args.orders, products=args.products, customers=args.customers, anchor=anchor
        )
        out.append(
            SimConfig(
                shop_name="sim" if i == 0 else f"sim{i + 1}",
                access_tokens=(args.token,),
                plan=args.plan,
                time_scale=args.time_scale,
                index_lag=args.index_lag,
                bulk_objects_per_second=args.bulk_objects_per_second,
                data=data,
                mutator=MutatorConfig(orders_per_day=args.mutate_orders_per_day, hidden_updates=args.mutate_hidden_updates),
                faults=faults,
            )
        )
    return out


async def serve(configs: list[SimConfig], *, host: str, port: int, stop: asyncio.Event) -> None:
    """Serve until ``stop`` is set (the signal handler only sets it)."""
    from shopsync.simulator.server import run_simulator

    started = time.perf_counter()
    trap = any(c.faults.redirect == "other_host" for c in configs)
    async with run_simulator(*configs, host=host, port=port, trap=trap) as server:
        took = time.perf_counter() - started
        first = server.shop()
        print(f"simulated shop listening on {server.url}")
        shops = list(server.shops.values())
        for shop in shops[:_LISTED]:
            print(f"  {shop.name}: {shop.graphql_url}  (token endpoint {shop.token_url})")
        if len(shops) > _LISTED:
            print(f"  … and {len(shops) - _LISTED} more at {server.url}/shops/<name>/admin/api/…")
        print(f"  first shop also at {server.url}/admin/api/{first.config.api_version}/graphql.json")
        print(f"  access token: {first.token}   client id: {first.config.client_id}")
        if server.trap is not None:
            print(f"  redirect trap at {server.trap.url} (what reached it: {server.url}/_sim/trap)")
        size, rate = first.config.bucket_limits()
        print(
            f"{len(server.shops)} shop(s), {configs[0].data.orders} orders each, plan {configs[0].plan} "
            f"(bucket {size:g}, restore {rate:g}/s), time scale {configs[0].time_scale:g}, started in {took:.2f}s; Ctrl-C stops",
            flush=True,
        )
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    configs = configs_from_args(args)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await serve(configs, host=args.host, port=args.port, stop=stop)

    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"shopsync simulate: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0
