"""``ShopStore``: the simulated shop's records — lazy base data, an overlay of changes, and indices.

Records
-------
Base records come from :class:`~shopsync.simulator.data.ShopData` (generated on read, a small LRU
cache per type). Every change (``create_order``, ``update``, ``update_many``, ``delete``) writes the
new record — or ``None`` for a deletion — into an overlay dict keyed by the record's index ``idx``;
the overlay wins over the base. ``get(gid)`` (used for ``node``, ``nodes``, nested objects and
references) always reads the overlay, i.e. **current data, no lag**.

Two views: live and search index
--------------------------------
Listing a connection needs an ordering and, with ``query:``, a filter. Each record type keeps two
*views* of the (updatedAt, createdAt, exists) triple of every record:

* the **live view** changes at once. Listings that neither filter (``query:``) nor sort by
  ``UPDATED_AT`` use it (e.g. ``products(first: 50)`` sorted by ID, ``orders`` by PROCESSED_AT):
  a new record shows up immediately, a deleted one disappears immediately.
* the **index view** models Shopify's search index, which is eventually consistent: a change
  reaches it only ``index_lag`` seconds (by the store's clock) after it was made. Listings with a
  ``query:`` filter or sorted by ``UPDATED_AT`` — and their counts — use it. Until the lag has
  passed, an updated record is still found under its *old* updatedAt (and not under the new one),
  a created record is not found at all, and a deleted one is still in the index (the listing skips
  it when it fetches the row, since the row is gone). The node itself is always read live, so a
  page filtered on ``updated_at:<='T'`` can return a record whose ``updatedAt`` is already past T —
  exactly the race a sync engine must survive (re-read with an overlap, never trust "now").

Each view holds, for changed records only, the current triple plus ``SortedList`` s of composite
keys (``value << SHIFT | idx``) for updatedAt and createdAt order and of the ids of new records;
base records use the compact arrays of :class:`ShopData` with bisect, skipping the ones the view
has superseded. A page therefore costs O(log n + page), never a scan of a million records. The
index view's changes wait in a heap ordered by the time they become effective and are applied
before every index read.

Keys, cursors and ties: keys order by (value, id); the executor turns a key into an opaque cursor
and back, so 600 orders sharing one updatedAt second page exactly once each.

The tables and views are :mod:`shopsync.simulator.tables`; scanning them in key order with a
search query is :mod:`shopsync.simulator.scan`.
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shopsync.simulator.config import DataConfig
from shopsync.simulator.data import (
    MASK,
    MAX_LINE_ITEMS,
    SHIFT,
    TOP_TYPES,
    Ref,
    ShopData,
    apply_update,
    fmt_ts,
)
from shopsync.simulator.ids import VARIANT_BASE
from shopsync.simulator.scan import CANDIDATE_LIMIT, ScanRequest, scan_table
from shopsync.simulator.search import SearchQuery
from shopsync.simulator.shop_record import shop_record
from shopsync.simulator.tables import FIELD_SORT, MAX_KEY, SORT_FIELDS, State, Table, View, key_bounds
from shopsync.simulator.variant_scan import VARIANT_TYPE, scan_variants, variant_key

__all__ = ["CANDIDATE_LIMIT", "DELETABLE", "DELETABLE_WITHOUT_EVENTS", "ShopStore", "SORT_FIELDS", "StoreCounters"]

#: Types whose deletion is recorded as a ``destroy`` event, with their EventSubjectType.
DELETABLE = {"Order": "ORDER", "Product": "PRODUCT", "Customer": "CUSTOMER", "Collection": "COLLECTION"}
#: Types Shopify deletes without a ``destroy`` event (only reconciliation can learn of it).
DELETABLE_WITHOUT_EVENTS = frozenset({"InventoryItem", "InventoryLevel", "Location"})
_CHILD_LISTS = {
    "LineItem": "lineItems",
    "OrderTransaction": "transactions",
    "Refund": "refunds",
    "ProductVariant": "variants",
    "ProductOption": "options",
}


@dataclass
class StoreCounters:
    created: int = 0
    updated: int = 0
    deleted: int = 0
    hidden_updates: int = 0


class ShopStore:
    """The simulated shop's data. See the module docstring for the live/index model.

    ``clock`` gives "now" (epoch seconds): mutation timestamps default to its current second and
    the index lag is measured on it. ``shop_name`` only feeds the ``shop`` object.
    """

    def __init__(
        self,
        data: DataConfig,
        *,
        clock: Callable[[], float] = time.time,
        index_lag: float = 2.0,
        shop_name: str = "sim",
    ) -> None:
        self.config = data
        self.clock = clock
        self.index_lag = float(index_lag)
        self.data = ShopData(data, now=clock())
        self.tables: dict[str, Table] = {t: Table(self.data, t) for t in TOP_TYPES}
        self._pending: list[tuple[float, int, str, int, State]] = []
        self._seq = itertools.count()
        # Value changes of updates are drawn from one seeded stream: deterministic given the
        # sequence of calls (the mutator's own choices are seeded too).
        self._rng = random.Random((data.seed << 8) | 0x5A)
        self.counters = StoreCounters()
        self.shop = shop_record(self.data, shop_name)

    # -- reads ------------------------------------------------------------------------------------
    def table(self, type_name: str) -> Table:
        return self.tables[type_name]

    def get(self, gid: str) -> dict | None:
        """The current record for ``gid`` (top-level or child object), or ``None``. No lag."""
        loc = self.data.locate(gid)
        if loc is None:
            return None
        type_name, idx, child, num = loc
        tb = self.tables.get(type_name)
        if tb is None or idx < 0:
            return None
        rec = tb.record(idx)
        if rec is None:
            return None
        if child is None:
            if type_name == "InventoryLevel":
                return rec if rec["id"].split("?")[0] == gid.split("?")[0] else None
            return rec if rec["id"] == gid else None
        want = f"gid://shopify/{child}/{num}"
        for item in rec.get(_CHILD_LISTS[child]) or ():
            if item["id"] == want:
                return item
        return None

    def exists_ref(self, ref: Ref) -> bool:
        """:meth:`exists` for a reference, using its pre-computed location when it has one."""
        loc = ref.loc
        if loc is None:
            return self.exists(ref.gid)
        tb = self.tables.get(loc[0])
        if tb is None or not tb.exists(loc[1]):
            return False
        if loc[2] is None or loc[1] not in tb.overlay:
            return True
        return self.get(ref.gid) is not None

    def exists(self, gid: str) -> bool:
        """Whether ``gid`` names a live record. For child objects (line items, variants …) of an
        unchanged base record only the parent is checked: base children never disappear."""
        loc = self.data.locate(gid)
        if loc is None:
            return False
        type_name, idx, child, _num = loc
        tb = self.tables.get(type_name)
        if tb is None or idx < 0 or not tb.exists(idx):
            return False
        if child is None or idx not in tb.overlay:
            return True
        return self.get(gid) is not None

    def gid_of(self, type_name: str, idx: int) -> str:
        return self.data.gid(type_name, idx)

    def live_count(self, type_name: str) -> int:
        v = self.tables[type_name].live
        return v.count("id", 0, MAX_KEY)

    def truth_ids(self, type_name: str) -> list[str]:
        """The GIDs of every live record of ``type_name``, in id order (no lag)."""
        return [rec["id"] for _k, _i, rec in self.scan(type_name)]

    def _view(self, tb: Table, view: str) -> View:
        if view == "index":
            self.sync_index()
            return tb.index
        if view != "live":
            raise ValueError(f"unknown view {view!r}")
        return tb.live

    def sync_index(self) -> None:
        """Apply the index changes whose lag has passed (called before every index read)."""
        pending = self._pending
        if not pending:
            return
        now = self.clock()
        while pending and pending[0][0] <= now:
            _eff, _seq, type_name, idx, state = heapq.heappop(pending)
            self.tables[type_name].index.apply(idx, state)

    def pending_index_changes(self) -> int:
        return len(self._pending)

    def scan(
        self,
        type_name: str,
        *,
        sort: str = "id",
        descending: bool = False,
        query: SearchQuery | None = None,
        view: str = "live",
        start_after: int | None = None,
        stop_before: int | None = None,
        where: Callable[[int, dict], bool] | None = None,
        batch: int = 256,
    ) -> Iterator[tuple[int, int, dict]]:
        """Matching records as ``(key, idx, record)`` in key order (``descending`` reverses).

        ``sort`` is ``"updated"``, ``"created"`` or ``"id"``; keys are ``value << SHIFT | idx`` (or
        ``idx`` for id). ``start_after``/``stop_before`` are exclusive keys in iteration order
        (cursors). ``view`` is ``"live"`` or ``"index"`` (see the module docstring); the query's
        ranges and the order come from that view, the records themselves are always current.
        Safe to consume lazily while the store changes: each batch re-bisects from the last key.
        """
        if sort not in SORT_FIELDS:
            raise ValueError(f"unknown sort {sort!r}")
        if type_name == VARIANT_TYPE:  # variants live in their products (productVariants, by id only)
            if sort != "id":
                raise ValueError(f"variants are listed by id only, not {sort!r}")
            yield from scan_variants(
                self, descending=descending, query=query, start_after=start_after, stop_before=stop_before, where=where
            )
            return
        tb = self.tables[type_name]
        v = self._view(tb, view)
        req = ScanRequest(sort, descending, query, start_after, stop_before, where, batch)
        yield from scan_table(tb, v, req, self.sync_index if view == "index" else None)


    def count(
        self,
        type_name: str,
        *,
        query: SearchQuery | None = None,
        view: str = "live",
        where: Callable[[int, dict], bool] | None = None,
        limit: int | None = None,
    ) -> int:
        """How many records match (in ``view``). Exact and O(log n) for at most one range and no
        equality terms; otherwise counted by scanning, stopping after ``limit + 1``."""
        tb = self.tables[type_name]
        v = self._view(tb, view)
        ranges = dict(query.ranges) if query is not None else {}
        if where is None and not (query is not None and query.equals) and len(ranges) <= 1:
            if not ranges:
                return v.count("id", 0, MAX_KEY)
            (name, _rng), = ranges.items()
            sort = FIELD_SORT[name]
            klo, khi = key_bounds(tb, sort, query)
            return v.count(sort, klo, khi)
        n = 0
        for _ in self.scan(type_name, query=query, view=view, where=where):
            n += 1
            if limit is not None and n > limit:
                break
        return n

    def key_for(self, type_name: str, sort: str, value: int, numeric_id: int) -> int:
        """The scan key of a (sort value, numeric id) position — for decoding cursors."""
        if type_name == VARIANT_TYPE:
            return variant_key(numeric_id)
        idx = numeric_id - self.tables[type_name].base_id
        if sort == "id":
            return idx
        return (value << SHIFT) | (idx & MASK)

    def position_of(self, type_name: str, sort: str, key: int) -> tuple[int, int]:
        """(sort value, numeric id) of a scan key — for encoding cursors."""
        if type_name == VARIANT_TYPE:
            return VARIANT_BASE + key, VARIANT_BASE + key
        base = self.tables[type_name].base_id
        if sort == "id":
            return base + key, base + key
        return key >> SHIFT, base + (key & MASK)

    # -- changes ----------------------------------------------------------------------------------
    def _second(self, at: float | None) -> int:
        return int(self.clock() if at is None else at)

    def _commit(self, type_name: str, idx: int, record: dict | None, state: State) -> None:
        tb = self.tables[type_name]
        tb.overlay[idx] = record
        tb.live.apply(idx, state)
        # The search index learns of the change index_lag seconds after it is made.
        heapq.heappush(self._pending, (self.clock() + self.index_lag, next(self._seq), type_name, idx, state))

    def _locate_top(self, gid: str) -> tuple[Table, int, dict]:
        loc = self.data.locate(gid)
        if loc is None or loc[2] is not None or loc[0] not in self.tables:
            raise KeyError(f"not a top-level record GID: {gid}")
        tb = self.tables[loc[0]]
        rec = tb.record(loc[1]) if loc[1] >= 0 else None
        if rec is None:
            raise KeyError(f"no such record: {gid}")
        return tb, loc[1], rec

    def create_order(self, *, at: float | None = None, line_items: int | None = None) -> dict:
        """A new order created at ``at`` (default: the clock's current second); returns it."""
        tb = self.tables["Order"]
        idx = tb.next_idx
        if idx > MASK:
            raise OverflowError("too many orders for the simulator's index keys")
        tb.next_idx += 1
        sec = self._second(at)
        if line_items is not None and not 0 <= line_items <= MAX_LINE_ITEMS:
            raise ValueError(f"line_items must be between 0 and {MAX_LINE_ITEMS}")
        rec = self.data.generate("Order", idx, created=sec, updated=sec, line_items=line_items)
        self._commit("Order", idx, rec, (sec, sec, True))
        self.counters.created += 1
        return rec

    def update(self, gid: str, *, at: float | None = None, hidden: bool = False) -> dict:
        """Bump ``updatedAt`` to ``at`` (default: the clock's current second) and change a few
        values; returns the new record. Visible by id at once, in search after the lag.

        ``hidden``: the search index never learns of this update (Shopify's occasional drift): it
        keeps the record under its previous ``updatedAt``, so no ``updated_at`` window finds the
        change; reads by id and unfiltered listings show it.
        """
        tb, idx, rec = self._locate_top(gid)
        sec = self._second(at)
        new = apply_update(tb.type_name, rec, self._rng.random, sec)
        st = tb.live.state_of(idx)
        assert st is not None
        if hidden:
            tb.overlay[idx] = new
            tb.live.apply(idx, (sec, st[1], True))
            self.counters.hidden_updates += 1
        else:
            self._commit(tb.type_name, idx, new, (sec, st[1], True))
        self.counters.updated += 1
        return new

    def update_many(self, gids: list[str], at_second: float) -> list[dict]:
        """Update every record in ``gids`` with the same updatedAt second (a burst)."""
        return [self.update(g, at=at_second) for g in gids]

    def delete(self, gid: str, *, at: float | None = None) -> dict | None:
        """Delete an Order, Product, Customer or Collection, recording and returning its
        ``destroy`` BasicEvent (subjectType ORDER/PRODUCT/CUSTOMER/COLLECTION); or delete an
        InventoryItem, InventoryLevel or Location, which Shopify does without an event (None is
        returned). An item or a location takes its inventory levels with it."""
        tb, idx, rec = self._locate_top(gid)
        if tb.type_name in DELETABLE_WITHOUT_EVENTS:
            self._delete_silently(tb, idx)
            return None
        subject = DELETABLE.get(tb.type_name)
        if subject is None:
            raise ValueError(f"the simulator does not delete {tb.type_name} records ({gid})")
        sec = self._second(at)
        st = tb.live.state_of(idx)
        assert st is not None
        self._commit(tb.type_name, idx, None, (st[0], st[1], False))
        name = rec.get("name") or rec.get("title") or rec.get("displayName") or gid
        ev_tb = self.tables["BasicEvent"]
        eidx = ev_tb.next_idx
        ev_tb.next_idx += 1
        event = self.data.make_event(eidx, subject_type=subject, subject_id=gid, subject_name=str(name), at=sec)
        self._commit("BasicEvent", eidx, event, (sec, sec, True))
        self.counters.deleted += 1
        return event

    def _delete_silently(self, tb: Table, idx: int) -> None:
        st = tb.live.state_of(idx)
        assert st is not None
        self._commit(tb.type_name, idx, None, (st[0], st[1], False))
        self.counters.deleted += 1
        levels = self.tables["InventoryLevel"]
        n_loc = self.data.count("Location")
        if tb.type_name == "InventoryItem":
            doomed = [self.data.level_idx(idx, loc) for loc in range(n_loc)]
        elif tb.type_name == "Location":
            doomed = [self.data.level_idx(item, idx) for item in range(self.tables["InventoryItem"].next_idx)]
        else:
            return
        for level in doomed:
            if levels.exists(level):
                lst = levels.live.state_of(level)
                assert lst is not None
                self._commit("InventoryLevel", level, None, (lst[0], lst[1], False))

    def delete_variant(self, gid: str, *, at: float | None = None) -> dict:
        """Delete one variant of a product (Shopify's ``productVariantsBulkDelete``): the product's
        ``updatedAt`` moves to ``at``, so the product's record carries the change; the variant's
        inventory item goes with it. Returns the product. A product's last variant stays."""
        loc = self.data.locate(gid)
        if loc is None or loc[0] != "Product" or loc[2] != "ProductVariant":
            raise KeyError(f"not a variant GID: {gid}")
        tb, idx, rec = self._locate_top(self.gid_of("Product", loc[1]))
        variants = [v for v in rec.get("variants") or () if v["id"] != gid]
        if len(variants) == len(rec.get("variants") or ()):
            raise KeyError(f"no such variant: {gid}")
        if not variants:
            raise ValueError(f"{gid} is its product's last variant")
        sec = self._second(at)
        removed = next(v for v in rec["variants"] if v["id"] == gid)
        new = {**rec, "variants": variants, "updatedAt": fmt_ts(sec), "_rev": rec.get("_rev", 0) + 1}
        st = tb.live.state_of(idx)
        assert st is not None
        self._commit("Product", idx, new, (sec, st[1], True))
        item = removed.get("inventoryItem")
        item_loc = getattr(item, "loc", None)
        if item_loc is not None and self.tables["InventoryItem"].exists(item_loc[1]):
            self._delete_silently(self.tables["InventoryItem"], item_loc[1])
        self.counters.deleted += 1
        return new

    def describe(self) -> dict:
        """Sizes for status output and logs."""
        return {
            "anchor": fmt_ts(self.data.anchor),
            "counts": {t: self.live_count(t) for t in TOP_TYPES},
            "pending_index_changes": len(self._pending),
            **self.counters.__dict__,
        }
