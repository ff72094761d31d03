"""The ``shopsync.toml`` the single-shop benchmarks write: one simulated shop, its token read from
an environment variable, a SQLite state database and optionally another sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shopsync.simulator.server import SimulatedShop

#: The seven resources the benchmarks' figures were first measured with (the newer ones — gift
#: cards, payments, metafields … — are left out so that the figures stay comparable).
CORE_RESOURCES = ["collections", "customers", "inventory_items", "inventory_levels", "locations", "orders", "products"]


def write_shop_config(
    path: Path,
    shop: SimulatedShop,
    *,
    database: Path,
    token_env: str,
    sync: dict[str, Any],
    sink: str | None = None,
    daemon: dict[str, Any] | None = None,
    resources: list[str] | None = None,
) -> Path:
    """Write the configuration to ``path`` and return it; ``sink`` is a sink URL (default: the
    database), ``daemon`` more keys of ``[daemon]``, ``resources`` the shop's (default: all)."""
    lines = [f'database = "sqlite:///{database}"']
    if sink is not None:
        lines += ["[sink]", f'url = "{sink}"']
    lines.append("[sync]")
    lines += [f"{k} = {orjson.dumps(v).decode()}" for k, v in sync.items()]
    lines += ["[daemon]", 'log_level = "info"']
    lines += [f"{k} = {orjson.dumps(v).decode()}" for k, v in (daemon or {}).items()]
    lines += [
        "[[shop]]", f'name = "{shop.name}"', f'domain = "{shop.name}.myshopify.com"',
        f'access_token = {{ env = "{token_env}" }}', f'api_url = "{shop.graphql_url}"',
    ]  # fmt: skip
    if resources is not None:
        lines.append(f"resources = {orjson.dumps(resources).decode()}")
    path.write_text("\n".join(lines) + "\n")
    return path
