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
"""

from __future__ import annotations

import heapq
import itertools
import random
import time
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from sortedcontainers import SortedList

from shopsync.simulator.config import DataConfig
from shopsync.simulator.data import (
    ID_BASE,
    MASK,
    MAX_LINE_ITEMS,
    SHIFT,
    TOP_TYPES,
    Ref,
    ShopData,
    apply_update,
    fmt_ts,
)
from shopsync.simulator.search import SearchQuery

__all__ = ["DELETABLE", "ShopStore", "SORT_FIELDS"]

#: Store sort names and the search field each one orders by.
SORT_FIELDS = {"updated": "updated_at", "created": "created_at", "id": "id"}
_FIELD_SORT = {v: k for k, v in SORT_FIELDS.items()}
#: Types whose deletion is recorded as a ``destroy`` event, with their EventSubjectType.
DELETABLE = {"Order": "ORDER", "Product": "PRODUCT", "Customer": "CUSTOMER", "Collection": "COLLECTION"}
_CHILD_LISTS = {
    "LineItem": "lineItems",
    "OrderTransaction": "transactions",
    "Refund": "refunds",
    "ProductVariant": "variants",
    "ProductOption": "options",
}
_MAX_KEY = (1 << 62) - 1
#: A filter on a field other than the sort key is answered by sorting the matching records when
#: there are at most this many; otherwise by walking the sort order and testing each record.
CANDIDATE_LIMIT = 20_000
# Small on purpose: cached records are long-lived objects that make the garbage collector's full
# passes slower; orders are cheap to regenerate (tens of µs).
_CACHE_SIZES = {"Order": 256, "Customer": 1024, "Product": 1024, "InventoryItem": 1024, "InventoryLevel": 2048}

State = tuple[int, int, bool]  # (updated second, created second, exists)


class _View:
    """One view (live or index) of a record type's ordering state. See the module docstring."""

    def __init__(self, table: _Table) -> None:
        self.t = table
        self.state: dict[int, State] = {}
        self.upd = SortedList()
        self.cre = SortedList()
        self.new_ids = SortedList()
        self.sup_upd = SortedList()
        self.sup_cre = SortedList()
        self.del_ids = SortedList()
        self.deleted_base: set[int] = set()

    def state_of(self, idx: int) -> State | None:
        st = self.state.get(idx)
        if st is not None:
            return st
        t = self.t
        if 0 <= idx < t.n_base:
            return (t.updated[idx], t.created[idx], True)
        return None

    def apply(self, idx: int, new: State) -> None:
        t = self.t
        old = self.state.get(idx)
        if old is None:
            if idx < t.n_base:
                # First change of a base record: its base keys no longer count in this view.
                self.sup_upd.add((t.updated[idx] << SHIFT) | idx)
                self.sup_cre.add((t.created[idx] << SHIFT) | idx)
        elif old[2]:
            self.upd.remove((old[0] << SHIFT) | idx)
            self.cre.remove((old[1] << SHIFT) | idx)
        self.state[idx] = new
        u, c, exists = new
        if exists:
            self.upd.add((u << SHIFT) | idx)
            self.cre.add((c << SHIFT) | idx)
        if idx < t.n_base:
            if not exists and idx not in self.deleted_base:
                self.deleted_base.add(idx)
                self.del_ids.add(idx)
            elif exists and idx in self.deleted_base:
                self.deleted_base.discard(idx)
                self.del_ids.remove(idx)
        elif exists:
            if idx not in self.new_ids:
                self.new_ids.add(idx)
        elif idx in self.new_ids:
            self.new_ids.remove(idx)

    def key_of(self, sort: str, idx: int) -> int | None:
        st = self.state_of(idx)
        if st is None or not st[2]:
            return None
        if sort == "id":
            return idx
        return ((st[0] if sort == "updated" else st[1]) << SHIFT) | idx

    # -- ordered access ---------------------------------------------------------------------------
    def _created_pos(self, key: int, right: bool) -> int:
        created = self.t.created
        fn = bisect_right if right else bisect_left
        return fn(range(self.t.n_base), key, key=lambda i: (created[i] << SHIFT) | i)

    def batch(self, sort: str, klo: int, khi: int, desc: bool, limit: int) -> list[int]:
        """Up to ``limit`` keys in ``[klo, khi]``, ascending (or descending), base and overlay merged."""
        if klo > khi:
            return []
        t = self.t
        state = self.state
        base: list[int] = []
        if sort == "id":
            lo = max(klo, 0)
            hi = min(khi, t.n_base - 1)
            rng = range(hi, lo - 1, -1) if desc else range(lo, hi + 1)
            deleted = self.deleted_base
            for i in rng:
                if i in deleted:
                    continue
                base.append(i)
                if len(base) >= limit:
                    break
            over = self.new_ids
        else:
            if sort == "updated":
                arr = t.updated_keys
                i0, i1 = bisect_left(arr, klo), bisect_right(arr, khi)

                def key_at(i: int) -> int:
                    return arr[i]
            else:
                created = t.created
                i0, i1 = self._created_pos(klo, False), self._created_pos(khi, True)

                def key_at(i: int) -> int:
                    return (created[i] << SHIFT) | i
            rng = range(i1 - 1, i0 - 1, -1) if desc else range(i0, i1)
            for i in rng:
                k = key_at(i)
                if (k & MASK) in state:
                    continue  # superseded: the overlay holds this record's current key
                base.append(k)
                if len(base) >= limit:
                    break
            over = self.upd if sort == "updated" else self.cre
        extra = list(islice(over.irange(klo, khi, reverse=desc), limit))
        if not extra:
            return base
        return list(islice(heapq.merge(base, extra, reverse=desc), limit))

    def count(self, sort: str, klo: int, khi: int) -> int:
        """How many existing records have keys in ``[klo, khi]`` — O(log n)."""
        if klo > khi:
            return 0
        t = self.t
        if sort == "id":
            lo, hi = max(klo, 0), min(khi, t.n_base - 1)
            base = max(0, hi - lo + 1)
            gone = self.del_ids.bisect_right(khi) - self.del_ids.bisect_left(klo)
            return base - gone + self.new_ids.bisect_right(khi) - self.new_ids.bisect_left(klo)
        if sort == "updated":
            arr = t.updated_keys
            base = bisect_right(arr, khi) - bisect_left(arr, klo)
            sup, over = self.sup_upd, self.upd
        else:
            base = self._created_pos(khi, True) - self._created_pos(klo, False)
            sup, over = self.sup_cre, self.cre
        return (
            base
            - (sup.bisect_right(khi) - sup.bisect_left(klo))
            + (over.bisect_right(khi) - over.bisect_left(klo))
        )


