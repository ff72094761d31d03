"""Which daemon syncs which shop, when several share one PostgreSQL state database.

Each daemon beats a heartbeat row (membership) and holds a lease per shop it syncs
(:mod:`shopsync.state.leases`). Every ``[daemon] lease_renew`` it:

1. beats its heartbeat (alive for one ``lease`` more) and reads the members alive and the leases;
2. renews its leases; a lease missing from the answer is *lost* (it expired, another daemon took it);
3. plans (pure, :func:`plan`): the shops' target owners by rendezvous hashing with bounded load
   (:func:`assign`), so each daemon's preferred shops are stable across restarts of the others
   and no daemon takes more than its share while others are alive; it releases the shops targeted
   to another live daemon and claims its own targets that are free, and any shop nobody has held
   for a whole lease time while it has room (its share plus one);
4. claims and releases accordingly; a claimed shop's streams run at once.

A lost shop (renewal refused, or a write refused by the fencing check) stops at once: its fence
entry is dropped first, so every further write of it — and every further request to Shopify — is
refused before any I/O, then its runs are cancelled.

Shopify knows nothing of epochs, so its calls are fenced here, before they are sent
(:meth:`Ownership.before_call`, the engine's Shopify guard): a shop this daemon no longer holds
sends nothing at all; a mutation (a bulk operation started: anything that changes something at
Shopify) is sent only after the database confirmed, at its own now, that the lease is still this
daemon's at its epoch and unexpired, and extended it to a whole lease time from that now; and every
run checks the lease in the database before its first request (:meth:`Ownership.confirm_run`), so a
daemon back from a pause spends none of the new owner's budget. A refusal is a
:class:`~shopsync.errors.LeaseLostError` with reason ``shopify_call``, handled as a refused write. On a clean stop the daemon releases every lease and removes its heartbeat, so the
others take its shops on their next cycle instead of after the lease time. A daemon that dies
loses its leases when they expire; the taker resumes from the state the dead one committed,
re-attaching its running bulk operations (the engine does that from the state and the ledger).

Only with a state store that keeps leases (PostgreSQL); with SQLite one daemon owns everything.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import os
import socket
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from shopsync.errors import LeaseLostError, StorageError
from shopsync.observability.metrics import Metrics
from shopsync.state.leases import Lease, LeaseStore, Membership, refuse_call

log = logging.getLogger(__name__)

#: Claims sent together in one cycle (the state database's pool has 4 connections).
CLAIMS_AT_ONCE = 3

# ----------------------------------------------------------------------------------------------
# pure decisions


def default_daemon_id() -> str:
    """``host-pid``: unique among the daemons of one database (set ``[daemon] id`` for stable ones)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def score(daemon: str, shop: str) -> int:
    """The rendezvous weight of ``daemon`` for ``shop`` (the highest is the preferred owner)."""
    return int.from_bytes(hashlib.blake2b(f"{daemon}\0{shop}".encode(), digest_size=8).digest(), "big")


def share(shops: int, members: int) -> int:
    """Each of ``members`` daemons' share of ``shops``: the most any holds in a balanced split."""
    return math.ceil(shops / members) if members else shops


def assign(shops: Iterable[str], members: Sequence[str]) -> dict[str, str]:
    """Each shop's target owner: its highest-scoring member that has room (bounded-load rendezvous).

    Every daemon computes the same answer from the same membership. A member joining or leaving
    moves only the shops it gains or held, plus a few bumped by the bound.
    """
    names = sorted(set(shops))
    if not members:
        return {}
    cap = share(len(names), len(members))
    load = dict.fromkeys(members, 0)
    target: dict[str, str] = {}
    for shop in names:
        for daemon in sorted(members, key=lambda d: score(d, shop), reverse=True):
            if load[daemon] < cap:
                target[shop] = daemon
                load[daemon] += 1
                break
    return target


@dataclass(frozen=True, kw_only=True)
class Plan:
    """What one cycle does: leases to take and leases to give up, in order."""

    claim: tuple[str, ...] = ()
    release: tuple[str, ...] = ()


