"""The ``sqlite:`` scheme: one SQLite file as the state database, the sink, or both in one transaction."""

from __future__ import annotations

import dataclasses
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from shopsync.errors import StorageError
from shopsync.settings.urls import path_from_url, same_scheme
from shopsync.state.backends import Clock, StateRows
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.state.sink import Sink
from shopsync.state.sqlite import SqliteDatabase, SqliteStateStore
from shopsync.state.sqlite_sink import SqliteSink
from shopsync.state.store import StateStore

_Row = TypeVar("_Row", StreamState, BulkOperationRecord)


def make_sink(url: str, *, base_dir: Path | None, rotate_bytes: int, clock: Clock) -> Sink:
    """A :class:`~shopsync.state.sqlite_sink.SqliteSink` on its own connection to the file."""
    return SqliteSink(SqliteDatabase(path_from_url(url, base_dir=base_dir)), clock=clock)


def make_state(
    url: str, *, base_dir: Path | None, sink_url: str, clock: Clock, other_sink: Callable[[], Sink]
) -> tuple[StateStore, Sink]:
    """The state store in the file; a sink URL naming the same file (however spelt) shares its connection."""
    database = SqliteDatabase(path_from_url(url, base_dir=base_dir))
    sink: Sink
    if same_scheme(sink_url, url) and path_from_url(sink_url, base_dir=base_dir) == database.path:
        sink = SqliteSink(database, clock=clock)
    else:
        sink = other_sink()
    return SqliteStateStore(database, sink), sink


def read_state(url: str, *, base_dir: Path | None) -> StateRows:
    """The file opened read-only, so it works while the daemon writes (WAL readers never block it)."""
    return read_sqlite_state(path_from_url(url, base_dir=base_dir))


def read_sqlite_state(path: Path) -> StateRows:
    """Every stream state and unfinished bulk operation of a SQLite state database, opened read-only."""
    if not path.exists():
        raise StorageError(f"no state database at {path} (nothing synced yet?)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10.0)
    except sqlite3.Error as exc:
        raise StorageError(f"cannot open the state database {path} read-only: {exc}") from exc
    try:
        conn.row_factory = sqlite3.Row
        streams = [_from_row(StreamState, row) for row in conn.execute("SELECT * FROM stream_state")]
        bulk = [
            _from_row(BulkOperationRecord, row)
            for row in conn.execute("SELECT * FROM bulk_operations WHERE finished = 0 ORDER BY created_at, id")
        ]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return [], []
        raise StorageError(f"reading the state database {path}: {exc}") from exc
    except sqlite3.Error as exc:
        raise StorageError(f"reading the state database {path}: {exc}") from exc
    finally:
        conn.close()
    return streams, bulk


def _from_row(cls: type[_Row], row: sqlite3.Row) -> _Row:
    # Columns by name, so a database written by a newer shopsync (more columns) still reads.
    names = {f.name for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {k: row[k] for k in row.keys() if k in names}  # noqa: SIM118 - sqlite3.Row has no items()
    if "finished" in values:
        values["finished"] = bool(values["finished"])
    return cls(**values)
