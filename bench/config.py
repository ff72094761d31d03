"""The ``shopsync.toml`` the single-shop benchmarks write: one simulated shop, its token read from
an environment variable, a SQLite state database and optionally another sink."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shopsync.simulator.server import SimulatedShop


def write_shop_config(
    path: Path, shop: SimulatedShop, *, database: Path, token_env: str, sync: dict[str, Any], sink: str | None = None
) -> Path:
    """Write the configuration to ``path`` and return it; ``sink`` is a sink URL (default: the database)."""
    lines = [f'database = "sqlite:///{database}"']
    if sink is not None:
        lines += ["[sink]", f'url = "{sink}"']
    lines.append("[sync]")
    lines += [f"{k} = {orjson.dumps(v).decode()}" for k, v in sync.items()]
    lines += ["[daemon]", 'log_level = "info"']
    lines += [
        "[[shop]]", f'name = "{shop.name}"', f'domain = "{shop.name}.myshopify.com"',
        f'access_token = {{ env = "{token_env}" }}', f'api_url = "{shop.graphql_url}"',
    ]  # fmt: skip
    path.write_text("\n".join(lines) + "\n")
    return path
