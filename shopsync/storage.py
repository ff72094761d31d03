"""Opening the state store and the sink together, wired for one transaction where they can share it.

    storage = await open_storage(settings)            # or: open_storage("sqlite:///var/lib/s.db", "jsonl:out")
    try:
        await storage.state.commit(state.with_page(cursor, len(records)), records)
    finally:
        await storage.close()

When the sink URL names the same SQLite file as the database URL (after resolving relative paths),
both use one :class:`~shopsync.state.sqlite.SqliteDatabase` — one connection — and
:meth:`~shopsync.state.base.StateStore.commit` writes rows and checkpoint in one transaction.
Otherwise the sink is written durably first and the checkpoint saved after.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopsync.errors import ConfigError
from shopsync.sinks import make_sink
from shopsync.sinks.base import DEFAULT_ROTATE_BYTES, Sink, path_from_url, redact_url, url_scheme
from shopsync.sinks.sqlite import SqliteSink
from shopsync.state.base import StateStore
from shopsync.state.models import BulkOperationRecord, CommitResult, Deletion, Record, StreamState
from shopsync.state.sqlite import SqliteDatabase, SqliteStateStore


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


async def open_storage(
    database_url: str | Any,
    sink_url: str | None = None,
    *,
    rotate_bytes: int | None = None,
    base_dir: Path | None = None,
    clock: Callable[[], float] = time.time,
) -> Storage:
    """Open the state store at ``database_url`` and the sink at ``sink_url`` (default: the same).

    ``database_url`` may instead be a settings object (:class:`shopsync.config.Settings` or alike):
    its ``database``, ``sink_url``, ``sink.rotate_bytes`` and the directory of its ``path`` (the
    configuration file) are used unless given here.

    Paths: ``sqlite:///var/lib/x.db`` is absolute, ``sqlite:x.db`` is relative to ``base_dir`` (the
    configuration file's directory; the current directory when None); likewise ``jsonl:``.
    ``rotate_bytes`` sizes JSONL files, ``clock`` stamps ``synced_at``.

    Raises :class:`~shopsync.errors.ConfigError` for an unsupported or malformed URL and
    :class:`~shopsync.errors.StorageError` if a file cannot be opened or created.
    """
    if not isinstance(database_url, str):
        settings = database_url
        database_url = settings.database
        sink_url = sink_url or getattr(settings, "sink_url", None)
        if rotate_bytes is None:
            rotate_bytes = getattr(getattr(settings, "sink", None), "rotate_bytes", None)
        config_path = getattr(settings, "path", None)
        if base_dir is None and config_path is not None:
            base_dir = Path(config_path).parent  # made absolute by path_from_url
    if rotate_bytes is None:
        rotate_bytes = DEFAULT_ROTATE_BYTES
    state: StateStore
    sink: Sink
    db_scheme = url_scheme(database_url)
    sink_url = sink_url or database_url
    if db_scheme == "sqlite":
        database = SqliteDatabase(path_from_url(database_url, base_dir=base_dir))
        if url_scheme(sink_url) == "sqlite" and path_from_url(sink_url, base_dir=base_dir) == database.path:
            sink = SqliteSink(database, clock=clock)
        else:
            sink = make_sink(sink_url, base_dir=base_dir, rotate_bytes=rotate_bytes, clock=clock)
        state = SqliteStateStore(database, sink)
    elif db_scheme in ("postgresql", "postgres"):
        from shopsync.sinks.postgres import PostgresSink
        from shopsync.state.postgres import PostgresDatabase, PostgresStateStore, split_schema

        pg = PostgresDatabase(database_url)
        if url_scheme(sink_url) in ("postgresql", "postgres") and _same_pg(
            split_schema(sink_url), (pg.dsn, pg.schema)
        ):
            sink = PostgresSink(pg, clock=clock)
        else:
            sink = make_sink(sink_url, base_dir=base_dir, rotate_bytes=rotate_bytes, clock=clock)
        state = PostgresStateStore(pg, sink)
    else:
        raise ConfigError(
            f"database URL {redact_url(database_url)!r}: unsupported scheme {db_scheme!r} (use sqlite: or postgresql:)"
        )
    await state.open()
    try:
        await sink.open()
    except BaseException:
        await state.close()
        raise
    return Storage(
        state=state, sink=sink, shared_transaction=bool(getattr(state, "shares_transaction", False))
    )


def _same_pg(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Same server, database and schema (``postgres:`` and ``postgresql:`` are one scheme)."""
    return (a[0].replace("postgres://", "postgresql://", 1), a[1]) == (
        b[0].replace("postgres://", "postgresql://", 1),
        b[1],
    )
