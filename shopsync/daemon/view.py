"""The daemon's in-memory view of every stream: what the metrics, ``STATUS=`` and ``/status`` read.

A scrape, a ``/status`` request and each watchdog tick run on the event loop, so they must not wait
for the database. :class:`StreamView` keeps each stream's state row, its unfinished bulk
operations and the progress of the bulk operation being polled in memory: re-read from the state
store every few seconds and after each run (:meth:`StreamView.refresh`,
:meth:`StreamView.refresh_stream`, the only I/O here), and kept current in between by the engine's
events (:class:`ViewObserver`). The snapshots built from it (:meth:`StreamView.snapshot`,
:meth:`StreamView.status`) are pure: configured shops, parking and "now" are passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from shopsync.daemon.parking import Park, epoch_of
from shopsync.daemon.status import LiveView, build_status
from shopsync.errors import ShopsyncError
from shopsync.observability.events import EngineObserver, RequestObserver
from shopsync.observability.metrics import StateSnapshot, StreamSnapshot
from shopsync.settings import StreamKey
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.state.store import StateStore
from shopsync.timeutil import epoch_to_ts

log = logging.getLogger(__name__)

#: Configured shops as (name, resources), in configuration order.
Shops = Iterable[tuple[str, Sequence[str]]]


@dataclass(frozen=True, kw_only=True, slots=True)
class _Cached:
    """A stream state with its timestamps as epoch seconds (computed once, read at every scrape)."""

    state: StreamState
    watermark: float | None
    last_success: float | None

    @classmethod
    def of(cls, state: StreamState) -> _Cached:
        return cls(state=state, watermark=epoch_of(state.watermark), last_success=epoch_of(state.last_success_at))


class StreamView:
    """Each stream's state row, unfinished bulk operations and live bulk progress, in memory."""

    def __init__(self) -> None:
        self._states: dict[StreamKey, _Cached] = {}
        self._bulk_ops: dict[StreamKey, list[BulkOperationRecord]] = {}
        #: (status, objectCount) of bulk operations being polled right now.
        self.bulk_progress: dict[StreamKey, tuple[str, int]] = {}

    # -- reading the state store --------------------------------------------------------------
    async def refresh(self, store: StateStore) -> None:
        """Re-read every stream state and unfinished bulk operation (a failing read is logged)."""
        try:
            states = await store.list_streams()
            ops = await store.list_bulk_operations(unfinished_only=True)
        except ShopsyncError as exc:
            log.warning("could not refresh the status from the state database: %s", exc)
            return
        self._states = {s.key: _Cached.of(s) for s in states}
        by_key: dict[StreamKey, list[BulkOperationRecord]] = {}
        for op in ops:
            by_key.setdefault((op.shop, op.resource), []).append(op)
        self._bulk_ops = by_key

    async def refresh_stream(self, store: StateStore, key: StreamKey) -> None:
        """Re-read one stream's state and unfinished bulk operations (after its run)."""
        try:
            state = await store.get_stream(*key)
            ops = await store.list_bulk_operations(shop=key[0], resource=key[1], unfinished_only=True)
        except ShopsyncError as exc:
            log.warning("could not refresh the stream's status: %s", exc)
            return
        if state is not None:
            self._states[key] = _Cached.of(state)
        if ops:
            self._bulk_ops[key] = ops
        else:
            self._bulk_ops.pop(key, None)

    # -- updates between reads ----------------------------------------------------------------
    def state(self, key: StreamKey) -> StreamState | None:
        cached = self._states.get(key)
        return cached.state if cached is not None else None

    def states(self) -> list[StreamState]:
        """Every cached state row (the engine's internal ``@`` rows included)."""
        return [c.state for c in self._states.values()]

    def put(self, state: StreamState) -> None:
        """A state row the daemon itself just wrote."""
        self._states[state.key] = _Cached.of(state)

    def note_checkpoint(self, key: StreamKey, watermark: str | None, now: float) -> None:
        """A window committed: the watermark moved (if given) and the stream is healthy."""
        cached = self._states.get(key)
        state = cached.state if cached is not None else StreamState(shop=key[0], resource=key[1])
        self._states[key] = _Cached.of(
            replace(
                state,
                watermark=watermark or state.watermark,
                last_success_at=epoch_to_ts(now),
                last_error=None,
            )
        )

    def forget_shop(self, shop: str) -> None:
        for table in (self._states, self._bulk_ops, self.bulk_progress):
            for key in [k for k in table if k[0] == shop]:
                del table[key]

    # -- snapshots (pure) ---------------------------------------------------------------------
    def snapshot(
        self,
        shops: Shops,
        *,
        syncing: Collection[StreamKey],
        parked_shops: Mapping[str, Park],
        parked_streams: Mapping[StreamKey, Park],
    ) -> StateSnapshot:
        """The metrics' scrape-time view of the configured streams (parkings in force given)."""
        streams = []
        for shop, resources in shops:
            for resource in resources:
                key = (shop, resource)
                cached = self._states.get(key)
                park = parked_streams.get(key)
                streams.append(
                    StreamSnapshot(
                        shop=shop,
                        resource=resource,
                        watermark=cached.watermark if cached else None,
                        last_success=cached.last_success if cached else None,
                        syncing=key in syncing,
                        parked_reason=park.reason if park is not None else None,
                    )
                )
        return StateSnapshot(streams=streams, parked_shops={s: p.reason for s, p in parked_shops.items()})

    def status(self, *, shops: Shops, live: LiveView, now: float) -> dict[str, Any]:
        """The ``/status`` document of the configured shops (see :func:`~shopsync.daemon.status.build_status`)."""
        return build_status(
            states=self.states(),
            bulk_operations=[op for ops in self._bulk_ops.values() for op in ops],
            now=now,
            shops=[(name, list(resources)) for name, resources in shops],
            live=live,
        )