def plan(
    me: str,
    membership: Membership,
    shops: Sequence[str],
    held: Iterable[str],
    *,
    lease: float,
) -> Plan:
    """The claims and releases of daemon ``me`` this cycle. Pure.

    ``held``: the shops whose leases ``me`` holds (just renewed). A shop is released when its
    target is another live daemon or it is no longer configured; claimed when it is ``me``'s target
    and nobody holds it live, or when nobody has held it for ``lease`` seconds (its target is not
    taking it) and ``me`` holds less than its share plus one.
    """
    members = sorted(set(membership.alive) | {me})
    target = assign(shops, members)
    held_set = set(held)
    configured = set(shops)
    release = tuple(sorted(s for s in held_set if target.get(s) != me or s not in configured))
    keep = held_set - set(release)
    leases = {x.shop: x for x in membership.leases}
    now = membership.now
    cap = len(configured) if len(members) == 1 else share(len(configured), len(members)) + 1

    def free(shop: str) -> bool:
        x = leases.get(shop)
        return x is None or not x.live(now)

    mine = [s for s in sorted(configured) if target.get(s) == me and s not in keep and free(s)]
    orphans = sorted(
        (
            s
            for s in configured
            if s not in held_set and target.get(s) != me and _unowned_for(leases.get(s), now) >= lease
        ),
        key=lambda s: score(me, s),
        reverse=True,
    )
    room = max(0, cap - len(keep))
    claim = (mine + orphans)[:room]
    return Plan(claim=tuple(claim), release=release)


def _unowned_for(x: Lease | None, now: float) -> float:
    """Seconds a shop has had no live owner (a shop never leased: for ever)."""
    if x is None:
        return math.inf
    return 0.0 if x.live(now) else now - x.expires_at


def unowned_seconds(leases: Iterable[Lease], shops: Iterable[str], now: float) -> dict[str, float]:
    """Per configured shop, seconds without a live owner (0 while held); a shop never leased
    counts from ``now`` (0): its lease row appears with its first claim."""
    rows = {x.shop: x for x in leases}
    return {s: (0.0 if s not in rows else _unowned_for(rows[s], now)) for s in shops}


# ----------------------------------------------------------------------------------------------
# the loop


@dataclass(frozen=True, kw_only=True)
class HeldLease:
    """A lease as ``/status`` shows it: who holds it and until when (epoch seconds, database clock)."""

    owner: str | None
    epoch: int
    expires_at: float


