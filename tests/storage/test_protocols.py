"""Every state store and sink satisfies its Protocol: checked by mypy (the annotated lists below)
and at run time (the Protocols are runtime-checkable)."""

from __future__ import annotations

from pathlib import Path

from shopsync.state.jsonl import JsonlSink
from shopsync.state.memory import MemoryDatabase, MemorySink, MemoryStateStore
from shopsync.state.postgres import PostgresDatabase, PostgresStateStore
from shopsync.state.postgres_sink import PostgresSink
from shopsync.state.sink import Sink
from shopsync.state.sqlite import SqliteDatabase, SqliteStateStore
from shopsync.state.sqlite_sink import SqliteSink
from shopsync.state.store import StateStore


def test_every_backend_satisfies_the_protocols(tmp_path: Path) -> None:
    sqlite, pg, memory = (
        SqliteDatabase(tmp_path / "s.db"),
        PostgresDatabase("postgresql://127.0.0.1/db"),  # not connected: construction only
        MemoryDatabase(),
    )
    stores: list[StateStore] = [SqliteStateStore(sqlite), PostgresStateStore(pg), MemoryStateStore(memory)]
    sinks: list[Sink] = [
        SqliteSink(sqlite),
        PostgresSink(pg),
        JsonlSink(tmp_path / "out"),
        MemorySink(memory),
    ]
    assert all(isinstance(store, StateStore) for store in stores)
    assert all(isinstance(sink, Sink) for sink in sinks)
    assert [store.shares_transaction for store in stores] == [False, False, False]