class _Table:
    """All records of one type: base generator, overlay, and the live and index views."""

    def __init__(self, data: ShopData, type_name: str) -> None:
        self.type_name = type_name
        self.data = data
        self.n_base = data.count(type_name)
        self.created: array = data.created[type_name]
        self.updated: array = data.updated[type_name]
        self.updated_keys: array = data.updated_keys[type_name]
        self.base_id = ID_BASE[type_name]
        self.overlay: dict[int, dict | None] = {}
        self.next_idx = self.n_base
        self.live = _View(self)
        self.index = _View(self)
        gen = data.generate
        self._base = lru_cache(maxsize=_CACHE_SIZES.get(type_name, 256))(lambda idx: gen(type_name, idx))

    def record(self, idx: int) -> dict | None:
        overlay = self.overlay
        if idx in overlay:
            return overlay[idx]
        if 0 <= idx < self.n_base:
            return self._base(idx)
        return None

    def exists(self, idx: int) -> bool:
        if idx in self.overlay:
            return self.overlay[idx] is not None
        return 0 <= idx < self.n_base


@dataclass
class StoreCounters:
    created: int = 0
    updated: int = 0
    deleted: int = 0


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
        self.tables: dict[str, _Table] = {t: _Table(self.data, t) for t in TOP_TYPES}
        self._pending: list[tuple[float, int, str, int, State]] = []
        self._seq = itertools.count()
        # Value changes of updates are drawn from one seeded stream: deterministic given the
        # sequence of calls (the mutator's own choices are seeded too).
        self._rng = random.Random((data.seed << 8) | 0x5A)
        self.counters = StoreCounters()
        self.shop = {
            "__typename": "Shop",
            "id": f"gid://shopify/Shop/{70_000_000_000 + (data.seed % 1_000_000)}",
            "name": shop_name,
            "myshopifyDomain": f"{shop_name}.myshopify.com",
            "currencyCode": "USD",
            "ianaTimezone": "America/New_York",
        }

    # -- reads ------------------------------------------------------------------------------------
    def table(self, type_name: str) -> _Table:
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
        return v.count("id", 0, _MAX_KEY)

    def truth_ids(self, type_name: str) -> list[str]:
        """The GIDs of every live record of ``type_name``, in id order (no lag)."""
        return [rec["id"] for _k, _i, rec in self.scan(type_name)]

    def _view(self, tb: _Table, view: str) -> _View:
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

    def _bounds(self, tb: _Table, sort: str, query: SearchQuery | None) -> tuple[int, int]:
        klo, khi = 0, _MAX_KEY
        if query is not None:
            rng = query.ranges.get(SORT_FIELDS[sort])
            if rng is not None:
                lo, hi = rng
                if sort == "id":
                    if lo is not None:
                        klo = max(0, lo - tb.base_id)
                    if hi is not None:
                        khi = hi - tb.base_id
                else:
                    if lo is not None:
                        klo = max(0, lo) << SHIFT
                    if hi is not None:
                        khi = (hi << SHIFT) | MASK if hi >= 0 else -1
        return klo, khi

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
        tb = self.tables[type_name]
        v = self._view(tb, view)
        klo, khi = self._bounds(tb, sort, query)
        if start_after is not None:
            if descending:
                khi = min(khi, start_after - 1)
            else:
                klo = max(klo, start_after + 1)
        if stop_before is not None:
            if descending:
                klo = max(klo, stop_before + 1)
            else:
                khi = min(khi, stop_before - 1)
        sort_field = SORT_FIELDS[sort]
        others: list[tuple[str, int | None, int | None]] = []
        if query is not None:
            for name, (lo, hi) in query.ranges.items():
                if lo is not None and hi is not None and lo > hi:
                    return
                if name != sort_field:
                    others.append((name, lo, hi))
        equals = dict(query.equals) if query is not None else {}

        def accept(idx: int, st: State | None) -> bool:
            if others:
                if st is None:
                    return False
                for name, lo, hi in others:
                    val = st[0] if name == "updated_at" else st[1] if name == "created_at" else tb.base_id + idx
                    if (lo is not None and val < lo) or (hi is not None and val > hi):
                        return False
            return True

        def hydrate(idx: int) -> dict | None:
            rec = tb.record(idx)
            if rec is None:
                return None
            for name, accepted in equals.items():
                val = rec.get("subjectType" if name == "subject_type" else name)
                if val is None or str(val).upper() not in accepted:
                    return None
            if where is not None and not where(idx, rec):
                return None
            return rec

        # A narrow filter on another field: sort its (few) matches instead of walking the order.
        if others:
            best = None
            for name, lo, hi in others:
                fsort = _FIELD_SORT[name]
                flo, fhi = self._bounds(tb, fsort, SearchQuery(text="", terms=(), ranges={name: (lo, hi)}))
                c = v.count(fsort, flo, fhi)
                if best is None or c < best[0]:
                    best = (c, fsort, flo, fhi)
            assert best is not None
            c, fsort, flo, fhi = best
            if c <= CANDIDATE_LIMIT and c < v.count(sort, klo, khi):
                keys = []
                for fk in v.batch(fsort, flo, fhi, False, c + 1):
                    idx = fk if fsort == "id" else fk & MASK
                    k = v.key_of(sort, idx)
                    if k is not None and klo <= k <= khi and accept(idx, v.state_of(idx)):
                        keys.append((k, idx))
                keys.sort(reverse=descending)
                for k, idx in keys:
                    rec = hydrate(idx)
                    if rec is not None:
                        yield k, idx, rec
                return

        while True:
            if view == "index":
                self.sync_index()  # a long scan sees the index as it is when each batch is read
            keys = v.batch(sort, klo, khi, descending, batch)
            for k in keys:
                idx = k if sort == "id" else k & MASK
                if others and not accept(idx, v.state_of(idx)):
                    continue
                rec = hydrate(idx)
                if rec is not None:
                    yield k, idx, rec
            if len(keys) < batch:
                return
            if descending:
                khi = keys[-1] - 1
            else:
                klo = keys[-1] + 1

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
                return v.count("id", 0, _MAX_KEY)
            (name, _rng), = ranges.items()
            sort = _FIELD_SORT[name]
            klo, khi = self._bounds(tb, sort, query)
            return v.count(sort, klo, khi)
        n = 0
        for _ in self.scan(type_name, query=query, view=view, where=where):
            n += 1
            if limit is not None and n > limit:
                break
        return n

    def key_for(self, type_name: str, sort: str, value: int, numeric_id: int) -> int:
        """The scan key of a (sort value, numeric id) position — for decoding cursors."""
        idx = numeric_id - self.tables[type_name].base_id
        if sort == "id":
            return idx
        return (value << SHIFT) | (idx & MASK)

    def position_of(self, type_name: str, sort: str, key: int) -> tuple[int, int]:
        """(sort value, numeric id) of a scan key — for encoding cursors."""
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

    def _locate_top(self, gid: str) -> tuple[_Table, int, dict]:
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

    def update(self, gid: str, *, at: float | None = None) -> dict:
        """Bump ``updatedAt`` to ``at`` (default: the clock's current second) and change a few
        values; returns the new record. Visible by id at once, in search after the lag."""
        tb, idx, rec = self._locate_top(gid)
        sec = self._second(at)
        new = apply_update(tb.type_name, rec, self._rng.random, sec)
        st = tb.live.state_of(idx)
        assert st is not None
        self._commit(tb.type_name, idx, new, (sec, st[1], True))
        self.counters.updated += 1
        return new

    def update_many(self, gids: list[str], at_second: float) -> list[dict]:
        """Update every record in ``gids`` with the same updatedAt second (a burst)."""
        return [self.update(g, at=at_second) for g in gids]

    def delete(self, gid: str, *, at: float | None = None) -> dict:
        """Delete an Order, Product, Customer or Collection; records and returns its ``destroy``
        BasicEvent (subjectType ORDER/PRODUCT/CUSTOMER/COLLECTION)."""
        tb, idx, rec = self._locate_top(gid)
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

    def describe(self) -> dict:
        """Sizes for status output and logs."""
        return {
            "anchor": fmt_ts(self.data.anchor),
            "counts": {t: self.live_count(t) for t in TOP_TYPES},
            "pending_index_changes": len(self._pending),
            **self.counters.__dict__,
        }
