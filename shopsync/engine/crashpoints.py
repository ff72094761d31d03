"""Named crash points for the kill -9 test matrix.

``SHOPSYNC_CRASHPOINT=name`` (or ``name:N`` for the N-th time it is reached) makes the process kill
itself with SIGKILL at that point — no cleanup, no flush, exactly like ``kill -9``. Unset (always,
outside the crash tests), :func:`crashpoint` is a dictionary lookup and nothing else.

Points: ``mid_page`` (a page fetched, nothing written), ``after_sink_write`` (records durable in a
separate sink, checkpoint not yet saved), ``after_commit`` (a page committed), ``mid_download``
(part of a bulk result file on disk), ``polling`` (a bulk operation recorded and being polled),
``mid_bulk_write`` (part of a bulk file's records committed).
"""

from __future__ import annotations

import os
import signal

_SPEC = os.environ.get("SHOPSYNC_CRASHPOINT", "")
_NAME, _, _COUNT = _SPEC.partition(":")
_TARGET = int(_COUNT) if _COUNT.isdigit() else 1
_hits = 0


def crashpoint(name: str) -> None:
    global _hits
    if not _NAME or name != _NAME:
        return
    _hits += 1
    if _hits >= _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)
