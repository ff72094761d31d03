"""Bulk JSONL → complete records, each line parsed once, in memory that does not grow with the file.

A bulk result file has one line per node; a nested connection's nodes are separate lines carrying
``__parentId`` (the owning node's GID). With ``groupObjects: false`` (our setting, and the default
since 2026-01) nothing is promised about where a child line sits relative to its parent, so this
module never relies on order.

Each line is parsed once, in :meth:`BulkReassembler.feed`, and turned at once into the bytes it
will have in the record: ``__parentId`` removed, keys sorted (:func:`~shopsync.engine.records.serialize`),
and for a node with nested connections a *template* whose ``"field":[…]`` lists hold a NUL byte
where the children go (orjson never writes a raw NUL: JSON escapes it). A record is then the
template's pieces joined with its children's texts — byte for byte what ``serialize`` gives the
same record built as a dict, without parsing anything a second time.

Where those texts wait for their record depends on the memory budget (``memory_budget``, bytes,
``[sync] ingest_memory``): while they fit, in dictionaries; past it, everything held moves to a
temporary SQLite file (roots keyed by id, children keyed by root) and the rest of the file follows
it there. Both give the same records in the same order (ordered by id, children in file order);
the budget only decides how much memory is used, so peak memory is the budget (or one batch of
spill inserts) plus one record, whatever the file's size.

Past the budget a file may also be read on several cores (:mod:`~shopsync.engine.spill_worker`):
worker processes each read a part of it into a spill of their own (:meth:`BulkReassembler.seal_part`),
the parts are merged in file order as if fed here (:meth:`BulkReassembler.adopt_parts`: the same
line numbers, copies and orphans), and another worker reads the records back
(:meth:`BulkReassembler.hand_over`, :meth:`BulkReassembler.reader`). A resource reaches the
workers as a :class:`~shopsync.engine.bulk_shape.BulkShape`, which is why this module needs only
that of it.

Which nested connection a child belongs to is read from its GID type (``gid://shopify/LineItem/…``
→ the connection whose nodes are ``LineItem``); resource loading guarantees the types are unique.
For a ``parent.child`` resource (``locations.inventoryLevels``) the parent lines are skipped and the
records are the child lines, with ``__parentId`` removed like everywhere else.

A file is checked, never trusted: a line that is not a JSON object, or (in a complete result
file) child lines whose parent is not in the file, raise :class:`~shopsync.errors.BulkFileError`
naming the file's line before any record is handed out, so a record is never written without
some of its children. A partial file (a failed operation's) legitimately cuts children off from
their parents: there such orphans are only counted and dropped (``strict=False``).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import orjson

from shopsync.engine.bulk_shape import BulkShape
from shopsync.engine.record_text import SLOT, exact_copy, fill_template, record_template
from shopsync.engine.spill import INDEX_CACHE_KIB, ORPHANS, PART_SHIFT, SpillData, connect_index, open_index
from shopsync.errors import BulkFileError, StorageError
from shopsync.fsutil import create_private_file, describe_os_error, ensure_private_dir
from shopsync.shopify.gid import gid_type

if TYPE_CHECKING:
    from shopsync.queries import Resource

log = logging.getLogger(__name__)

PARENT_KEY = "__parentId"
_BATCH = 5000
_ORPHAN_SAMPLE = 5
#: Bytes counted per held line beside its text: the tuple, the list slot, the dictionary entry.
_ENTRY_OVERHEAD = 200
_SORT = orjson.OPT_SORT_KEYS
#: A child waiting for its record: (line number, connection index, id, text or template).
_Child = tuple[int, int, "str | None", bytes]
#: What the record of one root is built from: (depth-1 children, depth-2 children), in file order.
_Rows = tuple[list[tuple[int, "str | None", bytes]], list[tuple[int, "str | None", str, bytes]]]
#: How every bad line's message starts, before its 1-based number.
LINE_PREFIX = "bulk result line "
_SPILL_SUFFIXES = ("", "-journal", "-wal", "-shm", ".data")
#: How a record's copy settles with one already spilled: the newer ``updatedAt`` wins, the later
#: line on a tie (ISO 8601 UTC timestamps of one format compare as text).
_KEEP_NEWEST_ROOT = (
    " ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, updated_at = excluded.updated_at,"
    " off = excluded.off, len = excluded.len WHERE excluded.updated_at >= roots.updated_at"
)
#: A record line spilled here, and a part's records merged in (line numbers and text offsets moved
#: by the part's place); constants only, nothing spliced in.
_INSERT_ROOT = "INSERT INTO roots (id, seq, updated_at, off, len) VALUES (?, ?, ?, ?, ?)" + _KEEP_NEWEST_ROOT  # noqa: S608
_MERGE_ROOTS = (
    "INSERT INTO roots (id, seq, updated_at, off, len) SELECT id, seq + ?, updated_at, off + ?, len"  # noqa: S608
    " FROM part.roots WHERE true" + _KEEP_NEWEST_ROOT
)


def line_error(line: int, what: str) -> BulkFileError:
    """The error naming the file's ``line`` (1-based); ``what`` follows the number in the message."""
    return BulkFileError(f"{LINE_PREFIX}{line}{what}", line=line)


