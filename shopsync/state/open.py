"""Opening storage by URL: the sink, the state store with its sink, and reading state for status.

    storage = await open_storage(settings)            # or: open_storage("sqlite:///var/lib/s.db", "jsonl:out")
    try:
        await storage.state.commit(state.with_page(cursor, len(records)), records)
    finally:
        await storage.close()

The scheme of a URL picks its backend through the one registry,
:data:`shopsync.settings.urls.SCHEMES`: each entry names a module of
:mod:`shopsync.state.backends`, imported here on first use. ``sqlite:///var/lib/shopsync/shopsync.db``
(absolute) or ``sqlite:shopsync.db`` (relative to the configuration's directory): SQLite;
``jsonl:///srv/out`` or ``jsonl:out``: JSONL change logs; ``postgresql://…[?schema=name]``: PostgreSQL.

When the sink URL names the state database itself (the same SQLite file after resolving relative
paths, or the same PostgreSQL schema), both use one database object — one connection or pool —
and :meth:`~shopsync.state.store.StateStore.commit` writes rows and checkpoint in one transaction.
Otherwise the sink is written durably first and the checkpoint saved after.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from shopsync.errors import ConfigError
from shopsync.settings import Settings
from shopsync.settings.urls import Role, StorageScheme, find_scheme, redact_url, schemes_for, url_scheme
from shopsync.state.backends import Clock, SinkBackend, StateBackend, StateRows
from shopsync.state.leases import LeaseStore
from shopsync.state.models import BulkOperationRecord, CommitResult, Deletion, Record, StreamState
from shopsync.state.sink import DEFAULT_ROTATE_BYTES, Sink
from shopsync.state.sql_store import SqlStateStore
from shopsync.state.store import StateStore
from shopsync.state.table import TableSink
from shopsync.timeutil import epoch_to_ts

__all__ = ["Storage", "lease_store", "make_sink", "open_sink", "open_storage", "read_leases", "read_state"]


@dataclass(eq=False)
class Storage:
    """An open state store and its sink. ``close()`` closes both (the shared database once)."""

    state: StateStore
    sink: Sink
    #: True when rows and checkpoint commit in one transaction (sink and state in one database).
    shared_transaction: bool

    @property
    def database_url(self) -> str:
        return self.state.url

    @property
    def sink_url(self) -> str:
        return self.sink.url

    async def commit(
        self,
        state: StreamState,
        records: Sequence[Record] = (),
        deletions: Sequence[Deletion] = (),
        bulk: BulkOperationRecord | None = None,
    ) -> CommitResult:
        """Shorthand for ``self.state.commit(...)``."""
        return await self.state.commit(state, records, deletions, bulk)

    async def close(self) -> None:
        """Close the state store, then the sink. Idempotent."""
        try:
            await self.state.close()
        finally:
            await self.sink.close()

    async def __aenter__(self) -> Storage:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def make_sink(
    url: str,
    *,
    base_dir: Path | None = None,
    rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    clock: Clock = time.time,
) -> Sink:
    """The (not yet opened) sink for ``url``; ConfigError for an unknown scheme or a bad URL."""
    backend = cast(SinkBackend, _backend(_scheme(url, "sink", "sink URL")))
    return backend.make_sink(url, base_dir=base_dir, rotate_bytes=rotate_bytes, clock=clock)


async def open_sink(
    url: str,
    *,
    base_dir: Path | None = None,
    rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    clock: Clock = time.time,
) -> Sink:
    """:func:`make_sink`, opened. The caller closes it."""
    sink = make_sink(url, base_dir=base_dir, rotate_bytes=rotate_bytes, clock=clock)
    await sink.open()
    return sink


async def open_storage(
    database_url: str | Settings,
    sink_url: str | None = None,
    *,
    rotate_bytes: int | None = None,
    base_dir: Path | None = None,
    clock: Clock = time.time,
    exclusive: bool = False,
) -> Storage:
    """Open the state store at ``database_url`` and the sink at ``sink_url`` (default: the same).

    ``database_url`` may instead be the :class:`~shopsync.settings.Settings`: its ``database``,
    ``sink_url``, ``sink.rotate_bytes`` and the directory of its ``path`` (the configuration file)
    are used unless given here.

    Paths: ``sqlite:///var/lib/x.db`` is absolute, ``sqlite:x.db`` is relative to ``base_dir`` (the
    configuration file's directory; the current directory when None); likewise ``jsonl:``.
    ``rotate_bytes`` sizes JSONL files, ``clock`` stamps ``synced_at``.

    ``exclusive`` (``shopsync run`` and ``sync``): the state database is this process's only while
    open. A SQLite one is locked (``<file>.lock``) and refused with a StorageError naming the file
    and the holder's pid when another process holds it; a PostgreSQL one is shared as it is.

    Raises :class:`~shopsync.errors.ConfigError` for an unsupported or malformed URL and
    :class:`~shopsync.errors.StorageError` if a file cannot be opened or created.
    """
    resources = None
    if not isinstance(database_url, str):
        settings = database_url
        resources = getattr(settings, "resources", None) or None  # tests pass look-alike settings
        database_url = settings.database
        sink_url = sink_url or settings.sink_url
        if rotate_bytes is None:
            rotate_bytes = settings.sink.rotate_bytes
        if base_dir is None:
            base_dir = Path(settings.path).parent  # made absolute by path_from_url
    rotate = DEFAULT_ROTATE_BYTES if rotate_bytes is None else rotate_bytes
    backend = cast(StateBackend, _backend(_scheme(database_url, "state", "database URL")))
    sink_at = sink_url or database_url
    state, sink = backend.make_state(
        database_url,
        base_dir=base_dir,
        sink_url=sink_at,
        clock=clock,
        other_sink=lambda: make_sink(sink_at, base_dir=base_dir, rotate_bytes=rotate, clock=clock),
    )
    if resources is not None and isinstance(sink, TableSink):
        sink.view_resources = resources  # the analyst views follow the configured resource files
    if exclusive and isinstance(state, SqlStateStore):
        state.database.exclusive = True
    await state.open()
    try:
        await sink.open()
    except BaseException:
        await state.close()
        raise
    return Storage(state=state, sink=sink, shared_transaction=state.shares_transaction)


def lease_store(storage: Storage, owner: str) -> LeaseStore | None:
    """The lease store of daemon ``owner`` on ``storage``'s state database, its fence installed on
    the state store; None when that database keeps no leases (SQLite: one daemon only)."""
    from shopsync.state.memory import MemoryLeaseStore, MemoryStateStore
    from shopsync.state.postgres import PostgresStateStore
    from shopsync.state.postgres_leases import PostgresLeaseStore

    if isinstance(storage.state, PostgresStateStore):
        return PostgresLeaseStore(storage.state, owner)
    if isinstance(storage.state, MemoryStateStore):
        return MemoryLeaseStore(storage.state, owner)
    return None


def read_leases(database_url: str) -> dict[str, dict[str, object]]:
    """Per shop, its lease (``owner``, ``epoch``, ``expires_at``) in the state database, for
    ``shopsync status``; empty for a database that keeps none (SQLite). Raises StorageError."""
    if url_scheme(database_url) not in ("postgresql", "postgres"):
        return {}
    from shopsync.state.backends.postgresql import read_leases as read_pg

    return {
        x.shop: {"owner": x.owner, "epoch": x.epoch, "expires_at": epoch_to_ts(x.expires_at)}
        for x in read_pg(database_url)
    }


def read_state(database_url: str, base_dir: Path | None) -> StateRows:
    """Stream states and unfinished bulk operations from the state database, read without writing.

    For ``shopsync status``: it works while the daemon writes. Raises
    :class:`~shopsync.errors.StorageError` if the database cannot be read.
    """
    name = url_scheme(database_url)
    scheme = find_scheme(name)
    if scheme is None or not scheme.state:
        raise ConfigError(f"database: unsupported scheme {name!r}")
    return cast(StateBackend, _backend(scheme)).read_state(database_url, base_dir=base_dir)


def _scheme(url: str, role: Role, what: str) -> StorageScheme:
    """The registry entry for ``url`` if it can serve ``role``; ConfigError naming the choices."""
    name = url_scheme(url)
    scheme = find_scheme(name)
    if scheme is None or not scheme.serves(role):
        names = [f"{s.name}:" for s in schemes_for(role)]
        choices = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"
        raise ConfigError(f"{what} {redact_url(url)!r}: unsupported scheme {name!r} (use {choices})")
    return scheme


def _backend(scheme: StorageScheme) -> object:
    """The backend module the registry names (imported once, on first use)."""
    return importlib.import_module(scheme.backend)
