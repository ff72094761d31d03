"""One cost budget per shop: async reservations over a model of Shopify's leaky bucket.

Every request for a shop — paginated pages, bulk starts and polls, counts — reserves its estimated
requested cost here before it is sent, so that the shop's bucket is spent as fully as Shopify
allows without being throttled (shopify-api-facts §1–§2, design checklist §6.1).

The model is :class:`shopsync.shopify.bucket.LeakyBucket`. It starts conservative (1000 points, 50/s)
and is corrected by every answer:

* **Refunds.** The bucket must hold the *requested* cost before a query runs; afterwards Shopify
  refunds requested − actual. A settled reservation therefore gives back ``estimate − actual``:
  the difference between our estimate and the server's ``requestedQueryCost`` plus the refund.
* **Resync from ``throttleStatus``** — the reconciliation rule. ``currentlyAvailable`` is the
  server's level *after* the answered request R, and it already reflects every request Shopify had
  received by then. Our requests still in flight split in two:

  - reserved (sent) *before* R: they reached Shopify before R (requests leave in reservation
    order) and were charged there, so they are already inside the server's figure;
  - reserved *after* R: they were most likely still on the wire or queued when Shopify computed
    R's figure, so they are not in it — yet our model has taken their points.

  So the model becomes ``currentlyAvailable − Σ(points of in-flight reservations made after R)``.
  Errors of this rule are one-sided and self-correcting: a later request that Shopify did see
  already is counted twice (the model is pessimistic by it until the next answer), and the time
  the answer spent on the wire earns no refill credit (pessimistic by ``latency × rate``). The
  only optimistic error — an earlier request overtaking R on another connection — is bounded by
  one request's cost and ends in at worst one ``THROTTLED`` answer, which resyncs the model.
  Answers that arrive out of order carry stale figures: a resync only happens when the answered
  reservation is newer than the one the model was last synced from; older answers only refund.
* **Throttled answers** are not charged: the reservation is given back, the model resyncs, and
  every reservation waits until ``(requested − currentlyAvailable) / restoreRate`` has passed.

Waiters are served in order of their *due time*: when they started waiting plus
``PRIORITY_STEP`` seconds per priority number (incremental windows 0, backfills 1, reconciliation
2). So a lower number goes first among waiters that arrived close together, yet no priority starves:
a busy shop whose incremental windows keep the bucket empty still serves a backfill's request once
it has waited ``PRIORITY_STEP`` longer than the fresh ones (strict priorities let a new resource's
backfill wait forever behind them). Only the head of the queue may take points, so a large
reservation is never starved by a stream of small ones either. The head sleeps exactly as long
as the model needs to refill (never polls), and is woken early when a refund, a resync or a new
waiter due sooner changes the answer. A cancelled waiter leaves the queue and takes nothing.

The class is single-threaded asyncio code: every state change happens between awaits, so there
are no locks. Time comes from the injected ``clock`` and ``sleep`` so tests are deterministic.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shopsync.shopify.answers import throttle_figures
from shopsync.shopify.bucket import LeakyBucket

log = logging.getLogger(__name__)

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True)
class Reservation:
    """Points taken from the budget for one request.

    ``seq`` orders reservations by the time they were granted (≈ the order requests are sent),
    which is what the ``throttleStatus`` reconciliation relies on. ``waited`` is how long the
    reservation queued for points.
    """

    points: float
    priority: int
    seq: int
    granted_at: float
    waited: float


@dataclass(frozen=True, kw_only=True)
class BudgetSnapshot:
    """The budget's figures at one moment, for metrics and the end-of-sync report.

    ``points_requested``/``points_spent`` add up the server's requested and actual cost of every
    request that ran (settled); ``requests`` counts those, ``throttled`` the ``THROTTLED`` answers.
    ``waited_seconds`` is the sum over reservations of their queueing time (concurrent waits add
    up). ``started_at`` is on the budget's clock.
    """

    capacity: float
    restore_rate: float
    available: float
    points_requested: float
    points_spent: float
    throttled: int
    requests: int
    waited_seconds: float
    started_at: float


#: Seconds of precedence one priority number is worth in the queue (see the module docstring):
#: long enough that fresh incremental work is not delayed by a backfill that just asked, short
#: enough that a backfill still makes a request a second while they keep the bucket empty.
PRIORITY_STEP = 1.0


@dataclass(order=True)
class _Waiter:
    due: float  # when it started waiting + PRIORITY_STEP × priority: the queue's order
    ticket: int
    points: float = field(compare=False)
    wake: asyncio.Event = field(compare=False, default_factory=asyncio.Event)


class CostBudget:
    """The query-cost budget of one shop, shared by every concurrent request to that shop.

    Use: ``r = await budget.reserve(estimate, priority=p)``, send the request, then exactly one of
    ``settle(r, …)`` (it ran), ``on_throttled(r, …)`` (``THROTTLED``: not charged), ``cancel(r)``
    (never reached Shopify or rejected before running) or ``abandon(r)`` (unknown: it may have been
    charged). Calling any of them again for the same reservation does nothing.
    """

    def __init__(
        self,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        capacity: float = 1000.0,
        restore_rate: float = 50.0,
    ) -> None:
        if capacity <= 0 or restore_rate <= 0:
            raise ValueError("capacity and restore_rate must be positive")
        self._clock = clock
        self._sleep = sleep
        now = clock()
        self._bucket = LeakyBucket.full(capacity, restore_rate, now)
        self._in_flight: dict[int, Reservation] = {}
        self._waiters: list[_Waiter] = []
        self._tickets = itertools.count()
        self._seqs = itertools.count(1)
        self._synced_seq = 0  # the reservation the model was last resynced from
        self._hold_until = -math.inf  # after THROTTLED: nobody takes points before this time
        # accounting
        self._started_at = now
        self._points_requested = 0.0
        self._points_spent = 0.0
        self._throttled = 0
        self._requests = 0
        self._waited = 0.0
        # Restore-rate allowance for utilisation(): the initial bucket plus ∫ rate dt. Until the
        # server has told us its figures, the conservative defaults would understate the allowance,
        # so the first throttleStatus restarts the integral from started_at with the true values.
        self._learned = False
        self._initial_capacity = capacity
        self._allowance_integral = 0.0
        self._rate_since = now

    # -- reserving ----------------------------------------------------------------------------
    async def reserve(self, points: float, *, priority: int = 0) -> Reservation:
        """Wait until the modelled bucket holds ``points``, then take them.

        Waiters are served by due time: arrival + ``PRIORITY_STEP`` × ``priority`` (incremental
        syncs 0, backfills 1), FIFO at equal due times. A reservation larger than the bucket waits for a full bucket and takes
        it all (the level goes negative) — Shopify will decide. Cancelling the waiting task
        removes it from the queue without taking anything.
        """
        if points < 0 or not math.isfinite(points):
            raise ValueError(f"points must be a finite non-negative number, not {points!r}")
        start = self._clock()
        if not self._waiters and self._wait_for(points, start) <= 0:
            return self._grant(points, priority, start, start)
        waiter = _Waiter(start + PRIORITY_STEP * priority, next(self._tickets), points)
        previous_head = self._waiters[0] if self._waiters else None
        heapq.heappush(self._waiters, waiter)
        if previous_head is not None and self._waiters[0] is waiter:
            previous_head.wake.set()  # preempted: stop sleeping, go back to waiting for its turn
        try:
            while True:
                waiter.wake.clear()
                if self._waiters[0] is not waiter:
                    await waiter.wake.wait()
                    continue
                now = self._clock()
                delay = self._wait_for(points, now)
                if delay <= 0:
                    heapq.heappop(self._waiters)
                    self._wake_head()
                    return self._grant(points, priority, start, now)
                await self._sleep_or_wake(delay, waiter.wake)
        except BaseException:
            if waiter in self._waiters:  # dataclass eq compares (due, ticket): unique
                was_head = self._waiters[0] is waiter
                self._waiters.remove(waiter)
                heapq.heapify(self._waiters)
                if was_head:
                    self._wake_head()
            raise

    def _wait_for(self, points: float, now: float) -> float:
        need = min(points, self._bucket.capacity)
        return max(self._hold_until - now, self._bucket.wait_time(need, now))

    async def _sleep_or_wake(self, delay: float, wake: asyncio.Event) -> None:
        sleeper = asyncio.ensure_future(self._sleep(delay))
        waker = asyncio.ensure_future(wake.wait())
        try:
            await asyncio.wait((sleeper, waker), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, waker):
                if not task.done():
                    task.cancel()
            # Let the cancelled helpers finish so no task outlives this call.
            await asyncio.gather(sleeper, waker, return_exceptions=True)

    def _grant(self, points: float, priority: int, start: float, now: float) -> Reservation:
        self._bucket.take(points, now)
        reservation = Reservation(
            points=points, priority=priority, seq=next(self._seqs), granted_at=now, waited=now - start
        )
        self._in_flight[reservation.seq] = reservation
        self._waited += reservation.waited
        return reservation

    def _wake_head(self) -> None:
        if self._waiters:
            self._waiters[0].wake.set()

    # -- outcomes -------------------------------------------------------------------------------
    def settle(
        self,
        reservation: Reservation,
        *,
        requested: float | None,
        actual: float | None,
        throttle_status: Mapping[str, Any] | None,
    ) -> None:
        """The request ran: refund what it did not cost and resync from ``throttle_status``.

        ``requested``/``actual`` are the server's ``requestedQueryCost``/``actualQueryCost`` (either
        may be ``None``: then the estimate, respectively the requested cost, is assumed charged).
        """
        if self._in_flight.pop(reservation.seq, None) is None:
            return
        now = self._clock()
        # A figure that is negative or not finite is nonsense from the server: assume the estimate.
        requested, actual = _usable_cost(requested), _usable_cost(actual)
        charged_req = reservation.points if requested is None else requested
        spent = charged_req if actual is None else actual
        # Correct the estimate by the server's requested cost, then refund requested − actual:
        # net, the model gives back estimate − actual.
        delta = reservation.points - spent
        if delta >= 0:
            self._bucket.give_back(delta, now)
        else:
            self._bucket.take(-delta, now)
        self._requests += 1
        self._points_requested += charged_req
        self._points_spent += spent
        self._resync(reservation, throttle_status, now)
        self._wake_head()

    def on_throttled(
        self,
        reservation: Reservation,
        requested: float | None,
        throttle_status: Mapping[str, Any] | None,
    ) -> float:
        """Shopify answered ``THROTTLED``: nothing was charged. Returns the enforced wait (seconds).

        The reservation's points go back, the model resyncs from ``throttle_status`` and nobody
        takes points for ``(requested − currentlyAvailable) / restoreRate`` seconds. Without a
        ``throttleStatus`` the model is assumed empty: the wait is ``requested / rate``.
        """
        if self._in_flight.pop(reservation.seq, None) is None:
            return 0.0
        now = self._clock()
        requested = _usable_cost(requested)
        need = reservation.points if requested is None else requested
        self._bucket.give_back(reservation.points, now)
        self._throttled += 1
        figures = throttle_figures(throttle_status)
        if figures is not None:
            self._resync(reservation, throttle_status, now)
            available = figures[1]
        else:
            # Our model thought the points were there and the server disagreed: drop to empty.
            self._bucket.refill(now)
            self._bucket.available = min(self._bucket.available, 0.0)
            available = 0.0
        # Never wait for more than a full bucket: a request larger than the bucket cannot be
        # helped by waiting (the client gives up on it), and a nonsense requested cost must not
        # hold every request of the shop for ever. The rate is the model's: always positive.
        wait = max(0.0, min(need, self._bucket.capacity) - available) / self._bucket.rate
        self._hold_until = max(self._hold_until, now + wait)
        log.debug("throttled: %.0f points requested, %.0f available, holding %.2fs", need, available, wait)
        self._wake_head()
        return wait

    def cancel(self, reservation: Reservation, *, throttle_status: Mapping[str, Any] | None = None) -> None:
        """The request was never charged: it never reached Shopify (connection refused) or was
        rejected before running (401/402/403/404/423/429, ``MAX_COST_EXCEEDED``). Gives the points
        back; resyncs from ``throttle_status`` if the rejection carried one."""
        if self._in_flight.pop(reservation.seq, None) is None:
            return
        now = self._clock()
        self._bucket.give_back(reservation.points, now)
        self._resync(reservation, throttle_status, now)
        self._wake_head()

    def abandon(self, reservation: Reservation) -> None:
        """The outcome is unknown (timeout, dropped connection, 5xx, the caller was cancelled):
        the request may have been charged. Its points stay taken — the conservative choice until
        the next ``throttleStatus`` resyncs the model — but nothing is counted as spent."""
        if self._in_flight.pop(reservation.seq, None) is None:
            return
        self._wake_head()

    def _resync(
        self, reservation: Reservation, throttle_status: Mapping[str, Any] | None, now: float
    ) -> None:
        figures = throttle_figures(throttle_status)
        if figures is None or reservation.seq <= self._synced_seq:
            return  # no figures (some accounts), or older than what the model already knows
        maximum, current, rate = figures
        if not self._learned:
            self._learned = True
            self._initial_capacity = maximum
            self._allowance_integral = 0.0
            self._rate_since = self._started_at
        elif rate != self._bucket.rate:
            self._allowance_integral += self._bucket.rate * (now - self._rate_since)
            self._rate_since = now
        later = sum(r.points for r in self._in_flight.values() if r.seq > reservation.seq)
        self._bucket.capacity = maximum
        self._bucket.rate = rate
        self._bucket.available = min(maximum, current) - later
        self._bucket.updated = now
        self._synced_seq = reservation.seq

    # -- figures --------------------------------------------------------------------------------
    @property
    def capacity(self) -> float:
        return self._bucket.capacity

    @property
    def restore_rate(self) -> float:
        return self._bucket.rate

    def available(self, now: float | None = None) -> float:
        """The modelled level (may be negative: points taken by requests the server has not seen)."""
        return self._bucket.level(self._clock() if now is None else now)

    def in_flight(self) -> int:
        """Reservations granted and not yet settled, throttled, cancelled or abandoned."""
        return len(self._in_flight)

    def waiting(self) -> int:
        """Reservations queued for points."""
        return len(self._waiters)

    def snapshot(self) -> BudgetSnapshot:
        now = self._clock()
        return BudgetSnapshot(
            capacity=self._bucket.capacity,
            restore_rate=self._bucket.rate,
            available=self._bucket.level(now),
            points_requested=self._points_requested,
            points_spent=self._points_spent,
            throttled=self._throttled,
            requests=self._requests,
            waited_seconds=self._waited,
            started_at=self._started_at,
        )

    def utilisation(self, now: float | None = None) -> float:
        """Points spent ÷ points the shop allowed since the start (initial bucket + rate × time).

        The initial bucket is the first ``maximumAvailable`` the server reported (assumed full at
        the start, which can only understate the figure); the rate is integrated piecewise, so a
        plan change mid-run is accounted for. 1.0 means every point Shopify made available was used.
        ``now`` defaults to the budget's clock.
        """
        if now is None:
            now = self._clock()
        allowance = (
            self._initial_capacity
            + self._allowance_integral
            + self._bucket.rate * max(0.0, now - self._rate_since)
        )
        return self._points_spent / allowance if allowance > 0 else 0.0

    def __repr__(self) -> str:
        return (
            f"CostBudget(capacity={self._bucket.capacity:g}, restore_rate={self._bucket.rate:g}, "
            f"available={self._bucket.level(self._clock()):.1f}, in_flight={len(self._in_flight)}, "
            f"waiting={len(self._waiters)})"
        )


def _usable_cost(value: float | None) -> float | None:
    """A server cost figure if it is a finite, non-negative number, else ``None``."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) and value >= 0 else None