class DaemonObserver(RequestObserver, EngineObserver, Protocol):
    """Both the client's and the engine's events (the daemon's metrics observer implements them)."""


class ViewObserver:
    """The engine's observer in the daemon: forwards every event to the metrics' observer and keeps
    the :class:`StreamView` current (bulk progress, checkpoints) between refreshes.

    Implements :class:`~shopsync.observability.events.EngineObserver` and, forwarding only,
    :class:`~shopsync.observability.events.RequestObserver`: every method of both, nothing else.
    """

    def __init__(self, metrics_observer: DaemonObserver, view: StreamView, clock: Callable[[], float]) -> None:
        self._m = metrics_observer
        self._view = view
        self._clock = clock

    # -- EngineObserver --------------------------------------------------------------------------
    def on_records(self, shop: str, resource: str, path: str, count: int) -> None:
        self._m.on_records(shop, resource, path, count)

    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None:
        self._m.on_bulk_status(shop, resource, status, object_count)
        self._view.bulk_progress[(shop, resource)] = (status, object_count)

    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None:
        self._m.on_bulk_finished(shop, resource, status, duration, objects)
        self._view.bulk_progress.pop((shop, resource), None)

    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None:
        self._m.on_guard_mismatch(shop, resource, kind)

    def on_path_decision(self, shop: str, resource: str, path: str, reason: str) -> None:
        self._m.on_path_decision(shop, resource, path, reason)

    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None:
        self._m.on_checkpoint(shop, resource, watermark)
        self._view.note_checkpoint((shop, resource), watermark, self._clock())

    # -- RequestObserver: not the view's business, forwarded ------------------------------------
    def on_request(
        self, shop: str, outcome: str, duration: float, requested: float | None, actual: float | None
    ) -> None:
        self._m.on_request(shop, outcome, duration, requested, actual)

    def on_retry(self, shop: str, reason: str) -> None:
        self._m.on_retry(shop, reason)

    def on_throttled(self, shop: str) -> None:
        self._m.on_throttled(shop)

    def on_version_mismatch(self, shop: str, served: str) -> None:
        self._m.on_version_mismatch(shop, served)

    def on_deprecated(self, shop: str, operation: str) -> None:
        self._m.on_deprecated(shop, operation)

    def on_throttle_status(self, shop: str, available: float, maximum: float, restore_rate: float) -> None:
        self._m.on_throttle_status(shop, available, maximum, restore_rate)
