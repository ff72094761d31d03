"""What the operating system says of this process (pure reads of ``/proc``; Linux, else None)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["peak_rss_mb"]


def peak_rss_mb() -> float | None:
    """This process's own peak RSS since its ``exec``, in MiB (``VmHWM``; ``ru_maxrss`` of a child
    would include the parent's pages it held between fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None
