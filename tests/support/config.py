"""Writing a ``shopsync.toml`` for simulated shops (the daemon and end-to-end folders give their
own defaults on top of this one writer)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from shopsync.simulator.server import SimulatedShop
from tests.support.sinks import ALL_RESOURCES


def toml_value(value: Any) -> str:
    """A TOML literal for a string, number, boolean or list (JSON's spelling is valid TOML there)."""
    return orjson.dumps(value).decode()


def write_shopsync_toml(
    path: Path,
    shops: list[SimulatedShop],
    *,
    token_env: str,
    sync: dict[str, Any],
    daemon: dict[str, Any] | None = None,
    sink: str | None = None,
    shop_keys: dict[str, dict[str, Any]] | None = None,
    client_credentials: tuple[str, ...] = (),
) -> Path:
    """A shopsync.toml for ``shops`` (each reached through its simulator URL): state in
    ``state.db`` next to it, ``[sink] url`` when ``sink`` is given, ``[sync]`` and ``[daemon]``
    tables from the dicts, extra keys of each ``[[shop]]`` from ``shop_keys``.

    Shops named in ``client_credentials`` use the client-credentials grant (secrets from files
    next to the config), the others the static token from the environment variable ``token_env``.
    """
    lines = [f'database = "sqlite:///{path.parent / "state.db"}"']
    if sink:
        lines += ["[sink]", f'url = "{sink}"']
    lines.append("[sync]")
    lines += [f"{k} = {toml_value(v)}" for k, v in sync.items()]
    if daemon is not None:
        lines.append("[daemon]")
        lines += [f"{k} = {toml_value(v)}" for k, v in daemon.items()]
    for shop in shops:
        lines += ["[[shop]]", f'name = "{shop.name}"', f'domain = "{shop.name}.myshopify.com"',
                  f'api_url = "{shop.graphql_url}"']
        if shop.name in client_credentials:
            for suffix, value in (("id", shop.config.client_id), ("secret", shop.config.client_secret)):
                secret = path.parent / f"{shop.name}.{suffix}"
                secret.write_text(value or "")
                secret.chmod(0o600)  # secret files readable by others are refused
            lines += [f'client_id = {{ file = "{shop.name}.id" }}', f'client_secret = {{ file = "{shop.name}.secret" }}']
        else:
            lines.append(f'access_token = {{ env = "{token_env}" }}')
        keys = (shop_keys or {}).get(shop.name, {})
        if "resources" not in keys:
            # The seven resources the suites were written for; the newer ones (gift cards,
            # Shopify Payments, ...) are synced only where a test names them.
            lines.append(f"resources = {toml_value(list(ALL_RESOURCES))}")
        for key, value in keys.items():
            lines.append(f"{key} = {toml_value(value)}")
    path.write_text("\n".join(lines) + "\n")
    return path
