"""The ``jsonl:`` scheme: a directory of append-only change-log files, a sink only."""

from __future__ import annotations

from pathlib import Path

from shopsync.settings.urls import path_from_url
from shopsync.state.backends import Clock
from shopsync.state.jsonl import JsonlSink
from shopsync.state.sink import Sink


def make_sink(url: str, *, base_dir: Path | None, rotate_bytes: int, clock: Clock) -> Sink:
    """A :class:`~shopsync.state.jsonl.JsonlSink` on the directory ``url`` names."""
    path = path_from_url(url, base_dir=base_dir)
    return JsonlSink(path, rotate_bytes=rotate_bytes, url=f"jsonl://{path}")
