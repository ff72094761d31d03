"""The settings dataclasses refuse invalid values themselves; the scheme registry drives URL checks."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shopsync.errors import ConfigError
from shopsync.settings import DaemonConfig, Secret, Settings, ShopConfig, SinkConfig, SyncConfig
from shopsync.settings.urls import SCHEMES, check_storage_url, find_scheme, is_shop_name, scheme_names
from shopsync.state.sink import validate_shop_name

from .test_config import DB, SHOP, error


def shop(**changes: object) -> ShopConfig:
    values: dict[str, object] = {
        "index": 0,
        "name": "acme",
        "domain": "acme.myshopify.com",
        "api_url": "https://acme.myshopify.com/admin/api/2026-10/graphql.json",
        "token_url": "https://acme.myshopify.com/admin/oauth/access_token",
        "access_token": Secret("t"),
        "resources": ("orders",),
    }
    values.update(changes)
    return ShopConfig(**values)  # type: ignore[arg-type]


def settings(**changes: object) -> Settings:
    values: dict[str, object] = {
        "path": Path("/etc/shopsync.toml"),
        "config_dir": Path("/etc"),
        "database": "sqlite:///var/lib/shopsync/s.db",
        "work_dir": Path("/tmp/w"),
        "shops": (shop(),),
        "resources": {"orders": object()},
    }
    values.update(changes)
    return Settings(**values)  # type: ignore[arg-type]


def test_valid_objects_build() -> None:
    assert settings().shops[0].where == "shop[0] (acme)"
    assert DaemonConfig(listen_host="::1", listen_port=0).listen == "[::1]:0"


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: SyncConfig(backoff_cap=timedelta(0)), "backoff_cap: must not be less than backoff_base"),
        (lambda: SyncConfig(path="fast"), "path: 'fast' must be one of auto, bulk, paginated"),
        (lambda: SyncConfig(max_attempts=0), "max_attempts: must be at least 1, not 0"),
        (lambda: SyncConfig(max_concurrent_bulk=6), "max_concurrent_bulk: Shopify runs at most 5"),
        (lambda: DaemonConfig(log_level="loud"), "log_level: 'loud' must be one of"),
        (lambda: DaemonConfig(listen_port=70000), "listen: port 70000 is out of range"),
        (lambda: DaemonConfig(listen_host="no such host"), "listen: 'no such host' is not a host name"),
        (lambda: DaemonConfig(cron="* * * * *"), "cron: give either every or cron, not both"),
        (lambda: DaemonConfig(every=None, cron="every tuesday"), "cron: 'every tuesday' is not a crontab"),
        (lambda: SinkConfig(url="s3://bucket"), "url: 's3://bucket' must start with one of sqlite://"),
        (lambda: SinkConfig(rotate_bytes=10), "rotate_bytes: must be at least 1024, not 10"),
        (lambda: shop(name="a b"), "shop[0].name: 'a b' must be 1-63 letters"),
        (lambda: shop(domain="https://x"), "shop[0] (acme).domain: 'https://x' must be a host name"),
        (lambda: shop(access_token=None), "shop[0] (acme): missing credentials"),
        (lambda: shop(client_id=Secret("c")), "shop[0] (acme).access_token: give either access_token or"),
        (lambda: shop(resources=("orders", "orders")), "shop[0] (acme).resources: 'orders' is listed twice"),
        (lambda: shop(every=timedelta(0)), "shop[0] (acme).every: must be more than 0"),
        (lambda: settings(api_version="2026-13"), "api_version: '2026-13' is not an API version"),
        (lambda: settings(database="jsonl:out"), "database: 'jsonl:out' must start with one of sqlite://"),
        (lambda: settings(shops=()), "shop: no [[shop]] configured"),
        (lambda: settings(shops=(shop(), shop(index=1))), "shop[1] (acme).name: 'acme' is already used by shop[0]"),
        (lambda: settings(resources={}), "shop[0] (acme).resources: unknown resource 'orders'"),
    ],
)
def test_invalid_values_cannot_be_built(build, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build()
    assert str(info.value).startswith(message)


def test_empty_resources_are_a_valid_value() -> None:
    # `shopsync sync --resource x` limits each shop to the named resources, possibly none of its own.
    assert shop().with_resources(()).resources == ()


def test_unknown_scheme_names_every_registered_scheme(tmp_path: Path) -> None:
    database_choices = ", ".join(f"{name}://" for name in scheme_names("state"))
    sink_choices = ", ".join(f"{name}://" for name in scheme_names("sink"))
    assert error(tmp_path, 'database = "mysql://x/y"\n' + SHOP).endswith(
        f"database: 'mysql://x/y' must start with one of {database_choices}"
    )
    assert error(tmp_path, DB + '[sink]\nurl = "s3://bucket"\n' + SHOP).endswith(
        f"sink.url: 's3://bucket' must start with one of {sink_choices}"
    )
    for scheme in SCHEMES:
        for spelling in scheme.spellings:
            assert (f"{spelling}://" in database_choices) == scheme.state
            assert f"{spelling}://" in sink_choices or not scheme.sink


def test_registry() -> None:
    assert find_scheme("POSTGRES") is find_scheme("postgresql") is not None
    assert find_scheme("mysql") is None
    assert scheme_names("state") == ("sqlite", "postgresql", "postgres")
    assert scheme_names("sink") == ("sqlite", "jsonl", "postgresql", "postgres")
    assert check_storage_url("postgres://db/shop", "state").name == "postgresql"
    with pytest.raises(ConfigError, match="names no server or database"):
        check_storage_url("postgresql://", "sink")
    with pytest.raises(ConfigError, match="must look like"):
        check_storage_url("sqlite://host/x.db", "state")


def test_one_shop_name_rule_two_lengths() -> None:
    # Settings allow 63 characters (a metric label); the storage layer accepts up to 200.
    for name in ("acme", "a.b_c-d", "9shop", "x" * 63):
        assert is_shop_name(name, 63) and validate_shop_name(name) == name
    for name in ("", "-acme", "a b", "a/b", "acme\n", "ä"):
        assert not is_shop_name(name, 63)
        with pytest.raises(ValueError):
            validate_shop_name(name)
    assert not is_shop_name("x" * 64, 63) and validate_shop_name("x" * 200)
    with pytest.raises(ValueError):
        validate_shop_name("x" * 201)
