"""Reconciliation's comparison of the shop's ids with the sink's rows (pure).

The rule that keeps a reconciliation free of false findings while the shop changes and the
sync runs: only records the sink already *promises* are judged. The stream's watermark ``W``
(``bound``) says every record the search index showed with ``updatedAt <= W`` has been written, so:

* **missing**: an id the shop lists with ``updatedAt <= W`` that the sink does not hold (or holds
  as deleted, and the shop's version is newer than the deletion) — the sync should have seen it;
* **drift**: an id the shop lists with ``updatedAt <= W`` newer than the sink's ``updated_at`` —
  an update the search index never showed (a record *changed* after ``W`` is not judged: its next
  window will read it, and if the index hides it for good, a later reconciliation whose ``W`` has
  passed it will find it);
* **deleted**: a live sink row with ``updated_at <= W`` that the shop does not list. ``W`` is read
  before the listing starts and no sync of the stream runs meanwhile, so such a row existed before
  the listing began; listings by id never skip an existing record (an update does not move it), so
  an id not listed was deleted before or while the listing ran. A row written with
  ``updated_at > W`` (a replayed overlap, a concurrent run of ``shopsync sync``) is left for the
  next reconciliation.

``bound`` None (the stream never completed a window) judges nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from shopsync.state.models import SinkRow, canonical_ts

#: Ids shown per finding kind in a log line or the command's output.
SAMPLE_SIZE = 5


@dataclass(frozen=True, kw_only=True)
class Findings:
    """What one comparison found; each list sorted."""

    missing: list[str] = field(default_factory=list)
    drift: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    @property
    def reread(self) -> list[str]:
        """The ids to read again by id: missing and drifted."""
        return sorted(self.missing + self.drift)

    @property
    def empty(self) -> bool:
        return not (self.missing or self.drift or self.deleted)

    def counts(self) -> dict[str, int]:
        return {"missing": len(self.missing), "drift": len(self.drift), "deleted": len(self.deleted)}


def compare(shop: Mapping[str, str | None], sink: Mapping[str, SinkRow], *, bound: str | None) -> Findings:
    """Compare the shop's ``{id: updatedAt}`` with the sink's rows (see the module docstring)."""
    if bound is None:
        return Findings()
    bound = canonical_ts(bound)
    assert bound is not None
    missing: list[str] = []
    drift: list[str] = []
    for id, raw in shop.items():
        updated = canonical_ts(raw)
        if updated is not None and updated > bound:
            continue
        row = sink.get(id)
        if row is None:
            missing.append(id)
        elif row.deleted_at is not None:
            if updated is not None and updated > row.deleted_at:
                missing.append(id)
        elif updated is not None and row.updated_at is not None and updated > row.updated_at:
            drift.append(id)
    deleted = [
        id
        for id, row in sink.items()
        if row.deleted_at is None and id not in shop and (row.updated_at is None or row.updated_at <= bound)
    ]
    return Findings(missing=sorted(missing), drift=sorted(drift), deleted=sorted(deleted))


__all__ = ["SAMPLE_SIZE", "Findings", "compare"]
