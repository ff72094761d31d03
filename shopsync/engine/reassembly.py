"""Bulk JSONL → complete records, in memory that does not grow with the file.

A bulk result file has one line per node; a nested connection's nodes are separate lines carrying
``__parentId`` (the owning node's GID). With ``groupObjects: false`` (our setting, and the default
since 2026-01) nothing is promised about where a child line sits relative to its parent, so this
module never relies on order: :meth:`BulkReassembler.feed` spills every line into a temporary SQLite
file (roots keyed by id, children indexed by root), then :meth:`BulkReassembler.records` walks the
roots and their children together in key order and builds one record at a time. Peak memory is one
record plus SQLite's bounded page cache.

Which nested connection a child belongs to is read from its GID type (``gid://shopify/LineItem/…``
→ the connection whose nodes are ``LineItem``); resource loading guarantees the types are unique.
For a ``parent.child`` resource (``locations.inventoryLevels``) the parent lines are skipped and the
records are the child lines, with ``__parentId`` removed like everywhere else.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import orjson

from shopsync.engine.records import gid_type
from shopsync.errors import IntegrityError, StorageError
from shopsync.queries import NestedConnection, Resource

log = logging.getLogger(__name__)

PARENT_KEY = "__parentId"
_BATCH = 2000
_ORPHAN_SAMPLE = 5


class BulkReassembler:
    """Feed a bulk result file line by line, then iterate over complete records.

    Use as a context manager: the spill file is created on entry (an old one is replaced) and
    deleted on exit. Counters: ``lines`` (non-blank lines fed), ``object_count`` (the same, like
    Shopify's ``objectCount``), ``root_lines`` (record lines, what Shopify's ``rootObjectCount``
    counts), ``root_count`` (distinct records), ``parent_lines`` (skipped parent nodes of a
    ``parent.child`` resource), ``orphan_count`` (children whose parent is not in the file, known
    after :meth:`records` starts) with ``orphan_sample`` (a few of their ``__parentId``\\ s), and
    ``duplicate_roots`` (record lines beyond the first of their id).

    A bulk export is not a snapshot: a record updated while it runs can be exported again, with
    its children. Of a record's copies the one with the newest ``updatedAt`` is kept (the later
    line on a tie), and a child (or grandchild) id seen twice keeps its later line, in the place
    of its first.
    """

    def __init__(self, resource: Resource, spill_path: Path) -> None:
        self.resource = resource
        self.spill_path = Path(spill_path)
        self.lines = 0
        self.object_count = 0
        self.root_count = 0
        self.root_lines = 0
        self.parent_lines = 0
        self.orphan_count = 0
        self.orphan_sample: list[str] = []
        self.duplicate_roots = 0
        self._flat: list[NestedConnection] = list(resource.all_nested())
        self._conn_index = {id(nc): i for i, nc in enumerate(self._flat)}
        self._by_type: dict[str, int] = {}
        for i, nc in enumerate(self._flat):
            for t in nc.node_types:
                self._by_type[t] = i
        self._roots: list[tuple[str, int, str, bytes]] = []
        self._children: list[tuple[int, str | None, str, int, int, bytes]] = []
        self._db: sqlite3.Connection | None = None
        self._finalized = False

    # -- lifecycle --------------------------------------------------------------------------
    def __enter__(self) -> BulkReassembler:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(self.spill_path) + suffix).unlink(missing_ok=True)
        try:
            db = sqlite3.connect(self.spill_path, isolation_level=None)
            # A spill file is scratch: rebuilt from the result file after a crash, so no journal.
            db.execute("PRAGMA journal_mode=OFF")
            db.execute("PRAGMA synchronous=OFF")
            db.execute("PRAGMA locking_mode=EXCLUSIVE")
            db.execute("PRAGMA cache_size=-8192")  # KiB: keeps SQLite's own memory bounded
            db.execute(
                "CREATE TABLE roots (id TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated_at TEXT NOT NULL, line BLOB NOT NULL)"
            )
            db.execute(
                "CREATE TABLE children (seq INTEGER PRIMARY KEY, id TEXT, parent_id TEXT NOT NULL,"
                " conn INTEGER NOT NULL, depth INTEGER NOT NULL, root_id TEXT, line BLOB NOT NULL)"
            )
            db.execute("BEGIN")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.spill_path}: cannot create the bulk spill file: {exc}") from exc
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        for suffix in ("", "-journal", "-wal", "-shm"):
            Path(str(self.spill_path) + suffix).unlink(missing_ok=True)

    # -- input --------------------------------------------------------------------------------
    def feed(self, line: bytes) -> None:
        """Take one JSONL line (with or without its newline); blank lines are ignored."""
        if self._finalized:
            raise RuntimeError("feed() after records()")
        if len(line) <= 2 and not line.strip():  # blank (a trailing newline); cheap test first
            return
        self.lines += 1
        self.object_count += 1
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            raise IntegrityError(f"bulk result line {self.lines} is not JSON: {exc}") from exc
        if not isinstance(obj, dict):
            raise IntegrityError(f"bulk result line {self.lines} is not a JSON object")
        gid = obj.get("id")
        parent = obj.get(PARENT_KEY)
        kind = gid_type(gid) if isinstance(gid, str) else None
        res = self.resource
        if res.parent_field:
            if kind == res.parent_node_type and parent is None:
                self.parent_lines += 1
                return
            if kind == res.node_type:
                self._add_root(gid, obj, line)
                return
        elif parent is None:
            self._add_root(gid, obj, line)
            return
        if parent is None:
            raise IntegrityError(f"bulk result line {self.lines}: {gid!r} is neither a record nor a child")
        conn = self._by_type.get(kind or "")
        if conn is None:
            if len(self._flat) != 1:
                raise IntegrityError(
                    f"bulk result line {self.lines}: cannot tell which nested connection of "
                    f"{res.name} holds {gid!r} (known node types: {', '.join(sorted(self._by_type))})"
                )
            conn = 0  # only one nested connection: it must be that one
        nc = self._flat[conn]
        self._children.append((self.lines, gid if isinstance(gid, str) else None, parent, conn, nc.depth, line))
        if len(self._children) >= _BATCH:
            self._flush()

    def _add_root(self, gid, obj: dict, line: bytes) -> None:
        if not isinstance(gid, str) or not gid:
            raise IntegrityError(f"bulk result line {self.lines}: a record without an id")
        self.root_lines += 1
        self._roots.append((gid, self.lines, obj.get("updatedAt") or "", line))
        if len(self._roots) >= _BATCH:
            self._flush()

    def _flush(self) -> None:
        assert self._db is not None, "use BulkReassembler as a context manager"
        try:
            if self._roots:
                # ISO 8601 UTC timestamps of one format compare as text.
                self._db.executemany(
                    "INSERT INTO roots (id, seq, updated_at, line) VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE"
                    " SET seq = excluded.seq, updated_at = excluded.updated_at, line = excluded.line"
                    " WHERE excluded.updated_at >= roots.updated_at",
                    self._roots,
                )
                self._roots.clear()
            if self._children:
                self._db.executemany(
                    "INSERT INTO children (seq, id, parent_id, conn, depth, line) VALUES (?, ?, ?, ?, ?, ?)",
                    self._children,
                )
                self._children.clear()
        except sqlite3.Error as exc:
            raise StorageError(f"{self.spill_path}: cannot write the bulk spill file: {exc}") from exc

    def _finalize(self) -> None:
        if self._finalized:
            return
        self._flush()
        db = self._db
        assert db is not None
        try:
            # Attach every child to its record: depth 1 directly, depth 2 through its parent child.
            db.execute("UPDATE children SET root_id = parent_id WHERE depth = 1 AND parent_id IN (SELECT id FROM roots)")
            db.execute("CREATE INDEX children_id ON children (id) WHERE depth = 1")
            db.execute(
                "UPDATE children SET root_id = (SELECT p.root_id FROM children p WHERE p.depth = 1 AND p.id = children.parent_id)"
                " WHERE depth = 2"
            )
            db.execute("CREATE INDEX children_root ON children (root_id, seq)")
            self.root_count = db.execute("SELECT count(*) FROM roots").fetchone()[0]
            self.duplicate_roots = self.root_lines - self.root_count
            self.orphan_count = db.execute("SELECT count(*) FROM children WHERE root_id IS NULL").fetchone()[0]
            self.orphan_sample = [
                r[0]
                for r in db.execute(
                    "SELECT DISTINCT parent_id FROM children WHERE root_id IS NULL LIMIT ?", (_ORPHAN_SAMPLE,)
                )
            ]
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"{self.spill_path}: cannot index the bulk spill file: {exc}") from exc
        self._finalized = True
        if self.orphan_count:
            log.warning(
                "bulk result for %s: %d child lines whose parent is not in the file (parents %s)",
                self.resource.name,
                self.orphan_count,
                ", ".join(self.orphan_sample),
            )

    # -- output -------------------------------------------------------------------------------
    def records(self) -> Iterator[dict]:
        """Complete records, ordered by id, each with its nested lists in file order."""
        self._finalize()
        db = self._db
        assert db is not None
        roots = db.execute("SELECT id, line FROM roots ORDER BY id")
        children = db.execute(
            "SELECT root_id, conn, id, parent_id, line FROM children WHERE root_id IS NOT NULL ORDER BY root_id, seq"
        )
        pending = children.fetchone()
        for root_id, line in roots:
            rows = []
            # Both cursors walk in root id order, so this is a merge join.
            while pending is not None and pending[0] < root_id:
                pending = children.fetchone()  # cannot happen: root_id references a root
            while pending is not None and pending[0] == root_id:
                rows.append(pending)
                pending = children.fetchone()
            yield self._assemble(line, rows)

    def _assemble(self, line: bytes, rows: list[tuple]) -> dict:
        record = orjson.loads(line)
        record.pop(PARENT_KEY, None)
        for nc in self.resource.nested:
            record[nc.field] = []
        by_id: dict[str, dict] = {}
        depth2 = []
        for _root_id, conn, gid, _parent, child_line in rows:
            nc = self._flat[conn]
            if nc.depth == 2:
                depth2.append((nc, gid, _parent, child_line))
                continue
            child = orjson.loads(child_line)
            child.pop(PARENT_KEY, None)
            for sub in nc.children:
                child[sub.field] = []
            _place(record[nc.field], by_id, gid, child)
        seen: dict[str, dict] = {}
        for nc, gid, parent_id, child_line in depth2:
            grandchild = orjson.loads(child_line)
            grandchild.pop(PARENT_KEY, None)
            siblings = by_id.get(parent_id, {}).get(nc.field)
            if siblings is None:
                raise IntegrityError(
                    f"bulk result: {grandchild.get('id')!r} ({nc.node_type}) is under {parent_id!r}, "
                    f"which is not a {nc.parent_type} of {self.resource.name}"
                )
            _place(siblings, seen, gid, grandchild)
        return record


def _place(siblings: list[dict], by_id: dict[str, dict], gid: str | None, node: dict) -> None:
    """Append ``node`` to ``siblings``, or, when its id was seen (the record was exported twice),
    put its newer content in the place of the earlier copy."""
    earlier = by_id.get(gid) if gid else None
    if earlier is None:
        siblings.append(node)
        if gid:
            by_id[gid] = node
        return
    earlier.clear()
    earlier.update(node)


__all__ = ["BulkReassembler", "PARENT_KEY"]
