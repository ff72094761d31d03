"""Per-shop, per-resource sync state: the daemon's ``/status`` document (pure).

:func:`build_status` is the one builder (state rows, bulk operation rows and "now" in, a JSON-able
dict out). The daemon adds what only it knows (:class:`LiveView`: what is syncing right now,
budgets, next runs, parking decided in memory); ``shopsync status``
(:mod:`shopsync.commands.status`) builds the same document from the state database alone.

Nothing here ever holds a token: rows carry names, timestamps, counts and error messages, and the
messages pass through :func:`shopsync.observability.logs.redact` as a last line of defence.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from shopsync.daemon.parking import Park, epoch_of, persisted_park
from shopsync.engine.path_choice import PATH_SUFFIX, decision_summary
from shopsync.engine.reconcile import RECONCILE_SUFFIX, reconcile_summary
from shopsync.observability.logs import redact
from shopsync.observability.metrics import StateSnapshot, StreamSnapshot, format_status
from shopsync.settings import StreamKey
from shopsync.state.models import BulkOperationRecord, StreamState
from shopsync.timeutil import epoch_to_ts

#: State rows whose resource contains this are the engine's own bookkeeping (deletion events).
INTERNAL_MARK = "@"

@dataclass(frozen=True, kw_only=True, slots=True)
class BudgetView:
    """A shop's cost budget as the daemon's client models it."""

    capacity: float
    restore_rate: float
    available: float
    utilisation: float
    requests: int
    throttled: int
    points_spent: float

    @classmethod
    def of(cls, budget: Any) -> BudgetView:
        """The view of a :class:`shopsync.client.budget.CostBudget` now (rounded for display)."""
        snap = budget.snapshot()
        return cls(
            capacity=snap.capacity,
            restore_rate=snap.restore_rate,
            available=round(snap.available, 1),
            utilisation=round(budget.utilisation(), 4),
            requests=snap.requests,
            throttled=snap.throttled,
            points_spent=snap.points_spent,
        )


@dataclass(frozen=True, kw_only=True)
class LiveView:
    """What only the running daemon knows; ``shopsync status`` has none of it."""

    syncing: frozenset[StreamKey] = frozenset()
    next_runs: Mapping[StreamKey, float] = field(default_factory=dict)
    budgets: Mapping[str, BudgetView] = field(default_factory=dict)
    parked_shops: Mapping[str, Park] = field(default_factory=dict)
    parked_streams: Mapping[StreamKey, Park] = field(default_factory=dict)
    #: (status, objectCount) of bulk operations being polled right now.
    bulk_progress: Mapping[StreamKey, tuple[str, int]] = field(default_factory=dict)
    daemon: Mapping[str, Any] = field(default_factory=dict)
    #: Per shop, its lease (owner, epoch, expires_at, mine) when several daemons share the database.
    leases: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


def _ts(epoch: float | None) -> str | None:
    """:func:`~shopsync.timeutil.epoch_to_ts`, passing None (no such time) through."""
    return epoch_to_ts(epoch) if epoch is not None else None


def build_status(
    *,
    states: Iterable[StreamState],
    bulk_operations: Iterable[BulkOperationRecord] = (),
    now: float,
    shops: Sequence[tuple[str, Sequence[str]]] | None = None,
    live: LiveView | None = None,
    leases: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The status document: ``{"generated_at", "summary", "shops": [{"name", "parked", "budget",
    "resources": [{"resource", "watermark", "lag_seconds", "last_success_at", "last_error", …}]}]}``.

    ``shops`` lists the configured (name, resources) in order; streams of other shops in the
    database are left out. Without it every stream in ``states`` is shown. Parking comes from
    ``live`` when given (the daemon's decisions), else from the rows' ``parked_until``/``parked_reason``.
    Each shop's ``lease`` (who holds it, until when) comes from ``leases``, else ``live.leases``;
    it is shown only when several daemons share the database (PostgreSQL), else left out.
    """
    if leases is None and live is not None:
        leases = live.leases
    states = list(states)
    by_key = {s.key: s for s in states if INTERNAL_MARK not in s.resource}
    reconciled = {
        (s.shop, s.resource.removesuffix(RECONCILE_SUFFIX)): s for s in states if s.resource.endswith(RECONCILE_SUFFIX)
    }
    decided = {(s.shop, s.resource.removesuffix(PATH_SUFFIX)): s for s in states if s.resource.endswith(PATH_SUFFIX)}
    if shops is None:
        names: dict[str, list[str]] = {}
        for shop, resource in sorted(by_key):
            names.setdefault(shop, []).append(resource)
        shops = [(name, resources) for name, resources in names.items()]
    ops: dict[StreamKey, list[BulkOperationRecord]] = {}
    for op in bulk_operations:
        if not op.finished:
            ops.setdefault((op.shop, op.resource), []).append(op)

    snapshot_streams: list[StreamSnapshot] = []
    parked_shops: dict[str, str] = {}
    out_shops = []
    for shop, resources in shops:
        shop_park = live.parked_shops.get(shop) if live is not None else None
        if shop_park is not None:
            parked_shops[shop] = shop_park.reason
        rows = []
        for resource in resources:
            key = (shop, resource)
            state = by_key.get(key)
            park = live.parked_streams.get(key) if live is not None else persisted_park(state, now)
            row = _stream_row(key, state, ops.get(key, []), now, park, live)
            row["reconcile"] = _reconcile_json(reconciled.get(key))
            row["path_decision"] = decision_summary(decided.get(key))
            rows.append(row)
            snapshot_streams.append(
                StreamSnapshot(
                    shop=shop,
                    resource=resource,
                    watermark=epoch_of(row["watermark"]),
                    last_success=epoch_of(row["last_success_at"]),
                    syncing=row["syncing"],
                    parked_reason=park.reason if park is not None else None,
                )
            )
        budget = live.budgets.get(shop) if live is not None else None
        out_shops.append(
            {
                "name": shop,
                "parked": _park_json(shop_park),
                "budget": dataclasses.asdict(budget) if budget is not None else None,
                **({"lease": leases.get(shop)} if leases else {}),
                "resources": rows,
            }
        )
    snapshot = StateSnapshot(streams=snapshot_streams, parked_shops=parked_shops)
    doc: dict[str, Any] = {
        "generated_at": epoch_to_ts(now),
        "summary": format_status(snapshot, now),
        "shops": out_shops,
    }
    if live is not None and live.daemon:
        doc = {"daemon": dict(live.daemon), **doc}
    return doc


