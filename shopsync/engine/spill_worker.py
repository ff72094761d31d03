"""A large bulk file read on several cores: worker processes spill its parts, and read it back.

Reading a result file is CPU work per line (parse, sort the keys, cut the template) under one
interpreter lock: a 100,000-order file keeps one core busy for seconds while the others idle.
Past the memory budget every line goes to the spill file anyway, and the spill does not care in
which order its lines arrive, so the file is cut at line boundaries into one byte range per
worker; each worker (``python -m shopsync.engine.spill_worker``, a fresh interpreter that imports
neither GraphQL nor the network stack) reads its range into a spill of its own, exactly as the
reassembler would (:meth:`~shopsync.engine.reassembly.BulkReassembler.feed_lines`, spilling from
the first line), and the reassembler then merges the parts' indexes in file order
(:meth:`~shopsync.engine.reassembly.BulkReassembler.adopt_parts`). Then one more worker reads the
records back from the spill and builds them (:func:`texts_from_worker`) while the sync process
writes them to the sink: in one process the two would take turns under the interpreter lock.
The records are byte for byte those of one process.

A worker gets its job as JSON on stdin (the resource's :class:`~shopsync.engine.bulk_shape.BulkShape`
and where the file and the spill are) and an environment holding nothing of the daemon's but what
Python needs to start: no token or secret from the environment ever reaches it. A part's worker
answers one JSON line on stdout (its part, or the first bad line it met, or the storage error
that stopped it); the reading worker streams frames of records, then an end or an error frame.
"""
from __future__ import annotations

import contextlib
import fcntl
import itertools
import logging
import os
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import IO, Any, NoReturn

import orjson

import shopsync
from shopsync.engine.bulk_shape import BulkShape
from shopsync.engine.reassembly import LINE_PREFIX, BulkReassembler, SpillPart
from shopsync.engine.spill import WORKER_CACHE_KIB
from shopsync.errors import BulkFileError, StorageError
from shopsync.fsutil import describe_os_error
from shopsync.procstat import peak_rss_mb

log = logging.getLogger(__name__)

__all__ = [
    "MIN_PART_BYTES", "SLOTS", "TextColumns", "WorkerSlots", "columns_from_worker", "parts_for", "spill_in_parts",
    "split_ranges", "texts_from_worker",
]  # fmt: skip

#: Records as columns: their ids, ``updatedAt`` values and JSON texts (what one frame carries).
TextColumns = tuple[list[str], list["str | None"], list[bytes]]

#: A part smaller than this is not worth a process of its own (a worker starts in ~50 ms).
MIN_PART_BYTES = 16 << 20
#: Bytes of lines read per block (a worker's own reads; whole lines, never past its range).
_CHUNK = 256 << 10
#: How often a wait for the workers looks at the caller's stop signal.
_POLL_S = 0.2
#: A frame of records read back: the lengths of its JSON header and of its texts.
_FRAME = struct.Struct("<II")
_SEND_RECORDS = 500
_SEND_BYTES = 1 << 20
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
_PIPE_BYTES = 1 << 20
#: The environment variables a worker keeps: what the interpreter and the C library read.
_KEEP_ENV = ("PATH", "LANG", "LC_ALL", "LC_CTYPE", "TMPDIR", "TZ", "SYSTEMROOT")


