"""The settings model: frozen, keyword-only dataclasses that refuse invalid values.

Every value rule lives here, in a ``check_…`` function that the dataclass's ``__post_init__``
calls, so no invalid :class:`Settings` can be built. :mod:`shopsync.settings.load` calls the same
functions while it reads the file, at the point where it reads each value, so that the first
mistake in the file is the one reported; it catches :class:`InvalidValue` and names the file and
the dotted key (``shopsync.toml: sync.backoff_cap: must not be less than backoff_base``).
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from shopsync import API_VERSION
from shopsync.errors import ConfigError
from shopsync.settings.secrets import Secret
from shopsync.settings.urls import Role, StorageScheme, check_storage_url, is_shop_name, redact_url

if TYPE_CHECKING:
    from shopsync.queries import Resource

__all__ = [
    "LOG_FORMATS",
    "LOG_LEVELS",
    "SYNC_PATHS",
    "DaemonConfig",
    "InvalidValue",
    "Settings",
    "ShopConfig",
    "SinkConfig",
    "StreamKey",
    "SyncConfig",
]

#: One stream of work: (shop name, resource name). Used as a key wherever streams are tracked.
StreamKey = tuple[str, str]

SYNC_PATHS = ("auto", "bulk", "paginated")
LOG_FORMATS = ("auto", "json", "text")
LOG_LEVELS = ("debug", "info", "warning", "error")
#: The longest shop name settings accept (a metric label, a directory name).
SHOP_NAME_MAX = 63
MIN_ROTATE_BYTES = 1024
#: Smallest value of each integer of ``[sync]``.
SYNC_MINIMUMS = {
    "bulk_threshold": 0,
    "max_concurrent_bulk": 1,
    "max_connections": 1,
    "max_attempts": 1,
    "max_response_bytes": 1,
    "ingest_memory": 0,
    "ingest_workers": 1,
}
#: Hosts an ``api_url`` may reach over plain ``http://`` (a local simulator or proxy): the token
#: never leaves the machine. Every other host must be ``https://``.
LOOPBACK_NAMES = ("localhost",)

_VERSION_RE = re.compile(r"^(\d{4}-(01|04|07|10)|unstable)$")
_HOST_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*(:\d{1,5})?$")
_API_PATH_RE = re.compile(r"/admin/api/[^/]+/graphql\.json$")


class InvalidValue(ConfigError):
    """A value the settings refuse: ``key`` is dotted below the object checked, ``problem`` says why."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}" if key else problem)
        self.key = key
        self.problem = problem


def join_key(where: str, key: str) -> str:
    """``where.key``, leaving out an empty part."""
    return ".".join(part for part in (where, key) if part)


@contextmanager
def keys_under(where: str) -> Iterator[None]:
    """Re-raise an :class:`InvalidValue` from the block with its key below ``where``."""
    try:
        yield
    except InvalidValue as exc:
        raise InvalidValue(join_key(where, exc.key), exc.problem) from exc


# --------------------------------------------------------------------------------------------
# the rules, shared by the dataclasses and the loader


