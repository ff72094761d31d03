"""The sink protocol: where records go, durably, with newer-wins or append-only semantics.

A sink receives :class:`~shopsync.state.models.Record` and :class:`~shopsync.state.models.Deletion`
batches for any (shop, resource). ``write`` returns only when the batch is durable (committed or
fsynced): the state store relies on that to save the checkpoint after it.

Implementations: :class:`shopsync.sinks.sqlite.SqliteSink` and
:class:`shopsync.sinks.postgres.PostgresSink` (one table per resource, upsert newer-wins, rules and
shared logic in :mod:`shopsync.sinks.table`; each can share its state store's database and
transaction) and :class:`shopsync.sinks.jsonl.JsonlSink`
(append-only change log files). Every implementation passes
``tests/storage/test_sink_contract.py``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit, urlunsplit

from shopsync.errors import ConfigError
from shopsync.state.models import Deletion, Record, SinkRow, SinkStats, WriteResult

__all__ = [
    "DEFAULT_ROTATE_BYTES",
    "Deletion",
    "path_from_url",
    "url_scheme",
    "Record",
    "Sink",
    "SinkRow",
    "SinkStats",
    "WriteResult",
    "redact_url",
    "replaces",
    "validate_resource_name",
    "validate_shop_name",
]

#: Default size at which a JSONL sink closes a file and starts the next one.
DEFAULT_ROTATE_BYTES = 64 * 1024 * 1024

_RESOURCE_NAME = re.compile(r"[a-z_][a-z0-9_]*\Z")
_SHOP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")
# Names a resource table must not take in a database shared with the state store.
RESERVED_NAMES = frozenset({"meta", "stream_state", "bulk_operations"})


def validate_resource_name(name: str) -> str:
    """Return ``name`` if it can be a table/directory name (``[a-z_][a-z0-9_]*``), else ValueError."""
    if not isinstance(name, str) or not _RESOURCE_NAME.match(name) or len(name) > 63:
        raise ValueError(f"invalid resource name {name!r}: use lowercase letters, digits and _ (max 63)")
    if name in RESERVED_NAMES or name.startswith("sqlite_") or name.startswith("pg_"):
        raise ValueError(f"invalid resource name {name!r}: reserved for shopsync's own tables")
    return name


def validate_shop_name(name: str) -> str:
    """Return ``name`` if it is safe as one path component (letters, digits, ``.``, ``_``, ``-``)."""
    if not isinstance(name, str) or not _SHOP_NAME.match(name) or len(name) > 200:
        raise ValueError(f"invalid shop name {name!r}: use letters, digits, '.', '_' and '-'")
    return name


def url_scheme(url: str) -> str:
    """The scheme of a storage URL, lowercased (``sqlite``, ``jsonl``, ``postgresql`` …)."""
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise ConfigError(
            f"storage URL {redact_url(url)!r} has no scheme (e.g. sqlite:///var/lib/shopsync/shopsync.db)"
        )
    return scheme.lower()


def path_from_url(url: str, *, base_dir: Path | None = None) -> Path:
    """The file/directory path of a ``sqlite:`` or ``jsonl:`` URL, read as a standard URL.

    ``sqlite:///var/lib/shopsync/shopsync.db`` (empty host, path ``/var/…``) is absolute;
    ``sqlite:shopsync.db`` or ``sqlite:data/shopsync.db`` (no slashes after the colon) is relative
    to ``base_dir`` (the configuration file's directory; the current directory when None).
    ``sqlite:/abs/x.db`` and ``sqlite:////abs/x.db`` (SQLAlchemy's absolute form) are absolute too.
    ``~`` expands. A host (``sqlite://name/…``) is refused: it is a misspelt path.
    """
    scheme = url_scheme(url)
    rest = url[len(scheme) + 1 :]
    if "?" in rest or "#" in rest:
        raise ConfigError(f"storage URL {url!r}: query strings and fragments are not supported")
    if rest.startswith("//"):
        host, slash, raw = rest[2:].partition("/")
        if host or not slash or not raw.strip("/"):
            raise ConfigError(
                f"storage URL {url!r} must look like {scheme}:///absolute/path or {scheme}:relative/path"
            )
        path = Path("/" + raw.lstrip("/"))
    else:
        if not rest:
            raise ConfigError(
                f"storage URL {url!r} must look like {scheme}:///absolute/path or {scheme}:relative/path"
            )
        path = Path(rest).expanduser()
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    return path.absolute()


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs and status output)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def replaces(updated_at: str | None, stored_updated_at: str | None) -> bool:
    """Whether a record version with ``updated_at`` replaces the stored one (the newer-wins rule).

    Newer or equal wins, so a replay of the same version rewrites it harmlessly; a version without
    ``updated_at`` (resources that have none), or a stored one without it, always replaces.
    Timestamps are canonical (``2026-11-25T23:18:05Z``), so comparing the text orders them.
    """
    return updated_at is None or stored_updated_at is None or updated_at >= stored_updated_at


@runtime_checkable
class Sink(Protocol):
    """Where records go.

    Semantics every sink keeps:

    * ``write`` is durable on return; if it raises :class:`~shopsync.errors.StorageError`, the
      caller must treat the whole batch as not written (some of it may be; replaying it is harmless).
    * Redelivery is harmless: for keyed sinks a record replaces the stored one only when its
      ``updated_at`` is newer or equal (an older replay is counted in ``skipped_older``); for
      append-only sinks every line carries ``updatedAt`` so readers keep the newest.
    * Deletions mark the record deleted at ``deleted_at``; they never erase the data.
    """

    #: Where the sink writes, safe to show (passwords redacted).
    url: str

    async def open(self) -> None:
        """Open (creating if missing). Raises StorageError naming the path/database on failure."""
        ...

    async def close(self) -> None:
        """Release files/connections. Idempotent."""
        ...

    async def write(self, records: Sequence[Record] = (), deletions: Sequence[Deletion] = ()) -> WriteResult:
        """Durably store ``records`` and ``deletions`` (any shops/resources) before returning."""
        ...

    async def read_latest(self, shop: str, resource: str) -> dict[str, SinkRow]:
        """The newest version of every record of (shop, resource), keyed by id.

        For tests, guards and tools; it reads everything, so it is not for hot paths.
        """
        ...

    async def stats(self, shop: str, resource: str) -> SinkStats:
        """Cheap size figures for ``shopsync status``."""
        ...