def parts_for(size: int, *, workers: int, memory_budget: int) -> int:
    """How many parts a file of ``size`` bytes is read in: one (in the calling process) while it
    fits the memory budget or is too small to share, else up to ``workers``."""
    if workers <= 1 or size <= memory_budget:
        return 1
    return max(1, min(workers, size // MIN_PART_BYTES))


class WorkerSlots:
    """How many spill workers this process runs at once, over every file it reads: at most the
    ``ingest_workers`` setting, so four files reassembled at once (a sliced backfill) start no
    more processes than one. A file that finds fewer than two slots free is read in the sync
    process, as a small one is (thread-safe: files are read in worker threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_use = 0

    def take(self, wanted: int, capacity: int) -> int:
        """Slots for a file that would be read in ``wanted`` parts: that many or fewer, or 1
        (none taken: read it in this process)."""
        with self._lock:
            granted = min(wanted, capacity - self.in_use)
            if granted < 2:
                return 1
            self.in_use += granted
            return granted

    def give(self, taken: int) -> None:
        if taken > 1:
            with self._lock:
                self.in_use -= taken


#: This process's spill workers (the part workers of a file, then its reader, hold its slots).
SLOTS = WorkerSlots()


def split_ranges(path: Path, parts: int) -> list[tuple[int, int]]:
    """``path`` cut into at most ``parts`` byte ranges ``[start, end)``, each starting at a line."""
    size = path.stat().st_size
    cuts = [0]
    with path.open("rb") as fh:
        for i in range(1, parts):
            at = size * i // parts
            if at <= cuts[-1]:
                continue
            fh.seek(at - 1)
            fh.readline()  # to just past the newline at or after at - 1: a line's start
            cut = fh.tell()
            if cut >= size:
                break
            if cut > cuts[-1]:
                cuts.append(cut)
    cuts.append(size)
    return [(a, b) for a, b in zip(cuts, cuts[1:], strict=False) if b > a]


def range_blocks(path: Path, start: int, end: int) -> Iterator[list[bytes]]:
    """The lines starting in ``[start, end)`` (``start`` at a line's start) in blocks."""
    with path.open("rb") as fh:
        fh.seek(start)
        pos = start
        while pos < end:
            block = fh.readlines(min(_CHUNK, end - pos))
            if not block:
                break
            # readlines reads on until its hint is passed, so the last line may start at
            # ``end`` (a line's start): the next part's.
            for i, line in enumerate(block):
                pos += len(line)
                if pos >= end:
                    del block[i + 1 :]
                    break
            yield block


def spill_in_parts(
    reassembler: BulkReassembler, path: Path, parts: int, *, strict: bool, stop: Callable[[], bool]
) -> bool:
    """Read ``path`` into ``reassembler`` by ``parts`` worker processes at once.

    Returns False, with every worker killed, once ``stop()`` is true; raises the file's first bad
    line as :class:`BulkFileError` (numbered in the whole file) and a worker's failure as
    :class:`StorageError` naming the file.
    """
    jobs = []
    for number, (start, end) in enumerate(split_ranges(path, parts)):
        jobs.append({
            "shape": reassembler.shape.to_json(), "path": str(path), "start": start, "end": end,
            "spill": str(reassembler.part_path(number)), "strict": strict,
        })  # fmt: skip
    running: list[tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]] = []
    try:
        for job in jobs:
            running.append(_start(path, job))
        answers = []
        for proc, out, err in running:
            while proc.poll() is None:
                if stop():
                    return False
                try:
                    proc.wait(timeout=_POLL_S)
                except subprocess.TimeoutExpired:
                    continue
            answers.append(_answer(path, proc, out, err))
    finally:
        for proc, out, err in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            out.close()
            err.close()
    reassembler.adopt_parts(answers)
    return True


def texts_from_worker(
    reassembler: BulkReassembler, path: Path, *, stop: Callable[[], bool]
) -> Generator[tuple[str, str | None, bytes], None, None]:
    """:func:`columns_from_worker`, one record at a time: ``(id, updatedAt, JSON text)``."""
    with contextlib.closing(columns_from_worker(reassembler, path, stop=stop)) as frames:
        for ids, updated_at, texts in frames:
            yield from zip(ids, updated_at, texts, strict=True)


def columns_from_worker(
    reassembler: BulkReassembler, path: Path, *, stop: Callable[[], bool]
) -> Generator[TextColumns, None, None]:
    """The records of a spilled file (:meth:`BulkReassembler.texts`), read back and built by a
    spill worker while this process writes them: reading the spill back is CPU work as large as
    the sink's, and in one process the two would take turns under one interpreter lock.

    Counts and orphans are settled here first (:meth:`~BulkReassembler.hand_over`: an orphan in
    a complete file raises before anything is read back). Records come as the worker sent them,
    a frame at a time, as columns (their ids, ``updatedAt`` values and texts), in id order: this
    process makes no object per record. A failure of the worker raises :class:`StorageError`
    naming the file, a record the worker cannot build its :class:`BulkFileError`. Closing the
    iterator kills the worker.
    """
    job = {"kind": "texts", "shape": reassembler.shape.to_json(), "spilled": reassembler.hand_over()}
    proc, out, err = _start(path, job, stream=True)
    assert out is not None
    try:
        def read(n: int) -> bytes:
            data = out.read(n)
            if len(data) != n:
                _fail(path, proc, err, "ended before its last record")
            return data

        while not stop():
            header_len, blob_len = _FRAME.unpack(read(_FRAME.size))
            header = orjson.loads(read(header_len))
            blob = read(blob_len)
            if "end" in header:
                log.debug("%s: records read back by a spill worker in %.2f s (peak RSS %s MiB)", path,
                          header.get("seconds", 0.0), header.get("peak_rss_mb"),
                          extra={"peak_rss_mb": header.get("peak_rss_mb")})  # fmt: skip
                break
            if "error" in header:
                raise (BulkFileError if header.get("kind") == "bulk" else StorageError)(str(header["error"]))
            try:
                ids, updated_at, lengths = header["records"]
                whole = sum(lengths) == blob_len and len(ids) == len(updated_at) == len(lengths)
            except (KeyError, TypeError, ValueError):
                whole = False
            if not whole:
                raise StorageError(f"{path}: a bulk spill worker sent a frame whose records do not add up")
            ends = list(itertools.accumulate(lengths))
            yield ids, updated_at, [blob[end - n : end] for end, n in zip(ends, lengths, strict=True)]
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        out.close()
        err.close()


def _fail(path: Path, proc: subprocess.Popen[bytes], err: IO[bytes], what: str) -> NoReturn:
    proc.wait()
    err.seek(0)
    tail = err.read().decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
    raise StorageError(f"{path}: a bulk spill worker {what} (exit {proc.returncode}): {tail[0]}")


def _start(
    path: Path, job: dict[str, Any], *, stream: bool = False
) -> tuple[subprocess.Popen[bytes], IO[bytes], IO[bytes]]:
    """One worker, started on ``job``; its errors go to a file (never a full pipe), and so does
    its answer unless it streams records (then its stdout is the pipe they come through)."""
    out: IO[bytes] = tempfile.TemporaryFile()
    err: IO[bytes] = tempfile.TemporaryFile()
    proc: subprocess.Popen[bytes] | None = None
    try:
        # This interpreter running this module: no input of anyone's in the command line.
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", __name__],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE if stream else out, stderr=err, env=_worker_env(),
        )  # fmt: skip
        assert proc.stdin is not None
        with proc.stdin:
            proc.stdin.write(orjson.dumps(job))
        if stream:
            assert proc.stdout is not None
            out.close()
            out = proc.stdout
            with contextlib.suppress(OSError):  # Linux: a larger pipe, fewer switches between the two
                fcntl.fcntl(out.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
    except OSError as exc:
        if proc is not None:  # it died before reading its job
            proc.kill()
            proc.wait()
        out.close()
        err.close()
        raise StorageError(
            f"{path}: cannot start a bulk spill worker: {describe_os_error(exc)}"
            " ([sync] ingest_workers = 1 reads every file in the sync process)"
        ) from exc
    return proc, out, err


def _worker_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _KEEP_ENV}
    # The worker runs this very code, wherever it was imported from (an installed package or a
    # source tree on sys.path).
    env["PYTHONPATH"] = str(Path(shopsync.__file__).resolve().parent.parent)
    return env


def _answer(path: Path, proc: subprocess.Popen[bytes], out: IO[bytes], err: IO[bytes]) -> SpillPart:
    out.seek(0)
    text = out.read()
    answer: dict[str, Any] = {}
    if proc.returncode == 0:
        try:
            answer = orjson.loads(text)
        except orjson.JSONDecodeError:
            answer = {}
    if "error" in answer:
        raise StorageError(str(answer["error"]))
    if "lines" not in answer:
        _fail(path, proc, err, "failed")
    problem = answer.get("problem")
    log.debug("%s: %d lines spilled by a worker in %.2f s (peak RSS %s MiB)", path, answer["lines"],
              answer.get("seconds", 0.0), answer.get("peak_rss_mb"), extra={"peak_rss_mb": answer.get("peak_rss_mb")})  # fmt: skip
    return SpillPart(
        index=Path(answer["index"]), data=Path(answer["data"]), lines=int(answer["lines"]),
        root_lines=int(answer["root_lines"]), parent_lines=int(answer["parent_lines"]),
        problem=(int(problem[0]), str(problem[1])) if problem else None,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The worker (python -m shopsync.engine.spill_worker)
# ---------------------------------------------------------------------------------------------
def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Spill one part; what the worker answers."""
    shape = BulkShape.from_json(job["shape"])
    reassembler = BulkReassembler(shape, Path(job["spill"]), strict=bool(job["strict"]), memory_budget=0)
    reassembler.index_cache_kib = WORKER_CACHE_KIB
    with reassembler:
        problem = None
        try:
            for block in range_blocks(Path(job["path"]), int(job["start"]), int(job["end"])):
                reassembler.feed_lines(block)
        except BulkFileError as exc:
            message = str(exc)
            line = exc.line or 0
            prefix = f"{LINE_PREFIX}{line}"
            problem = (line, message[len(prefix) :] if message.startswith(prefix) else f": {message}")
        part = reassembler.seal_part(problem)
    return {
        "index": str(part.index), "data": str(part.data), "lines": part.lines, "root_lines": part.root_lines,
        "parent_lines": part.parent_lines, "problem": part.problem,
    }  # fmt: skip


def send_texts(job: dict[str, Any], out: IO[bytes]) -> None:
    """Read a spill's records back and write them to ``out`` in frames of up to
    :data:`_SEND_RECORDS` records or about :data:`_SEND_BYTES` bytes: a header (JSON: the
    records' ids, ``updatedAt`` values and lengths, as three lists) and their texts one after
    another."""

    def frame(header: dict[str, Any], blob: bytes = b"") -> None:
        head = orjson.dumps(header)
        out.write(_FRAME.pack(len(head), len(blob)) + head)
        out.write(blob)

    started = time.perf_counter()
    try:
        with BulkReassembler.reader(BulkShape.from_json(job["shape"]), job["spilled"]) as reassembler:
            ids: list[str] = []
            updated: list[str | None] = []
            lengths: list[int] = []
            texts: list[bytes] = []
            size = 0
            for gid, updated_at, text in reassembler.texts():
                ids.append(gid)
                updated.append(updated_at)
                lengths.append(len(text))
                texts.append(text)
                size += len(text)
                if len(ids) >= _SEND_RECORDS or size >= _SEND_BYTES:
                    frame({"records": (ids, updated, lengths)}, b"".join(texts))
                    ids, updated, lengths, texts, size = [], [], [], [], 0
            if ids:
                frame({"records": (ids, updated, lengths)}, b"".join(texts))
    except BulkFileError as exc:
        frame({"error": str(exc), "kind": "bulk"})
    except StorageError as exc:
        frame({"error": str(exc), "kind": "storage"})
    else:
        frame({"end": True, "seconds": time.perf_counter() - started, "peak_rss_mb": peak_rss_mb()})
    out.flush()


def main() -> int:
    job = orjson.loads(sys.stdin.buffer.read())
    if job.get("kind") == "texts":
        send_texts(job, sys.stdout.buffer)
        return 0
    started = time.perf_counter()
    try:
        answer = run_job(job)
    except StorageError as exc:
        answer = {"error": str(exc)}
    answer["seconds"] = time.perf_counter() - started
    answer["peak_rss_mb"] = peak_rss_mb()
    sys.stdout.buffer.write(orjson.dumps(answer) + b"\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
