"""Where a bulk file's texts wait once they pass the memory budget: a data file and an index.

The texts (records' templates, children's texts) are appended in file order to a flat data file
(:class:`SpillData`); a small SQLite index beside it (:func:`connect_index`) holds, per line, its
id, its record or parent and where its text is (``off``, ``len``), so an insert never moves
kilobytes of JSON around a B-tree. Both are scratch, rebuilt from the result file after a crash:
no journal, no fsync. Both are created private (0600) by :mod:`~shopsync.engine.reassembly`.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from shopsync.errors import StorageError
from shopsync.fsutil import describe_os_error, open_private

__all__ = ["INDEX_CACHE_KIB", "ORPHANS", "PART_SHIFT", "WORKER_CACHE_KIB", "SpillData", "connect_index", "open_index"]

#: Texts gathered before one write to the data file.
DATA_BUFFER = 1 << 20
#: A file spilled in parts (one per spill worker): a text's offset in the merged index is its
#: offset in its part's data file plus the part's number shifted by this (parts up to 1 TiB).
PART_SHIFT = 40

#: The spilled children whose parent is not in the file (a constant: no value is ever spliced in).
ORPHANS = (
    "SELECT seq, id, root_id AS parent_id FROM children"
    " WHERE NOT EXISTS (SELECT 1 FROM roots WHERE roots.id = children.root_id)"
    " UNION ALL SELECT seq, id, parent_id FROM grandchildren WHERE root_id IS NULL"
)


class SpillData:
    """The flat file of spilled texts: :meth:`append` returns where a text will be, :meth:`read`
    gets it back (after :meth:`flush`)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._buf = bytearray()
        self._size = 0

    def open(self) -> None:
        try:
            self._fd = open_private(self.path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot create the bulk spill file: {describe_os_error(exc)}") from exc

    def open_existing(self) -> None:
        """Open a data file another process wrote (a spill worker's part), for :meth:`read`."""
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot open the bulk spill file: {describe_os_error(exc)}") from exc

    def append(self, text: bytes) -> tuple[int, int]:
        """Where ``text`` is in the data file once the buffer is written: (offset, length)."""
        off = self._size
        self._buf += text
        self._size += len(text)
        if len(self._buf) >= DATA_BUFFER:
            self.flush()
        return off, len(text)

    def flush(self) -> None:
        if self._fd is None:
            raise StorageError(f"{self.path}: the bulk spill file is not open")
        try:
            with memoryview(self._buf) as whole:
                view = whole
                while view:
                    view = view[os.write(self._fd, view) :]
                view.release()
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot write the bulk spill file: {describe_os_error(exc)}") from exc
        self._buf.clear()

    def read(self, off: int, length: int) -> bytes:
        if self._fd is None:
            raise StorageError(f"{self.path}: the bulk spill file is not open")
        # One exact read per text. A read-ahead buys nothing: an ungrouped export puts children
        # far from their records (a trace of 100k orders needed a new 1 MB window every 3.7 reads).
        try:
            data = os.pread(self._fd, length, off)
        except OSError as exc:
            raise StorageError(f"{self.path}: cannot read the bulk spill file: {describe_os_error(exc)}") from exc
        if len(data) != length:
            raise StorageError(f"{self.path}: the bulk spill file ends inside the text of {length} bytes at {off}")
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._buf.clear()
        self._size = 0


#: KiB of SQLite page cache of a spill index: the merged one (its index builds and its orphan
#: joins at the file's end), and a worker's, which only appends (rows by line number; record ids
#: arrive nearly in order) or reads its indexes in order.
INDEX_CACHE_KIB = 16384
WORKER_CACHE_KIB = 4096


def connect_index(path: Path, *, cache_kib: int = INDEX_CACHE_KIB) -> sqlite3.Connection:
    """Open the spill index at ``path`` (created private by the reassembler) with its three tables."""
    try:
        db = sqlite3.connect(path, isolation_level=None)
        # A spill file is scratch: rebuilt from the result file after a crash, so no journal.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA locking_mode=EXCLUSIVE")
        db.execute(f"PRAGMA cache_size=-{int(cache_kib)}")  # KiB: keeps SQLite's own memory bounded
        db.execute("PRAGMA temp_store=FILE")
        # Small rows only: the texts are in the data file beside it (``off``, ``len``), appended
        # in file order, so an insert never moves kilobytes of JSON around a B-tree.
        db.execute(
            "CREATE TABLE roots (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at TEXT NOT NULL,"
            " off INTEGER NOT NULL, len INTEGER NOT NULL)"
        )
        # Depth-1 children by their record (= their __parentId); indexed once, at the end.
        db.execute(
            "CREATE TABLE children (seq INTEGER PRIMARY KEY, root_id TEXT NOT NULL, conn INTEGER NOT NULL,"
            " id TEXT, off INTEGER NOT NULL, len INTEGER NOT NULL)"
        )
        # Depth-2 children know only their parent child: their record is found at the end.
        db.execute(
            "CREATE TABLE grandchildren (seq INTEGER PRIMARY KEY, conn INTEGER NOT NULL, id TEXT,"
            " parent_id TEXT NOT NULL, root_id TEXT, off INTEGER NOT NULL, len INTEGER NOT NULL)"
        )
        db.execute("BEGIN")
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot create the bulk spill file: {exc}") from exc
    return db


def open_index(path: Path) -> sqlite3.Connection:
    """Open a finished spill index at ``path`` read-only (a spill worker reading records back)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None)
        db.execute(f"PRAGMA cache_size=-{WORKER_CACHE_KIB}")
        db.execute("PRAGMA temp_store=FILE")
    except sqlite3.Error as exc:
        raise StorageError(f"{path}: cannot open the bulk spill file: {exc}") from exc
    return db