def _reconcile_json(state: StreamState | None) -> dict[str, Any] | None:
    """The stream's last reconciliation: when, its findings, its error (None: never ran)."""
    summary = reconcile_summary(state)
    if summary is not None and summary["last_error"]:
        summary["last_error"] = redact(summary["last_error"])
    return summary


def _park_json(park: Park | None) -> dict[str, Any] | None:
    if park is None:
        return None
    return {"reason": redact(park.reason), "until": _ts(park.until)}


def _stream_row(
    key: StreamKey,
    state: StreamState | None,
    ops: list[BulkOperationRecord],
    now: float,
    park: Park | None,
    live: LiveView | None,
) -> dict[str, Any]:
    shop, resource = key
    s = state or StreamState(shop=shop, resource=resource)
    watermark = epoch_of(s.watermark)
    progress = live.bulk_progress.get(key) if live is not None else None
    bulk = []
    for op in ops:
        status, objects = op.status, op.object_count
        if progress is not None and op.id == s.bulk_operation_id:
            status, objects = progress
        bulk.append(
            {
                "id": op.id,
                "status": status,
                "object_count": objects,
                "root_object_count": op.root_object_count,
                "created_at": op.created_at,
                "window_start": op.window_start,
                "window_end": op.window_end,
                "lines_processed": op.lines_processed,
                "records_written": op.records_written,
            }
        )
    next_run = live.next_runs.get(key) if live is not None else None
    return {
        "resource": resource,
        "watermark": s.watermark,
        "lag_seconds": round(max(0.0, now - watermark), 1) if watermark is not None else None,
        "last_success_at": s.last_success_at,
        "last_error": redact(s.last_error) if s.last_error else None,
        "last_error_at": s.last_error_at,
        "syncing": bool(live is not None and key in live.syncing),
        "window": {"start": s.window_start, "end": s.window_end, "path": s.path} if s.window_end else None,
        "next_run_at": _ts(next_run),
        "parked": _park_json(park),
        "bulk_operations": bulk,
    }
