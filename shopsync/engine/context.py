"""What one stream's work needs at hand: the shop's client and budget, the resource, storage, settings.

A *stream* is one (shop, resource) pair. Every stream of a shop shares that shop's
:class:`ShopRuntime` — one client, one cost budget, one bulk-operation limit — so concurrent work
for a shop draws on one budget, as Shopify's bucket does.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from shopsync.queries import Resource

#: Bulk result files downloaded and reassembled at once in one process, whatever the number of
#: shops: each costs a download buffer, a spill database, a worker thread and a batch in flight.
#: The 200-shop benchmark's backfill peaked near 4 GB before this cap.
MAX_CONCURRENT_INGEST = 4


class EngineObserver(Protocol):
    """Hooks the daemon's metrics and the CLI's progress display implement (all optional)."""

    def on_records(self, shop: str, resource: str, path: str, count: int) -> None: ...
    def on_bulk_status(self, shop: str, resource: str, status: str, object_count: int) -> None: ...
    def on_bulk_finished(self, shop: str, resource: str, status: str, duration: float, objects: int) -> None: ...
    def on_guard_mismatch(self, shop: str, resource: str, kind: str) -> None: ...
    def on_checkpoint(self, shop: str, resource: str, watermark: str | None) -> None: ...


class NullObserver:
    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@dataclass
class ChildStats:
    """Observed sizes of one nested connection, used to size ``first`` for the next pages."""

    samples: list[int] = field(default_factory=list)
    limit: int = 2000

    def add(self, n: int) -> None:
        self.samples.append(n)
        if len(self.samples) > self.limit:
            del self.samples[: len(self.samples) - self.limit]

    def percentile(self, q: float) -> float | None:
        if not self.samples:
            return None
        ordered = sorted(self.samples)
        return float(ordered[min(len(ordered) - 1, int(q * len(ordered)))])


@dataclass
class ShopRuntime:
    """Per-shop shared machinery: built once per shop and reused by all its streams."""

    name: str
    client: Any  # shopsync.client.graphql.ShopClient
    budget: Any  # shopsync.client.budget.CostBudget
    bulk_slots: asyncio.Semaphore
    child_stats: dict[tuple[str, tuple[str, ...]], ChildStats] = field(default_factory=dict)

    def stats_for(self, resource: str, path: tuple[str, ...]) -> ChildStats:
        return self.child_stats.setdefault((resource, path), ChildStats())


@dataclass
class StreamContext:
    shop: ShopRuntime
    resource: Resource
    state_store: Any  # shopsync.state.base.StateStore
    settings: Any  # shopsync.config.SyncSettings
    session: Any  # aiohttp.ClientSession (for result downloads)
    work_dir: Path  # where bulk result files and spill databases live
    #: Shared by every stream of the process: how many bulk result files are downloaded and
    #: reassembled at once. Local disk, CPU and memory are the limit there, not Shopify.
    ingest_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_INGEST))
    observer: EngineObserver = field(default_factory=NullObserver)
    priority: int = 0
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Any] = asyncio.sleep

    @property
    def label(self) -> str:
        return f"{self.shop.name}/{self.resource.name}"
