"""Stop and reload requests: signal handlers only set a flag, the daemon's loop acts on it.

:class:`Requests` holds the two flags and wakes the loop waiting in :meth:`Requests.next`; setting
a flag is safe from a signal handler (installed with ``loop.add_signal_handler``) and from
another thread. :func:`signal_handlers` installs SIGTERM/SIGINT (stop) and SIGHUP (reload) for
the duration of a ``with`` block.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Literal


class Requests:
    """Whether a stop or a reload was asked for, and the wake-up of the loop waiting for one."""

    def __init__(self) -> None:
        self.stop_requested = False
        self.reload_requested = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop to wake (requests made before any loop is bound only set the flag)."""
        self._loop = loop

    def request_stop(self) -> bool:
        """Ask for a stop; returns whether one had been asked for already."""
        already = self.stop_requested
        self.stop_requested = True
        self._poke()
        return already

    def request_reload(self) -> None:
        self.reload_requested = True
        self._poke()

    async def next(self) -> Literal["stop", "reload"]:
        """Wait for the next request: a stop wins over a pending reload; a reload is consumed."""
        while True:
            if self.stop_requested:
                return "stop"
            if self.reload_requested:
                self.reload_requested = False
                return "reload"
            await self._wake.wait()
            self._wake.clear()

    def _poke(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)


@contextlib.contextmanager
def signal_handlers(
    loop: asyncio.AbstractEventLoop, *, stop: Callable[[], object], reload: Callable[[], object]
) -> Iterator[None]:
    """SIGTERM and SIGINT call ``stop``, SIGHUP calls ``reload``, until the block ends."""
    installed: list[signal.Signals] = []
    try:
        for sig, handler in ((signal.SIGTERM, stop), (signal.SIGINT, stop), (signal.SIGHUP, reload)):
            loop.add_signal_handler(sig, handler)
            installed.append(sig)
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
