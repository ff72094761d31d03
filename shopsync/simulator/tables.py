"""The store's record tables: lazy base records, an overlay of changes, and the two views.

A :class:`Table` holds all records of one type; each of its two :class:`View` objects (live and
search index) keeps the ordering state of the records changed in that view, merged with the
compact base arrays of :class:`~shopsync.simulator.data.ShopData` on read. See
:mod:`shopsync.simulator.store` for the model.
"""

from __future__ import annotations

import heapq
from array import array
from bisect import bisect_left, bisect_right
from functools import lru_cache
from itertools import islice

from sortedcontainers import SortedList

from shopsync.simulator.data import ID_BASE, MASK, SHIFT, ShopData
from shopsync.simulator.search import SearchQuery

__all__ = ["MAX_KEY", "SORT_FIELDS", "FIELD_SORT", "State", "Table", "View", "key_bounds"]

#: Store sort names and the search field each one orders by.
SORT_FIELDS = {"updated": "updated_at", "created": "created_at", "id": "id"}
FIELD_SORT = {v: k for k, v in SORT_FIELDS.items()}
MAX_KEY = (1 << 62) - 1
# Small on purpose: cached records are long-lived objects that make the garbage collector's full
# passes slower; orders are cheap to regenerate (tens of µs).
_CACHE_SIZES = {"Order": 256, "Customer": 1024, "Product": 1024, "InventoryItem": 1024, "InventoryLevel": 2048}

State = tuple[int, int, bool]  # (updated second, created second, exists)


class View:
    """One view (live or index) of a record type's ordering state (see :mod:`shopsync.simulator.store`)."""

    def __init__(self, table: Table) -> None:
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



class Table:
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
        self.live = View(self)
        self.index = View(self)
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



def key_bounds(tb: Table, sort: str, query: SearchQuery | None) -> tuple[int, int]:
    """The inclusive key range ``[klo, khi]`` of ``sort`` that the query's range on it allows."""
    klo, khi = 0, MAX_KEY
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
