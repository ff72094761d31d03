"""Parking: holding back a shop, or one of its streams, that cannot be synced for now.

Which failed runs park what (:meth:`Parking.failed`):

* 401/402/404/423 (:class:`~shopsync.errors.ShopUnavailableError`) park the whole shop;
* 403, a missing scope (``resource_only``), parks only that stream;
* :data:`TRANSIENT_RUNS_TO_PARK` runs of one stream failing on transient errors (5xx, timeouts —
  each after the client's own retries) park the whole shop; once it was parked, one more such
  failure re-parks it at once.

A parking lasts ``park_backoff``, doubling with each failure after a retry up to
``park_backoff_max``; any success clears it. The daemon keeps the parking in force (a parked
stream's job returns at once), records it in the stream's state row (``parked_until``,
``parked_reason``: ``shopsync status``, and the next process after a restart) and moves the
stream's next run to the end of the parking.

:class:`Park` is one parking and :func:`persisted_park` reads it back from a state row;
:class:`Parking` is the pure bookkeeping ("now" is passed in); :func:`persist_park` and
:func:`clear_persisted_park` are the small I/O part that writes it to the state store.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from shopsync.errors import ShopsyncError, ShopUnavailableError, TransientError
from shopsync.settings import StreamKey
from shopsync.state.models import StreamState
from shopsync.state.store import StateStore
from shopsync.timeutil import epoch_to_ts, parse_ts

log = logging.getLogger(__name__)

#: Consecutive runs of one stream failing on transient errors (each after the client's own
#: retries) before the whole shop is parked. Once parked, one more such failure re-parks it.
TRANSIENT_RUNS_TO_PARK = 3


@dataclass(frozen=True, kw_only=True, slots=True)
class Park:
    """A stream or shop held back until ``until`` (epoch seconds; None: until someone acts)."""

    reason: str
    until: float | None


def epoch_of(ts: str | None) -> float | None:
    """Epoch seconds of a stored timestamp, or None when it is missing or unreadable."""
    if not ts:
        return None
    try:
        return parse_ts(ts).timestamp()
    except ValueError:
        return None


def persisted_park(state: StreamState | None, now: float) -> Park | None:
    """The parking a state row records, if still in force at ``now``."""
    if state is None or state.parked_reason is None:
        return None
    until = epoch_of(state.parked_until)
    if until is None and state.parked_until:
        # An unreadable end would park the stream for ever; a failing stream parks itself again.
        return None
    if until is not None and until <= now:
        return None
    return Park(reason=state.parked_reason, until=until)


@dataclass(frozen=True, kw_only=True, slots=True)
class Parked:
    """A parking that a failed run started: of its whole shop, or of its stream alone."""

    park: Park
    whole_shop: bool


class Parking:
    """Which shops and streams are parked until when, and how long the next parking lasts.

    The first parking of a shop (or stream) lasts ``base`` seconds; each failure after a retry
    doubles it, up to ``maximum``. Streams of one shop that fail together in one round share one
    parking (the first sets it, the others adopt it), so a round doubles the back-off once. Any
    success clears the stream's parking and history, and its shop's.
    """

    def __init__(self, base: float, maximum: float) -> None:
        self.base = base
        self.maximum = maximum
        self.shops: dict[str, Park] = {}
        self.streams: dict[StreamKey, Park] = {}
        self._last: dict[str | StreamKey, float] = {}
        # Runs in a row of each stream that failed on transient errors (see TRANSIENT_RUNS_TO_PARK).
        self._transient: dict[StreamKey, int] = {}

    def configure(self, base: float, maximum: float) -> None:
        self.base, self.maximum = base, maximum

    def active(self, key: StreamKey, now: float) -> Park | None:
        """The parking holding ``key`` back at ``now`` (its shop's first), if any."""
        for park in (self.shops.get(key[0]), self.streams.get(key)):
            if park is not None and (park.until is None or park.until > now):
                return park
        return None

    def failed(self, key: StreamKey, exc: BaseException | None, now: float) -> Parked | None:
        """Apply the policy to a failed run of ``key``; returns the parking it started, if any.

        None also when the shop was already parked by a sibling stream of the same round (that
        sibling's run reported it). Transient failures are counted here, per stream.
        """
        shop = key[0]
        if isinstance(exc, ShopUnavailableError):
            reason = exc.reason if exc.reason else str(exc)
            if exc.resource_only:
                park, new = self.park_stream(key, reason, now)
                return Parked(park=park, whole_shop=False) if new else None
            return self._parked_shop(shop, f"HTTP {exc.status}: {reason}", now)
        if isinstance(exc, TransientError):
            failures = self._transient.get(key, 0) + 1
            self._transient[key] = failures
            if failures >= TRANSIENT_RUNS_TO_PARK or self.was_parked(shop):
                self._transient.pop(key, None)
                return self._parked_shop(shop, f"repeated transient errors ({exc.reason})", now)
            return None
        # Any other failure breaks the run of transient ones.
        self._transient.pop(key, None)
        return None

    def _parked_shop(self, shop: str, reason: str, now: float) -> Parked | None:
        park, new = self.park_shop(shop, reason, now)
        return Parked(park=park, whole_shop=True) if new else None

    def park_shop(self, shop: str, reason: str, now: float) -> tuple[Park, bool]:
        """Park ``shop``; returns the parking and whether it is new (False: a sibling already did)."""
        return self._park(self.shops, shop, reason, now)

    def park_stream(self, key: StreamKey, reason: str, now: float) -> tuple[Park, bool]:
        return self._park(self.streams, key, reason, now)

    def _park(self, table: dict[Any, Park], k: str | StreamKey, reason: str, now: float) -> tuple[Park, bool]:
        current = table.get(k)
        if current is not None and (current.until is None or current.until > now):
            return current, False
        previous = self._last.get(k)
        duration = self.base if previous is None else min(self.maximum, max(self.base, previous * 2))
        self._last[k] = duration
        park = Park(reason=reason, until=now + duration)
        table[k] = park
        return park, True

    def restore(self, key: StreamKey, park: Park, parked_at: float | None) -> None:
        """Re-establish a parking read from the state database after a restart."""
        self.streams[key] = park
        if park.until is not None and parked_at is not None and park.until > parked_at:
            self._last[key] = min(self.maximum, park.until - parked_at)

    def restore_all(
        self, states: Iterable[StreamState], shops: Iterable[tuple[str, Sequence[str]]], now: float
    ) -> None:
        """Parkings recorded by an earlier process (in ``states``) stay in force after a restart.

        ``shops`` are the configured (name, resources): a shop whose every stream is parked for
        one reason was parked as a whole, and is again.
        """
        for state in states:
            if state.parked_reason is not None and state.parked_until and epoch_of(state.parked_until) is None:
                log.warning("%s/%s: ignoring the parking recorded in the state database: its end %r is "
                            "not a timestamp", state.shop, state.resource, state.parked_until)  # fmt: skip
            park = persisted_park(state, now)
            if park is not None:
                self.restore(state.key, park, epoch_of(state.updated_at))
        for shop, resources in shops:
            parks = [self.streams.get((shop, r)) for r in resources]
            present = [p for p in parks if p is not None]
            if present and len(present) == len(parks) and len({p.reason for p in present}) == 1:
                self.shops[shop] = max(present, key=lambda p: p.until or 0.0)
                # The shop's back-off step carries on from where the earlier process left it.
                steps = [self._last[(shop, r)] for r in resources if (shop, r) in self._last]
                if steps:
                    self._last[shop] = max(steps)

    def first_runs(self, keys: Iterable[StreamKey], now: float) -> dict[str, datetime]:
        """When each parked stream of ``keys`` may run next, by scheduler job id (``shop/resource``)."""
        out = {}
        for key in keys:
            park = self.active(key, now)
            if park is not None and park.until is not None:
                out[f"{key[0]}/{key[1]}"] = datetime.fromtimestamp(park.until, UTC)
        return out

    def last_duration(self, k: str | StreamKey) -> float | None:
        """How long the latest parking of a shop (name) or stream (key) lasts; None if none since success."""
        return self._last.get(k)

    def was_parked(self, shop: str) -> bool:
        """True when ``shop`` was parked and has not succeeded since (a retry failing re-parks)."""
        return shop in self._last

    def succeeded(self, key: StreamKey) -> None:
        """A run of ``key`` succeeded: its parking and its shop's end, with their back-off."""
        self.streams.pop(key, None)
        self.shops.pop(key[0], None)
        self._last.pop(key, None)
        self._last.pop(key[0], None)
        self._transient.pop(key, None)

    def forget_shop(self, shop: str) -> None:
        self.shops.pop(shop, None)
        self._last.pop(shop, None)
        for k in [k for k in self.streams if k[0] == shop]:
            del self.streams[k]
            self._last.pop(k, None)
        for k in [k for k in self._transient if k[0] == shop]:
            del self._transient[k]

    def stream_parks(self, now: float) -> dict[StreamKey, Park]:
        return {k: p for k, p in self.streams.items() if p.until is None or p.until > now}

    def shop_parks(self, now: float) -> dict[str, Park]:
        return {k: p for k, p in self.shops.items() if p.until is None or p.until > now}


# --------------------------------------------------------------------------------------------
# recording it in the state store (the stream's state row)


async def persist_park(store: StateStore, key: StreamKey, park: Park, now: float) -> StreamState | None:
    """Record ``park`` in the stream's state row; returns the row saved (None: nothing to save).

    A failing write is logged, not raised: the parking holds in memory either way.
    """
    until = epoch_to_ts(park.until) if park.until is not None else None
    try:
        state = await store.get_stream(*key) or StreamState(shop=key[0], resource=key[1])
        if state.parked_until == until and state.parked_reason == park.reason:
            return None
        parked = state.parked(until, park.reason, now)
        await store.save_stream(parked)
        return parked
    except ShopsyncError as exc:
        log.error("could not record the parking in the state database: %s", exc)
        return None


async def clear_persisted_park(store: StateStore, key: StreamKey, now: float) -> StreamState | None:
    """Remove a parking from the stream's state row; returns the row saved (None: nothing to clear)."""
    try:
        state = await store.get_stream(*key)
        if state is not None and state.parked_reason is not None:
            unparked = state.unparked(now)
            await store.save_stream(unparked)
            return unparked
    except ShopsyncError as exc:
        log.error("could not clear the parking in the state database: %s", exc)
    return None
