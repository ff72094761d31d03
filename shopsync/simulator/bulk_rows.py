"""Rows of a bulk export: every matching root node, nested connections as rows of their own.

A bulk query runs over *all* matching root nodes (``first``/``pageInfo`` ignored), one dict per
connection node. Children of nested connections are not inlined: each becomes its own row with
``"__parentId"`` (the parent's GID); scalars and plain objects stay inline. Row order:

* ``group_objects=True``: each parent is directly followed by its children (depth first).
* ``group_objects=False`` (the 2026-10 default): roots are emitted in chunks of 8–48 (sizes drawn
  from the shop's seed, so deterministic), and only after a chunk's roots come that chunk's
  children, parent by parent, alternating between child connection types. Every child still comes
  after its parent and the order within each connection type is kept (the only guarantee Shopify
  documents), but most children are *not* next to their parent, so a client must join by
  ``__parentId``.

Root order (the ``bulk_order`` fault switch): Shopify does not promise that root rows follow the
``sortKey`` (shopify-api-facts §3), so besides ``"sorted"`` (the scan's order) an export can list
its roots in blocks of :data:`ROOT_BLOCK` in a seeded random order (``"shuffled_blocks"``) or by
id (``"by_id"``). The children rules above apply to the reordered roots.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from graphql import DocumentNode, OperationType

from shopsync.simulator.compiler import compile_plan, field_args
from shopsync.simulator.exec_context import BulkQueryError, ExecContext, ExecutionFieldError, Where
from shopsync.simulator.plan import CONNECTION, TYPENAME, PlanField
from shopsync.simulator.projection import project_value
from shopsync.simulator.roots import MEM, ROOTS, RootSpec, root_plan
from shopsync.simulator.search import SearchQuery, SearchSyntaxError

if TYPE_CHECKING:
    from shopsync.simulator.executor import Executor

__all__ = ["BulkExport", "bulk_export", "bulk_rows"]

#: A built row and the children its nested connections collected.
_Entry = tuple[dict, list]
#: Roots per block of a ``"shuffled_blocks"`` export.
ROOT_BLOCK = 50


@dataclass(frozen=True)
class BulkExport:
    """A checked bulk query: its context, root connection field and how to scan the roots."""

    ctx: ExecContext
    field: PlanField
    spec: RootSpec
    sort: str
    desc: bool
    q: SearchQuery | None
    view: str
    where: Where | None


def bulk_export(
    executor: Executor, document: DocumentNode, variables: Mapping[str, Any] | None, operation_name: str | None, request: Any
) -> BulkExport:
    """Check ``document`` as a bulk query; raises :class:`BulkQueryError` if it cannot run."""
    try:
        ctx = executor.context(document, variables, operation_name, request)
    except ExecutionFieldError as exc:
        raise BulkQueryError(exc.message) from exc
    if ctx.operation.operation != OperationType.QUERY:
        raise BulkQueryError("a bulk query must be a query operation")
    problems = executor.check(document, operation_name)
    if problems:
        raise BulkQueryError("; ".join(p["message"] for p in problems), problems)
    qt = executor.schema.query_type
    assert qt is not None
    plan = [f for f in compile_plan(ctx, qt, (ctx.operation.selection_set,)) if f.kind != TYPENAME]
    if len(plan) != 1 or plan[0].kind != CONNECTION or plan[0].name not in ROOTS:
        raise BulkQueryError(
            "a bulk query must select exactly one root connection modelled by the simulator"
            f" ({', '.join(sorted(ROOTS))})"
        )
    f = plan[0]
    args = field_args(ctx, f)
    try:
        spec, (how, sort), q, view, where = root_plan(f.name, args)
    except (ExecutionFieldError, SearchSyntaxError) as exc:
        raise BulkQueryError(str(exc)) from exc
    if how == MEM:
        sort = "id"  # bulk output order is not promised anyway
    ctx.mode = "bulk"
    return BulkExport(ctx, f, spec, sort, bool(args.get("reverse")), q, view, where)


def bulk_rows(export: BulkExport, group_objects: bool, root_order: str = "sorted") -> Iterator[dict]:
    """The rows of ``export`` in the order the module docstring describes (lazy)."""
    ctx = export.ctx
    nf = export.field.node_field
    assert nf is not None
    # A fresh stream per export: the same query on the same data gives the same file.
    rng = random.Random((ctx.store.config.seed << 4) | 0xB)

    def build(nfield: PlanField, rec: dict, parent: str | None) -> _Entry:
        ctx.children = []
        ctx.row_id = rec.get("id")
        row = project_value(ctx, nfield, rec, ())
        if parent is not None:
            row["__parentId"] = parent
        return row, ctx.children

    def emit_grouped(nfield: PlanField, rec: dict, parent: str | None) -> Iterator[dict]:
        row, kids = build(nfield, rec, parent)
        yield row
        for parent_id, _key, child_field, records in kids:
            for child in records:
                yield from emit_grouped(child_field, child, parent_id)

    def emit_chunk(entries: list[_Entry]) -> Iterator[dict]:
        # Roots (or children) of the chunk first, then their children, alternating between
        # connection fields parent by parent; deeper levels follow the same rule.
        for row, _kids in entries:
            yield row
        child_entries: list[_Entry] = []
        for _row, kids in entries:
            for parent_id, _key, child_field, records in kids:
                for child in records:
                    child_entries.append(build(child_field, child, parent_id))
        if child_entries:
            yield from emit_chunk(child_entries)

    scan: Iterator[tuple[int, int, dict]] = ctx.store.scan(
        export.spec.type_name, sort="id" if root_order == "by_id" else export.sort, descending=export.desc,
        query=export.q, view=export.view, where=export.where,
    )  # fmt: skip
    if root_order == "shuffled_blocks":
        scan = _shuffled_blocks(ctx, export.spec.type_name, scan, random.Random((ctx.store.config.seed << 4) | 0x5B))
    if group_objects:
        for _key, _idx, rec in scan:
            yield from emit_grouped(nf, rec, None)
        return
    chunk: list[_Entry] = []
    size = 8 + int(rng.random() * 41)
    for _key, _idx, rec in scan:
        chunk.append(build(nf, rec, None))
        if len(chunk) >= size:
            yield from emit_chunk(chunk)
            chunk = []
            size = 8 + int(rng.random() * 41)
    if chunk:
        yield from emit_chunk(chunk)


def _shuffled_blocks(
    ctx: ExecContext, type_name: str, scan: Iterator[tuple[int, int, dict]], rng: random.Random
) -> Iterator[tuple[int, int, dict]]:
    """The matching roots in blocks of :data:`ROOT_BLOCK` (consecutive in scan order), the blocks
    in a random order. Only the positions are held; each record is read when its block is emitted
    (an export is not a snapshot: a record deleted meanwhile is left out, as on Shopify)."""
    found = [(key, idx) for key, idx, _rec in scan]
    blocks = [found[i : i + ROOT_BLOCK] for i in range(0, len(found), ROOT_BLOCK)]
    rng.shuffle(blocks)
    table = ctx.store.table(type_name)
    for block in blocks:
        for key, idx in block:
            rec = table.record(idx)
            if rec is not None:
                yield key, idx, rec
