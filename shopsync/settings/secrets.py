"""Secrets in settings: a value that never shows itself, where it was read from, and secret files
checked like OpenSSH checks a private key (see :func:`read_secret_file`)."""

from __future__ import annotations

import errno
import os
import pwd
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn

__all__ = [
    "MAX_SECRET_BYTES",
    "SECRET_MOUNTS",
    "Secret",
    "SecretFileError",
    "SecretRef",
    "platform_secret_mount",
    "read_secret_file",
    "secret_file_problem",
]


@dataclass(frozen=True)
class SecretRef:
    """Where a secret comes from: ``env`` (a variable), ``file`` (a path), ``credential`` (systemd)."""

    kind: Literal["env", "file", "credential"]
    name: str

    def describe(self) -> str:
        return f"{self.kind}:{self.name}"


class Secret:
    """A secret value that never shows itself: ``repr``, ``str`` and ``format`` give ``'***'``."""

    __slots__ = ("_value", "ref")

    def __init__(self, value: str, ref: SecretRef | None = None) -> None:
        self._value = value
        self.ref = ref

    def reveal(self) -> str:
        """The value, for the one place that needs it (an HTTP header, a form body)."""
        return self._value

    def __repr__(self) -> str:
        return "'***'"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        return "'***'"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __copy__(self) -> Secret:
        return self  # immutable

    def __deepcopy__(self, memo: dict[int, object]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:  # pickling would write the value out; refuse
        raise TypeError("Secret values cannot be pickled")


# -- secret files ------------------------------------------------------------------------------------
#
# A token file is checked the way OpenSSH checks a private key: nobody else may be able to change it
# (group or others writable), read it (others readable) or own it (another user than the one
# shopsync runs as, root excepted). Group-readable is allowed: root:shopsync 0640 is the usual way
# to hand a root-managed file to a service account. Files the platforms place for a service —
# systemd's $CREDENTIALS_DIRECTORY, /run/secrets (Docker, Podman, Compose) and Kubernetes volumes
# (AtomicWriter layout: a ..data symlink to a ..YYYY_MM_DD_HH_MM_SS.N directory) — come with those
# platforms' modes and owners (Docker's 0444 root:root, Kubernetes' defaultMode 0644), on mounts
# the service cannot write; there only the group/others-writable rule applies.

#: Container secret mounts whose files are world-readable by convention (Docker/Podman secrets,
#: Kubernetes' service-account token under /var/run/secrets).
SECRET_MOUNTS = (Path("/run/secrets"), Path("/var/run/secrets"))
#: A token or client secret is short; a larger file is a mistake (a log, a disk image), not read.
MAX_SECRET_BYTES = 64 * 1024

_K8S_TIMESTAMP_DIR = re.compile(r"\.\.\d{4}_\d{2}_\d{2}_\d{2}_\d{2}_\d{2}\.\w+\Z")


class SecretFileError(Exception):
    """A secret file that cannot be used; ``problem`` names the file and what is wrong."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)
        self.problem = problem


def platform_secret_mount(path: Path, *, credentials_dir: str | None = None) -> str | None:
    """Which platform's secret mount ``path`` is in (systemd, container, Kubernetes), or None.

    ``path`` as configured (absolute); it is checked as given and with its symlinks resolved.
    """
    real = Path(os.path.realpath(path))
    candidates = (Path(os.path.abspath(path)), real)
    if credentials_dir:
        creds = Path(os.path.realpath(credentials_dir))
        if any(p.is_relative_to(creds) for p in candidates):
            return "systemd credentials ($CREDENTIALS_DIRECTORY)"
    for mount in SECRET_MOUNTS:
        if any(p.is_relative_to(mount) for p in candidates):
            return f"container secrets ({mount})"
    for directory in real.parents:
        if _K8S_TIMESTAMP_DIR.match(directory.name):
            data = directory.parent / "..data"
            if data.is_symlink() and os.path.realpath(data) == str(directory):
                return "Kubernetes volume (..data)"
            break
    return None


def secret_file_problem(
    path: Path, mode: int, owner: int, *, euid: int, confidential: bool = True, platform: bool = False
) -> str | None:
    """What is wrong with a secret file of ``mode`` (``st_mode``) and ``owner`` (``st_uid``), or None.

    Pure: the caller stats. ``confidential`` is False for values that are not secret on their own
    (an OAuth client id): then only the write rule applies. ``platform``: the file is in a
    platform's secret mount (:func:`platform_secret_mount`), whose read modes and owners are its own.
    """
    bits = stat.S_IMODE(mode)
    fix = "chmod 600 it" if confidential else "chmod go-w it"
    if bits & 0o022:
        return f"{path} is mode {bits:04o}: group or others can write it; {fix}"
    if not confidential or platform:
        return None
    if bits & 0o004:
        return f"{path} is mode {bits:04o}: others can read it; chmod 600 it (or 640 with a group of its own)"
    if owner not in (0, euid):
        return (
            f"{path} belongs to uid {owner}{_user_name(owner)}, not to the user shopsync runs as "
            f"(uid {euid}{_user_name(euid)}) or root; chown it or give shopsync its own copy"
        )
    return None


def read_secret_file(
    path: Path, *, confidential: bool = True, credentials_dir: str | None = None, euid: int | None = None
) -> str:
    """The text of a secret file, surrounding whitespace stripped, after checking who can change it.

    Opened once and checked on the open file (``fstat``), so what is checked is what is read.
    Raises :class:`SecretFileError` naming ``path``: unreadable, not a regular file, larger than
    :data:`MAX_SECRET_BYTES`, not UTF-8, empty, or refused by :func:`secret_file_problem`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise SecretFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:  # a NUL in the path
        raise SecretFileError(f"{str(path)!r} is not a path: {exc}") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise SecretFileError(f"cannot read {path}: {os.strerror(errno.EISDIR)}")
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"{path} is not a regular file")
        platform = platform_secret_mount(path, credentials_dir=credentials_dir) is not None
        problem = secret_file_problem(
            path,
            st.st_mode,
            st.st_uid,
            euid=os.geteuid() if euid is None else euid,
            confidential=confidential,
            platform=platform,
        )
        if problem is not None:
            raise SecretFileError(problem)
        if st.st_size > MAX_SECRET_BYTES:
            raise SecretFileError(f"{path} is {st.st_size} bytes, too large for a token (at most {MAX_SECRET_BYTES})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            raw = fh.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(f"cannot read {path}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)
    if len(raw) > MAX_SECRET_BYTES:
        raise SecretFileError(f"{path} is larger than {MAX_SECRET_BYTES} bytes, too large for a token")
    try:
        text = raw.decode("utf-8").strip()
    except UnicodeDecodeError as exc:
        raise SecretFileError(f"{path} is not UTF-8 text") from exc
    if not text:
        raise SecretFileError(f"{path} is empty")
    return text


def _user_name(uid: int) -> str:
    try:
        return f" ({pwd.getpwuid(uid).pw_name})"
    except (KeyError, OSError):
        return ""
