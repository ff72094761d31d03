"""Loading settings: one TOML file, the environment and credential files → :class:`Settings`.

:func:`load_settings` is the only place that reads the environment (``$SHOPSYNC_CONFIG``,
``$CREDENTIALS_DIRECTORY`` and the variables named by ``{ env = "…" }`` secrets). Every problem is a
:class:`~shopsync.errors.ConfigError` with one message naming the file, the dotted key (with the
shop's index and name) and what is wrong::

    shopsync.toml: shop[1] (acme).access_token.file: cannot read /x/y: Permission denied

The loader checks the file's shape (known keys, types, units, secret references) and applies each
value rule of :mod:`shopsync.settings.model` as it reads the value, so that the first mistake in
the file is the one reported; the dataclasses apply the same rules again when built.

Secrets are read at load time, so an unreadable token file stops the daemon at start rather than
at 3 a.m., and are held in :class:`~shopsync.settings.secrets.Secret`, whose ``repr``/``str`` is ``'***'``.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import stat
import tomllib
import urllib.parse
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from shopsync import API_VERSION
from shopsync.errors import ConfigError
from shopsync.settings import model
from shopsync.settings.model import (
    DaemonConfig,
    InvalidValue,
    ReconcileConfig,
    Settings,
    ShopConfig,
    SinkConfig,
    SyncConfig,
    WebhooksConfig,
)
from shopsync.settings.secrets import Secret, SecretFileError, SecretRef, read_secret_file
from shopsync.settings.urls import path_from_url
from shopsync.timeutil import parse_duration, parse_ts

__all__ = ["CONFIG_ENV", "CREDENTIALS_ENV", "DEFAULT_CONFIG", "load_settings", "resolve_config_path"]

log = logging.getLogger(__name__)

DEFAULT_CONFIG = "shopsync.toml"
CONFIG_ENV = "SHOPSYNC_CONFIG"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

_TOP_KEYS = (
    "api_version", "database", "queries_dir", "work_dir", "sink", "sync", "daemon", "reconcile", "webhooks", "shop"
)
_RECONCILE_KEYS = ("every", "delete_rows")
_WEBHOOKS_KEYS = ("enabled", "url", "max_age")
_SINK_KEYS = ("url", "rotate_bytes")
_SYNC_DURATIONS = (
    "safety_margin",
    "overlap",
    "request_timeout",
    "backoff_base",
    "backoff_cap",
    "bulk_poll_min",
    "bulk_poll_max",
)
_DAEMON_DURATIONS = ("every", "jitter", "stop_timeout", "park_backoff", "park_backoff_max", "lease", "lease_renew")
_DAEMON_KEYS = ("listen", "cron", "log_format", "log_level", "id", *_DAEMON_DURATIONS)
_SHOP_KEYS = (
    "name",
    "domain",
    "access_token",
    "client_id",
    "client_secret",
    "api_url",
    "resources",
    "start_date",
    "every",
    "cron",
    "reconcile_every",
    "resource_every",
    "webhook_secret",
)
_SECRET_KINDS = ("env", "file", "credential")


def resolve_config_path(path: Path | str | None = None, env: Mapping[str, str] | None = None) -> Path:
    """Explicit ``path``, else ``$SHOPSYNC_CONFIG``, else ``./shopsync.toml``."""
    env = os.environ if env is None else env
    if path is not None:
        return Path(path)
    if env.get(CONFIG_ENV):
        return Path(env[CONFIG_ENV])
    return Path(DEFAULT_CONFIG)


def load_settings(path: Path | str | None = None, *, env: Mapping[str, str] | None = None) -> Settings:
    """Read, check and resolve the configuration file (see the README's "Configuration")."""
    env = os.environ if env is None else env
    config_path = resolve_config_path(path, env)
    return _Loader(config_path, env).load()


class _Loader:
    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env
        self.base_dir = path.resolve().parent

    # -- messages and typed access -------------------------------------------------------------
    def error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}" if key else f"{self.path}: {problem}")

    @contextmanager
    def keys_under(self, where: str) -> Iterator[None]:
        """A value rule broken in the block is reported with the file and ``where.key``."""
        try:
            yield
        except InvalidValue as exc:
            raise self.error(model.join_key(where, exc.key), exc.problem) from exc

    def check_keys(self, table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                more = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})"
                raise self.error(model.join_key(where, key), f"unknown key{more}")

    def table(self, data: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(model.join_key(where, key), f"must be a table, not {_tname(value)}")
        return value

    def string(self, data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
        value = data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.error(model.join_key(where, key), f"must be a string, not {_tname(value)}")
        if isinstance(value, str) and not value.strip():
            raise self.error(model.join_key(where, key), "must not be empty")
        return value

    def integer(self, data: Mapping[str, Any], key: str, where: str, default: int, minimum: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(model.join_key(where, key), f"must be an integer, not {_tname(value)}")
        with self.keys_under(where):
            model.check_at_least(key, value, minimum)
        return value

    def duration(self, data: Mapping[str, Any], key: str, where: str, default: timedelta | None) -> timedelta | None:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.error(
                model.join_key(where, key),
                f"must be a duration like \"45s\", \"5m\", \"2h\" or a number of seconds, not {_tname(value)}",
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(model.join_key(where, key), f"{value!r} is not a duration (a finite number of seconds)")
        try:
            return parse_duration(value)
        except OverflowError as exc:  # timedelta holds at most 999999999 days
            raise self.error(model.join_key(where, key), f"{value!r} is too long for a duration") from exc
        except ValueError as exc:
            raise self.error(model.join_key(where, key), str(exc)) from exc

    def relative(self, text: str, key: str = "") -> Path:
        """``text`` as a path: ``~`` expanded, relative to the configuration's directory."""
        if "\0" in text:
            raise self.error(key, f"{text!r} is not a path (it contains a NUL character)")
        try:
            p = Path(text).expanduser()
        except RuntimeError as exc:  # ~user of an unknown user, or no $HOME
            raise self.error(key, f"{text!r}: cannot expand '~' ({exc})") from exc
        return p if p.is_absolute() else self.base_dir / p

    # -- the file --------------------------------------------------------------------------------
    def load(self) -> Settings:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise self.error("", f"cannot read the configuration file: {exc.strerror or exc}") from exc
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise self.error("", f"not valid TOML: {exc}") from exc
        self.check_keys(data, _TOP_KEYS, "")
        self.warn_if_readable_with_password(data)

        api_version = self.string(data, "api_version", "", API_VERSION)
        assert api_version is not None
        with self.keys_under(""):
            model.check_api_version(api_version)
        database = self.string(data, "database", "")
        if database is None:
            raise self.error("database", 'missing (for example database = "sqlite:///var/lib/shopsync/shopsync.db")')
        with self.keys_under(""):
            model.check_url("database", database, "state")

        work_dir = self.work_dir(data, database)

        queries_dir = None
        qd = self.string(data, "queries_dir", "")
        if qd is not None:
            queries_dir = self.relative(qd, "queries_dir")
            if not queries_dir.is_dir():
                raise self.error("queries_dir", f"{queries_dir} is not a directory")

        sink = self.load_sink(self.table(data, "sink"))
        sync = self.load_sync(self.table(data, "sync"))
        daemon = self.load_daemon(self.table(data, "daemon"))
        reconcile = self.load_reconcile(self.table(data, "reconcile"))
        webhooks = self.load_webhooks(self.table(data, "webhooks"))

        from shopsync.queries import load_resources  # settings load the query files they name

        resources = load_resources(queries_dir)
        shops = self.load_shops(data.get("shop"), api_version, resources)
        with self.keys_under(""):
            return Settings(
                path=self.path,
                config_dir=self.base_dir,
                api_version=api_version,
                database=database,
                work_dir=work_dir,
                queries_dir=queries_dir,
                sink=sink,
                sync=sync,
                daemon=daemon,
                reconcile=reconcile,
                webhooks=webhooks,
                shops=shops,
                resources=MappingProxyType(dict(resources)),
            )

    def warn_if_readable_with_password(self, data: Mapping[str, Any]) -> None:
        """Tokens never appear in the file, but a PostgreSQL URL may carry a password: then a file
        any local user can read gives it away. A warning, not a refusal: /etc files are often 0644."""
        sink = data.get("sink")
        urls = [data.get("database"), sink.get("url") if isinstance(sink, dict) else None]
        keys = [key for key, url in zip(("database", "sink.url"), urls, strict=True) if _has_password(url)]
        if not keys:
            return
        try:
            mode = stat.S_IMODE(os.stat(self.path).st_mode)
        except OSError:
            return
        if mode & 0o004:
            log.warning(
                "%s is mode %04o and %s holds a password: any local user can read it; chmod 640 the file, "
                "or keep the password in a PostgreSQL password file (passfile=… in the URL, or $PGPASSFILE)",
                self.path,
                mode,
                " and ".join(keys),
            )

    def work_dir(self, data: Mapping[str, Any], database: str) -> Path:
        text = self.string(data, "work_dir", "")
        if text is not None:
            return self.relative(text, "work_dir")
        with self.keys_under(""):
            scheme = model.check_url("database", database, "state")
        if scheme.file:
            return path_from_url(database, base_dir=self.base_dir).parent / "work"
        state_dir = self.env.get("STATE_DIRECTORY")  # systemd StateDirectory=
        if state_dir:
            return Path(state_dir.split(":")[0]) / "work"
        import tempfile

        return Path(tempfile.gettempdir()) / "shopsync-work"

    def load_sink(self, table: Mapping[str, Any]) -> SinkConfig:
        self.check_keys(table, _SINK_KEYS, "sink")
        url = self.string(table, "url", "sink")
        with self.keys_under("sink"):
            if url is not None:
                model.check_url("url", url, "sink")
            rotate = self.integer(table, "rotate_bytes", "sink", SinkConfig.rotate_bytes, model.MIN_ROTATE_BYTES)
            return SinkConfig(url=url, rotate_bytes=rotate)

    def load_sync(self, table: Mapping[str, Any]) -> SyncConfig:
        self.check_keys(table, ("path", *_SYNC_DURATIONS, *model.SYNC_MINIMUMS), "sync")
        defaults = SyncConfig()
        values: dict[str, Any] = {}
        with self.keys_under("sync"):
            values["path"] = self.string(table, "path", "sync", "auto")
            model.check_choice("path", values["path"], model.SYNC_PATHS)
            for key in _SYNC_DURATIONS:
                values[key] = self.duration(table, key, "sync", getattr(defaults, key))
            for key, minimum in model.SYNC_MINIMUMS.items():
                default = getattr(defaults, key)
                if default is None and key not in table:
                    values[key] = None  # an optional override left unset (bulk_threshold)
                    continue
                values[key] = self.integer(table, key, "sync", default if default is not None else 0, minimum)
            return SyncConfig(**values)

    def load_daemon(self, table: Mapping[str, Any]) -> DaemonConfig:
        self.check_keys(table, _DAEMON_KEYS, "daemon")
        defaults = DaemonConfig()
        values: dict[str, Any] = {}
        with self.keys_under("daemon"):
            for key in _DAEMON_DURATIONS:
                values[key] = self.duration(table, key, "daemon", getattr(defaults, key))
            host, port = defaults.listen_host, defaults.listen_port
            listen = self.string(table, "listen", "daemon")
            if listen is not None:
                host, port = self.listen(listen)
            values["listen_host"], values["listen_port"] = host, port
            cron = self.string(table, "cron", "daemon")
            model.check_cron("cron", cron)
            if cron is not None and "every" in table:
                raise self.error("daemon.cron", "give either every or cron, not both")
            if cron is not None:
                values["every"] = None
            model.check_positive("every", values["every"])
            values["cron"] = cron
            log_format = self.string(table, "log_format", "daemon", "auto")
            assert log_format is not None
            model.check_choice("log_format", log_format, model.LOG_FORMATS)
            log_level = (self.string(table, "log_level", "daemon", "info") or "").lower()
            values["log_format"], values["log_level"] = log_format, log_level
            values["id"] = self.string(table, "id", "daemon")
            return DaemonConfig(**values)

    def load_reconcile(self, table: Mapping[str, Any]) -> ReconcileConfig:
        self.check_keys(table, _RECONCILE_KEYS, "reconcile")
        defaults = ReconcileConfig()
        with self.keys_under("reconcile"):
            every = self.duration(table, "every", "reconcile", defaults.every)
            delete_rows = table.get("delete_rows", defaults.delete_rows)
            if not isinstance(delete_rows, bool):
                raise self.error("reconcile.delete_rows", f"must be true or false, not {_tname(delete_rows)}")
            assert every is not None
            return ReconcileConfig(every=every, delete_rows=delete_rows)

    def load_webhooks(self, table: Mapping[str, Any]) -> WebhooksConfig:
        self.check_keys(table, _WEBHOOKS_KEYS, "webhooks")
        defaults = WebhooksConfig()
        with self.keys_under("webhooks"):
            enabled = table.get("enabled", defaults.enabled)
            if not isinstance(enabled, bool):
                raise self.error("webhooks.enabled", f"must be true or false, not {_tname(enabled)}")
            max_age = self.duration(table, "max_age", "webhooks", defaults.max_age)
            assert max_age is not None
            return WebhooksConfig(enabled=enabled, url=self.string(table, "url", "webhooks"), max_age=max_age)

    def listen(self, text: str) -> tuple[str, int]:
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit() or not host:
            raise self.error("daemon.listen", f"{text!r} must be host:port, like 127.0.0.1:9464")
        port = int(port_text)
        model.check_port(port)
        bracketed = host.startswith("[") and host.endswith("]")
        if bracketed:
            host = host[1:-1]
        model.check_listen_host(host, bracketed=bracketed)
        return host, port

    # -- shops -------------------------------------------------------------------------------------
    def load_shops(self, shops_raw: object, api_version: str, resources: Mapping[str, Any]) -> tuple[ShopConfig, ...]:
        if shops_raw is not None and (
            not isinstance(shops_raw, list) or not all(isinstance(s, dict) for s in shops_raw)
        ):
            raise self.error("shop", "must be an array of tables ([[shop]] sections)")
        shops: list[ShopConfig] = []
        with self.keys_under(""):
            if not shops_raw:
                model.check_shops(())
            assert isinstance(shops_raw, list)
            for index, raw_shop in enumerate(shops_raw):
                shops.append(self.load_shop(index, raw_shop, api_version, resources))
                model.check_shops(shops)
        return tuple(shops)

    def load_shop(self, index: int, table: Mapping[str, Any], api_version: str, resources: Mapping[str, Any]) -> ShopConfig:
        name = table.get("name")
        if name is None:
            raise self.error(f"shop[{index}].name", "missing (a short name used in logs, metrics and state)")
        with self.keys_under(f"shop[{index}]"):
            model.check_shop_name(name)
        assert isinstance(name, str)
        where = f"shop[{index}] ({name})"
        self.check_keys(table, _SHOP_KEYS, where)
        with self.keys_under(where):
            domain = self.string(table, "domain", where)
            if domain is None:
                raise self.error(f"{where}.domain", "missing (for example domain = \"acme.myshopify.com\")")
            model.check_domain(domain)
            api_url = self.string(table, "api_url", where)
            if api_url is None:
                api_url = model.default_api_url(domain, api_version)
            else:
                model.check_api_url(api_url)

            access_token = self.secret(table, "access_token", where)
            client_id = self.secret(table, "client_id", where)
            client_secret = self.secret(table, "client_secret", where)
            model.check_credentials(access_token, client_id, client_secret)
            webhook_secret = self.secret(table, "webhook_secret", where)

            chosen = self.resource_names(table, where, resources)
            start_date = self.start_date(table, where)
            every = self.duration(table, "every", where, None)
            reconcile_every = self.duration(table, "reconcile_every", where, None)
            resource_every = self.resource_every(table, where, chosen)
            cron = self.string(table, "cron", where)
            model.check_cron("cron", cron)
        with self.keys_under(""):  # a ShopConfig names its own keys: shop[0] (acme).every
            return ShopConfig(
                index=index,
                name=name,
                domain=domain,
                api_url=api_url,
                token_url=model.token_url_for(api_url),
                access_token=access_token,
                client_id=client_id,
                client_secret=client_secret,
                resources=chosen,
                start_date=start_date,
                every=every,
                cron=cron,
                reconcile_every=reconcile_every,
                resource_every=resource_every,
                webhook_secret=webhook_secret,
            )

    def resource_every(
        self, table: Mapping[str, Any], where: str, chosen: tuple[str, ...]
    ) -> tuple[tuple[str, timedelta], ...]:
        """``resource_every = { gift_cards = "15m" }``: per-resource schedules over the files' ``every``."""
        raw = self.table(table, "resource_every", where)
        key_where = model.join_key(where, "resource_every")
        out: list[tuple[str, timedelta]] = []
        for name in raw:
            if name not in chosen:
                raise self.error(model.join_key(key_where, name), f"{name!r} is not one of this shop's resources")
            value = self.duration(raw, name, key_where, None)
            assert value is not None
            if value.total_seconds() <= 0:
                raise self.error(model.join_key(key_where, name), "must be longer than 0")
            out.append((name, value))
        return tuple(out)

    def resource_names(self, table: Mapping[str, Any], where: str, resources: Mapping[str, Any]) -> tuple[str, ...]:
        names = table.get("resources")
        if names is None:
            return tuple(resources)
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise self.error(f"{where}.resources", "must be a list of resource names")
        if not names:
            raise self.error(f"{where}.resources", "must name at least one resource (omit it for all)")
        model.check_resource_names(names, resources)
        return tuple(names)

    def start_date(self, table: Mapping[str, Any], where: str) -> datetime | None:
        value = table.get("start_date")
        key = f"{where}.start_date"
        if value is None:
            return None
        if isinstance(value, datetime):
            return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        if isinstance(value, date):
            return datetime.combine(value, time(0), tzinfo=UTC)
        if isinstance(value, str):
            try:
                if len(value.strip()) == 10:
                    return datetime.combine(date.fromisoformat(value.strip()), time(0), tzinfo=UTC)
                return parse_ts(value.strip())
            except ValueError as exc:
                raise self.error(key, f"{value!r} is not a date (2024-01-01) or timestamp (2024-01-01T00:00:00Z)") from exc
        raise self.error(key, f"must be a date or timestamp, not {_tname(value)}")

    def secret(self, table: Mapping[str, Any], key: str, where: str) -> Secret | None:
        value = table.get(key)
        dotted = f"{where}.{key}"
        if value is None:
            return None
        if isinstance(value, str):
            raise self.error(
                dotted,
                "secrets are not accepted inline; write "
                f'{key} = {{ env = "VAR" }}, {{ file = "path" }} or {{ credential = "name" }}',
            )
        if not isinstance(value, dict) or len(value) != 1:
            raise self.error(dotted, 'must be one of { env = "VAR" }, { file = "path" }, { credential = "name" }')
        kind, ref = next(iter(value.items()))
        if kind not in _SECRET_KINDS:
            raise self.error(f"{dotted}.{kind}", f"unknown secret source (use {', '.join(_SECRET_KINDS)})")
        if not isinstance(ref, str) or not ref:
            raise self.error(f"{dotted}.{kind}", "must be a non-empty string")
        if kind == "env":
            text = self.env.get(ref)
            if not text:
                raise self.error(f"{dotted}.env", f"environment variable {ref} is not set or empty")
            return Secret(text, SecretRef("env", ref))
        if kind == "file":
            file = self.relative(ref, f"{dotted}.file")
        else:
            directory = self.env.get(CREDENTIALS_ENV)
            if not directory:
                raise self.error(
                    f"{dotted}.credential", f"${CREDENTIALS_ENV} is not set (use LoadCredential= in the systemd unit)"
                )
            if "/" in ref or "\0" in ref or ref in (".", ".."):
                raise self.error(f"{dotted}.credential", f"{ref!r} must be a credential name, not a path")
            file = Path(directory) / ref
        try:
            # A client id is not secret on its own: only the "nobody else can change it" rule.
            text = read_secret_file(
                file, confidential=key != "client_id", credentials_dir=self.env.get(CREDENTIALS_ENV)
            )
        except SecretFileError as exc:
            raise self.error(f"{dotted}.{kind}", exc.problem) from exc
        return Secret(text, SecretRef(kind, ref if kind == "credential" else str(file)))


def _has_password(url: object) -> bool:
    if not isinstance(url, str):
        return False
    try:
        parts = urllib.parse.urlsplit(url)
        return bool(parts.password) or "password" in urllib.parse.parse_qs(parts.query)
    except ValueError:
        return False


def _tname(value: object) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)
