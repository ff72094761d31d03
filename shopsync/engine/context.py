"""What one stream's work needs at hand: the shop's client and budget, the resource, storage, settings.

A *stream* is one (shop, resource) pair. Every stream of a shop shares that shop's
:class:`ShopRuntime` — one client, one cost budget, one bulk-operation limit — so concurrent work
for a shop draws on one budget, as Shopify's bucket does.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from shopsync.client import CostBudget, GraphQLResponse, ShopClient
from shopsync.engine.planner import Decision, ExportModel, PageModel
from shopsync.engine.slots import BulkSlots
from shopsync.observability.events import EngineObserver, NullObserver
from shopsync.queries import Resource
from shopsync.settings import SyncConfig
from shopsync.state import StateStore, StreamState

#: Bulk result files downloaded and reassembled at once in one process, whatever the number of
#: shops: each costs a download buffer, a spill database, a worker thread and a batch in flight.
#: The 200-shop benchmark's backfill peaked near 4 GB before this cap.
MAX_CONCURRENT_INGEST = 4


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
    client: ShopClient
    budget: CostBudget
    bulk_slots: BulkSlots
    child_stats: dict[tuple[str, tuple[str, ...]], ChildStats] = field(default_factory=dict)
    #: What the path planner has measured (shopsync.engine.planner): the shop's exports, each
    #: resource's pages, the streams reading pages right now, each resource's last decision.
    exports: ExportModel = field(default_factory=ExportModel)
    pages: dict[str, PageModel] = field(default_factory=dict)
    paginating: Counter[str] = field(default_factory=Counter)
    #: The points each resource reading pages still expects to spend: its window's count × its
    #: points per record (or, without a count, what its last paged window spent), less what its
    #: pages have spent since. A resource absent here wants an unknown amount.
    paging_points: dict[str, float] = field(default_factory=dict)
    last_paged_points: dict[str, float] = field(default_factory=dict)
    decisions: dict[str, Decision] = field(default_factory=dict)
    decisions_stored: dict[str, float] = field(default_factory=dict)  # when each was last written
    #: Each resource's last look at its deletion events (its ``@deletions`` row as this process
    #: knows it, possibly ahead of the saved one) and when that row was last written.
    deletion_looks: dict[str, StreamState] = field(default_factory=dict)
    deletion_looks_stored: dict[str, float] = field(default_factory=dict)
    #: Each resource's points per record by its page query's requested cost (before pages are measured).
    prior_points: dict[str, float] = field(default_factory=dict)

    def stats_for(self, resource: str, path: tuple[str, ...]) -> ChildStats:
        return self.child_stats.setdefault((resource, path), ChildStats())

    def page_model(self, resource: str) -> PageModel:
        return self.pages.setdefault(resource, PageModel())

    def page_spent(self, resource: str, points: float) -> None:
        """A page of ``resource`` spent ``points``: that much less is still wanted."""
        left = self.paging_points.get(resource)
        if left is not None:
            self.paging_points[resource] = max(0.0, left - points)


@dataclass
class Meter:
    """Points and HTTP seconds one stream's requests cost, added up as answers arrive."""

    points: float = 0.0
    seconds: float = 0.0

    def add(self, response: GraphQLResponse) -> None:
        cost = response.actual_cost if response.actual_cost is not None else response.requested_cost
        self.points += cost or 0.0
        self.seconds += response.duration


@dataclass
class StreamContext:
    """One stream's run: its shop's runtime, its resource, and what the engine hands every stream."""

    shop: ShopRuntime
    resource: Resource
    state_store: StateStore
    settings: SyncConfig
    session: aiohttp.ClientSession  # for bulk result downloads
    work_dir: Path  # where bulk result files and spill databases live
    #: Shared by every stream of the process: how many bulk result files are downloaded and
    #: reassembled at once. Local disk, CPU and memory are the limit there, not Shopify.
    ingest_slots: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(MAX_CONCURRENT_INGEST))
    observer: EngineObserver = field(default_factory=NullObserver)
    priority: int = 0
    meter: Meter = field(default_factory=Meter)
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep

    @property
    def label(self) -> str:
        return f"{self.shop.name}/{self.resource.name}"