class Ownership:
    """One daemon's membership and leases (see the module docstring).

    ``shops()`` is the configured shop names (read each cycle, so a reload applies);
    ``on_gained(shop)`` starts a claimed shop's runs; ``on_lost(shop)`` cancels a shop's runs and
    waits for them (the fence entry is already gone; it runs as a task of its own, so the cycle
    goes on). ``sleep`` is injectable for tests.
    """

    def __init__(
        self,
        leases: LeaseStore,
        *,
        shops: Callable[[], Sequence[str]],
        lease: float,
        renew: float,
        on_gained: Callable[[str], None],
        on_lost: Callable[[str, asyncio.Task[Any] | None], Awaitable[None]],
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.leases = leases
        self.fence = leases.fence
        # A write transaction idle this long is aborted by the database (a paused daemon's).
        self.fence.idle_timeout = lease / 3
        self.daemon_id = leases.fence.owner
        self._shops = shops
        self.lease = lease
        self.renew = renew
        self._on_gained = on_gained
        self._on_lost = on_lost
        self._metrics = metrics
        self._sleep = sleep
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        #: Background stops of lost or released shops' runs.
        self._stopping: set[asyncio.Task[None]] = set()
        #: Every shop's lease as last read or written (for ``/status``).
        self.view: dict[str, HeldLease] = {}
        self.members: tuple[str, ...] = ()
        #: The database's time of the last cycle, and the shops' seconds without an owner then.
        self.db_now: float | None = None

    def holds(self, shop: str) -> bool:
        return self.fence.epoch(shop) is not None

    def _epoch_for_call(self, shop: str, what: str) -> int:
        epoch = self.fence.epoch(shop)
        if epoch is None:
            raise refuse_call(self.daemon_id, shop, what, "this daemon no longer holds its lease")
        return epoch

    async def before_call(self, shop: str, mutation: bool) -> None:
        """Right before a request to ``shop`` is sent: refused (LeaseLostError, ``shopify_call``)
        unless this daemon holds the shop; a mutation also only once the database confirmed the
        lease and extended it by a lease time (:meth:`~shopsync.state.leases.LeaseStore.confirm`)."""
        what = "a mutation" if mutation else "a query"
        epoch = self._epoch_for_call(shop, what)
        if mutation:
            await self.leases.confirm(shop, epoch, extend=self.lease, what=what)

    async def confirm_run(self, shop: str) -> None:
        """Before a run of ``shop`` sends anything: its lease, read in the database, is this
        daemon's at its epoch and unexpired (LeaseLostError, ``shopify_call``, otherwise)."""
        await self.leases.confirm(shop, self._epoch_for_call(shop, "a run"), extend=None, what="a run")

    async def start(self) -> None:
        """One cycle now (so the daemon starts with its shops), then one every ``renew`` seconds."""
        await self.cycle()
        self._task = asyncio.create_task(self._loop(), name=f"ownership {self.daemon_id}")

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            # A fixed period: a slow cycle (many claims, a slow database) does not stretch it.
            due = max(due + self.renew, loop.time())
            await self._sleep(due - loop.time())
            try:
                await self.cycle()
            except StorageError as exc:
                # Leases not renewed run out; the writes' own checks then refuse them.
                log.error("daemon %s: lease cycle failed, retrying in %.1fs: %s", self.daemon_id, self.renew, exc)

    async def cycle(self) -> Plan:
        """Heartbeat, renew, plan, release, claim (one at a time with :meth:`lost` and :meth:`close`)."""
        async with self._lock:
            loop = asyncio.get_running_loop()
            began = loop.time()
            membership = await self.leases.heartbeat(self.lease)
            self.members = membership.alive
            held = self.fence.held()
            beaten = loop.time()
            renewed = await self.leases.renew(held, self.lease)
            renewed_at = loop.time()
            # A write refused meanwhile dropped its shop (lost()): give up what the renewal kept.
            dropped = sorted(s for s in renewed if not self.holds(s))
            if dropped:
                await self.leases.release(dropped)
                renewed = {s: x for s, x in renewed.items() if s not in dropped}
            for shop in sorted(set(held) - set(renewed) - set(dropped)):
                await self._lose(shop, "its lease could not be renewed (it expired or another daemon took it)", "renewal")
            view = {x.shop: HeldLease(owner=x.owner, epoch=x.epoch, expires_at=x.expires_at) for x in membership.leases}
            view.update({s: HeldLease(owner=x.owner, epoch=x.epoch, expires_at=x.expires_at) for s, x in renewed.items()})
            shops = list(self._shops())
            decided = plan(self.daemon_id, membership, shops, renewed, lease=self.lease)
            if decided.release:
                await self._give_up(decided.release, "another daemon is its preferred owner" if set(decided.release) & set(shops) else "no longer configured")
                for s in decided.release:
                    if s in view:
                        view[s] = HeldLease(owner=None, epoch=view[s].epoch, expires_at=membership.now)
            # Claims run a few at a time (each may wait briefly for a write holding the row).
            claimed: list[Lease | None] = []
            for i in range(0, len(decided.claim), CLAIMS_AT_ONCE):
                batch = decided.claim[i : i + CLAIMS_AT_ONCE]
                claimed += await asyncio.gather(*(self.leases.claim(s, self.lease) for s in batch))
            for shop, got in zip(decided.claim, claimed, strict=True):
                if got is None:
                    continue  # another daemon was quicker
                self.fence.hold(shop, got.epoch)
                view[shop] = HeldLease(owner=got.owner, epoch=got.epoch, expires_at=got.expires_at)
                log.info("lease of shop %s acquired by daemon %s (epoch %d)", shop, self.daemon_id, got.epoch,
                         extra={"shop": shop, "daemon": self.daemon_id, "epoch": got.epoch, "event": "lease_acquired"})
                if self._metrics is not None:
                    self._metrics.leases_acquired.inc()
                self._on_gained(shop)
            self.view = view
            self.db_now = membership.now
            self._publish(shops, membership.now)
            took = loop.time() - began
            if took > self.renew / 2:
                # Leases are at risk when cycles take a good part of their period (the database
                # or this process is overloaded): say where the time went.
                log.warning("daemon %s: lease cycle took %.2fs (heartbeat %.2fs, renewal %.2fs, %d claims and "
                            "%d releases %.2fs), more than half of lease_renew (%.2fs)", self.daemon_id, took,
                            beaten - began, renewed_at - beaten, len(decided.claim), len(decided.release),
                            loop.time() - renewed_at, self.renew)  # fmt: skip
            return decided

    def _publish(self, shops: Sequence[str], now: float) -> None:
        if self._metrics is None:
            return
        self._metrics.leases_held.set(len(self.fence.held()))
        rows = [Lease(shop=s, owner=v.owner, epoch=v.epoch, expires_at=v.expires_at, renewed_at=now) for s, v in self.view.items()]
        for shop, seconds in unowned_seconds(rows, shops, now).items():
            self._metrics.shop_unowned.labels(shop=shop).set(seconds if math.isfinite(seconds) else 0.0)

    async def lost(self, error: LeaseLostError) -> None:
        """A write of ``error.shop`` was refused: stop that shop's work now."""
        if self._metrics is not None:
            self._metrics.writes_refused.labels(reason=error.reason).inc()
        # Not under the cycle's lock: the caller may be one of the runs a cycle is waiting for.
        if self.holds(error.shop):
            await self._lose(error.shop, str(error), error.reason, spare=asyncio.current_task())

    async def _lose(self, shop: str, why: str, reason: str, spare: asyncio.Task[Any] | None = None) -> None:
        epoch = self.fence.epoch(shop)
        self.fence.drop(shop)  # first: from here every write of the shop is refused before any I/O
        log.warning("stopping work on shop %s: daemon %s lost its lease (epoch %s): %s", shop, self.daemon_id, epoch, why,
                    extra={"shop": shop, "daemon": self.daemon_id, "epoch": epoch, "event": "lease_lost"})
        if self._metrics is not None:
            self._metrics.leases_lost.labels(reason=reason).inc()
            self._metrics.leases_held.set(len(self.fence.held()))
        self._stop_runs(shop, spare)

    def _stop_runs(self, shop: str, spare: asyncio.Task[Any] | None = None) -> None:
        """Stop the shop's runs (but ``spare``, the run reporting the loss) in the background: a
        cycle never waits for them, so a run slow to stop cannot delay the renewal of the others."""
        task: asyncio.Task[None] = asyncio.ensure_future(self._on_lost(shop, spare))
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def _give_up(self, shops: Sequence[str], why: str) -> None:
        """Release the shops' leases and stop their work.

        The fence entries go first, so no write of ours starts after this; a write already past
        its lease check holds the lease row until it commits, and the release (and so the next
        owner's claim) waits for it. So nothing of ours lands after the next owner's claim, and
        the release need not wait for the runs to stop.
        """
        epochs = {s: self.fence.epoch(s) for s in shops}
        for shop in shops:
            self.fence.drop(shop)
            self._stop_runs(shop)
        await self.leases.release(shops)
        for shop in shops:
            log.info("lease of shop %s released by daemon %s (epoch %s): %s", shop, self.daemon_id, epochs[shop], why,
                     extra={"shop": shop, "daemon": self.daemon_id, "epoch": epochs[shop], "event": "lease_released"})
        if self._metrics is not None:
            self._metrics.leases_held.set(len(self.fence.held()))

    async def close(self) -> None:
        """A clean stop (the runs are already cancelled): release every lease, leave the membership."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        async with self._lock:
            try:
                held = sorted(self.fence.held())
                if held:
                    await self._give_up(held, "the daemon is stopping")
                await self.leases.leave()
            except StorageError as exc:
                log.error("daemon %s: could not release its leases (they expire in %.0fs): %s", self.daemon_id, self.lease, exc)
        if self._stopping:
            await asyncio.gather(*self._stopping, return_exceptions=True)

    def status(self) -> dict[str, dict[str, object]]:
        """Per shop: the owner and until when (``/status``'s ``lease``)."""
        from shopsync.timeutil import epoch_to_ts

        return {
            shop: {"owner": v.owner, "epoch": v.epoch, "expires_at": epoch_to_ts(v.expires_at), "mine": v.owner == self.daemon_id}
            for shop, v in sorted(self.view.items())
        }
