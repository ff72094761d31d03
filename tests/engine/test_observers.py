"""The engine's observers implement the whole EngineObserver protocol, explicitly (no catch-all)."""

from __future__ import annotations

import inspect

from shopsync.engine.engine import _CountingObserver
from shopsync.observability.events import EngineObserver, NullObserver
from shopsync.observability.progress import Progress

ENGINE_EVENTS = sorted(name for name in vars(EngineObserver) if name.startswith("on_"))
ARGS = {
    "on_records": ("acme", "orders", "bulk", 3),
    "on_bulk_status": ("acme", "orders", "RUNNING", 7),
    "on_bulk_finished": ("acme", "orders", "COMPLETED", 1.5, 7),
    "on_guard_mismatch": ("acme", "orders", "count"),
    "on_checkpoint": ("acme", "orders", "2026-01-01T00:00:00Z"),
    "on_path_decision": ("acme", "orders", "bulk", "estimate"),
}


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    def __getattr__(self, name: str):  # a test double only: records whatever it is sent
        return lambda *args: self.calls.append((name, args))


def test_every_engine_event_is_covered_here() -> None:
    assert ENGINE_EVENTS == sorted(ARGS)


def test_counting_observer_forwards_every_event_and_counts_records() -> None:
    inner = _Recorder()
    counting = _CountingObserver(inner)  # type: ignore[arg-type]
    for name in ENGINE_EVENTS:
        getattr(counting, name)(*ARGS[name])
    assert inner.calls == [(name, ARGS[name]) for name in ENGINE_EVENTS]
    assert counting.records == {("acme", "orders"): 3}
    assert "__getattr__" not in vars(_CountingObserver)


def test_observers_define_each_engine_event_with_the_protocols_parameters() -> None:
    for cls in (_CountingObserver, NullObserver, Progress):
        assert "__getattr__" not in vars(cls), cls
        for name in ENGINE_EVENTS:
            method = vars(cls).get(name)
            assert method is not None, (cls, name)
            expected = list(inspect.signature(getattr(EngineObserver, name)).parameters)
            assert list(inspect.signature(method).parameters) == expected, (cls, name)