def check_choice(key: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise InvalidValue(key, f"{value!r} must be one of {', '.join(choices)}")


def check_at_least(key: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise InvalidValue(key, f"must be at least {minimum}, not {value}")


def check_positive(key: str, value: timedelta | None) -> None:
    if value is not None and value <= timedelta(0):
        raise InvalidValue(key, "must be more than 0")


def check_not_less(key: str, value: timedelta, other_key: str, other: timedelta) -> None:
    if value < other:
        raise InvalidValue(key, f"must not be less than {other_key}")


def check_api_version(value: str) -> None:
    if not _VERSION_RE.match(value):
        raise InvalidValue("api_version", f"{value!r} is not an API version like {API_VERSION!r}")


def check_url(key: str, url: str, role: Role) -> StorageScheme:
    """The scheme of a storage URL that can serve ``role`` (the state database or the sink)."""
    try:
        return check_storage_url(url, role)
    except ConfigError as exc:
        raise InvalidValue(key, str(exc)) from exc


def check_cron(key: str, cron: str | None) -> None:
    if cron is None:
        return
    from apscheduler.triggers.cron import CronTrigger  # the scheduler's own parser, loaded when used

    try:
        CronTrigger.from_crontab(cron, timezone=UTC)
    except ValueError as exc:
        raise InvalidValue(key, f"{cron!r} is not a crontab expression: {exc}") from exc


def check_schedule(every: timedelta | None, cron: str | None) -> None:
    """A shop's own schedule: ``every`` or ``cron`` (or neither: the daemon's)."""
    if every is not None and cron is not None:
        raise InvalidValue("cron", "give either every or cron, not both")
    check_positive("every", every)


def check_port(port: int) -> None:
    if not 0 <= port <= 65535:
        raise InvalidValue("listen", f"port {port} is out of range")


def check_listen_host(host: str, *, bracketed: bool | None = None) -> None:
    """``host`` is an IPv6 address or a host name / IPv4 address.

    ``bracketed``: how ``listen`` wrote it (``[::1]:9464`` must be IPv6, anything else a host
    name); None (a value, not text) accepts either.
    """
    if bracketed is None and _HOST_RE.match(host):
        return
    if bracketed or (bracketed is None and ":" in host):
        try:
            ipaddress.IPv6Address(host)
        except ValueError as exc:
            raise InvalidValue("listen", f"{host!r} is not an IPv6 address") from exc
    elif not _HOST_RE.match(host):
        raise InvalidValue("listen", f"{host!r} is not a host name or address")


def check_shop_name(name: object) -> None:
    if not is_shop_name(name, SHOP_NAME_MAX):
        raise InvalidValue(
            "name", f"{name!r} must be 1-63 letters, digits, '_', '.' or '-' (starting with a letter or digit)"
        )


def check_domain(domain: str) -> None:
    if "://" in domain or "/" in domain or not _HOST_RE.match(domain):
        raise InvalidValue("domain", f"{domain!r} must be a host name like acme.myshopify.com (not a URL)")


def is_loopback_host(host: str) -> bool:
    """Whether ``host`` (a URL's host name, without brackets) is this machine: ``localhost``, an
    address in 127.0.0.0/8 or ``::1``."""
    host = host.lower().rstrip(".")
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_api_url(api_url: str) -> None:
    """An ``https://…/admin/api/<version>/graphql.json`` URL; ``http://`` only for loopback hosts.

    The access token (and the client secret, sent to the token endpoint next to it) travels in
    every request, so it must be encrypted on the wire unless it never leaves the machine."""
    try:
        parts = urlsplit(api_url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port that is not a number or out of range)
    except ValueError as exc:
        raise InvalidValue("api_url", f"{api_url!r} is not a valid URL ({exc})") from exc
    if parts.username is not None or parts.password is not None:
        # Checked first, so that no message below repeats a password.
        raise InvalidValue("api_url", "must not carry a user name or password (credentials go in access_token)")
    if parts.scheme not in ("http", "https") or not host:
        raise InvalidValue("api_url", f"{api_url!r} must be an https:// URL")
    if parts.scheme == "http" and not is_loopback_host(host):
        raise InvalidValue(
            "api_url",
            f"{api_url!r} must use https:// (plain http:// is only allowed for loopback hosts: "
            "localhost, 127.0.0.0/8, ::1), so that the access token is never sent unencrypted",
        )
    if not _API_PATH_RE.search(parts.path) or parts.query or parts.fragment:
        raise InvalidValue("api_url", f"{api_url!r} must end with /admin/api/<version>/graphql.json")


def default_api_url(domain: str, api_version: str) -> str:
    return f"https://{domain}/admin/api/{api_version}/graphql.json"


def token_url_for(api_url: str) -> str:
    """The client-credentials endpoint next to a GraphQL endpoint (``…/admin/oauth/access_token``)."""
    parts = urlsplit(api_url)
    return parts._replace(path=_API_PATH_RE.sub("/admin/oauth/access_token", parts.path)).geturl()


def check_credentials(access_token: Secret | None, client_id: Secret | None, client_secret: Secret | None) -> None:
    """Exactly one of ``access_token`` or (``client_id`` and ``client_secret``)."""
    if access_token is not None and (client_id is not None or client_secret is not None):
        raise InvalidValue("access_token", "give either access_token or client_id + client_secret, not both")
    if access_token is None:
        if client_id is None and client_secret is None:
            raise InvalidValue(
                "",
                "missing credentials: set access_token = { env = \"…\" } (or file/credential), "
                "or client_id and client_secret for the client-credentials grant",
            )
        if client_id is None:
            raise InvalidValue("client_id", "missing (client_secret is set)")
        if client_secret is None:
            raise InvalidValue("client_secret", "missing (client_id is set)")


def check_resource_names(names: Sequence[str], known: Collection[str] | None) -> None:
    """Every name is in ``known`` (when given) and none is listed twice."""
    if known is not None:
        for n in names:
            if n not in known:
                hint = difflib.get_close_matches(n, list(known), n=1)
                more = f"; did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})"
                raise InvalidValue("resources", f"unknown resource {n!r}{more}")
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise InvalidValue("resources", f"{dup!r} is listed twice")


def check_shops(shops: Sequence[ShopConfig]) -> None:
    """At least one shop; names unique."""
    if not shops:
        raise InvalidValue("shop", "no [[shop]] configured")
    for i, shop in enumerate(shops):
        for other in shops[:i]:
            if other.name == shop.name:
                raise InvalidValue(f"{shop.where}.name", f"{shop.name!r} is already used by shop[{other.index}]")


# --------------------------------------------------------------------------------------------
# the dataclasses


#: A JSONL sink starts a new file once the current one is this large.
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, kw_only=True)
class SinkConfig:
    """Where records go. ``url`` ``None`` means the state database (see :attr:`Settings.sink_url`)."""

    url: str | None = None
    rotate_bytes: int = DEFAULT_ROTATE_BYTES

    def __post_init__(self) -> None:
        if self.url is not None:
            check_url("url", self.url, "sink")
        check_at_least("rotate_bytes", self.rotate_bytes, MIN_ROTATE_BYTES)


@dataclass(frozen=True, kw_only=True)
class SyncConfig:
    #: "auto" chooses per window (engine.path_choice); "bulk"/"paginated" force one (tests, benchmarks).
    path: str = "auto"
    safety_margin: timedelta = timedelta(seconds=60)
    overlap: timedelta = timedelta(minutes=5)
    #: Unset: each window's path is the one estimated sooner done from the shop's measured costs
    #: (shopsync.engine.planner). Set: a window Shopify counts above it is exported, any other paged.
    bulk_threshold: int | None = None
    max_concurrent_bulk: int = 5
    request_timeout: timedelta = timedelta(seconds=60)
    max_connections: int = 64
    max_attempts: int = 8
    backoff_base: timedelta = timedelta(seconds=0.5)
    backoff_cap: timedelta = timedelta(seconds=60)
    bulk_poll_min: timedelta = timedelta(seconds=1)
    bulk_poll_max: timedelta = timedelta(seconds=60)
    #: The largest GraphQL answer body read; a longer one is refused unread (bulk files are not
    #: limited: they are streamed to disk).
    max_response_bytes: int = 50 * 1024 * 1024
    #: Bytes of a bulk result file's records one reassembly holds in memory; a file past it is
    #: reassembled through a temporary spill file in ``work_dir`` (the same records, flat memory).
    #: 0: always through the file. 32 MB: a sync process is ~140 MB before any file (the pinned
    #: schema, the resources), and 64 MB took its peak to 215 MB, past the 200 MB it should keep.
    ingest_memory: int = 32 * 1024 * 1024
    #: Processes that read a bulk file past ``ingest_memory`` at once, one part of it each, and
    #: the most a sync process runs at a time over all its files (shopsync.engine.spill_worker);
    #: 1: the sync process reads every file itself.
    ingest_workers: int = 2

    def __post_init__(self) -> None:
        check_choice("path", self.path, SYNC_PATHS)
        for key, minimum in SYNC_MINIMUMS.items():
            if getattr(self, key) is not None:
                check_at_least(key, getattr(self, key), minimum)
        if self.max_concurrent_bulk > 5:
            raise InvalidValue("max_concurrent_bulk", "Shopify runs at most 5 bulk queries per shop at a time")
        for key in ("request_timeout", "backoff_base", "bulk_poll_min"):
            check_positive(key, getattr(self, key))
        check_not_less("backoff_cap", self.backoff_cap, "backoff_base", self.backoff_base)
        check_not_less("bulk_poll_max", self.bulk_poll_max, "bulk_poll_min", self.bulk_poll_min)


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
    #: Several daemons on one PostgreSQL state database (README "Scaling out"): how long a shop's
    #: lease lasts unrenewed, how often it is renewed, and this daemon's id (default: host-pid).
    lease: timedelta = timedelta(seconds=30)
    lease_renew: timedelta = timedelta(seconds=10)
    id: str | None = None

    def __post_init__(self) -> None:
        check_port(self.listen_port)
        check_listen_host(self.listen_host)
        check_cron("cron", self.cron)
        check_schedule(self.every, self.cron)
        check_choice("log_format", self.log_format, LOG_FORMATS)
        check_choice("log_level", self.log_level, LOG_LEVELS)
        check_not_less("park_backoff_max", self.park_backoff_max, "park_backoff", self.park_backoff)
        check_positive("lease_renew", self.lease_renew)
        if self.lease < 2 * self.lease_renew:
            raise InvalidValue("lease", "must be at least twice lease_renew (a lease is renewed well before it expires)")
        if self.id is not None and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}", self.id):
            raise InvalidValue("id", f"{self.id!r}: use letters, digits, '.', '_', ':' and '-' (at most 128)")

    @property
    def listen(self) -> str:
        host = f"[{self.listen_host}]" if ":" in self.listen_host else self.listen_host
        return f"{host}:{self.listen_port}"


