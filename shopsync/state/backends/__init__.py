"""Storage backends: one module per URL scheme, found through :data:`shopsync.settings.urls.SCHEMES`.

A registry entry names its backend module by dotted path; :mod:`shopsync.state.open` imports it
when a URL of that scheme is opened. A scheme that can be a sink has a module satisfying
:class:`SinkBackend`; one that can be the state database, :class:`StateBackend` (a module may be
both). Adding a scheme is one registry entry plus such a module (and a line in the check below).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.state.sink import Sink
from shopsync.state.store import StateStore

__all__ = ["Clock", "SinkBackend", "StateBackend", "StateRows"]

#: Seconds since the epoch; stamps ``synced_at`` on written rows.
Clock = Callable[[], float]
#: Every stream state and every unfinished bulk operation of a state database.
StateRows = tuple[list[StreamState], list[BulkOperationRecord]]


class SinkBackend(Protocol):
    """The backend module of a scheme that can be a sink."""

    def make_sink(self, url: str, *, base_dir: Path | None, rotate_bytes: int, clock: Clock) -> Sink:
        """The (not yet opened) sink at ``url``; relative paths resolve against ``base_dir``.

        Raises :class:`~shopsync.errors.ConfigError` for a malformed URL.
        """
        ...


class StateBackend(Protocol):
    """The backend module of a scheme that can be the state database."""

    def make_state(
        self, url: str, *, base_dir: Path | None, sink_url: str, clock: Clock, other_sink: Callable[[], Sink]
    ) -> tuple[StateStore, Sink]:
        """The (not yet opened) state store at ``url`` and its sink.

        When ``sink_url`` names this very database, the sink shares the store's database object,
        so that rows and checkpoint commit in one transaction; otherwise the sink is ``other_sink()``.
        """
        ...

    def read_state(self, url: str, *, base_dir: Path | None) -> StateRows:
        """Read the state database at ``url`` without writing to it (``shopsync status``).

        Raises :class:`~shopsync.errors.StorageError` if it cannot be read.
        """
        ...


if TYPE_CHECKING:  # the type checker holds every backend module to its protocol
    from shopsync.state.backends import jsonl, postgresql, sqlite

    _SINKS: tuple[SinkBackend, ...] = (sqlite, jsonl, postgresql)
    _STATES: tuple[StateBackend, ...] = (sqlite, postgresql)
