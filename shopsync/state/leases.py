"""Shop leases with fencing, and daemon membership: how several daemons share one state database.

One lease row per shop (``shop``, ``owner``, ``epoch``, ``expires_at``, ``renewed_at``) and one
heartbeat row per daemon. Times are the *database's* clock (PostgreSQL's ``now()``; the in-memory
store's injected clock), never a daemon's, so daemons with skewed clocks agree on who holds what.

* :meth:`LeaseStore.claim` takes a shop that is free, expired or already the caller's, in one
  atomic statement. The epoch goes up whenever the lease changes hands (another owner, or the same
  owner after its lease lapsed or was released); renewing a live lease keeps it.
* :meth:`LeaseStore.renew` extends the caller's live leases of the epochs it holds, and returns
  those it still holds: a lease missing from the answer is lost.
* Fencing: a :class:`Fence` is what this process believes it holds (owner and per-shop epoch).
  Installed on a state store (``store.fence = fence``), every checkpoint, sink write and
  bulk-ledger write for a shop checks, *inside its own transaction*, that the shop's lease row
  still names this owner and epoch and has not expired, and holds the row (``FOR KEY SHARE``) until it
  commits, so a claim by another daemon waits for that commit or makes it fail. A refused write
  raises :class:`~shopsync.errors.LeaseLostError` naming the shop and the reason, and nothing of
  it is applied.
* Shopify is fenced too, though it knows nothing of leases: :meth:`LeaseStore.confirm` checks
  the lease in the database (owner, epoch, unexpired at the database's now) right before a call
  that changes something at Shopify (a bulk operation started, say) and extends it to a full lease
  time from that now, so the call goes out with a whole lease time ahead of it; refused:
  :class:`~shopsync.errors.LeaseLostError` with reason ``shopify_call``.

Implementations: :class:`shopsync.state.postgres_leases.PostgresLeaseStore` and
:class:`shopsync.state.memory.MemoryLeaseStore`; both pass ``tests/storage/test_lease_contract.py``.
SQLite has none: a SQLite state database serves one daemon (it is locked).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from shopsync.errors import LeaseLostError

#: Why a fenced write was refused (the ``reason`` label of the refused-writes metric);
#: ``shopify_call``: a call to Shopify refused by :meth:`LeaseStore.confirm` or the fence.
REFUSE_REASONS = ("not_held", "epoch", "expired", "missing", "shopify_call")


@dataclass(frozen=True, kw_only=True)
class Lease:
    """One shop's lease row. Times are epoch seconds of the database's clock."""

    shop: str
    #: The daemon id holding it; None once released.
    owner: str | None
    epoch: int
    expires_at: float
    renewed_at: float

    def live(self, now: float) -> bool:
        """Whether someone holds it at ``now`` (the database's time)."""
        return self.owner is not None and self.expires_at > now


@dataclass(frozen=True, kw_only=True)
class Member:
    """One daemon's heartbeat row."""

    daemon: str
    started_at: float
    heartbeat_at: float
    expires_at: float


@dataclass(frozen=True, kw_only=True)
class Membership:
    """The daemons alive at ``now`` (the database's time), ordered by id, and the shops' leases."""

    now: float
    members: tuple[Member, ...]
    leases: tuple[Lease, ...]

    @property
    def alive(self) -> tuple[str, ...]:
        return tuple(m.daemon for m in self.members)


class Fence:
    """What this process holds: its owner id and, per shop, the epoch of its lease.

    The ownership loop updates it (:meth:`hold`, :meth:`drop`); the state store reads it before
    every write of a shop (:meth:`require`) and checks the database agrees, in the write's
    transaction. Methods are synchronous and never wait, so they are safe from any task.
    """

    def __init__(self, owner: str, *, idle_timeout: float | None = None) -> None:
        self.owner = owner
        self._epochs: dict[str, int] = {}
        #: Seconds a fenced write's transaction may sit idle before the database aborts it. A
        #: daemon paused inside one (SIGSTOP) would otherwise hold its lease row, and so every
        #: claim of that shop, for as long as it is paused. Well under the lease time.
        self.idle_timeout = idle_timeout

    def hold(self, shop: str, epoch: int) -> None:
        self._epochs[shop] = epoch

    def drop(self, shop: str) -> None:
        self._epochs.pop(shop, None)

    def epoch(self, shop: str) -> int | None:
        return self._epochs.get(shop)

    def held(self) -> dict[str, int]:
        """A copy of shop → epoch."""
        return dict(self._epochs)

    def require(self, shop: str) -> int:
        """The epoch this process holds for ``shop``; LeaseLostError (``not_held``) if none."""
        epoch = self._epochs.get(shop)
        if epoch is None:
            raise LeaseLostError(
                f"write for shop {shop} refused: daemon {self.owner} holds no lease of it", shop=shop, reason="not_held"
            )
        return epoch


def lease_problem(owner: str, epoch: int, row: Lease | None, now: float) -> tuple[str, str] | None:
    """Why ``row`` (a shop's lease as the database has it at ``now``) is not ``owner``'s live
    lease at ``epoch``: (reason, detail), or None when it is. Pure."""
    if row is None:
        return "missing", "it has no lease row"
    if row.owner != owner or row.epoch != epoch:
        return "epoch", f"the lease moved on to {row.owner or 'nobody'} at epoch {row.epoch} (this daemon holds epoch {epoch})"
    if row.expires_at <= now:
        return "expired", f"this daemon's lease (epoch {epoch}) expired {now - row.expires_at:.1f}s ago"
    return None


def check_lease(fence: Fence, shop: str, epoch: int, row: Lease | None, now: float) -> None:
    """Raise LeaseLostError unless ``row`` (the shop's lease as the write's transaction reads it)
    is this fence's owner at ``epoch``, unexpired at ``now``. Pure; both backends call it."""
    problem = lease_problem(fence.owner, epoch, row, now)
    if problem is not None:
        reason, detail = problem
        raise LeaseLostError(f"write for shop {shop} by daemon {fence.owner} refused: {detail}", shop=shop, reason=reason)


def refuse_call(owner: str, shop: str, what: str, detail: str) -> LeaseLostError:
    """The error of a Shopify call (``what``: ``"a bulk start"``, ``"a run"``) refused by the lease."""
    return LeaseLostError(f"{what} for shop {shop} by daemon {owner} refused before calling Shopify: {detail}",
                          shop=shop, reason="shopify_call")


def check_call(owner: str, shop: str, epoch: int, row: Lease | None, now: float, what: str) -> None:
    """:func:`check_lease` for a Shopify call: LeaseLostError with reason ``shopify_call``. Pure."""
    problem = lease_problem(owner, epoch, row, now)
    if problem is not None:
        raise refuse_call(owner, shop, what, problem[1])


@runtime_checkable
class LeaseStore(Protocol):
    """Leases of shops and heartbeats of daemons in the state database (see the module docstring).

    ``ttl`` arguments are seconds. Every method raises :class:`~shopsync.errors.StorageError`
    when the database fails; a claim or renewal that raised took nothing.
    """

    @property
    def fence(self) -> Fence:
        """This process's fence, installed on the state store the lease store was made for."""
        ...

    async def heartbeat(self, ttl: float) -> Membership:
        """Record this daemon alive for ``ttl`` more seconds; the members alive now and all leases."""
        ...

    async def leave(self) -> None:
        """Remove this daemon's heartbeat row (a clean stop)."""
        ...

    async def claim(self, shop: str, ttl: float) -> Lease | None:
        """Take ``shop`` for ``ttl`` seconds if free, expired or this daemon's; None if another holds it.

        One atomic statement: of several daemons claiming together exactly one gets it. The epoch
        goes up unless this daemon held the lease live already. A claim waits at most ``ttl / 20``
        for a write of the shop in flight (it holds the lease row), then gives up (None): the
        caller tries again on its next cycle, and never stalls its renewals behind one shop.
        """
        ...

    async def renew(self, held: Mapping[str, int], ttl: float) -> dict[str, Lease]:
        """Extend this daemon's live leases of ``held`` (shop → epoch) by ``ttl``, keeping the epochs.

        Returns the leases renewed; a shop missing from the answer is no longer this daemon's.
        """
        ...

    async def release(self, shops: Iterable[str]) -> None:
        """Give up this daemon's leases of ``shops`` now (owner cleared, expired): others may take them."""
        ...

    async def list_leases(self) -> list[Lease]:
        """Every lease row, ordered by shop."""
        ...

    async def confirm(self, shop: str, epoch: int, *, extend: float | None, what: str) -> Lease:
        """Before a Shopify call for ``shop`` (``what`` names it in the error): check, in the
        database at its now, that this daemon holds the shop's lease at ``epoch``, unexpired.

        ``extend`` (seconds): also extend the lease to at least that long from the database's now,
        in the same statement, so a call that changes something at Shopify has a whole lease time
        before anyone else may take the shop; None: only read. Returns the lease as it is now;
        raises :class:`~shopsync.errors.LeaseLostError` (reason ``shopify_call``) otherwise.
        """
        ...
