"""Streaming, resumable download of a bulk operation's result file to local disk.

The file is written to a path in the state directory and survives a restart: a later call resumes
from the bytes already on disk with an HTTP ``Range`` request, both after a dropped connection and
after a crash. Memory use is one chunk, whatever the file's size.

Result files are signed URLs on storage hosts that are not the shop (issue 10): they are fetched
with no credential at all — the only request header is ``Range`` — and the shared session is
checked to carry none by default either, so redirects (up to :data:`MAX_REDIRECTS`, http(s) only)
are followed: whatever host they lead to learns nothing but the signed URL.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO

import aiohttp

from shopsync.client.transport import session_credentials
from shopsync.errors import FatalError, StorageError, TransientError, UrlExpiredError
from shopsync.fsutil import describe_os_error, ensure_private_dir, private_opener

log = logging.getLogger(__name__)

#: Bytes read per step: the memory one download holds (many may run at once).
CHUNK = 256 << 10
#: Redirects followed per request of a result file (storage services redirect once, if at all).
MAX_REDIRECTS = 5


async def download_to_file(
    session: aiohttp.ClientSession,
    url: str,
    dest: Path,
    *,
    max_attempts: int = 8,
    backoff: Callable[[int], float] = lambda attempt: min(30.0, 0.5 * 2**attempt),
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    on_progress: Callable[[int], None] | None = None,
    expected_size: int | None = None,
) -> int:
    """Download ``url`` into ``dest``, resuming from ``dest``'s current size. Returns the size.

    A cut connection is resumed from the last byte written (up to ``max_attempts`` consecutive
    failures without progress). A server that ignores ``Range`` makes us start over from byte 0.
    Raises :class:`UrlExpiredError` when the URL is refused, :class:`TransientError` when the
    attempts run out, :class:`StorageError` when the local file cannot be written, and
    :class:`FatalError` when ``session`` would send a credential with every request (a bug: the
    file's host, or any host it redirects to, must never receive one).
    """
    _prepare(session, dest)
    failures = 0
    while True:
        have = await asyncio.to_thread(_size, dest)
        if expected_size is not None and have == expected_size:
            return have
        headers = {"Range": f"bytes={have}-"} if have else {}
        try:
            # No credential in `headers` and none in the session: following a redirect is safe.
            async with session.get(url, headers=headers, allow_redirects=True, max_redirects=MAX_REDIRECTS) as resp:
                if _nothing_left(resp.status, have):
                    return have
                mode = "ab"
                if resp.status == 200 and have:
                    log.info("server ignored the Range request; downloading the result file again")
                    mode = "wb"
                    have = 0
                try:
                    fh = await asyncio.to_thread(open, dest, mode, opener=private_opener)
                except OSError as exc:
                    raise StorageError(f"cannot write bulk result file {dest}: {describe_os_error(exc)}") from exc
                try:
                    async for chunk in resp.content.iter_chunked(CHUNK):
                        fh.write(chunk)  # into the page cache; the fsync below is the slow part
                        have += len(chunk)
                        failures = 0
                        if on_progress is not None:
                            on_progress(have)
                    await asyncio.to_thread(_sync, fh)
                except OSError as exc:
                    raise StorageError(f"cannot write bulk result file {dest}: {describe_os_error(exc)}") from exc
                finally:
                    fh.close()
                total = _total_size(resp)
                if total is not None and have < total:
                    raise TransientError(f"result download ended at {have} of {total} bytes", reason="download_cut")
                return have
        except UrlExpiredError:
            raise  # a fresh URL is needed, not another try of this one
        except (aiohttp.TooManyRedirects, aiohttp.RedirectClientError) as exc:
            # Redirected in circles or to something that is not http(s): a fresh URL may do better.
            raise UrlExpiredError(f"result download redirected badly ({type(exc).__name__})") from None
        except (TimeoutError, aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TransientError) as exc:
            failures += 1
            if failures >= max_attempts:
                if isinstance(exc, TransientError):
                    raise
                raise TransientError(f"result download failed: {type(exc).__name__}", reason="download") from exc
            delay = backoff(failures)
            log.warning("result download interrupted at %d bytes (%s); resuming in %.1fs", have, type(exc).__name__, delay)
            await sleep(delay)


def _prepare(session: aiohttp.ClientSession, dest: Path) -> None:
    """Refuse a session that would send a credential; make ``dest``'s directories (private)."""
    carried = session_credentials(session)
    if carried:
        raise FatalError(
            f"refusing to download a bulk result file with a session that sends {', '.join(carried)} "
            "on every request (result files are fetched without credentials)"
        )
    try:
        # The file holds customers' data: its directories 0700 and the file 0600, whatever the umask.
        ensure_private_dir(dest.parent)
    except OSError as exc:
        raise StorageError(f"cannot create directory {dest.parent} for bulk result files: {describe_os_error(exc)}") from exc


def _nothing_left(status: int, have: int) -> bool:
    """True when a 416 says the ``have`` bytes already on disk are the whole file; raises for an
    answer that brings no bytes (refused URL, server error, anything but 200/206)."""
    if status in (403, 404, 410):
        raise UrlExpiredError(f"result file refused with HTTP {status}")
    if status == 416 and have:
        return True
    if status >= 500 or status == 429:
        raise TransientError(f"result download answered HTTP {status}", reason=f"http_{status}")
    if status not in (200, 206):
        raise TransientError(f"result download answered HTTP {status}", reason="download")
    return False


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _sync(fh: IO[bytes]) -> None:
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


def iter_line_blocks(path: Path, *, chunk: int = CHUNK) -> Iterator[list[bytes]]:
    """Yield the lines of a JSONL file in blocks of about ``chunk`` bytes, each line as it is in
    the file (newline kept, blank lines included: JSON parsers ignore the whitespace, and a
    consumer of many lines at once pays one call per block instead of one per line)."""
    with open(path, "rb") as fh:
        while block := fh.readlines(chunk):
            yield block


def iter_lines(path: Path, *, chunk: int = CHUNK) -> Iterator[bytes]:
    """Yield the lines of a JSONL file without its newline, skipping blank lines."""
    for block in iter_line_blocks(path, chunk=chunk):
        for line in block:
            line = line.rstrip(b"\r\n")
            if line:
                yield line
