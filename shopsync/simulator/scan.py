"""Scanning one record table in key order, with a search query's ranges and equality terms.

Keys are ``value << SHIFT | idx`` (or ``idx`` for the id order). The query's range on the sort
field narrows the key range; ranges on other fields and equality terms filter the records. A
narrow range on another field is answered by sorting its (few) matches instead of walking the
whole order (:data:`CANDIDATE_LIMIT`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shopsync.simulator.data import MASK
from shopsync.simulator.search import SearchQuery
from shopsync.simulator.tables import FIELD_SORT, SORT_FIELDS, State, Table, View, key_bounds

__all__ = ["CANDIDATE_LIMIT", "ScanRequest", "scan_table"]

#: A filter on a field other than the sort key is answered by sorting the matching records when
#: there are at most this many; otherwise by walking the sort order and testing each record.
CANDIDATE_LIMIT = 20_000

_Range = tuple[str, int | None, int | None]


@dataclass(frozen=True)
class ScanRequest:
    """What to scan: see :meth:`shopsync.simulator.store.ShopStore.scan` for the meaning."""

    sort: str
    descending: bool
    query: SearchQuery | None
    start_after: int | None
    stop_before: int | None
    where: Callable[[int, dict], bool] | None
    batch: int


class _Filter:
    """The parts of a query the key range does not answer: other ranges, equality terms, ``where``."""

    def __init__(self, tb: Table, others: list[_Range], equals: dict, where: Callable[[int, dict], bool] | None) -> None:
        self.tb = tb
        self.others = others
        self.equals = equals
        self.where = where

    def accept(self, idx: int, st: State | None) -> bool:
        """Whether the record's ordering state passes the ranges on the other fields."""
        if self.others:
            if st is None:
                return False
            for name, lo, hi in self.others:
                val = st[0] if name == "updated_at" else st[1] if name == "created_at" else self.tb.base_id + idx
                if (lo is not None and val < lo) or (hi is not None and val > hi):
                    return False
        return True

    def hydrate(self, idx: int) -> dict | None:
        """The current record at ``idx`` if it exists and passes the equality terms and ``where``."""
        rec = self.tb.record(idx)
        if rec is None:
            return None
        for name, accepted in self.equals.items():
            val = rec.get("subjectType" if name == "subject_type" else name)
            if val is None or str(val).upper() not in accepted:
                return None
        if self.where is not None and not self.where(idx, rec):
            return None
        return rec


def scan_table(
    tb: Table, v: View, req: ScanRequest, sync: Callable[[], None] | None
) -> Iterator[tuple[int, int, dict]]:
    """Matching records of ``tb`` in view ``v`` as ``(key, idx, record)`` in key order.

    ``sync`` (for the index view) is called before each batch, so a long scan sees the index as
    it is when each batch is read.
    """
    sort, descending, query = req.sort, req.descending, req.query
    klo, khi = key_bounds(tb, sort, query)
    if req.start_after is not None:
        if descending:
            khi = min(khi, req.start_after - 1)
        else:
            klo = max(klo, req.start_after + 1)
    if req.stop_before is not None:
        if descending:
            klo = max(klo, req.stop_before + 1)
        else:
            khi = min(khi, req.stop_before - 1)
    sort_field = SORT_FIELDS[sort]
    others: list[_Range] = []
    if query is not None:
        for name, (lo, hi) in query.ranges.items():
            if lo is not None and hi is not None and lo > hi:
                return
            if name != sort_field:
                others.append((name, lo, hi))
    filt = _Filter(tb, others, dict(query.equals) if query is not None else {}, req.where)

    if others:
        candidates = _narrow_candidates(tb, v, sort, klo, khi, filt)
        if candidates is not None:
            candidates.sort(reverse=descending)
            for k, idx in candidates:
                rec = filt.hydrate(idx)
                if rec is not None:
                    yield k, idx, rec
            return

    batch = req.batch
    while True:
        if sync is not None:
            sync()
        keys = v.batch(sort, klo, khi, descending, batch)
        for k in keys:
            idx = k if sort == "id" else k & MASK
            if others and not filt.accept(idx, v.state_of(idx)):
                continue
            rec = filt.hydrate(idx)
            if rec is not None:
                yield k, idx, rec
        if len(keys) < batch:
            return
        if descending:
            khi = keys[-1] - 1
        else:
            klo = keys[-1] + 1


def _narrow_candidates(tb: Table, v: View, sort: str, klo: int, khi: int, filt: _Filter) -> list[tuple[int, int]] | None:
    """The ``(key, idx)`` matches of the narrowest other-field range, unsorted, when there are at
    most :data:`CANDIDATE_LIMIT` of them and fewer than the sort order's range holds; else ``None``."""
    best: tuple[int, str, int, int] | None = None
    for name, lo, hi in filt.others:
        fsort = FIELD_SORT[name]
        flo, fhi = key_bounds(tb, fsort, SearchQuery(text="", terms=(), ranges={name: (lo, hi)}))
        c = v.count(fsort, flo, fhi)
        if best is None or c < best[0]:
            best = (c, fsort, flo, fhi)
    assert best is not None
    c, fsort, flo, fhi = best
    if not (c <= CANDIDATE_LIMIT and c < v.count(sort, klo, khi)):
        return None
    keys: list[tuple[int, int]] = []
    for fk in v.batch(fsort, flo, fhi, False, c + 1):
        idx = fk if fsort == "id" else fk & MASK
        k = v.key_of(sort, idx)
        if k is not None and klo <= k <= khi and filt.accept(idx, v.state_of(idx)):
            keys.append((k, idx))
    return keys
