"""``shopsync check``: validate the configuration and every query; print the access scopes needed.

Exit codes: 0 valid (warnings go to stderr), 2 a configuration or query problem (raised as
:class:`~shopsync.errors.ConfigError` and reported by :mod:`shopsync.cli`). Nothing is sent to
Shopify: the check runs offline against the pinned schema.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from shopsync import API_VERSION
from shopsync.config import Settings, load_settings
from shopsync.queries import READ_ALL_ORDERS, Resource, minimal_scopes, packaged_dir

READ_ALL_ORDERS_NOTE = (
    f"{READ_ALL_ORDERS}: without it Shopify shows only the last 60 days of orders, so older orders "
    "would be missing; it must be requested for the app (Partner or Dev Dashboard) before it can be granted"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="configuration file (default: $SHOPSYNC_CONFIG, else ./shopsync.toml)",
    )


def shop_scopes(resources: list[Resource]) -> tuple[str, ...]:
    """The fewest scopes covering every resource's ``requiredAccess`` (+ read_all_orders for orders)."""
    requirements = [req for r in resources for req in r.access_requirements]
    scopes = set(minimal_scopes(requirements))
    if any(READ_ALL_ORDERS in r.required_scopes for r in resources):
        scopes.add(READ_ALL_ORDERS)
    return tuple(sorted(scopes))


def report(settings: Settings) -> tuple[list[str], list[str]]:
    """The lines to print (stdout) and the warnings (stderr) for valid ``settings``."""
    out: list[str] = []
    warnings: list[str] = []
    resources = settings.resources
    out.append(f"configuration: {settings.path} ({len(settings.shops)} shop{'s' if len(settings.shops) != 1 else ''})")
    if settings.api_version == API_VERSION:
        out.append(f"api_version: {settings.api_version} (the pinned version)")
    else:
        out.append(f"api_version: {settings.api_version}")
        warnings.append(
            f"warning: api_version {settings.api_version} differs from the pinned {API_VERSION}: every query is "
            f"validated against {API_VERSION} only, and fields may differ in {settings.api_version}"
        )
    packaged = packaged_dir()
    user = sorted(name for name, r in resources.items() if r.path.parent != packaged)
    out.append(f"queries: {len(resources)} resources, every document valid against the pinned {API_VERSION} schema")
    if settings.queries_dir is not None:
        out.append(f"  from {settings.queries_dir}: {', '.join(user) if user else '(no .graphql files)'}")
    out.append(f"sink: {settings.to_redacted_dict()['sink']['url']}")
    for shop in settings.shops:
        auth = "client credentials" if shop.uses_client_credentials else "access token"
        out.append(f"shop {shop.name} ({shop.domain}, {auth}, {shop.api_url})")
        out.append(f"  resources: {', '.join(shop.resources)}")
        chosen = [resources[name] for name in shop.resources]
        scopes = shop_scopes(chosen)
        out.append(f"  access scopes: {', '.join(scopes)}")
        for r in chosen:
            out.append(f"    {r.name}: {', '.join(r.required_scopes) or '(none)'}")
        if READ_ALL_ORDERS in scopes:
            out.append(f"  note: {READ_ALL_ORDERS_NOTE}")
    out.append("ok")
    return out, warnings


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    lines, warnings = report(settings)
    for line in warnings:
        print(line, file=sys.stderr)
    print("\n".join(lines))
    return 0
