"""Named crash points for the kill -9 test matrix.

A process armed with ``name`` (or ``name:N`` for the N-th time it is reached) kills itself with
SIGKILL at that point — no cleanup, no flush, exactly like ``kill -9``. Nothing is armed unless
someone asks: the command entry (:func:`shopsync.commands.main.main`) calls
:func:`arm_from_environment` once, so ``SHOPSYNC_CRASHPOINT=name[:N]`` arms a ``shopsync``
process; a test's own subprocess may call :func:`arm` or :func:`arm_from_environment` itself.
Unarmed (always, outside the crash tests), :func:`crashpoint` is one comparison and nothing else.

Points: ``mid_page`` (a page fetched, nothing written), ``after_sink_write`` (records durable in a
separate sink, checkpoint not yet saved), ``after_commit`` (a page committed), ``mid_download``
(part of a bulk result file on disk), ``polling`` (a bulk operation recorded and being polled),
``mid_bulk_write`` (part of a bulk file's records committed), ``after_failed_export`` (a failed
bulk operation recorded as finished, its window not yet exported again), ``after_slice`` (a slice
of a sliced bulk window read and recorded, the others not all yet).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping

#: The environment variable :func:`arm_from_environment` reads.
ENV_VAR = "SHOPSYNC_CRASHPOINT"

_name = ""
_target = 1
_hits = 0


def arm(spec: str) -> None:
    """Arm the crash point ``spec`` (``name`` or ``name:N``); an empty ``spec`` disarms.

    A count that is not a number means the first hit, as ``name`` alone does.
    """
    global _name, _target, _hits
    name, _, count = spec.partition(":")
    _name = name
    _target = int(count) if count.isdigit() else 1
    _hits = 0


def arm_from_environment(env: Mapping[str, str]) -> None:
    """Arm the crash point named by ``env["SHOPSYNC_CRASHPOINT"]``, if set (else change nothing)."""
    spec = env.get(ENV_VAR, "")
    if spec:
        arm(spec)


def disarm() -> None:
    """No crash point armed any more."""
    arm("")


def crashpoint(name: str) -> None:
    """Kill this process with SIGKILL if ``name`` is the armed point reached for the N-th time."""
    global _hits
    if not _name or name != _name:
        return
    _hits += 1
    if _hits >= _target:
        os.kill(os.getpid(), signal.SIGKILL)
