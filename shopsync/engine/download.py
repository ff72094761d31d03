"""Streaming, resumable download of a bulk operation's result file to local disk.

The file is written to a path in the state directory and survives a restart: a later call resumes
from the bytes already on disk with an HTTP ``Range`` request, both after a dropped connection and
after a crash. Memory use is one chunk, whatever the file's size.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from shopsync.errors import StorageError, TransientError

log = logging.getLogger(__name__)

#: Bytes read per step: the memory one download holds (many may run at once).
CHUNK = 256 << 10


class UrlExpiredError(Exception):
    """The signed URL no longer works (403/404/410): ask Shopify for the operation again."""


async def download_to_file(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    max_attempts: int = 8,
    backoff: Callable[[int], float] = lambda attempt: min(30.0, 0.5 * 2**attempt),
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    on_progress: Callable[[int], None] | None = None,
    expected_size: int | None = None,
) -> int:
    """Download ``url`` into ``dest``, resuming from ``dest``'s current size. Returns the size.

    A cut connection is resumed from the last byte written (up to ``max_attempts`` consecutive
    failures without progress). A server that ignores ``Range`` makes us start over from byte 0.
    Raises :class:`UrlExpiredError` when the URL is refused, :class:`TransientError` when the
    attempts run out, :class:`StorageError` when the local file cannot be written.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = 0
    while True:
        have = await asyncio.to_thread(_size, dest)
        if expected_size is not None and have == expected_size:
            return have
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            async with session.get(url, headers=headers) as resp:
                if resp.status in (403, 404, 410):
                    raise UrlExpiredError(f"result file refused with HTTP {resp.status}")
                if resp.status == 416 and have:
                    # Nothing left to send: what we have is the whole file.
                    return have
                if resp.status >= 500 or resp.status == 429:
                    raise TransientError(f"result download answered HTTP {resp.status}", reason=f"http_{resp.status}")
                if resp.status not in (200, 206):
                    raise TransientError(f"result download answered HTTP {resp.status}", reason="download")
                mode = "ab"
                if resp.status == 200 and have:
                    log.info("server ignored the Range request; downloading the result file again")
                    mode = "wb"
                    have = 0
                try:
                    fh = await asyncio.to_thread(open, dest, mode)
                except OSError as exc:
                    raise StorageError(f"cannot write bulk result file {dest}: {exc.strerror}") from exc
                try:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        fh.write(chunk)  # into the page cache; the fsync below is the slow part
                        have += len(chunk)
                        failures = 0
                        if on_progress is not None:
                            on_progress(have)
                    await asyncio.to_thread(_sync, fh)
                except OSError as exc:
                    raise StorageError(f"cannot write bulk result file {dest}: {exc.strerror}") from exc
                finally:
                    fh.close()
                total = _total_size(resp)
                if total is not None and have < total:
                    raise TransientError(f"result download ended at {have} of {total} bytes", reason="download_cut")
                return have
        except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TransientError) as exc:
            failures += 1
            if failures >= max_attempts:
                if isinstance(exc, TransientError):
                    raise
                raise TransientError(f"result download failed: {type(exc).__name__}", reason="download") from exc
            delay = backoff(failures)
            log.warning("result download interrupted at %d bytes (%s); resuming in %.1fs", have, type(exc).__name__, delay)
            await sleep(delay)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _sync(fh) -> None:
    fh.flush()
    os.fsync(fh.fileno())


def _total_size(resp: aiohttp.ClientResponse) -> int | None:
    """The full file size from ``Content-Range`` (206) or ``Content-Length`` (200)."""
    content_range = resp.headers.get("Content-Range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    if resp.status == 200 and resp.content_length is not None:
        return resp.content_length
    return None


def iter_lines(path: Path, *, chunk: int = CHUNK):
    """Yield the lines of a JSONL file without its newline, skipping blank lines."""
    with open(path, "rb") as fh:
        for line in fh:
            line = line.rstrip(b"\r\n")
            if line:
                yield line
