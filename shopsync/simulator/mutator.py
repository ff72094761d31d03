"""Live changes to a simulated shop: new orders, updates, deletions and same-second bursts.

Rates come from :class:`~shopsync.simulator.config.MutatorConfig`, per simulated day, multiplied by
the time scale: ``orders_per_day × time_scale`` orders are created per real day (so per real
second ``orders_per_day × time_scale / 86400``). For each created order ``update_ratio`` existing
records are updated (orders 70 %, products, customers and inventory levels 10 % each) and
``delete_ratio`` records deleted (orders 95 %, collections 5 %; see ``_DELETE_WEIGHTS`` for why
not customers or products; each deletion records a ``destroy`` event). ``delete_weights`` widens
deletions to every resource Shopify lets one delete (variants, customers without orders, inventory
items and levels, locations — the last three without an event), and ``hidden_updates`` hides that
share of updates from the search index for good (the drift only reconciliation repairs). Fractions carry over between steps, so the long-run
rates are exact whatever the step interval. Every ``burst_every / time_scale`` real seconds,
``burst_size`` existing orders are updated with one shared updatedAt second — the pagination
stress Shopify produces when a merchant bulk-edits.

Deterministic: the choices come from ``random.Random(seed)``; two mutators with the same seed over
stores with the same data config, stepped at the same times, make identical changes.
``orders_per_day = 0`` turns the mutator off (no bursts either).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from shopsync.simulator.config import MutatorConfig
from shopsync.simulator.store import ShopStore

__all__ = ["Mutator", "MutatorCounters"]

_UPDATE_WEIGHTS = (("Order", 0.7), ("Product", 0.1), ("Customer", 0.1), ("InventoryLevel", 0.1))
#: Only orders and collections are deleted. Shopify refuses to delete a customer who has orders,
#: and deleting a product silently turns the ``product`` of old line items to null without
#: touching those orders' ``updatedAt`` — a change no ``updated_at`` sync can see, which would make
#: a faithful copy impossible to check against the truth export.
_DELETE_WEIGHTS = (("Order", 0.95), ("Collection", 0.05))
#: Bursts missed by a late step are not all replayed at once.
_MAX_BURSTS_PER_STEP = 3


@dataclass
class MutatorCounters:
    steps: int = 0
    created: int = 0
    updated: int = 0
    deleted: int = 0
    hidden_updates: int = 0
    bursts: int = 0
    burst_updates: int = 0


class Mutator:
    """Applies the configured changes to ``store`` as time passes (see the module docstring).

    ``clock`` is only used when :meth:`step` is called without ``now``; pass the store's clock.
    """

    def __init__(
        self,
        store: ShopStore,
        config: MutatorConfig,
        *,
        time_scale: float = 1.0,
        seed: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if time_scale <= 0:
            raise ValueError("time_scale must be positive")
        self.store = store
        self.config = config
        self.time_scale = time_scale
        self.clock = clock
        self.counters = MutatorCounters()
        self._rng = random.Random((seed << 16) ^ 0x6D75)
        self._last: float | None = None
        self._next_burst: float | None = None
        self._credit_create = 0.0
        self._credit_update = 0.0
        self._credit_delete = 0.0
        self._paused = False

    @property
    def enabled(self) -> bool:
        return self.config.orders_per_day > 0

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop changing the store until :meth:`resume` (time passing meanwhile is not caught up)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._last = None  # restart the rate clock: no catch-up burst of changes

    def step(self, now: float | None = None) -> MutatorCounters:
        """Apply the changes due since the previous step; returns what this step did.

        The first step only starts the clock.
        """
        now = self.clock() if now is None else now
        did = MutatorCounters(steps=1)
        self.counters.steps += 1
        if self._paused or not self.enabled:
            self._last = None if self._paused else now
            return did
        if self._last is None:
            self._last = now
            if self.config.burst_every > 0 and self._next_burst is None:
                self._next_burst = now + self.config.burst_every / self.time_scale
            return did
        dt = max(0.0, now - self._last)
        self._last = now
        cfg = self.config
        self._credit_create += cfg.orders_per_day * self.time_scale / 86_400 * dt
        creates = int(self._credit_create)
        self._credit_create -= creates
        self._credit_update += creates * cfg.update_ratio
        updates = int(self._credit_update)
        self._credit_update -= updates
        self._credit_delete += creates * cfg.delete_ratio
        deletes = int(self._credit_delete)
        self._credit_delete -= deletes

        store = self.store
        for _ in range(creates):
            store.create_order(at=now)
            did.created += 1
        for _ in range(updates):
            gid = self._pick(_UPDATE_WEIGHTS)
            if gid is not None:
                # Drawn only when the switch is on, so the default sequence of choices is unchanged.
                hidden = cfg.hidden_updates > 0 and self._rng.random() < cfg.hidden_updates
                store.update(gid, at=now, hidden=hidden)
                did.updated += 1
                did.hidden_updates += hidden
        for _ in range(deletes):
            if self._delete_one(cfg.delete_weights or _DELETE_WEIGHTS, now):
                did.deleted += 1
        if cfg.burst_every > 0 and cfg.burst_size > 0:
            interval = cfg.burst_every / self.time_scale
            if self._next_burst is None:
                self._next_burst = now + interval
            done = 0
            while self._next_burst <= now:
                if done < _MAX_BURSTS_PER_STEP:
                    did.burst_updates += self._burst(now)
                    did.bursts += 1
                    done += 1
                self._next_burst += interval
        c = self.counters
        c.created += did.created
        c.updated += did.updated
        c.deleted += did.deleted
        c.hidden_updates += did.hidden_updates
        c.bursts += did.bursts
        c.burst_updates += did.burst_updates
        return did

    def _delete_one(self, weights: tuple[tuple[str, float], ...], now: float) -> bool:
        """Delete a random record of a type drawn by ``weights``, as Shopify allows it: a variant
        only if its product keeps another, a customer only without orders."""
        kind = self._draw(weights)
        store = self.store
        if kind == "ProductVariant":
            gid = self._pick_of("Product")
            rec = store.get(gid) if gid is not None else None
            if rec is None or len(rec.get("variants") or ()) < 2:
                return False
            store.delete_variant(rec["variants"][int(self._rng.random() * len(rec["variants"]))]["id"], at=now)
            return True
        gid = self._pick_of(kind)
        if gid is None:
            return False
        if kind == "Customer":
            rec = store.get(gid)
            if rec is None or int(rec.get("numberOfOrders") or 0) > 0:
                return False
        store.delete(gid, at=now)
        return True

    def _draw(self, weights: tuple[tuple[str, float], ...]) -> str:
        x = self._rng.random() * sum(w for _n, w in weights)
        for name, w in weights:
            if x < w:
                return name
            x -= w
        return weights[-1][0]

    def _pick_of(self, type_name: str) -> str | None:
        tb = self.store.table(type_name)
        if tb.next_idx == 0:
            return None
        for _ in range(16):
            idx = int(self._rng.random() * tb.next_idx)
            if tb.exists(idx):
                return self.store.gid_of(type_name, idx)
        return None

    def _pick(self, weights: tuple[tuple[str, float], ...]) -> str | None:
        """A random existing record of a type drawn by ``weights`` (None if none is found)."""
        rand = self._rng.random
        x = rand()
        type_name = weights[-1][0]
        for name, w in weights:
            if x < w:
                type_name = name
                break
            x -= w
        tb = self.store.table(type_name)
        if tb.next_idx == 0:
            return None
        for _ in range(16):  # a few tries: some picks hit deleted records
            idx = int(rand() * tb.next_idx)
            if tb.exists(idx):
                return self.store.gid_of(type_name, idx)
        return None

    def _burst(self, now: float) -> int:
        tb = self.store.table("Order")
        if tb.next_idx == 0:
            return 0
        chosen: dict[int, None] = {}
        want = min(self.config.burst_size, self.store.live_count("Order"))
        tries = 0
        while len(chosen) < want and tries < want * 20:
            tries += 1
            idx = int(self._rng.random() * tb.next_idx)
            if tb.exists(idx):
                chosen[idx] = None
        gids = [self.store.gid_of("Order", i) for i in chosen]
        self.store.update_many(gids, int(now))
        return len(gids)

    async def run(
        self,
        stop_event: asyncio.Event,
        *,
        interval: float = 0.25,
        on_step: Callable[[MutatorCounters], None] | None = None,
    ) -> MutatorCounters:
        """Call :meth:`step` every ``interval`` seconds until ``stop_event`` is set (one step
        always happens first); returns the cumulative counters."""
        while True:
            did = self.step()
            if on_step is not None:
                on_step(did)
            if stop_event.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_event.wait(), timeout=interval)
            if stop_event.is_set():
                break
        return replace(self.counters)
