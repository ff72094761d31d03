"""JSONL sink: an append-only, fsynced change log per shop and resource, rotated by size.

Layout under the sink directory (``jsonl:///srv/out`` → ``/srv/out/``)::

    out/<shop>/<resource>/00000001.jsonl
    out/<shop>/<resource>/00000002.jsonl   (started when the previous one reached rotate_bytes)

Each line is one JSON object, keys in this order::

    {"shop": "acme", "resource": "orders", "id": "gid://shopify/Order/1",
     "updatedAt": "2026-11-25T23:18:05Z", "data": {...the record...}}
    {"shop": "acme", "resource": "orders", "id": "gid://shopify/Order/1",
     "updatedAt": "2026-11-26T08:00:00Z", "deletedAt": "2026-11-26T08:00:00Z", "data": null}

Rules a reader relies on:

* Files sort by name in write order. A file is only ever appended to; once a higher-numbered file
  exists, the lower one never changes again.
* ``write`` returns only after the lines are fsynced (and, for a new file, its directory), so every
  acknowledged line survives a crash.
* Torn tail: a crash in the middle of a write can leave a last line without its ``\\n``. shopsync
  never rewrites or truncates a file, so it leaves that fragment where it is and continues in a new
  file. Readers must ignore a file's final line when it does not end with ``\\n`` (after a power
  loss the fragment can also contain NUL bytes; it never ends with a newline unless complete).
  A write that fails (disk full, I/O error) is handled the same way: the batch is reported as not
  written, the file is left as it is, and the next write starts a new file.
* Files are created ``0600`` and directories ``0700``, whatever the umask (:mod:`shopsync.fsutil`);
  a directory that already exists keeps its mode.
* The log is at-least-once: a page replayed after a crash is appended again. To get the current
  state keep, per id, the line with the greatest ``updatedAt`` — on a tie a deletion wins over a
  record, otherwise the later line — and treat a line with ``deletedAt`` as "deleted". A deletion
  line's ``updatedAt`` is its ``deletedAt``. :func:`read_latest` does exactly that.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import re
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import orjson

from shopsync.errors import StorageError
from shopsync.fsutil import describe_os_error, ensure_private_dir, fsync, fsync_dir, open_private, write_all
from shopsync.state.models import Deletion, Record, SinkRow, SinkStats, WriteResult
from shopsync.state.settle import settle
from shopsync.state.sink import (
    DEFAULT_ROTATE_BYTES,
    replaces,
    validate_resource_name,
    validate_shop_name,
)

T = TypeVar("T")

_FILE_NAME = re.compile(r"(\d{8,})\.jsonl\Z")
_LOCK_NAME = ".shopsync.lock"


def file_name(number: int) -> str:
    """``00000001.jsonl``: zero-padded so that names sort in write order."""
    return f"{number:08d}.jsonl"


def list_files(directory: Path) -> list[tuple[int, Path]]:
    """The numbered log files of one stream directory, in write order."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    found = [(int(m.group(1)), directory / name) for name in names if (m := _FILE_NAME.match(name))]
    return sorted(found)


def record_line(rec: Record) -> bytes:
    """The log line of a record (with its newline); ``data`` is spliced in without re-parsing."""
    text = rec.json_bytes()
    if b"\n" in text:
        raise ValueError(f"record {rec.id} text contains a newline; it must be compact JSON")
    head = orjson.dumps(
        {"shop": rec.shop, "resource": rec.resource, "id": rec.id, "updatedAt": rec.updated_at}
    )
    return head[:-1] + b',"data":' + text + b"}\n"


def deletion_line(d: Deletion) -> bytes:
    return (
        orjson.dumps(
            {
                "shop": d.shop,
                "resource": d.resource,
                "id": d.id,
                "updatedAt": d.deleted_at,
                "deletedAt": d.deleted_at,
                "data": None,
            }
        )
        + b"\n"
    )


def iter_lines(path: Path) -> Iterator[bytes]:
    """Complete lines of one log file, ignoring a torn final line (one without ``\\n``)."""
    with open(path, "rb") as fh:
        for line in fh:
            if line.endswith(b"\n"):
                yield line


