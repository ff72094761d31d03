"""The "truth": every live record of a type projected through a fragment, complete.

Nested connections are replaced by complete arrays of their nodes (no paging, no index lag, no
edges/cursor/pageInfo): the shape of a perfect sync's sink record (docs/ARCHITECTURE.md, "Sink
record shape"). The end-to-end tests compare a sink against it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    parse,
    value_from_ast_untyped,
)

from shopsync.queries.header import parse_header
from shopsync.simulator.compiler import compile_plan, object_type
from shopsync.simulator.exec_context import ExecContext, Where
from shopsync.simulator.projection import project_object
from shopsync.simulator.roots import location_filter

if TYPE_CHECKING:
    from shopsync.simulator.executor import Executor

__all__ = ["materialize", "materialize_resource"]


def materialize(
    executor: Executor,
    type_name: str,
    selection: DocumentNode | SelectionSetNode | str,
    *,
    where: Where | None = None,
) -> Iterator[dict]:
    """Every live record of ``type_name`` projected through ``selection`` (a fragment document,
    its source, or a selection set), in id order. See :meth:`Executor.materialize`."""
    ctx, sets = _setup(executor, type_name, selection)
    plan = compile_plan(ctx, object_type(executor.schema, type_name), sets)
    if type_name == "Shop":  # the one shop object, not a table
        yield project_object(ctx, executor.store.shop, type_name, plan, ())
        return
    for _key, _idx, rec in executor.store.scan(type_name, sort="id", view="live", where=where):
        yield project_object(ctx, rec, type_name, plan, ())


def materialize_resource(executor: Executor, path: str | Path) -> Iterator[dict]:
    """:func:`materialize` for a resource file: the fragment's type, honouring ``root_args``
    ``includeInactive``/``includeLegacy`` for location-rooted resources."""
    text = Path(path).read_text(encoding="utf-8")
    header = parse_header(text, str(path))
    doc = parse(text)
    frag = next(d for d in doc.definitions if isinstance(d, FragmentDefinitionNode))
    type_name = frag.type_condition.name.value
    where: Where | None = None
    root = header.value("root") or ""
    if root.split(".")[0] == "locations":
        loc_ok = location_filter(_root_args(header.value("root_args")))
        if type_name == "Location":
            where = loc_ok
        else:
            store = executor.store
            locs = store.tables["Location"]
            n_loc = max(1, store.data.count("Location"))

            def where(idx: int, rec: dict) -> bool:
                loc_idx = idx % n_loc
                loc = locs.record(loc_idx)
                return loc is not None and loc_ok(loc_idx, loc)

    if type_name == "Metafield":  # one table of every owner's metafields: keep the root's owner's
        owner_type = _METAFIELD_OWNERS.get(root.split(".")[0])

        def where(idx: int, rec: dict) -> bool:
            return rec["ownerType"] == owner_type

    return materialize(executor, type_name, doc, where=where)


#: The ``ownerType`` of the metafields a resource's root lists (``products.metafields`` …).
_METAFIELD_OWNERS = {"shop": "SHOP", "products": "PRODUCT"}


def _root_args(source: str | None) -> dict[str, Any]:
    """The values of a header's ``root_args`` (``includeInactive: true, …``)."""
    if not source:
        return {}
    op = parse(f"{{ x({source}) }}").definitions[0]
    assert isinstance(op, OperationDefinitionNode)
    fnode = op.selection_set.selections[0]
    assert isinstance(fnode, FieldNode)
    return {a.name.value: value_from_ast_untyped(a.value) for a in fnode.arguments or ()}


def _setup(
    executor: Executor, type_name: str, selection: DocumentNode | SelectionSetNode | str
) -> tuple[ExecContext, tuple[SelectionSetNode, ...]]:
    if isinstance(selection, str):
        selection = parse(selection)
    if isinstance(selection, SelectionSetNode):
        doc = DocumentNode(definitions=())
        sets: tuple[SelectionSetNode, ...] = (selection,)
    else:
        doc = selection
        frags = [
            d for d in doc.definitions
            if isinstance(d, FragmentDefinitionNode) and d.type_condition.name.value == type_name
        ]  # fmt: skip
        if not frags:
            raise ValueError(f"no fragment on {type_name} in the document")
        sets = (frags[0].selection_set,)
    dummy_op = OperationDefinitionNode(operation=OperationType.QUERY, selection_set=sets[0], variable_definitions=())
    fragments = {d.name.value: d for d in doc.definitions if isinstance(d, FragmentDefinitionNode)}
    errors: list[dict] = []
    executor.model.check(object_type(executor.schema, type_name), sets[0], (), fragments, errors, set())
    if errors:
        raise ValueError("; ".join(e["message"] for e in errors))
    ctx = ExecContext(executor, executor.store, doc, dummy_op, {}, None, mode="array", fragments=fragments)
    return ctx, sets
