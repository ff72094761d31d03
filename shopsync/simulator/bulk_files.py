"""Bulk result files: signed URLs, and serving a file with ``Range`` and the ``download_cut`` fault.

Result files are served by the simulator itself at a signed-looking URL
(``…?Expires=<epoch>&Signature=<hmac>``). Downloads honour ``Range`` (206 and ``Content-Range``)
so a client can resume; an expired or forged URL answers 403 with an S3-like XML body, an unknown
file 404.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from shopsync.simulator.faults import Faults

__all__ = ["UrlSigner", "abort_transport", "s3_error", "serve_file"]

_READ_CHUNK = 64 * 1024


@dataclass(frozen=True)
class UrlSigner:
    """HMAC signatures over a file path and its expiry, like a cloud store's signed URL."""

    key: bytes

    def signature(self, path: str, expires: int) -> str:
        return hmac.new(self.key, f"{path}\n{expires}".encode(), hashlib.sha256).hexdigest()

    def sign(self, base_url: str, path: str, expires: int) -> str:
        return f"{base_url}{path}?Expires={expires}&Signature={self.signature(path, expires)}"

    def check(self, path: str, expires: str | None, signature: str | None, now: float) -> str | None:
        """``None`` when the URL may be served, else an S3-like error code."""
        if not expires or not signature or not expires.isdigit():
            return "AccessDenied"
        if not hmac.compare_digest(self.signature(path, int(expires)), signature):
            return "SignatureDoesNotMatch"
        if now >= int(expires):
            return "ExpiredRequest"
        return None


def s3_error(status: int, code: str, message: str) -> web.Response:
    """An S3-like XML error answer."""
    body = f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message></Error>'
    return web.Response(status=status, text=body, content_type="application/xml")


async def serve_file(
    request: web.Request, path: Path, *, etag_id: str, stats: Counter[str], faults: Faults
) -> web.StreamResponse:
    """Send the file at ``path`` (whose URL was already checked), honouring ``Range``.

    Counts ``downloads``, ``download_bytes`` and ``downloads_cut`` in ``stats``; the
    ``download_cut`` fault sends part of the body and then drops the connection.
    """
    # A local temporary file: stat and chunked reads are quick, as in the rest of the simulator.
    size = path.stat().st_size  # noqa: ASYNC240
    try:
        rng = request.http_range
    except ValueError:
        return s3_error(416, "InvalidRange", "The requested range is not satisfiable")
    start = rng.start or 0
    if start < 0:  # suffix range: the last -start bytes
        start = max(0, size + start)
    stop = size if rng.stop is None else min(rng.stop, size)
    partial = rng.start is not None or rng.stop is not None
    if partial and (start >= size or stop <= start):
        refused = s3_error(416, "InvalidRange", "The requested range is not satisfiable")
        refused.headers["Content-Range"] = f"bytes */{size}"
        return refused
    resp = web.StreamResponse(status=206 if partial else 200)
    resp.content_type = "application/jsonl"
    resp.content_length = stop - start
    resp.headers["Accept-Ranges"] = "bytes"
    resp.headers["ETag"] = f'"{etag_id}-{size}"'
    if partial:
        resp.headers["Content-Range"] = f"bytes {start}-{stop - 1}/{size}"
    stats["downloads"] += 1
    cut = faults.take_download_cut()
    send_until = stop if cut is None else start + math.floor((stop - start) * cut)
    await resp.prepare(request)
    with path.open("rb") as f:
        f.seek(start)
        pos = start
        while pos < send_until:
            chunk = f.read(min(_READ_CHUNK, send_until - pos))
            if not chunk:
                break
            await resp.write(chunk)
            pos += len(chunk)
    stats["download_bytes"] += pos - start
    if cut is not None:
        stats["downloads_cut"] += 1
        abort_transport(request)
        return resp
    await resp.write_eof()
    return resp


def abort_transport(request: web.Request) -> None:
    """Drop the TCP connection under a response already started (the client sees a cut body)."""
    transport = request.transport
    if transport is not None:
        transport.abort()