@dataclass(frozen=True, kw_only=True)
class ReconcileConfig:
    """``[reconcile]``: the periodic comparison of every stream with its shop (engine.reconcile).

    ``every``: how often each (shop, resource) is reconciled (a shop's ``reconcile_every``
    overrides it). ``delete_rows``: records gone from the shop are removed from the sink instead of
    being marked ``deleted_at`` (append-only JSONL sinks can only mark).
    """

    every: timedelta = timedelta(days=1)
    delete_rows: bool = False

    def __post_init__(self) -> None:
        check_positive("every", self.every)


@dataclass(frozen=True, kw_only=True)
class WebhooksConfig:
    """``[webhooks]``: Shopify's webhook deliveries at ``/webhooks/shopify`` (daemon.webhooks).

    ``enabled``: off by default (webhooks only make syncs sooner). ``url``: the public address
    Shopify delivers to (behind the user's TLS proxy), for ``shopsync check``'s subscriptions.
    ``max_age``: a delivery whose ``X-Shopify-Triggered-At`` is older is refused as stale.
    """

    enabled: bool = False
    url: str | None = None
    max_age: timedelta = timedelta(minutes=5)

    def __post_init__(self) -> None:
        check_positive("max_age", self.max_age)
        if self.url is not None and not self.url.startswith(("https://", "http://")):
            raise InvalidValue("url", f"{self.url!r} must be an https:// URL (the address Shopify delivers to)")


