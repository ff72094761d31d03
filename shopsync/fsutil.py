"""Private files and directories, whatever the umask, and the small durable-I/O helpers around them.

shopsync's files hold customers' data and checkpoints, so everything it creates is private to its
user: files ``0600``, directories ``0700``. The mode is given at creation (so no other user can
open the file in between) and set again with ``fchmod``/``chmod`` when the umask took the owner's
own bits away. What already exists is never re-moded: an administrator's choice for a directory or
a database shared with a reporting group stays as it is.

    ensure_private_dir(root)                            # mkdir -p, each new directory 0700, durable
    fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    with open(path, "wb", opener=private_opener) as fh: ...
    create_private_file(db_path)                        # before sqlite3.connect: see below

SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files with the permissions of the main
database file, so a database file created empty and ``0600`` by :func:`create_private_file`
before ``sqlite3.connect`` opens it makes all of them private (SQLite treats an empty file as a new
database).

This module is the bottom layer: it imports nothing of shopsync's.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

__all__ = [
    "PRIVATE_DIR_MODE",
    "PRIVATE_FILE_MODE",
    "create_private_file",
    "describe_os_error",
    "ensure_private_dir",
    "fsync",
    "fsync_dir",
    "open_private",
    "private_opener",
    "write_all",
]

#: The mode of every file shopsync creates.
PRIVATE_FILE_MODE = 0o600
#: The mode of every directory shopsync creates.
PRIVATE_DIR_MODE = 0o700

StrPath = str | os.PathLike[str]


def fsync(fd: int) -> None:
    """``os.fsync``; a name of its own so fault-injection tests can replace it in one module."""
    os.fsync(fd)


def fsync_dir(path: StrPath) -> None:
    """fsync a directory, so that entries created or renamed in it survive a crash."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def ensure_private_dir(path: StrPath, *, durable: bool = True) -> list[Path]:
    """``mkdir -p path``: every missing directory is created ``0700`` whatever the umask.

    Existing directories (``path`` itself or its parents) keep their mode. With ``durable``, the
    parent of each directory created is fsynced so the new entries survive a crash. Returns the
    directories created, outermost first. Raises ``OSError`` as ``os.mkdir`` does.
    """
    missing: list[Path] = []
    p = Path(path)
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    created: list[Path] = []
    for d in reversed(missing):
        try:
            os.mkdir(d, PRIVATE_DIR_MODE)
        except FileExistsError:
            continue  # made by someone else meanwhile: theirs, leave its mode alone
        if _mode(os.stat(d).st_mode) != PRIVATE_DIR_MODE:
            os.chmod(d, PRIVATE_DIR_MODE)  # the umask removed some of the owner's bits
        created.append(d)
        if durable:
            fsync_dir(d.parent)
    return created


def open_private(path: StrPath, flags: int) -> int:
    """``os.open(path, flags)``; a file it creates (``O_CREAT``) is ``0600`` whatever the umask.

    An existing file is opened as it is, with its own mode (``O_EXCL`` still refuses it).
    """
    if not flags & os.O_CREAT:
        return os.open(path, flags)
    if flags & os.O_EXCL:
        return _created(os.open(path, flags, PRIVATE_FILE_MODE))
    while True:
        try:
            return _created(os.open(path, flags | os.O_EXCL, PRIVATE_FILE_MODE))
        except FileExistsError:
            pass
        try:
            return os.open(path, flags & ~os.O_CREAT)
        except FileNotFoundError:
            continue  # removed between the two opens: create it after all


def private_opener(path: str, flags: int) -> int:
    """An ``opener`` for the built-in ``open``: ``open(path, "wb", opener=private_opener)``."""
    return open_private(path, flags)


def create_private_file(path: StrPath, *, durable: bool = True) -> bool:
    """Create ``path`` empty and ``0600`` unless it exists; True if it was created.

    An existing file is left exactly as it is (never truncated, never re-moded). With ``durable``
    the new file and its directory entry are fsynced. Use before ``sqlite3.connect`` so that the
    database and the ``-wal``/``-shm``/``-journal`` files SQLite makes beside it are private.
    """
    try:
        fd = open_private(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    except FileExistsError:
        return False
    try:
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    if durable:
        fsync_dir(Path(path).parent)
    return True


def describe_os_error(exc: OSError) -> str:
    """What went wrong, for a message a person reads: ``disk full (ENOSPC: No space left on device)``."""
    name = errno.errorcode.get(exc.errno or 0)
    reason = exc.strerror or str(exc)
    summary = _PLAIN.get(exc.errno or 0)
    detail = f"{name}: {reason}" if name else reason
    return f"{summary} ({detail})" if summary else detail


_PLAIN = {
    errno.ENOSPC: "disk full",
    errno.EDQUOT: "disk quota exceeded",
    errno.EIO: "I/O error",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
}


def _mode(st_mode: int) -> int:
    return st_mode & 0o7777


def _created(fd: int) -> int:
    """A file just created by ``open_private``: make its mode exactly 0600 (the umask may have
    removed the owner's bits, never added others')."""
    try:
        if _mode(os.fstat(fd).st_mode) != PRIVATE_FILE_MODE:
            os.fchmod(fd, PRIVATE_FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd
