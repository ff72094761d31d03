"""systemd's notification protocol (``sd_notify``) without a library, and the watchdog pinger.

The protocol is one datagram of ``KEY=VALUE`` lines sent to the ``AF_UNIX`` socket named by
``$NOTIFY_SOCKET`` (a leading ``@`` names an abstract socket). When the variable is unset — run by
hand, in a container, under tests — every call is a no-op, so callers never test for systemd.

Reloads: the unit is ``Type=notify`` with ``ExecReload=kill -HUP $MAINPID`` (``Type=notify-reload``
needs systemd ≥ 253, and Debian 12 ships 252). On SIGHUP the daemon sends :meth:`Notifier.reloading`
(``RELOADING=1`` with ``MONOTONIC_USEC``, which systemd ≥ 253 requires and older ones ignore), re-reads
its configuration and then sends :meth:`Notifier.ready` again, so ``systemctl status`` shows
"reloading" for the duration.

Watchdog: ``WatchdogSec=`` in the unit makes systemd export ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``)
and kill the service if no ``WATCHDOG=1`` arrives within that interval. :class:`Watchdog` sends the
pings from an asyncio task, and only while the scheduler keeps calling :meth:`Watchdog.heartbeat`: a
blocked event loop cannot run the task, and a scheduler stuck on an await stops heartbeating, so
either way the pings stop and systemd restarts the daemon.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping

log = logging.getLogger(__name__)

#: How often the watchdog task checks progress when systemd has no watchdog configured (so that
#: :meth:`Watchdog.healthy` still answers for ``/healthz``), in seconds.
DEFAULT_CHECK_EVERY = 5.0
#: How long without a heartbeat counts as stalled when systemd gives no interval, in seconds.
DEFAULT_STALL_AFTER = 60.0


def _address(value: str) -> str | bytes:
    # "@name" is Linux's abstract namespace: the address starts with a NUL byte.
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def _clean(value: object) -> str:
    # One field per line: a newline inside a value would start a bogus field.
    return str(value).replace("\r", " ").replace("\n", " ")


class Notifier:
    """Sends sd_notify datagrams to one socket, or does nothing when there is none.

    Build it with :meth:`from_env`. Sending never raises: a lost notification must not crash the
    daemon (systemd notices a missing READY=1 or WATCHDOG=1 by its own timeouts); failures are
    logged and reported by the boolean each method returns.
    """

    def __init__(self, socket_path: str | None) -> None:
        self._address: str | bytes | None = _address(socket_path) if socket_path else None
        self._sock: socket.socket | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None) -> Notifier:
        """The notifier for ``env["NOTIFY_SOCKET"]``; a disabled one when it is unset or ``env`` is None."""
        path = (env or {}).get("NOTIFY_SOCKET") or None
        return cls(path)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, **fields: object) -> bool:
        """Send one datagram with ``KEY=VALUE`` lines, e.g. ``notify(READY=1, STATUS="ok")``."""
        if self._address is None:
            return False
        message = "\n".join(f"{key}={_clean(value)}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # A full receive queue must not stall the event loop; the message is dropped instead.
                self._sock.setblocking(False)
            self._sock.sendto(message, self._address)
        except OSError as exc:
            log.warning("sd_notify to %s failed: %s", self._address, exc)
            return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """``READY=1``: the state store is open and the schedules are armed."""
        return self.notify(READY=1, STATUS=status) if status is not None else self.notify(READY=1)

    def status(self, text: str) -> bool:
        """``STATUS=…``: the one-line summary ``systemctl status`` shows."""
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        """``WATCHDOG=1``: the daemon is making progress."""
        return self.notify(WATCHDOG=1)

    def stopping(self, status: str | None = None) -> bool:
        """``STOPPING=1``: shutdown has begun (sent before the checkpoint flush)."""
        return self.notify(STOPPING=1, STATUS=status) if status is not None else self.notify(STOPPING=1)

    def reloading(self) -> bool:
        """``RELOADING=1`` with the ``MONOTONIC_USEC`` systemd ≥ 253 requires; send :meth:`ready` after."""
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify(RELOADING=1, MONOTONIC_USEC=usec)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __repr__(self) -> str:
        return f"Notifier({self._address!r})"


def watchdog_interval(env: Mapping[str, str] | None, pid: int | None = None) -> float | None:
    """systemd's watchdog interval in seconds from ``WATCHDOG_USEC``, or None when it is off.

    ``WATCHDOG_PID``, when set, names the process the interval is meant for; any other process
    (``pid``, default this one) gets None, as sd_watchdog_enabled() does. Ping at half the interval.
    """
    env = env or {}
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    owner = env.get("WATCHDOG_PID")
    if owner:
        try:
            if int(owner) != (os.getpid() if pid is None else pid):
                return None
        except ValueError:
            return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    return usec / 1_000_000 if usec > 0 else None


class Watchdog:
    """Pings systemd's watchdog while the scheduler makes progress; answers ``/healthz``.

    The scheduler calls :meth:`heartbeat` whenever its main loop turns (each dispatch, and at least
    every ``stall_after / 2`` seconds while idle, e.g. by waiting for the next due run with a
    timeout). :meth:`run` is a task that wakes every half watchdog interval and sends
    ``WATCHDOG=1`` only if the last heartbeat is younger than ``stall_after``. A blocked event loop
    never wakes the task, a stuck scheduler stops heartbeating: both stop the pings.

    ``interval`` is systemd's full interval (:func:`watchdog_interval`), None when systemd has none;
    the task then still runs (every :data:`DEFAULT_CHECK_EVERY` s) so :meth:`healthy` and
    :attr:`loop_lag` stay meaningful for a container ``HEALTHCHECK``. ``status``, if given, is called
    each tick and sent as ``STATUS=`` when its text changed.
    """

    def __init__(
        self,
        notifier: Notifier,
        *,
        interval: float | None,
        stall_after: float | None = None,
        status: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.notifier = notifier
        self.interval = interval
        self.period = interval / 2 if interval else DEFAULT_CHECK_EVERY
        self.stall_after = stall_after if stall_after is not None else (interval or DEFAULT_STALL_AFTER)
        self._status = status
        self._clock = clock
        self._sleep = sleep
        self._last_heartbeat = clock()
        self._last_status: str | None = None
        self._withholding = False
        #: How late the task woke on its last tick (seconds): time the event loop was blocked.
        self.loop_lag = 0.0
        #: WATCHDOG=1 datagrams sent so far.
        self.pings = 0

    def heartbeat(self) -> None:
        """Record scheduler progress. Cheap; call it as often as you like."""
        self._last_heartbeat = self._clock()

    def since_heartbeat(self, now: float | None = None) -> float:
        return (self._clock() if now is None else now) - self._last_heartbeat

    def healthy(self, now: float | None = None) -> bool:
        """True while the last heartbeat is younger than ``stall_after``."""
        return self.since_heartbeat(now) <= self.stall_after

    def tick(self) -> bool:
        """One check: send ``STATUS=`` if it changed, then ``WATCHDOG=1`` if healthy. Returns pinged."""
        if self._status is not None:
            text = self._status()
            if text != self._last_status and self.notifier.status(text):
                self._last_status = text
        now = self._clock()
        if not self.healthy(now):
            if not self._withholding:
                log.error(
                    "scheduler made no progress for %.0fs (limit %.0fs); withholding watchdog pings",
                    self.since_heartbeat(now),
                    self.stall_after,
                )
                self._withholding = True
            return False
        if self._withholding:
            log.warning("scheduler progressing again; resuming watchdog pings")
            self._withholding = False
        if self.interval is None:
            return False
        sent = self.notifier.watchdog()
        self.pings += sent
        return sent

    async def run(self) -> None:
        """Tick every ``period`` seconds until cancelled (the daemon owns and cancels the task)."""
        while True:
            self.tick()
            due = self._clock() + self.period
            await self._sleep(self.period)
            self.loop_lag = max(0.0, self._clock() - due)