def read_latest(root: Path, shop: str, resource: str) -> dict[str, SinkRow]:
    """Replay one stream's log into its current state, with the same outcome as the SQLite sink.

    Per id: ``data``/``updated_at`` come from the record line with the greatest ``updatedAt`` (on a
    tie, or when ``updatedAt`` is null, the later line); the record is deleted when a deletion line
    has ``deletedAt`` >= that ``updatedAt`` (or the record has no ``updatedAt``). This equals the
    simple rule in the module docstring and keeps the deleted record's last data.
    """
    directory = Path(root) / validate_shop_name(shop) / validate_resource_name(resource)
    newest: dict[str, tuple[str | None, bytes]] = {}
    deleted: dict[str, str] = {}
    for _, path in list_files(directory):
        for raw in iter_lines(path):
            line = orjson.loads(raw)
            rid = line["id"]
            if "deletedAt" in line:
                if line["deletedAt"] > deleted.get(rid, ""):
                    deleted[rid] = line["deletedAt"]
                continue
            ts = line.get("updatedAt")
            cur = newest.get(rid)
            if cur is None or replaces(ts, cur[0]):
                newest[rid] = (ts, orjson.dumps(line["data"], option=orjson.OPT_SORT_KEYS))
    rows: dict[str, SinkRow] = {}
    for rid in newest.keys() | deleted.keys():
        ts, data = newest.get(rid, (None, None))
        gone = deleted.get(rid)
        if gone is not None and ts is not None and gone < ts:
            gone = None  # a version newer than the deletion
        rows[rid] = SinkRow(id=rid, updated_at=ts, data=data, deleted_at=gone)
    return rows


@dataclass
class _Stream:
    """The open tail file of one (shop, resource)."""

    directory: Path
    number: int
    fd: int | None
    size: int


