"""What the operating system says of this process (pure reads of ``/proc``; Linux, else None)."""

from __future__ import annotations

from pathlib import Path

__all__ = ["memory_mb", "peak_rss_mb"]


def memory_mb(key: str, pid: int | str = "self") -> float | None:
    """A memory figure of ``/proc/<pid>/status`` (``VmRSS``, ``VmHWM``, …) in MiB; None when the
    process or the figure is not there."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        pass
    return None


def peak_rss_mb() -> float | None:
    """This process's own peak RSS since its ``exec``, in MiB (``VmHWM``; ``ru_maxrss`` of a child
    would include the parent's pages it held between fork and exec)."""
    return memory_mb("VmHWM")
