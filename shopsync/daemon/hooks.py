"""Hooks into the daemon's outcomes: what a caller embedding the daemon (the tests) waits on.

The daemon awaits :class:`DaemonHooks` after every finished stream run (inside the run's task) and
every reload, on its event loop; a hook should return promptly. Tests pass a recorder
(``tests/support/daemon.py``) and wait on it instead of sleeping; ``shopsync run`` passes
nothing (:class:`NullHooks`).
"""

from __future__ import annotations

from typing import Protocol

from shopsync.engine.engine import StreamResult


class DaemonHooks(Protocol):
    """Told what the daemon just finished."""

    async def run_finished(self, result: StreamResult) -> None:
        """A stream run ended (its parking applied and its state re-read): ``result`` says how."""

    async def reload_finished(self, applied: bool) -> None:
        """A configuration reload ended: ``applied`` True, or False when it was rejected."""


class NullHooks:
    """Hooks that do nothing (the default)."""

    async def run_finished(self, result: StreamResult) -> None:
        pass

    async def reload_finished(self, applied: bool) -> None:
        pass
