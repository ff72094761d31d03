"""Where records go: the Sink protocol and its implementations, chosen by URL.

``sqlite:///var/lib/shopsync/shopsync.db`` (absolute) or ``sqlite:shopsync.db`` (relative to the
configuration's directory): :class:`~shopsync.sinks.sqlite.SqliteSink`; ``jsonl:///srv/out`` or
``jsonl:out``: :class:`~shopsync.sinks.jsonl.JsonlSink`; ``postgresql://…[?schema=name]``:
:class:`~shopsync.sinks.postgres.PostgresSink`. See :func:`shopsync.sinks.base.path_from_url`. To share the state store's database and transaction,
open both through :func:`shopsync.storage.open_storage`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from shopsync.errors import ConfigError
from shopsync.sinks.base import (
    DEFAULT_ROTATE_BYTES,
    Deletion,
    Record,
    Sink,
    SinkRow,
    SinkStats,
    WriteResult,
    path_from_url,
    redact_url,
    url_scheme,
)

__all__ = [
    "DEFAULT_ROTATE_BYTES",
    "Deletion",
    "Record",
    "Sink",
    "SinkRow",
    "SinkStats",
    "WriteResult",
    "make_sink",
    "open_sink",
]


def make_sink(
    url: str,
    *,
    base_dir: Path | None = None,
    rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    clock: Callable[[], float] = time.time,
) -> Sink:
    """The (not yet opened) sink for ``url``; ConfigError for an unknown scheme or a bad URL."""
    scheme = url_scheme(url)
    if scheme == "sqlite":
        from shopsync.sinks.sqlite import SqliteSink
        from shopsync.state.sqlite import SqliteDatabase

        return SqliteSink(SqliteDatabase(path_from_url(url, base_dir=base_dir)), clock=clock)
    if scheme == "jsonl":
        from shopsync.sinks.jsonl import JsonlSink

        path = path_from_url(url, base_dir=base_dir)
        return JsonlSink(path, rotate_bytes=rotate_bytes, url=f"jsonl://{path}")
    if scheme in ("postgresql", "postgres"):
        from shopsync.sinks.postgres import PostgresSink
        from shopsync.state.postgres import PostgresDatabase

        return PostgresSink(PostgresDatabase(url), clock=clock)
    raise ConfigError(
        f"sink URL {redact_url(url)!r}: unsupported scheme {scheme!r} (use sqlite:, jsonl: or postgresql:)"
    )


async def open_sink(
    url: str,
    *,
    base_dir: Path | None = None,
    rotate_bytes: int = DEFAULT_ROTATE_BYTES,
    clock: Callable[[], float] = time.time,
) -> Sink:
    """:func:`make_sink`, opened. The caller closes it."""
    sink = make_sink(url, base_dir=base_dir, rotate_bytes=rotate_bytes, clock=clock)
    await sink.open()
    return sink