class JsonlSink:
    """The :class:`~shopsync.state.sink.Sink` writing append-only JSONL files under ``root``.

    Holds an exclusive ``flock`` on ``root/.shopsync.lock`` while open, so two processes never
    append to the same files. All file I/O runs on one worker thread.
    """

    def __init__(
        self, root: Path, *, rotate_bytes: int = DEFAULT_ROTATE_BYTES, url: str | None = None
    ) -> None:
        if rotate_bytes <= 0:
            raise ValueError("rotate_bytes must be positive")
        self.root = Path(root)
        self.rotate_bytes = rotate_bytes
        self.url = url or f"jsonl://{self.root.absolute()}"
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._executor: ThreadPoolExecutor | None = None
        self._lock_fd: int | None = None

    def __repr__(self) -> str:
        return f"JsonlSink({str(self.root)!r}, rotate_bytes={self.rotate_bytes})"

    async def open(self) -> None:
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jsonl-sink")
        try:
            self._lock_fd = await asyncio.get_running_loop().run_in_executor(executor, self._open_root)
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    def _open_root(self) -> int:
        try:
            ensure_private_dir(self.root)
            fd = open_private(self.root / _LOCK_NAME, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StorageError(
                f"opening JSONL sink directory {self.root} failed: {describe_os_error(exc)}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise StorageError(
                    f"JSONL sink directory {self.root} is in use by another shopsync process"
                ) from exc
            raise StorageError(
                f"locking JSONL sink directory {self.root} failed: {describe_os_error(exc)}"
            ) from exc
        return fd

    async def close(self) -> None:
        executor, self._executor = self._executor, None
        if executor is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._close_all)
        finally:
            executor.shutdown(wait=False)

    def _close_all(self) -> None:
        for stream in self._streams.values():
            if stream.fd is not None:
                os.close(stream.fd)
                stream.fd = None
        self._streams.clear()
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the flock
            self._lock_fd = None

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StorageError(f"JSONL sink {self.root} is not open")
        return await settle(asyncio.get_running_loop().run_in_executor(self._executor, fn))

    async def write(self, records: Sequence[Record] = (), deletions: Sequence[Deletion] = ()) -> WriteResult:
        if not records and not deletions:
            return WriteResult()
        # Build all lines first (pure, may raise ValueError) so a bad record writes nothing.
        batches: dict[tuple[str, str], list[bytes]] = {}
        for r in records:
            batches.setdefault((r.shop, r.resource), []).append(record_line(r))
        for d in deletions:
            batches.setdefault((d.shop, d.resource), []).append(deletion_line(d))
        for shop, resource in batches:
            validate_shop_name(shop)
            validate_resource_name(resource)
        await self._run(lambda: self._append_batches(batches))
        return WriteResult(written=len(records), skipped=0, deleted=len(deletions))

    def _append_batches(self, batches: dict[tuple[str, str], list[bytes]]) -> None:
        for key, lines in batches.items():
            stream = self._streams.get(key)
            try:
                if stream is None:
                    stream = self._streams[key] = self._open_stream(*key)
                self._append(stream, lines)
            except OSError as exc:
                where = exc.filename or (
                    stream.directory / file_name(stream.number) if stream else self.root / key[0] / key[1]
                )
                if stream is not None:
                    # Whatever reached the file may end in a torn line, and after a failed fsync the
                    # page cache cannot be trusted: never append to this file again.
                    self._abandon(stream)
                raise StorageError(f"appending to JSONL file {where} failed: {describe_os_error(exc)}") from exc

    def _open_stream(self, shop: str, resource: str) -> _Stream:
        directory = self.root / shop / resource
        ensure_private_dir(directory)
        files = list_files(directory)
        if not files:
            return _Stream(directory=directory, number=0, fd=None, size=0)
        number, path = files[-1]
        size = path.stat().st_size
        if size and (size >= self.rotate_bytes or not self._ends_with_newline(path, size)):
            # Full, or ends in a torn line left by a crash: keep it as it is, start the next file.
            return _Stream(directory=directory, number=number, fd=None, size=0)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        return _Stream(directory=directory, number=number, fd=fd, size=size)

    @staticmethod
    def _ends_with_newline(path: Path, size: int) -> bool:
        with open(path, "rb") as fh:
            fh.seek(size - 1)
            return fh.read(1) == b"\n"

    def _abandon(self, stream: _Stream) -> None:
        if stream.fd is not None:
            try:
                os.close(stream.fd)
            except OSError:
                pass
        stream.fd = None  # the next write starts file number + 1

    def _next_file(self, stream: _Stream) -> None:
        if stream.fd is not None:
            os.close(stream.fd)
            stream.fd = None
        number = stream.number + 1
        fd = open_private(stream.directory / file_name(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL)
        stream.number, stream.fd, stream.size = number, fd, 0
        fsync_dir(stream.directory)

    def _append(self, stream: _Stream, lines: list[bytes]) -> None:
        chunk: list[bytes] = []
        chunk_size = 0
        if stream.fd is None:
            self._next_file(stream)
        for line in lines:
            if stream.size + chunk_size > 0 and stream.size + chunk_size + len(line) > self.rotate_bytes:
                self._flush(stream, chunk, chunk_size)
                chunk, chunk_size = [], 0
                self._next_file(stream)
            chunk.append(line)
            chunk_size += len(line)
        self._flush(stream, chunk, chunk_size)

    def _flush(self, stream: _Stream, chunk: list[bytes], size: int) -> None:
        if not chunk:
            return
        assert stream.fd is not None
        write_all(stream.fd, b"".join(chunk))
        fsync(stream.fd)
        stream.size += size

    async def read_latest(self, shop: str, resource: str) -> dict[str, SinkRow]:
        return await self._run(lambda: read_latest(self.root, shop, resource))

    async def read_index(self, shop: str, resource: str) -> dict[str, SinkRow]:
        rows = await self.read_latest(shop, resource)
        return {k: SinkRow(id=r.id, updated_at=r.updated_at, data=None, deleted_at=r.deleted_at) for k, r in rows.items()}

    async def purge(self, shop: str, resource: str, ids: Sequence[str]) -> int:
        return 0  # an append-only log: the deletion lines already say it

    async def stats(self, shop: str, resource: str) -> SinkStats:
        directory = self.root / validate_shop_name(shop) / validate_resource_name(resource)

        def read() -> SinkStats:
            files = list_files(directory)
            return SinkStats(files=len(files), bytes=sum(p.stat().st_size for _, p in files))

        return await self._run(read)
