"""The SQLite database file on disk, before ``sqlite3`` opens it: created private, or checked.

A missing file is created empty and ``0600`` (its missing directories ``0700``), so that SQLite —
which gives its ``-wal``, ``-shm`` and ``-journal`` files the main file's permissions — keeps every
file of the database private whatever the umask (:mod:`shopsync.fsutil`).

An existing file is read, never written, to refuse what is not a SQLite database or was cut short,
before SQLite could write anything to it: a corrupted database is reported, never overwritten or
recreated. The check reads the 100-byte header only (see https://www.sqlite.org/fileformat.html):
the magic string, the page size and the page count SQLite recorded. Damage deeper inside the file
surfaces as SQLite's own "database disk image is malformed" when a page is read, as a
:class:`~shopsync.errors.StorageError` naming the file.

An empty file is a new database, for SQLite as for us.

:class:`DatabaseLock` makes a state database one process's only (``shopsync run`` and ``sync``):
an exclusive ``flock`` on ``<database>.lock`` beside it, held while the database is open. The
kernel releases it when the process ends however it ends, so a lock file left by a dead process
blocks nothing; the pid written in it only names the holder in the refusal.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path

from shopsync.errors import StorageError
from shopsync.fsutil import create_private_file, describe_os_error, ensure_private_dir, open_private

__all__ = ["HEADER_SIZE", "MAGIC", "DatabaseLock", "check_header", "lock_path", "prepare_database_file"]


MAGIC = b"SQLite format 3\x00"
HEADER_SIZE = 100
_LEAVE = "shopsync leaves the file as it is: restore it from a backup, move it away or configure another path"


def prepare_database_file(path: Path) -> bool:
    """Create ``path`` private (and its directories) if missing, else :func:`check_header`.

    True when the file was created. Raises :class:`~shopsync.errors.StorageError` naming the file.
    """
    try:
        ensure_private_dir(path.parent)
        if create_private_file(path):
            return True
    except OSError as exc:
        raise StorageError(f"creating SQLite database {path} failed: {describe_os_error(exc)}") from exc
    check_header(path)
    return False


def check_header(path: Path) -> None:
    """Refuse (StorageError naming ``path``) a non-empty file that is no SQLite database or is
    shorter than its header says; reads only, so the file is never changed."""
    try:
        with open(path, "rb") as fh:
            header = fh.read(HEADER_SIZE)
            size = os.fstat(fh.fileno()).st_size
    except OSError as exc:
        raise StorageError(f"reading SQLite database {path} failed: {describe_os_error(exc)}") from exc
    if not header:
        return
    problem = header_problem(header, size, hot_wal=_has_hot_wal(path))
    if problem is not None:
        raise StorageError(f"SQLite database {path}: {problem}; {_LEAVE}")


def header_problem(header: bytes, size: int, *, hot_wal: bool = False) -> str | None:
    """What is wrong with a database file whose first bytes are ``header`` and whose size is
    ``size``, or None. ``hot_wal``: a non-empty ``-wal`` file exists, which may hold pages the main
    file does not have yet, so the size is not checked."""
    if header[: len(MAGIC)] != MAGIC[: len(header)]:
        return "not a SQLite database: file is not a database (it does not start with the SQLite header)"
    if len(header) < HEADER_SIZE:
        return f"database disk image is malformed (only {size} bytes, shorter than the header: truncated?)"
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or page_size & (page_size - 1):
        return f"not a SQLite database: file is not a database (page size {page_size} in its header)"
    pages = int.from_bytes(header[28:32], "big")
    # The recorded page count is valid only when the change counter matches version-valid-for.
    if hot_wal or not pages or header[24:28] != header[92:96]:
        return None
    if size < pages * page_size:
        return (
            f"database disk image is malformed (the file has {size} bytes, its header records {pages} "
            f"pages of {page_size} bytes: truncated?)"
        )
    return None


def _has_hot_wal(path: Path) -> bool:
    try:
        return os.stat(f"{path}-wal").st_size > 0
    except FileNotFoundError:
        return False


def lock_path(database: Path) -> Path:
    """``/var/lib/shopsync/shopsync.db`` → ``/var/lib/shopsync/shopsync.db.lock``."""
    return database.with_name(database.name + ".lock")


class DatabaseLock:
    """An exclusive ``flock`` on ``<database>.lock``: one process at a time holds a state database.

    :meth:`acquire` refuses (:class:`~shopsync.errors.StorageError`) when another open file holds
    it — another process, or another open of the same database in this one — naming the database,
    the lock file and the holder's pid. The file is created ``0600`` and left in place on release
    (removing it would race with a process about to lock it).
    """

    def __init__(self, database: Path) -> None:
        self.database = database
        self.path = lock_path(database)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting, and write this process's pid into the file."""
        if self._fd is not None:
            return
        try:
            ensure_private_dir(self.path.parent)
            fd = open_private(self.path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StorageError(
                f"locking SQLite state database {self.database} failed: {self.path}: {describe_os_error(exc)}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                by = f"process {holder}" if holder else "another process"
                raise StorageError(
                    f"SQLite state database {self.database} is in use by {by} (it holds {self.path}): "
                    "a SQLite state database serves one shopsync daemon or sync at a time; stop that one "
                    "first, or use PostgreSQL to share state between processes"
                ) from None
            raise StorageError(
                f"locking SQLite state database {self.database} failed: {self.path}: {describe_os_error(exc)}"
            ) from exc
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only a courtesy for the next refusal; the flock is what counts
        self._fd = fd

    def release(self) -> None:
        """Give the lock up (idempotent). The file stays; its stale pid blocks nothing."""
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the flock


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
