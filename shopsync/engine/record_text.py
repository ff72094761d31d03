"""A record's JSON text from a *template* and its children's texts, never parsed twice (pure).

A node with nested connections is serialised once, keys sorted (as
:func:`~shopsync.engine.records.serialize` does), with each connection's list holding a NUL byte
where its children go: ``{"id":"…","lineItems":[<NUL>],"name":"#1001"}``. orjson never writes a
raw NUL (JSON escapes it), so the byte marks the slot unambiguously. The record is the template's
pieces joined with the children's texts: byte for byte what ``serialize`` gives the record built
as a dict.
"""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["SLOT", "exact_copy", "fill_template", "record_template"]

#: The byte a template holds where a connection's children go.
SLOT = b"\x00"
_SORT = orjson.OPT_SORT_KEYS


def exact_copy(text: bytes) -> bytes:
    """A copy of ``text`` in a buffer of its own size: orjson returns its output in the larger
    buffer it wrote it into, several times the text, which held by the thousand is most of the
    memory (and of the page faults) of a reassembly."""
    return bytes(memoryview(text))


def record_template(obj: dict[str, Any], fields: tuple[tuple[str, bytes, bytes], ...]) -> bytes:
    """``obj`` serialised with sorted keys, each nested connection's field an empty list holding
    a NUL byte where its children go (``"lineItems":[<NUL>]``)."""
    for field, _empty, _slot in fields:
        obj[field] = []
    text = orjson.dumps(obj, option=_SORT)
    for _field, empty, _slot in fields:
        # The one top-level occurrence is ours unless a nested object has a key of that name
        # with an empty list: then build the template by pieces instead (never guess).
        if text.count(empty) != 1:
            return _template_by_pieces(obj, fields)
    for _field, empty, slot in fields:
        text = text.replace(empty, slot)  # a new object of the text's own size
    return text


def _template_by_pieces(obj: dict[str, Any], fields: tuple[tuple[str, bytes, bytes], ...]) -> bytes:
    names = {f for f, _e, _s in fields}
    rest = sorted(k for k in obj if k not in names)
    pieces: list[bytes] = []
    i = 0
    for field, _empty, slot in fields:
        group = {}
        while i < len(rest) and rest[i] < field:
            group[rest[i]] = obj[rest[i]]
            i += 1
        if group:
            pieces.append(orjson.dumps(group, option=_SORT)[1:-1])
        pieces.append(slot)
    group = {k: obj[k] for k in rest[i:]}
    if group:
        pieces.append(orjson.dumps(group, option=_SORT)[1:-1])
    return b"{" + b",".join(pieces) + b"}"


def fill_template(template: bytes, lists: list[list[bytes]] | None) -> bytes:
    """``template`` with its slots (in order) holding the texts of ``lists`` (None: all empty)."""
    parts = template.split(SLOT)
    if lists is None:
        return b"".join(parts)
    out = [parts[0]]
    for i, texts in enumerate(lists):
        out.append(b",".join(texts))
        out.append(parts[i + 1])
    return b"".join(out)
