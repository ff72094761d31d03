"""Storage URLs: the one registry of schemes, reading paths out of URLs, redaction, shop names.

:data:`SCHEMES` is the only list of storage URL schemes. Settings validation
(:func:`check_storage_url`), opening (:mod:`shopsync.state.open`) and ``shopsync status`` all read
it, so adding a scheme is one :class:`StorageScheme` entry here plus its backend module: a module
under ``shopsync.state.backends`` offering the opener functions that
:class:`shopsync.state.backends.SinkBackend` / :class:`~shopsync.state.backends.StateBackend`
describe. The entry names that module as text and the storage layer imports it when a URL of the
scheme is opened, so settings never import the storage layer.

The file schemes read their path as a standard URL (see :func:`path_from_url`)::

    sqlite:///var/lib/shopsync/shopsync.db    absolute
    sqlite:shopsync.db                        relative to the configuration file's directory
    jsonl:///srv/out   jsonl:out              a directory of change-log files
    postgresql://user:pw@host/db?schema=s     a server (``postgres://`` is the same scheme)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from shopsync.errors import ConfigError

__all__ = [
    "SCHEMES",
    "SHOP_NAME",
    "Role",
    "StorageScheme",
    "check_storage_url",
    "find_scheme",
    "is_shop_name",
    "path_from_url",
    "redact_url",
    "same_scheme",
    "scheme_names",
    "schemes_for",
    "url_scheme",
]

#: What a storage URL is used for: the state database or the sink the records go to.
Role = Literal["state", "sink"]


@dataclass(frozen=True, kw_only=True)
class StorageScheme:
    """One storage URL scheme and what it can be used for."""

    #: The canonical name, as written before ``:`` (lowercase).
    name: str
    #: Other spellings of the same scheme (``postgres`` for ``postgresql``).
    aliases: tuple[str, ...] = ()
    #: Whether a URL of this scheme can be the state database (``database = …``).
    state: bool
    #: Whether a URL of this scheme can be the sink (``[sink] url = …``).
    sink: bool
    #: Whether the URL names a file or directory path (read with :func:`path_from_url`).
    file: bool
    #: Dotted name of the backend module that opens it, imported only when a URL is opened.
    backend: str

    @property
    def spellings(self) -> tuple[str, ...]:
        """The name, then the aliases."""
        return (self.name, *self.aliases)

    def serves(self, role: Role) -> bool:
        return self.state if role == "state" else self.sink


SCHEMES: tuple[StorageScheme, ...] = (
    StorageScheme(name="sqlite", state=True, sink=True, file=True, backend="shopsync.state.backends.sqlite"),
    StorageScheme(name="jsonl", state=False, sink=True, file=True, backend="shopsync.state.backends.jsonl"),
    StorageScheme(
        name="postgresql",
        aliases=("postgres",),
        state=True,
        sink=True,
        file=False,
        backend="shopsync.state.backends.postgresql",
    ),
)


def find_scheme(name: str) -> StorageScheme | None:
    """The registry entry for the scheme ``name`` (any spelling, any case), or None."""
    name = name.lower()
    for scheme in SCHEMES:
        if name in scheme.spellings:
            return scheme
    return None


def schemes_for(role: Role) -> tuple[StorageScheme, ...]:
    """The schemes a URL of ``role`` may use, in registry order."""
    return tuple(s for s in SCHEMES if s.serves(role))


def scheme_names(role: Role, *, aliases: bool = True) -> tuple[str, ...]:
    """The names (and, with ``aliases``, every other spelling) of the schemes serving ``role``."""
    return tuple(n for s in schemes_for(role) for n in (s.spellings if aliases else (s.name,)))


def url_scheme(url: str) -> str:
    """The scheme of a storage URL, lowercased (``sqlite``, ``jsonl``, ``postgresql`` …)."""
    scheme, sep, _ = url.partition(":")
    if not sep or not scheme:
        raise ConfigError(
            f"storage URL {redact_url(url)!r} has no scheme (e.g. sqlite:///var/lib/shopsync/shopsync.db)"
        )
    return scheme.lower()


def same_scheme(a: str, b: str) -> bool:
    """Whether storage URLs ``a`` and ``b`` have one registered scheme (aliases count as one)."""
    first, second = find_scheme(url_scheme(a)), find_scheme(url_scheme(b))
    return first is not None and first is second


def path_from_url(url: str, *, base_dir: Path | None = None) -> Path:
    """The file/directory path of a ``sqlite:`` or ``jsonl:`` URL, read as a standard URL.

    ``sqlite:///var/lib/shopsync/shopsync.db`` (empty host, path ``/var/…``) is absolute;
    ``sqlite:shopsync.db`` or ``sqlite:data/shopsync.db`` (no slashes after the colon) is relative
    to ``base_dir`` (the configuration file's directory; the current directory when None).
    ``sqlite:/abs/x.db`` and ``sqlite:////abs/x.db`` (SQLAlchemy's absolute form) are absolute too.
    ``~`` expands. A host (``sqlite://name/…``) is refused: it is a misspelt path.
    """
    path = _written_path(url)
    if not path.is_absolute():
        path = (base_dir if base_dir is not None else Path.cwd()) / path
    return path.absolute()


def _written_path(url: str) -> Path:
    """The path as the URL writes it (``~`` expanded, not resolved); ConfigError if malformed."""
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
        return Path("/" + raw.lstrip("/"))
    if not rest:
        raise ConfigError(f"storage URL {url!r} must look like {scheme}:///absolute/path or {scheme}:relative/path")
    return Path(rest).expanduser()


def check_storage_url(url: str, role: Role) -> StorageScheme:
    """The registry entry of ``url`` if it can serve ``role``, else ConfigError saying what is wrong.

    The message names the URL and the problem only; callers add where it was written.
    """
    parts = urlsplit(url)
    scheme = find_scheme(parts.scheme) if parts.scheme else None
    if scheme is None or not scheme.serves(role):
        raise ConfigError(f"{url!r} must start with one of {', '.join(s + '://' for s in scheme_names(role))}")
    if scheme.file:
        _written_path(url)
    elif not (parts.hostname or parts.path.strip("/")):
        raise ConfigError(f"{url!r} names no server or database")
    return scheme


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (safe for logs and status output).

    ``postgresql://u:pw@h/db`` → ``postgresql://u:***@h/db``; the rest is kept as written.
    """
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()


#: A shop name: safe as one path component, a log field and a metric label.
SHOP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\Z")


def is_shop_name(name: object, max_length: int) -> bool:
    """Whether ``name`` is a shop name (:data:`SHOP_NAME`) of at most ``max_length`` characters."""
    return isinstance(name, str) and len(name) <= max_length and SHOP_NAME.match(name) is not None
