"""shopsync's settings: one TOML file → frozen dataclasses, built once and passed down.

:func:`load_settings` is the only place that reads the environment (``$SHOPSYNC_CONFIG``,
``$CREDENTIALS_DIRECTORY`` and the variables named by ``{ env = "…" }`` secrets). Every problem is a
:class:`~shopsync.errors.ConfigError` with one message naming the file, the dotted key (with the
shop's index and name) and what is wrong::

    shopsync.toml: shop[1] (acme).access_token.file: cannot read /x/y: Permission denied

Secrets are read at load time, so an unreadable token file stops the daemon at start rather than
at 3 a.m., and are held in :class:`Secret`, whose ``repr``/``str`` is ``'***'``.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from shopsync import API_VERSION
from shopsync.errors import ConfigError
from shopsync.timeutil import parse_duration, parse_ts

if TYPE_CHECKING:
    from shopsync.queries import Resource

DEFAULT_CONFIG = "shopsync.toml"
CONFIG_ENV = "SHOPSYNC_CONFIG"
CREDENTIALS_ENV = "CREDENTIALS_DIRECTORY"

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:\d{1,5})?$")
_API_PATH_RE = re.compile(r"/admin/api/[^/]+/graphql\.json$")
_DB_SCHEMES = ("sqlite", "postgresql", "postgres")
_SINK_SCHEMES = ("sqlite", "jsonl", "postgresql", "postgres")
LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")


# --------------------------------------------------------------------------------------------
# secrets


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from: ``env`` (a variable), ``file`` (a path), ``credential`` (systemd)."""

    kind: Literal["env", "file", "credential"]
    name: str

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"