@dataclass(frozen=True, kw_only=True)
class ShopConfig:
    """One shop. Exactly one of ``access_token`` or (``client_id``, ``client_secret``) is set.

    ``api_url`` is the GraphQL endpoint (override, or ``https://{domain}/admin/api/{version}/graphql.json``);
    ``token_url`` the client-credentials endpoint next to it (``…/admin/oauth/access_token``).
    ``every``/``cron`` override the daemon's schedule for this shop (both ``None``: the default).
    ``resources`` may be empty (``shopsync sync --resource`` naming none of the shop's).
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
    reconcile_every: timedelta | None = None  # None: [reconcile] every
    #: Per-resource schedules (``resource_every``) as (resource, interval) pairs, over the
    #: resource files' own ``every``.
    resource_every: tuple[tuple[str, timedelta], ...] = ()
    #: The webhook signing secret (``webhook_secret``); None: ``client_secret`` signs them.
    webhook_secret: Secret | None = None

    def __post_init__(self) -> None:
        with keys_under(f"shop[{self.index}]"):
            check_shop_name(self.name)
        with keys_under(self.where):
            check_domain(self.domain)
            check_api_url(self.api_url)
            check_credentials(self.access_token, self.client_id, self.client_secret)
            check_resource_names(self.resources, None)
            if self.start_date is not None and self.start_date.tzinfo is None:
                raise InvalidValue("start_date", "must carry a time zone")
            check_cron("cron", self.cron)
            check_schedule(self.every, self.cron)
            if self.reconcile_every is not None:
                check_positive("reconcile_every", self.reconcile_every)

    @property
    def where(self) -> str:
        """How messages name this shop: ``shop[0] (acme)``."""
        return f"shop[{self.index}] ({self.name})"

    @property
    def label(self) -> str:
        """A name safe for logs and metric labels (never a secret)."""
        return self.name

    @property
    def uses_client_credentials(self) -> bool:
        return self.client_id is not None

    @property
    def signing_secret(self) -> Secret | None:
        """What signs the shop's webhooks: ``webhook_secret``, else ``client_secret``."""
        return self.webhook_secret if self.webhook_secret is not None else self.client_secret

    def with_resources(self, resources: tuple[str, ...]) -> ShopConfig:
        """The same shop limited to ``resources`` (``shopsync sync --resource``)."""
        return replace(self, resources=tuple(resources))


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything shopsync runs with. ``config_dir`` (the configuration file's directory) is what
    relative paths resolve against, including relative ``sqlite:///x.db`` URLs; ``work_dir`` holds
    bulk result files and spill databases (``work_dir`` key; default: ``work/`` next to a SQLite
    database, else ``$STATE_DIRECTORY/work`` or a temporary directory).

    Checked when built: the API version, the database URL (a scheme that can hold the state), at
    least one shop, unique shop names, and every shop's resources among :attr:`resources`."""

    path: Path
    config_dir: Path
    api_version: str = API_VERSION
    database: str
    work_dir: Path
    queries_dir: Path | None = None
    sink: SinkConfig = field(default_factory=SinkConfig)
    sync: SyncConfig = field(default_factory=SyncConfig)
    daemon: DaemonConfig = field(default_factory=DaemonConfig)
    reconcile: ReconcileConfig = field(default_factory=ReconcileConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    shops: tuple[ShopConfig, ...]
    #: name → Resource (packaged files, overridden/extended by ``queries_dir``), all validated.
    resources: Mapping[str, Resource] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_api_version(self.api_version)
        check_url("database", self.database, "state")
        check_shops(self.shops)
        for shop in self.shops:
            with keys_under(shop.where):
                check_resource_names(shop.resources, self.resources)
                if self.webhooks.enabled and shop.signing_secret is None:
                    raise InvalidValue(
                        "webhook_secret", "missing: [webhooks] enabled needs each shop's signing secret "
                        "(webhook_secret, or client_secret)"
                    )

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
            "database": redact_url(self.database),
            "queries_dir": str(self.queries_dir) if self.queries_dir else None,
            "work_dir": str(self.work_dir),
            "sink": {"url": redact_url(self.sink_url), "rotate_bytes": self.sink.rotate_bytes},
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
