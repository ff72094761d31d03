"""The header of a resource file: ``# shopsync:resource`` then ``# key: value`` comment lines.

This is the one parser of that header (docs/ARCHITECTURE.md, "Resource files"); the resource
loader and the simulator both read a file's header through :func:`parse_header`. It checks the
header's grammar only (marker, known keys, no key twice, the required keys present); what a value
means against the schema is checked by the resource parser (:mod:`shopsync.queries.parser`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from shopsync.errors import QueryDocumentError

#: The first non-blank line of every resource file.
HEADER_MARKER = "# shopsync:resource"
#: Every key a header may set, in the order the documentation lists them.
HEADER_KEYS = ("root", "root_args", "sort", "filter", "count", "deletions", "every", "bulk")
#: Keys every header must set.
REQUIRED_KEYS = ("root", "filter")

_HEADER_LINE_RE = re.compile(r"^#\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*(.*?)\s*$")


@dataclass(frozen=True, kw_only=True)
class ResourceHeader:
    """A parsed resource header.

    ``values`` maps each key given to its value as written (stripped; possibly ``""``), ``lines``
    each key to its 1-based line number in the file. ``origin`` is the file the header came from
    (used in error messages). ``end_line`` is the 1-based number of the first line after the
    header (the line that ended it, or one past the last line).
    """

    origin: str
    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    end_line: int = 0

    def value(self, key: str) -> str | None:
        """The value of ``key``, or ``None`` when the key is not given or given empty."""
        found = self.values.get(key)
        return found if found else None

    def line(self, key: str) -> int | None:
        """The 1-based line on which ``key`` is given, or ``None`` when it is not."""
        return self.lines.get(key)

    def __contains__(self, key: object) -> bool:
        return key in self.values


def header_error(origin: str, message: str, line: int | None = None) -> QueryDocumentError:
    """A :class:`QueryDocumentError` reading ``<origin>:<line>: <message>`` (no ``:line`` if unknown)."""
    where = f":{line}" if line else ""
    return QueryDocumentError(f"{origin}{where}: {message}")


def parse_header(text: str, origin: str) -> ResourceHeader:
    """Parse the header at the top of a resource file's ``text`` (``origin`` names the file).

    Blank lines before the marker are skipped; the header ends at the first line that is not a
    ``# key: value`` line (a bare ``#``, prose or the fragment). Raises
    :class:`~shopsync.errors.QueryDocumentError` naming ``origin`` and the line when the marker is
    missing, a key is unknown or given twice, or a required key (:data:`REQUIRED_KEYS`) is missing.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines) and not lines[i].strip():
        i += 1
    if i >= len(lines) or lines[i].strip() != HEADER_MARKER:
        raise header_error(
            origin, f"the file must start with a '{HEADER_MARKER}' line", i + 1 if i < len(lines) else None
        )
    i += 1
    values: dict[str, str] = {}
    key_lines: dict[str, int] = {}
    while i < len(lines):
        m = _HEADER_LINE_RE.match(lines[i].strip())
        if not m:
            break  # a bare '#', prose or the fragment ends the header
        key, value = m.group(1), m.group(2)
        if key not in HEADER_KEYS:
            raise header_error(
                origin,
                f"unknown header key {key!r} (known: {', '.join(HEADER_KEYS)}); "
                "end the header with a bare '#' line before any prose",
                i + 1,
            )
        if key in values:
            raise header_error(origin, f"header key {key!r} given twice (first on line {key_lines[key]})", i + 1)
        values[key] = value
        key_lines[key] = i + 1
        i += 1
    for key in REQUIRED_KEYS:
        if key not in values:
            raise header_error(origin, f"header key {key!r} is missing")
    return ResourceHeader(
        origin=origin,
        values=MappingProxyType(values),
        lines=MappingProxyType(key_lines),
        end_line=i + 1,
    )


__all__ = ["HEADER_KEYS", "HEADER_MARKER", "REQUIRED_KEYS", "ResourceHeader", "header_error", "parse_header"]
