"""The ``postgresql:`` scheme (also ``postgres:``): a schema of a PostgreSQL database, state and/or sink."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from shopsync.settings.urls import same_scheme
from shopsync.state.backends import Clock, StateRows
from shopsync.state.leases import Lease
from shopsync.state.postgres import (
    LEASE_COLUMNS,
    PostgresDatabase,
    PostgresStateStore,
    lease_of,
    split_schema,
)
from shopsync.state.postgres_sink import PostgresSink
from shopsync.state.sink import Sink
from shopsync.state.store import StateStore


def make_sink(url: str, *, base_dir: Path | None, rotate_bytes: int, clock: Clock) -> Sink:
    """A :class:`~shopsync.state.postgres_sink.PostgresSink` on its own connection pool."""
    return PostgresSink(PostgresDatabase(url), clock=clock)


def make_state(
    url: str, *, base_dir: Path | None, sink_url: str, clock: Clock, other_sink: Callable[[], Sink]
) -> tuple[StateStore, Sink]:
    """The state store in the URL's schema; a sink URL naming the same schema shares its pool."""
    pg = PostgresDatabase(url)
    sink: Sink
    if same_scheme(sink_url, url) and _same_pg(split_schema(sink_url), (pg.dsn, pg.schema)):
        sink = PostgresSink(pg, clock=clock)
    else:
        sink = other_sink()
    return PostgresStateStore(pg, sink), sink


def read_state(url: str, *, base_dir: Path | None) -> StateRows:
    """Read through the state store (PostgreSQL readers never block the daemon's writes)."""
    return asyncio.run(_read(url))


async def _read(url: str) -> StateRows:
    store = PostgresStateStore(PostgresDatabase(url))
    await store.open()
    try:
        return await store.list_streams(), await store.list_bulk_operations(unfinished_only=True)
    finally:
        await store.close()


def read_leases(url: str) -> list[Lease]:
    """Every shop's lease row (``shopsync status``)."""
    return asyncio.run(_read_leases(url))


async def _read_leases(url: str) -> list[Lease]:
    store = PostgresStateStore(PostgresDatabase(url))
    await store.open()
    try:
        async with store.database.connection("reading the leases") as conn:
            rows = await conn.fetch(f'SELECT {LEASE_COLUMNS} FROM {store.database.table("leases")} ORDER BY shop COLLATE "C"')
        return [lease_of(r) for r in rows]
    finally:
        await store.close()


def _same_pg(a: tuple[str, str], b: tuple[str, str]) -> bool:
    """Same server, database and schema (``postgres:`` and ``postgresql:`` are one scheme)."""
    return (a[0].replace("postgres://", "postgresql://", 1), a[1]) == (
        b[0].replace("postgres://", "postgresql://", 1),
        b[1],
    )