class Secret:
    """A secret value that never shows itself: ``repr``, ``str`` and ``format`` give ``'***'``."""

    __slots__ = ("_value", "ref")

    def __init__(self, value: str, ref: SecretRef | None = None) -> None:
        self._value = value
        self.ref = ref

    def reveal(self) -> str:
        """The value, for the one place that needs it (an HTTP header, a form body)."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "'***'"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: dict) -> Secret:
        return self

    def __reduce__(self):  # pickling would write the value out; refuse
        raise TypeError("Secret values cannot be pickled")


# --------------------------------------------------------------------------------------------
# settings


@dataclass(frozen=True, kw_only=True)
class SinkConfig:
    """Where records go. ``url`` ``None`` means the state database (see :attr:`Settings.sink_url`)."""

    url: str | None = None
    rotate_bytes: int = 64 * 1024 * 1024


SYNC_PATHS = ("auto", "bulk", "paginated")


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    #: "auto" chooses per window (windows.choose_path); "bulk"/"paginated" force one (tests, benchmarks).
    path: str = "auto"
    safety_margin: timedelta = timedelta(seconds=60)
    overlap: timedelta = timedelta(minutes=5)
    bulk_threshold: int = 5000
    max_concurrent_bulk: int = 5
    request_timeout: timedelta = timedelta(seconds=60)
    max_connections: int = 64
    max_attempts: int = 8
    backoff_base: timedelta = timedelta(seconds=0.5)
    backoff_cap: timedelta = timedelta(seconds=60)
    bulk_poll_min: timedelta = timedelta(seconds=1)
    bulk_poll_max: timedelta = timedelta(seconds=60)


@dataclass(frozen=True, kw_only=True)
class DaemonConfig:
    listen_host: str = "127.0.0.1"
    listen_port: int = 9464
    every: timedelta | None = timedelta(minutes=5)
    cron: str | None = None
    jitter: timedelta = timedelta(seconds=10)
    stop_timeout: timedelta = timedelta(seconds=20)
    log_format: str = "auto"
    log_level: str = "info"
    park_backoff: timedelta = timedelta(minutes=5)
    park_backoff_max: timedelta = timedelta(hours=6)

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


@dataclass(frozen=True, kw_only=True)
class ShopConfig:
    """One shop. Exactly one of ``access_token`` or (``client_id``, ``client_secret``) is set.

    ``api_url`` is the GraphQL endpoint (override, or ``https://{domain}/admin/api/{version}/graphql.json``);
    ``token_url`` the client-credentials endpoint next to it (``…/admin/oauth/access_token``).
    ``every``/``cron`` override the daemon's schedule for this shop (both ``None``: the default).
    """

    index: int
    name: str
    domain: str
    api_url: str
    token_url: str
    access_token: Secret | None = None
    client_id: Secret | None = None
    client_secret: Secret | None = None
    resources: tuple[str, ...] = ()
    start_date: datetime | None = None
    every: timedelta | None = None
    cron: str | None = None

    @property
    def label(self) -> str:
        """A name safe for logs and metric labels (never a secret)."""
        return self.name

    @property
    def uses_client_credentials(self) -> bool:
        return self.client_id is not None

    def with_resources(self, resources: tuple[str, ...]) -> ShopConfig:
        """The same shop limited to ``resources`` (``shopsync sync --resource``)."""
        return replace(self, resources=tuple(resources))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything shopsync runs with. ``config_dir`` (the configuration file's directory) is what
    relative paths resolve against, including relative ``sqlite:///x.db`` URLs; ``work_dir`` holds
    bulk result files and spill databases (``work_dir`` key; default: ``work/`` next to a SQLite
    database, else ``$STATE_DIRECTORY/work`` or a temporary directory)."""

    path: Path
    config_dir: Path
    api_version: str = API_VERSION
    database: str
    work_dir: Path
    queries_dir: Path | None = None
    sink: SinkConfig = field(default_factory=SinkConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    shops: tuple[ShopConfig, ...] = ()
    #: name → Resource (packaged files, overridden/extended by ``queries_dir``), all validated.
    resources: Mapping[str, Resource] = field(default_factory=dict, repr=False, compare=False)

    @property
    def sink_url(self) -> str:
        """The sink's URL: ``[sink].url``, or the state database when not given."""
        return self.sink.url or self.database

    def shop(self, name: str) -> ShopConfig:
        for shop in self.shops:
            if shop.name == name:
                return shop
        raise KeyError(name)

    def to_redacted_dict(self) -> dict[str, Any]:
        """The settings as plain JSON-able data for status output; secrets show only their source."""

        def secret(s: Secret | None) -> str | None:
            if s is None:
                return None
            return f"<{s.ref.describe()}>" if s.ref else "***"

        def secs(td: timedelta | None) -> float | None:
            return td.total_seconds() if td is not None else None

        return {
            "path": str(self.path),
            "api_version": self.api_version,
            "database": _redact_url(self.database),
            "queries_dir": str(self.queries_dir) if self.queries_dir else None,
            "work_dir": str(self.work_dir),
            "sink": {"url": _redact_url(self.sink_url), "rotate_bytes": self.sink.rotate_bytes},
            "sync": {k: secs(v) if isinstance(v, timedelta) else v for k, v in vars(self.sync).items()},
            "daemon": {k: secs(v) if isinstance(v, timedelta) else v for k, v in vars(self.daemon).items()},
            "shops": [
                {
                    "name": s.name,
                    "domain": s.domain,
                    "api_url": s.api_url,
                    "auth": "client_credentials" if s.uses_client_credentials else "access_token",
                    "access_token": secret(s.access_token),
                    "client_id": secret(s.client_id),
                    "client_secret": secret(s.client_secret),
                    "resources": list(s.resources),
                    "start_date": s.start_date.isoformat().replace("+00:00", "Z") if s.start_date else None,
                    "every": secs(s.every),
                    "cron": s.cron,
                }
                for s in self.shops
            ],
        }


def _redact_url(url: str) -> str:
    """A database URL without its password (``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


# --------------------------------------------------------------------------------------------
# loading


_TOP_KEYS = ("api_version", "database", "queries_dir", "work_dir", "sink", "sync", "daemon", "shop")
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
_SYNC_INTS = {"bulk_threshold": 0, "max_concurrent_bulk": 1, "max_connections": 1, "max_attempts": 1}
_DAEMON_DURATIONS = ("every", "jitter", "stop_timeout", "park_backoff", "park_backoff_max")
_DAEMON_KEYS = ("listen", "cron", "log_format", "log_level", *_DAEMON_DURATIONS)
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

    def check_keys(self, table: Mapping[str, Any], known: tuple[str, ...], where: str) -> None:
        for key in table:
            if key not in known:
                hint = difflib.get_close_matches(key, known, n=1)
                more = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})"
                raise self.error(_join(where, key), f"unknown key{more}")

    def table(self, data: Mapping[str, Any], key: str, where: str = "") -> Mapping[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.error(_join(where, key), f"must be a table, not {_tname(value)}")
        return value

    def string(self, data: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
        value = data.get(key, default)
        if value is not None and not isinstance(value, str):
            raise self.error(_join(where, key), f"must be a string, not {_tname(value)}")
        if isinstance(value, str) and not value.strip():
            raise self.error(_join(where, key), "must not be empty")
        return value

    def integer(self, data: Mapping[str, Any], key: str, where: str, default: int, minimum: int) -> int:
        value = data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(_join(where, key), f"must be an integer, not {_tname(value)}")
        if value < minimum:
            raise self.error(_join(where, key), f"must be at least {minimum}, not {value}")
        return value

    def duration(self, data: Mapping[str, Any], key: str, where: str, default: timedelta | None) -> timedelta | None:
        if key not in data:
            return default
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise self.error(_join(where, key), f"must be a duration like \"45s\", \"5m\", \"2h\" or a number of seconds, not {_tname(value)}")
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise self.error(_join(where, key), str(exc)) from exc

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

        api_version = self.string(data, "api_version", "", API_VERSION)
        assert api_version is not None
        if not _VERSION_RE.match(api_version):
            raise self.error("api_version", f"{api_version!r} is not an API version like {API_VERSION!r}")
        database = self.string(data, "database", "")
        if database is None:
            raise self.error("database", 'missing (for example database = "sqlite:///var/lib/shopsync/shopsync.db")')
        self.url(database, "database", _DB_SCHEMES)

        work_dir = self.work_dir(data, database)

        queries_dir = None
        qd = self.string(data, "queries_dir", "")
        if qd is not None:
            queries_dir = self.relative(qd)
            if not queries_dir.is_dir():
                raise self.error("queries_dir", f"{queries_dir} is not a directory")

        sink = self.load_sink(self.table(data, "sink"))
        sync = self.load_sync(self.table(data, "sync"))
        daemon = self.load_daemon(self.table(data, "daemon"))

        from shopsync.queries import load_resources

        resources = load_resources(queries_dir)

        shops_raw = data.get("shop")
        if shops_raw is None:
            raise self.error("shop", "no [[shop]] configured")
        if not isinstance(shops_raw, list) or not all(isinstance(s, dict) for s in shops_raw):
            raise self.error("shop", "must be an array of tables ([[shop]] sections)")
        if not shops_raw:
            raise self.error("shop", "no [[shop]] configured")
        shops: list[ShopConfig] = []
        for index, raw_shop in enumerate(shops_raw):
            shop = self.load_shop(index, raw_shop, api_version, resources)
            for other in shops:
                if other.name == shop.name:
                    raise self.error(
                        f"shop[{index}] ({shop.name}).name", f"{shop.name!r} is already used by shop[{other.index}]"
                    )
            shops.append(shop)

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
            shops=tuple(shops),
            resources=MappingProxyType(dict(resources)),
        )

    def relative(self, text: str) -> Path:
        p = Path(text).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def url(self, value: str, key: str, schemes: tuple[str, ...]) -> Path | None:
        """Check a storage URL; the file path of a sqlite:/jsonl: URL (resolved like storage does)."""
        parts = urlsplit(value)
        if parts.scheme not in schemes:
            raise self.error(key, f"{value!r} must start with one of {', '.join(s + '://' for s in schemes)}")
        if parts.scheme.startswith("postgres"):
            if not (parts.hostname or parts.path.strip("/")):
                raise self.error(key, f"{value!r} names no server or database")
            return None
        from shopsync.sinks.base import path_from_url

        try:
            return path_from_url(value, base_dir=self.base_dir)
        except ConfigError as exc:
            raise self.error(key, str(exc)) from exc

    def work_dir(self, data: Mapping[str, Any], database: str) -> Path:
        text = self.string(data, "work_dir", "")
        if text is not None:
            return self.relative(text)
        db_path = self.url(database, "database", _DB_SCHEMES)
        if db_path is not None:
            return db_path.parent / "work"
        state_dir = self.env.get("STATE_DIRECTORY")  # systemd StateDirectory=
        if state_dir:
            return Path(state_dir.split(":")[0]) / "work"
        import tempfile

        return Path(tempfile.gettempdir()) / "shopsync-work"

    def load_sink(self, table: Mapping[str, Any]) -> SinkConfig:
        self.check_keys(table, _SINK_KEYS, "sink")
        url = self.string(table, "url", "sink")
        if url is not None:
            self.url(url, "sink.url", _SINK_SCHEMES)
        rotate = self.integer(table, "rotate_bytes", "sink", SinkConfig.rotate_bytes, 1024)
        return SinkConfig(url=url, rotate_bytes=rotate)

    def load_sync(self, table: Mapping[str, Any]) -> SyncConfig:
        self.check_keys(table, ("path", *_SYNC_DURATIONS, *_SYNC_INTS), "sync")
        defaults = SyncConfig()
        values: dict[str, Any] = {}
        values["path"] = self.string(table, "path", "sync", "auto")
        if values["path"] not in SYNC_PATHS:
            raise self.error("sync.path", f"{values['path']!r} must be one of {', '.join(SYNC_PATHS)}")
        for key in _SYNC_DURATIONS:
            values[key] = self.duration(table, key, "sync", getattr(defaults, key))
        for key, minimum in _SYNC_INTS.items():
            values[key] = self.integer(table, key, "sync", getattr(defaults, key), minimum)
        if values["max_concurrent_bulk"] > 5:
            raise self.error("sync.max_concurrent_bulk", "Shopify runs at most 5 bulk queries per shop at a time")
        for key in ("request_timeout", "backoff_base", "bulk_poll_min"):
            if values[key] <= timedelta(0):
                raise self.error(f"sync.{key}", "must be more than 0")
        if values["backoff_cap"] < values["backoff_base"]:
            raise self.error("sync.backoff_cap", "must not be less than backoff_base")
        if values["bulk_poll_max"] < values["bulk_poll_min"]:
            raise self.error("sync.bulk_poll_max", "must not be less than bulk_poll_min")
        return SyncConfig(**values)

    def load_daemon(self, table: Mapping[str, Any]) -> DaemonConfig:
        self.check_keys(table, _DAEMON_KEYS, "daemon")
        defaults = DaemonConfig()
        values: dict[str, Any] = {}
        for key in _DAEMON_DURATIONS:
            values[key] = self.duration(table, key, "daemon", getattr(defaults, key))
        host, port = defaults.listen_host, defaults.listen_port
        listen = self.string(table, "listen", "daemon")
        if listen is not None:
            host, port = self.listen(listen)
        values["listen_host"], values["listen_port"] = host, port
        cron = self.cron(table, "daemon")
        if cron is not None and "every" in table:
            raise self.error("daemon.cron", "give either every or cron, not both")
        if cron is not None:
            values["every"] = None
        elif values["every"] is not None and values["every"] <= timedelta(0):
            raise self.error("daemon.every", "must be more than 0")
        values["cron"] = cron
        log_format = self.string(table, "log_format", "daemon", "auto")
        if log_format not in LOG_FORMATS:
            raise self.error("daemon.log_format", f"{log_format!r} must be one of {', '.join(LOG_FORMATS)}")
        log_level = (self.string(table, "log_level", "daemon", "info") or "").lower()
        if log_level not in LOG_LEVELS:
            raise self.error("daemon.log_level", f"{log_level!r} must be one of {', '.join(LOG_LEVELS)}")
        values["log_format"], values["log_level"] = log_format, log_level
        if values["park_backoff_max"] < values["park_backoff"]:
            raise self.error("daemon.park_backoff_max", "must not be less than park_backoff")
        return DaemonConfig(**values)

    def listen(self, text: str) -> tuple[str, int]:
        host, sep, port_text = text.rpartition(":")
        if not sep or not port_text.isdigit() or not host:
            raise self.error("daemon.listen", f"{text!r} must be host:port, like 127.0.0.1:9464")
        port = int(port_text)
        if port > 65535:
            raise self.error("daemon.listen", f"port {port} is out of range")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
            try:
                ipaddress.IPv6Address(host)
            except ValueError as exc:
                raise self.error("daemon.listen", f"{host!r} is not an IPv6 address") from exc
        elif not _HOST_RE.match(host):
            raise self.error("daemon.listen", f"{host!r} is not a host name or address")
        return host, port

    def cron(self, table: Mapping[str, Any], where: str) -> str | None:
        cron = self.string(table, "cron", where)
        if cron is None:
            return None
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(cron, timezone=UTC)
        except ValueError as exc:
            raise self.error(_join(where, "cron"), f"{cron!r} is not a crontab expression: {exc}") from exc
        return cron

    # -- shops -------------------------------------------------------------------------------------
    def load_shop(self, index: int, table: Mapping[str, Any], api_version: str, resources: Mapping[str, Any]) -> ShopConfig:
        where = f"shop[{index}]"
        name = table.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            if name is None:
                raise self.error(f"{where}.name", "missing (a short name used in logs, metrics and state)")
            raise self.error(
                f"{where}.name", f"{name!r} must be 1-63 letters, digits, '_', '.' or '-' (starting with a letter or digit)"
            )
        where = f"shop[{index}] ({name})"
        self.check_keys(table, _SHOP_KEYS, where)

        domain = self.string(table, "domain", where)
        if domain is None:
            raise self.error(f"{where}.domain", "missing (for example domain = \"acme.myshopify.com\")")
        if "://" in domain or "/" in domain or not _HOST_RE.match(domain):
            raise self.error(f"{where}.domain", f"{domain!r} must be a host name like acme.myshopify.com (not a URL)")

        api_url = self.string(table, "api_url", where)
        if api_url is None:
            api_url = f"https://{domain}/admin/api/{api_version}/graphql.json"
        else:
            parts = urlsplit(api_url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise self.error(f"{where}.api_url", f"{api_url!r} must be an http:// or https:// URL")
            if not _API_PATH_RE.search(parts.path) or parts.query or parts.fragment:
                raise self.error(f"{where}.api_url", f"{api_url!r} must end with /admin/api/<version>/graphql.json")
        token_url = _API_PATH_RE.sub("/admin/oauth/access_token", urlsplit(api_url).path)
        token_url = urlsplit(api_url)._replace(path=token_url).geturl()

        access_token = self.secret(table, "access_token", where)
        client_id = self.secret(table, "client_id", where)
        client_secret = self.secret(table, "client_secret", where)
        if access_token is not None and (client_id is not None or client_secret is not None):
            raise self.error(
                f"{where}.access_token", "give either access_token or client_id + client_secret, not both"
            )
        if access_token is None:
            if client_id is None and client_secret is None:
                raise self.error(
                    where,
                    "missing credentials: set access_token = { env = \"…\" } (or file/credential), "
                    "or client_id and client_secret for the client-credentials grant",
                )
            if client_id is None:
                raise self.error(f"{where}.client_id", "missing (client_secret is set)")
            if client_secret is None:
                raise self.error(f"{where}.client_secret", "missing (client_id is set)")

        names = table.get("resources")
        if names is None:
            chosen = tuple(resources)
        else:
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise self.error(f"{where}.resources", "must be a list of resource names")
            if not names:
                raise self.error(f"{where}.resources", "must name at least one resource (omit it for all)")
            for n in names:
                if n not in resources:
                    hint = difflib.get_close_matches(n, list(resources), n=1)
                    more = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(resources)})"
                    raise self.error(f"{where}.resources", f"unknown resource {n!r}{more}")
            if len(set(names)) != len(names):
                dup = next(n for n in names if names.count(n) > 1)
                raise self.error(f"{where}.resources", f"{dup!r} is listed twice")
            chosen = tuple(names)

        start_date = self.start_date(table, where)
        every = self.duration(table, "every", where, None)
        cron = self.cron(table, where)
        if every is not None and cron is not None:
            raise self.error(f"{where}.cron", "give either every or cron, not both")
        if every is not None and every <= timedelta(0):
            raise self.error(f"{where}.every", "must be more than 0")

        return ShopConfig(
            index=index,
            name=name,
            domain=domain,
            api_url=api_url,
            token_url=token_url,
            access_token=access_token,
            client_id=client_id,
            client_secret=client_secret,
            resources=chosen,
            start_date=start_date,
            every=every,
            cron=cron,
        )

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
            file = self.relative(ref)
        else:
            directory = self.env.get(CREDENTIALS_ENV)
            if not directory:
                raise self.error(
                    f"{dotted}.credential", f"${CREDENTIALS_ENV} is not set (use LoadCredential= in the systemd unit)"
                )
            if "/" in ref or ref in (".", ".."):
                raise self.error(f"{dotted}.credential", f"{ref!r} must be a credential name, not a path")
            file = Path(directory) / ref
        try:
            text = file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise self.error(f"{dotted}.{kind}", f"cannot read {file}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise self.error(f"{dotted}.{kind}", f"{file} is not UTF-8 text") from exc
        if not text:
            raise self.error(f"{dotted}.{kind}", f"{file} is empty")
        return Secret(text, SecretRef(kind, ref if kind == "credential" else str(file)))


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _tname(value: Any) -> str:
    return {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "a table",
    }.get(type(value), type(value).__name__)


__all__ = [
    "CONFIG_ENV",
    "DaemonConfig",
    "Secret",
    "SecretRef",
    "Settings",
    "ShopConfig",
    "SinkConfig",
    "SyncConfig",
    "load_settings",
    "resolve_config_path",
]