@dataclass(frozen=True)
class SpillPart:
    """What a spill worker (:mod:`~shopsync.engine.spill_worker`) leaves of its part of a file: its
    index and data files, its counts, and the first bad line it met, if any (its number within
    the part, and what follows that number in the message)."""

    index: Path
    data: Path
    lines: int
    root_lines: int
    parent_lines: int
    problem: tuple[int, str] | None = None


class BulkReassembler:
    """Feed a bulk result file line by line, then iterate over complete records.

    Use as a context manager: the spill file is created on entry (an old one is replaced) and
    deleted on exit; it is written to only when the lines held pass ``memory_budget`` bytes
    (0: from the first line). Counters: ``lines`` (non-blank lines fed), ``object_count`` (the
    same, like Shopify's ``objectCount``), ``root_lines`` (record lines, what Shopify's
    ``rootObjectCount`` counts), ``root_count`` (distinct records), ``parent_lines`` (skipped parent
    nodes of a ``parent.child`` resource), ``orphan_count`` (children whose parent is not in the
    file, known after :meth:`records` starts) with ``orphan_sample`` (a few of their
    ``__parentId``\\ s), ``duplicate_roots`` (record lines beyond the first of their id) and
    ``spilled`` (whether the file went past the budget).

    A bulk export is not a snapshot: a record updated while it runs can be exported again, with
    its children. Of a record's copies the one with the newest ``updatedAt`` is kept (the later
    line on a tie), and a child (or grandchild) id seen twice keeps its later line, in the place
    of its first.

    ``strict`` (a complete result file): orphans make :meth:`records` raise
    :class:`BulkFileError` before yielding anything. ``strict=False`` (a partial file): they are
    counted, logged and dropped.
    """

    def __init__(
        self, resource: Resource | BulkShape, spill_path: Path, *, strict: bool = True, memory_budget: int = 0
    ) -> None:
        self.shape = shape = resource if isinstance(resource, BulkShape) else BulkShape.of(resource)
        self.spill_path = Path(spill_path)
        self.strict = strict
        self.memory_budget = memory_budget
        #: The first orphan line (1-based, as counted by ``lines``), once known.
        self.first_orphan_line: int | None = None
        self.lines = 0
        self.object_count = 0
        self.root_count = 0
        self.root_lines = 0
        self.parent_lines = 0
        self.orphan_count = 0
        self.orphan_sample: list[str] = []
        self.duplicate_roots = 0
        self.spilled = False
        conns = self._conns = shape.connections
        self._by_type: dict[str, int] = {t: i for i, c in enumerate(conns) for t in c.node_types}
        self._depth = [c.depth for c in conns]
        # Per connection: its position among its parent's connections (the template's slots are
        # the connections' fields in sorted order, as OPT_SORT_KEYS writes them).
        self._slot: list[int] = [0] * len(conns)
        self._root_fields = self._fields(shape.top)
        #: The record's connections (indices into ``_conns``) in slot order.
        self._root_conns = sorted(shape.top, key=lambda i: conns[i].field)
        self._child_fields = [self._fields(c.children) for c in conns]
        self._has_depth2 = any(d == 2 for d in self._depth)
        # In memory: roots by id → (line, updatedAt, template); children by their __parentId.
        self._mem_roots: dict[str, tuple[int, str, bytes]] = {}
        self._mem_children: dict[str, list[_Child]] = {}
        self._held = 0
        # Spilled: rows waiting for the next executemany.
        self._roots: list[tuple[str, int, str, int, int]] = []
        self._children: list[tuple[int, str, int, str | None, int, int]] = []
        self._grandchildren: list[tuple[int, int, str | None, str, int, int]] = []
        self._db: sqlite3.Connection | None = None
        #: The spilled texts, appended in file order (``<spill>.data``, private like the database).
        self._data = SpillData(Path(str(self.spill_path) + ".data"))
        self.data_path = self._data.path
        self._opened = False
        self._finalized = False
        self._owner: dict[str, str] = {}
        #: SQLite's page cache of the spill index (a spill worker's is smaller: it only appends).
        self.index_cache_kib = INDEX_CACHE_KIB
        #: Set by :meth:`seal_part`: a spill worker leaves its files to the process adopting them.
        self._keep_files = False
        #: Adopted parts (:meth:`adopt_parts`), each read through its own data file.
        self._parts: list[SpillPart] = []
        self._part_data: list[SpillData] = []

    def _fields(self, nested: Iterable[int]) -> tuple[tuple[str, bytes, bytes], ...]:
        """The nested connections' (indices into ``_conns``) fields in sorted order, each with its
        empty list in serialised form (``"lineItems":[]``) and its template slot (``"lineItems":[<NUL>]``)."""
        out = []
        for pos, i in enumerate(sorted(nested, key=lambda i: self._conns[i].field)):
            self._slot[i] = pos
            field = self._conns[i].field
            key = orjson.dumps(field)
            out.append((field, key + b":[]", key + b":[" + SLOT + b"]"))
        return tuple(out)

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> BulkReassembler:
        if not self._opened:  # a reader() is open already, over files it must not replace
            self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        _remove_spill(self.spill_path)
        try:
            # Customers' data: the file 0600 (and its directories 0700) whatever the umask; SQLite
            # gives any file it makes beside it the same mode. Made now, used only past the budget:
            # a work directory that cannot take it fails before anything is read.
            ensure_private_dir(self.spill_path.parent, durable=False)
            create_private_file(self.spill_path, durable=False)
        except OSError as exc:
            raise StorageError(f"{self.spill_path}: cannot create the bulk spill file: {describe_os_error(exc)}") from exc
        self._opened = True
        if self.memory_budget <= 0:
            self._spill()

    def _spill(self) -> None:
        """Move everything held in memory to the spill file; later lines go there too."""
        self._data.open()
        self._db = connect_index(self.spill_path, cache_kib=self.index_cache_kib)
        self.spilled = True
        for gid, (seq, updated_at, text) in self._mem_roots.items():
            self._roots.append((gid, seq, updated_at, *self._data.append(text)))
            if len(self._roots) >= _BATCH:
                self._flush()
        self._mem_roots = {}
        for parent, kids in self._mem_children.items():
            for seq, conn, child_id, text in kids:
                self._queue_child(seq, conn, child_id, parent, text)
        self._mem_children = {}
        self._held = 0
        self._flush()

    def _queue_child(self, seq: int, conn: int, gid: str | None, parent: str, text: bytes) -> None:
        if self._depth[conn] == 1:
            self._children.append((seq, parent, conn, gid, *self._data.append(text)))
            if len(self._children) >= _BATCH:
                self._flush()
        else:
            self._grandchildren.append((seq, conn, gid, parent, *self._data.append(text)))
            if len(self._grandchildren) >= _BATCH:
                self._flush()

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self._data.close()
        for data in self._part_data:
            data.close()
        self._part_data = []
        self._mem_roots = {}
        self._mem_children = {}
        if not self._keep_files:
            _remove_spill(self.spill_path)
        for part in self._parts:
            _remove_spill(part.index)
        self._parts = []

    # -- a file read in parts, by spill workers at once ---------------------------------------
    def part_path(self, number: int) -> Path:
        """Where the spill of part ``number`` goes (beside this reassembler's own, deleted with it)."""
        return Path(f"{self.spill_path}.part{number}")

    def seal_part(self, problem: tuple[int, str] | None = None) -> SpillPart:
        """End a spill worker's part (this reassembler read it, spilling from the first line):
        everything written and committed, and the files left for :meth:`adopt_parts`."""
        if self._db is None:
            raise RuntimeError("seal_part() needs a reassembler that spills from the first line")
        self._flush()
        self._data.flush()
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.spill_path}: cannot write the bulk spill file: {exc}") from exc
        self._db.close()
        self._db = None
        self._data.close()
        self._keep_files = self._finalized = True
        return SpillPart(self.spill_path, self.data_path, self.lines, self.root_lines, self.parent_lines, problem)

    def adopt_parts(self, parts: Iterable[SpillPart]) -> None:
        """Take over a file that spill workers read in parts, in file order, instead of feeding it.

        The first bad line of the file (the earliest part's) raises its :class:`BulkFileError`,
        numbered in the whole file. Otherwise the parts' indexes are merged into this one as if
        its lines had been fed here: line numbers counted on from part to part, of a record's
        copies the newest kept (a later part's on a tie), and the texts read from the parts' own
        data files. The parts' files are deleted with this reassembler's.
        """
        if not self._opened or self._finalized or self.lines:
            raise RuntimeError("adopt_parts() needs an open reassembler that has been fed nothing")
        parts = list(parts)
        self._parts = parts
        base = 0
        for part in parts:
            if part.problem is not None:
                line, what = part.problem
                raise line_error(base + line, what)
            base += part.lines
        if self._db is None:
            self._spill()
        db = self._db
        assert db is not None
        base = 0
        try:
            db.execute("COMMIT")  # ATTACH is refused inside a transaction
            for number, part in enumerate(parts):
                data = SpillData(part.data)
                data.open_existing()
                self._part_data.append(data)
                shift = number << PART_SHIFT
                db.execute("ATTACH DATABASE ? AS part", (str(part.index),))
                db.execute("BEGIN")
                # Within a part a record's copies were already settled the same way (the later
                # line wins a tie), so only copies in different parts meet here, in file order.
                db.execute(_MERGE_ROOTS, (base, shift))
                db.execute(
                    "INSERT INTO children (seq, root_id, conn, id, off, len)"
                    " SELECT seq + ?, root_id, conn, id, off + ?, len FROM part.children",
                    (base, shift),
                )
                db.execute(
                    "INSERT INTO grandchildren (seq, conn, id, parent_id, off, len)"
                    " SELECT seq + ?, conn, id, parent_id, off + ?, len FROM part.grandchildren",
                    (base, shift),
                )
                db.execute("COMMIT")
                db.execute("DETACH DATABASE part")
                base += part.lines
                self.root_lines += part.root_lines
                self.parent_lines += part.parent_lines
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.spill_path}: cannot merge the parts of the bulk spill file: {exc}") from exc
        self.lines = self.object_count = base

    # -- records read back in another process (a spill worker) ------------------------------
    def hand_over(self) -> dict[str, Any]:
        """Finish the file (counts and orphans: :class:`BulkFileError` now, before any record) and
        let go of the spill, for :meth:`reader` in another process to read its records back: the
        index closed (its lock released), and where everything is. The files are still deleted
        by :meth:`close`. Only for a file that was spilled."""
        self._finalize()
        if self._db is None:
            raise RuntimeError("hand_over() needs a spilled file")
        self._db.close()
        self._db = None
        # A file fed here is one part, number 0: its offsets need no tag.
        data = [str(d.path) for d in self._part_data] or [str(self.data_path)]
        return {"index": str(self.spill_path), "data": data}

    @classmethod
    def reader(cls, shape: BulkShape, spilled: dict[str, Any]) -> BulkReassembler:
        """A reassembler over another's spill (:meth:`hand_over`), whose :meth:`texts` reads its
        records back. It deletes nothing: the files stay the other's."""
        self = cls(shape, Path(spilled["index"]))
        self._keep_files = self._opened = self._finalized = True
        self.spilled = True
        self._db = open_index(self.spill_path)
        self._part_data = [SpillData(Path(p)) for p in spilled["data"]]
        for data in self._part_data:
            data.open_existing()
        return self

    def _read_part(self, off: int, length: int) -> bytes:
        return self._part_data[off >> PART_SHIFT].read(off & ((1 << PART_SHIFT) - 1), length)

    # -- input --------------------------------------------------------------------------------
    def feed(self, line: bytes) -> None:
        """Take one JSONL line (with or without its newline); blank lines are ignored."""
        self.feed_lines((line,))

    def feed_lines(self, lines: Iterable[bytes]) -> None:
        """Take JSONL lines (each with or without its newline); blank lines are ignored.

        The loop of :meth:`feed` over many lines at once (the hot path: a line costs one
        ``orjson.loads``, one ``orjson.dumps`` and a few dictionary operations).
        """
        if self._finalized:
            raise RuntimeError("feed() after records()")
        if not self._opened:
            raise RuntimeError("use BulkReassembler as a context manager")
        loads = orjson.loads
        dumps = orjson.dumps
        exact = exact_copy  # a local name: this loop runs once per line
        by_type = self._by_type
        res = self.shape
        parent_field = res.parent_field
        one_connection = len(self._conns) == 1
        child_fields = self._child_fields
        budget = self.memory_budget
        for line in lines:
            if len(line) <= 2 and not line.strip():  # blank (a trailing newline); cheap test first
                continue
            self.lines += 1
            self.object_count += 1
            seq = self.lines
            try:
                obj = loads(line)
            except orjson.JSONDecodeError as exc:
                raise line_error(seq, f" is not JSON: {exc}") from exc
            if type(obj) is not dict:
                raise line_error(seq, " is not a JSON object")
            parent = obj.pop(PARENT_KEY, None)
            gid = obj.get("id")
            if parent_field:
                kind = gid_type(gid) if isinstance(gid, str) else None
                if kind == res.parent_node_type and parent is None:
                    self.parent_lines += 1
                    continue
                if kind == res.node_type:
                    self._add_root(seq, gid, obj)
                    continue
            elif parent is None:
                self._add_root(seq, gid, obj)
                continue
            else:
                kind = gid_type(gid) if isinstance(gid, str) else None
            if not isinstance(parent, str) or not parent:
                what = "is neither a record nor a child" if parent is None else f"has a {PARENT_KEY} that is not an id"
                raise line_error(seq, f": {gid!r} {what}")
            conn = by_type.get(kind or "")
            if conn is None:
                if not one_connection:
                    raise line_error(
                        seq,
                        f": cannot tell which nested connection of {res.name} holds {gid!r}"
                        f" (known node types: {', '.join(sorted(by_type))})",
                    )
                conn = 0  # only one nested connection: it must be that one
            fields = child_fields[conn]
            child_id = gid if isinstance(gid, str) else None
            if self._db is not None:
                # Spilled: the text goes straight to the data file, so orjson's oversized
                # buffer is never held and needs no exact copy.
                text = record_template(obj, fields) if fields else dumps(obj, option=_SORT)
                self._queue_child(seq, conn, child_id, parent, text)
                continue
            text = record_template(obj, fields) if fields else exact(dumps(obj, option=_SORT))
            kids = self._mem_children.get(parent)
            if kids is None:
                self._mem_children[parent] = kids = []
            kids.append((seq, conn, child_id, text))
            self._held += len(text) + _ENTRY_OVERHEAD
            if self._held > budget:
                self._spill()

    def _add_root(self, seq: int, gid: object, obj: dict[str, Any]) -> None:
        if not isinstance(gid, str) or not gid:
            raise line_error(seq, ": a record without an id")
        self.root_lines += 1
        fields = self._root_fields
        if fields:
            text = record_template(obj, fields)
        else:
            text = orjson.dumps(obj, option=_SORT)
            if self._db is None:  # held in memory: see exact_copy
                text = exact_copy(text)
        updated_at = obj.get("updatedAt") or ""
        if not isinstance(updated_at, str):
            updated_at = str(updated_at)
        if self._db is not None:
            self._roots.append((gid, seq, updated_at, *self._data.append(text)))
            if len(self._roots) >= _BATCH:
                self._flush()
            return
        earlier = self._mem_roots.get(gid)
        if earlier is not None:
            if updated_at < earlier[1]:  # an older copy (ISO 8601 UTC timestamps compare as text)
                return
            self._held -= len(earlier[2]) + _ENTRY_OVERHEAD
        self._mem_roots[gid] = (seq, updated_at, text)
        self._held += len(text) + _ENTRY_OVERHEAD
        if self._held > self.memory_budget:
            self._spill()

    def _flush(self) -> None:
        assert self._db is not None
        try:
            if self._roots:
                self._db.executemany(_INSERT_ROOT, self._roots)
                self._roots.clear()
            if self._children:
                self._db.executemany(
                    "INSERT INTO children (seq, root_id, conn, id, off, len) VALUES (?, ?, ?, ?, ?, ?)", self._children
                )
                self._children.clear()
            if self._grandchildren:
                self._db.executemany(
                    "INSERT INTO grandchildren (seq, conn, id, parent_id, off, len) VALUES (?, ?, ?, ?, ?, ?)",
                    self._grandchildren,
                )
                self._grandchildren.clear()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.spill_path}: cannot write the bulk spill file: {exc}") from exc

    # -- the end of the file: counts and orphans, before any record --------------------------
    def _finalize(self) -> None:
        if self._finalized:
            return
        if self._db is not None:
            first, sample = self._finalize_spilled()
        else:
            first, sample = self._finalize_memory()
        self._finalized = True
        self.duplicate_roots = self.root_lines - self.root_count
        self.orphan_sample = sample
        if first is not None:
            self.first_orphan_line = int(first[0])
        if self.orphan_count and self.strict and first is not None:
            seq, gid, parent_id = first
            raise BulkFileError(
                f"bulk result line {seq}: {gid!r} is a child of {parent_id!r}, which is not in the file "
                f"({self.orphan_count} such line{'s' if self.orphan_count != 1 else ''}); "
                "its record would be written without it",
                line=int(seq),
            )
        if self.orphan_count:
            log.warning(
                "bulk result for %s: %d child lines whose parent is not in the file (parents %s)",
                self.shape.name,
                self.orphan_count,
                ", ".join(self.orphan_sample),
            )

    def _finalize_memory(self) -> tuple[tuple[int, str | None, str] | None, list[str]]:
        roots = self._mem_roots
        children = self._mem_children
        self.root_count = len(roots)
        # A depth-1 child belongs to a record when its parent is one; a depth-2 child when its
        # parent is such a depth-1 child. Everything else is an orphan.
        owner: dict[str, str] = {}
        depth = self._depth
        if self._has_depth2:
            for parent, kids in children.items():
                if parent in roots:
                    for _seq, conn, gid, _text in kids:
                        if gid and depth[conn] == 1:
                            owner.setdefault(gid, parent)
        orphans: list[tuple[int, str | None, str]] = []
        sample: list[str] = []
        for parent, kids in children.items():
            for seq, conn, gid, _text in kids:
                ok = parent in roots if depth[conn] == 1 else parent in owner
                if not ok:
                    orphans.append((seq, gid, parent))
                    if parent not in sample and len(sample) < _ORPHAN_SAMPLE:
                        sample.append(parent)
        self.orphan_count = len(orphans)
        self._owner = owner
        return (min(orphans) if orphans else None), sample

    def _finalize_spilled(self) -> tuple[tuple[int, str | None, str] | None, list[str]]:
        self._flush()
        self._data.flush()
        db = self._db
        assert db is not None
        try:
            db.execute("CREATE INDEX children_root ON children (root_id, seq)")
            if self._has_depth2:
                db.execute("CREATE INDEX children_id ON children (id)")
                db.execute(
                    "UPDATE grandchildren SET root_id = (SELECT c.root_id FROM children c, roots r"
                    " WHERE c.id = grandchildren.parent_id AND r.id = c.root_id)"
                )
                db.execute("CREATE INDEX grandchildren_root ON grandchildren (root_id, seq)")
            self.root_count = db.execute("SELECT count(*) FROM roots").fetchone()[0]
            self.orphan_count = db.execute(f"SELECT count(*) FROM ({ORPHANS})").fetchone()[0]  # noqa: S608
            first = None
            sample: list[str] = []
            if self.orphan_count:
                rows = db.execute(f"SELECT seq, id, parent_id FROM ({ORPHANS}) ORDER BY seq").fetchall()  # noqa: S608
                first = tuple(rows[0])
                for _seq, _gid, parent in rows:
                    if parent not in sample:
                        sample.append(parent)
                        if len(sample) >= _ORPHAN_SAMPLE:
                            break
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.spill_path}: cannot index the bulk spill file: {exc}") from exc
        return first, sample

    # -- output -------------------------------------------------------------------------------
    def texts(self) -> Generator[tuple[str, str | None, bytes], None, None]:
        """Complete records as ``(id, updatedAt, JSON text)``, ordered by id, each with its nested
        lists in file order. The text is what :func:`~shopsync.engine.records.serialize` gives
        the record (sorted keys, compact); no record is parsed again."""
        self._finalize()
        if not self.spilled:
            yield from self._texts_memory()
        elif self._db is None:
            raise RuntimeError("texts() after hand_over(): the records are read back by the spill worker")
        else:
            yield from self._texts_spilled()

    def records(self) -> Iterator[dict]:
        """Complete records as dictionaries (:meth:`texts`, parsed), ordered by id."""
        for _gid, _updated_at, text in self.texts():
            yield orjson.loads(text)

    def _texts_memory(self) -> Iterator[tuple[str, str | None, bytes]]:
        roots = self._mem_roots
        children = self._mem_children
        owner = self._owner
        depth = self._depth
        grand: dict[str, list[tuple[int, int, str | None, str, bytes]]] = {}
        if self._has_depth2:
            for parent, kids in children.items():
                root = owner.get(parent)
                if root is None:
                    continue
                for seq, conn, gid, text in kids:
                    if depth[conn] == 2:
                        grand.setdefault(root, []).append((seq, conn, gid, parent, text))
        for gid in sorted(roots):
            _seq, updated_at, template = roots.pop(gid)
            kids = children.pop(gid, [])
            d1 = [(conn, cid, text) for _s, conn, cid, text in kids if depth[conn] == 1]
            d2 = []
            if gid in grand:
                d2 = [(conn, cid, parent, text) for _s, conn, cid, parent, text in sorted(grand.pop(gid))]
            yield gid, updated_at or None, self._build(template, d1, d2)

    def _texts_spilled(self) -> Iterator[tuple[str, str | None, bytes]]:
        db = self._db
        assert db is not None
        read = self._read_part if self._part_data else self._data.read
        # In id order, the sink's key order: each commit's upserts then land after the rows
        # before them. (Read back in file order through a read-ahead window instead, the reads
        # were fewer but the sink's upserts, landing between rows already written, cost more.)
        roots = db.execute("SELECT id, updated_at, off, len FROM roots ORDER BY id")
        children = iter(db.execute("SELECT root_id, conn, id, off, len FROM children ORDER BY root_id, seq"))
        pending = next(children, None)
        gcur = None
        gpending = None
        if self._has_depth2:
            gcur = db.cursor().execute(
                "SELECT root_id, conn, id, parent_id, off, len FROM grandchildren WHERE root_id IS NOT NULL"
                " ORDER BY root_id, seq"
            )
            gpending = gcur.fetchone()
        for gid, updated_at, off, length in roots:
            d1 = []
            # Both cursors walk in id order, so this is a merge join; children of ids that are
            # not roots (orphans, already counted) are passed over.
            while pending is not None and pending[0] < gid:
                pending = next(children, None)
            while pending is not None and pending[0] == gid:
                d1.append((pending[1], pending[2], read(pending[3], pending[4])))
                pending = next(children, None)
            d2 = []
            if gcur is not None:
                while gpending is not None and gpending[0] < gid:
                    gpending = gcur.fetchone()
                while gpending is not None and gpending[0] == gid:
                    d2.append((gpending[1], gpending[2], gpending[3], read(gpending[4], gpending[5])))
                    gpending = gcur.fetchone()
            yield gid, updated_at or None, self._build(read(off, length), d1, d2)

    def _build(
        self,
        template: bytes,
        d1: list[tuple[int, str | None, bytes]],
        d2: list[tuple[int, str | None, str, bytes]],
    ) -> bytes:
        """One record's text: its template with every child text in its slot."""
        if not self._root_fields:
            return template
        texts: list[list[bytes]] = [[] for _ in self._root_fields]
        # A child id seen twice (its record exported twice) keeps its later text in the place
        # of its first: where the first copy is, by id.
        place: dict[str, tuple[int, int]] = {}
        slot_of = self._slot
        for conn, cid, text in d1:
            slot = slot_of[conn]
            siblings = texts[slot]
            if cid:
                where = place.get(cid)
                if where is not None:
                    texts[where[0]][where[1]] = text
                    continue
                place[cid] = (slot, len(siblings))
            siblings.append(text)
        if d2:
            # Grandchildren go into their parent child's template (by the parent's id).
            under: dict[str, list[list[bytes]]] = {}
            seen: set[str] = set()
            gplace: dict[str, tuple[str, int, int]] = {}
            for conn, cid, parent_id, text in d2:
                where = place.get(parent_id)
                nc = self._conns[conn]
                parent_conn = self._root_conns[where[0]] if where is not None else None
                if parent_conn is None or conn not in self._conns[parent_conn].children:
                    raise BulkFileError(
                        f"bulk result: {cid!r} ({nc.node_type}) is under {parent_id!r}, "
                        f"which is not a {nc.parent_type} of {self.shape.name}"
                    )
                lists = under.get(parent_id)
                if lists is None:
                    under[parent_id] = lists = [[] for _ in self._child_fields[parent_conn]]
                slot = slot_of[conn]
                if cid:
                    if cid in seen:
                        g = gplace[cid]
                        under[g[0]][g[1]][g[2]] = text
                        continue
                    seen.add(cid)
                    gplace[cid] = (parent_id, slot, len(lists[slot]))
                lists[slot].append(text)
            for parent_id, lists in under.items():
                s, i = place[parent_id]
                texts[s][i] = fill_template(texts[s][i], lists)
        # Depth-1 children with nested connections of their own but no grandchildren: empty lists.
        if self._has_depth2:
            for siblings in texts:
                for i, text in enumerate(siblings):
                    if SLOT in text:
                        siblings[i] = fill_template(text, None)
        return fill_template(template, texts)



def _remove_spill(path: Path) -> None:
    for suffix in _SPILL_SUFFIXES:
        Path(str(path) + suffix).unlink(missing_ok=True)


__all__ = ["LINE_PREFIX", "PARENT_KEY", "BulkReassembler", "SpillPart", "line_error"]
