"""Projecting records through compiled plans: the request's selection applied to plain dicts.

Records are plain dicts keyed by schema field names (:mod:`shopsync.simulator.data`);
references (:class:`~shopsync.simulator.data.Ref`) are resolved through the store as they are
reached. Generated projectors take the hot path; anything unexpected falls back to the general
path here, which reports what is wrong as a GraphQL error at that field.
"""

from __future__ import annotations

from typing import Any

from shopsync.simulator.compiler import field_args, plan_for
from shopsync.simulator.connections import list_connection
from shopsync.simulator.data import Ref, gid_type
from shopsync.simulator.exec_context import ExecContext, ExecutionFieldError, record_error
from shopsync.simulator.plan import (
    CONNECTION,
    LEAF,
    LEAF_SPECIAL,
    OBJLIST,
    OMIT,
    REF_ID,
    SIMPLE,
    SIMPLE_LIST,
    TYPENAME,
    Plan,
    PlanField,
)
from shopsync.simulator.search import SearchSyntaxError

__all__ = ["complete_value", "project_object", "project_value"]


def project_object(ctx: ExecContext, rec: dict, type_name: str, plan: Plan, path: tuple) -> dict:
    """``rec`` (of concrete type ``type_name``) through ``plan``."""
    fast = plan.fast
    if fast is not None:
        try:
            return fast(rec)
        except (KeyError, TypeError):
            pass  # the general path below reports what is wrong
    out: dict[str, Any] = {}
    for f in plan:
        kind = f.kind
        if kind == LEAF:
            try:
                v = rec[f.name]
            except KeyError:
                _missing(ctx, f, type_name, path)
                v = None
            else:
                if f.is_list and v is not None:
                    v = list(v)
            out[f.key] = v
        elif kind == SIMPLE or kind == REF_ID or kind == SIMPLE_LIST:
            # Plain nested objects (money bags, addresses, edges), id-only references and lists
            # of plain objects: generated projectors; anything unexpected takes the general path.
            fn = f.fn
            assert fn is not None
            try:
                v = rec[f.name]
                if v is None:
                    out[f.key] = None
                elif kind == SIMPLE_LIST:
                    out[f.key] = [fn(x) for x in v]
                else:
                    out[f.key] = fn(v)
                continue
            except (KeyError, TypeError):
                pass
            out[f.key] = _field(ctx, rec, type_name, f, path)
        elif kind == TYPENAME:
            out[f.key] = type_name
        else:
            v = _field(ctx, rec, type_name, f, path)
            if v is not OMIT:
                out[f.key] = v
    return out


def _field(ctx: ExecContext, rec: dict, type_name: str, f: PlanField, path: tuple) -> Any:
    """The general path for one field: specials, connections, references, lists, errors."""
    kind = f.kind
    fpath = (*path, f.key)
    if f.special is not None:
        try:
            v = f.special(ctx, rec, field_args(ctx, f), f, fpath)
        except ExecutionFieldError as exc:
            record_error(ctx, f.nodes, fpath, exc)
            return None
        except SearchSyntaxError as exc:
            record_error(ctx, f.nodes, fpath, ExecutionFieldError(str(exc)))
            return None
    else:
        try:
            v = rec[f.name]
        except KeyError:
            _missing(ctx, f, type_name, path)
            return None
        if kind == CONNECTION:
            try:
                v = list_connection(ctx, rec, f, v)
            except ExecutionFieldError as exc:
                record_error(ctx, f.nodes, fpath, exc)
                return None
        elif kind == OBJLIST and v is not None and "first" in f.fdef.args:
            first = field_args(ctx, f).get("first")
            if first is not None:
                v = v[:first]
    if kind == CONNECTION and ctx.mode != "page":
        nodes = v or []
        nf = f.node_field
        assert nf is not None
        if ctx.mode == "bulk":
            assert ctx.children is not None
            # The parent is the row being built (the nearest enclosing connection node or root),
            # even when the connection sits inside a plain object of that row.
            ctx.children.append((ctx.row_id or rec["id"], f.key, nf, nodes))
            return OMIT
        return [project_value(ctx, nf, n, (*fpath, i)) for i, n in enumerate(nodes)]
    return complete_value(ctx, f, v, fpath)


def _missing(ctx: ExecContext, f: PlanField, type_name: str, path: tuple) -> None:
    record_error(
        ctx,
        f.nodes,
        (*path, f.key),
        ExecutionFieldError(
            f"Field '{type_name}.{f.name}' is not modelled by the shopsync simulator",
            code="NOT_MODELLED",
            extensions={"typeName": type_name, "fieldName": f.name},
        ),
    )


def complete_value(ctx: ExecContext, f: PlanField, value: Any, path: tuple) -> Any:
    """The response value of field ``f`` resolved to ``value`` (leaf, list, connection or object)."""
    if value is None:
        return None
    kind = f.kind
    if kind == LEAF or kind == LEAF_SPECIAL:
        return list(value) if f.is_list else value
    if kind == OBJLIST or kind == SIMPLE_LIST or (kind == CONNECTION and isinstance(value, list)):
        return [project_value(ctx, f, v, (*path, i)) for i, v in enumerate(value)]
    if kind == CONNECTION:
        return project_object(ctx, value, f.named, plan_for(ctx, f, f.named), path)
    return project_value(ctx, f, value, path)


def project_value(ctx: ExecContext, f: PlanField, value: Any, path: tuple) -> Any:
    """One object value of ``f``: a record dict, or a reference resolved through the store."""
    if value is None:
        return None
    if type(value) is Ref:
        gid = value.gid
        type_name = gid_type(gid) or f.named
        if f.abstract:
            ctx.runtime_types[path] = type_name
        plan = plan_for(ctx, f, type_name)
        if all(p.name in ("id", "__typename") for p in plan):
            # Only the id is wanted: no need to build the target, only to know it exists.
            if not ctx.store.exists(gid):
                return None
            return {p.key: (gid if p.name == "id" else type_name) for p in plan}
        rec = ctx.store.get(gid)
        if rec is None:
            return None
        return project_object(ctx, rec, type_name, plan, path)
    if f.abstract:
        type_name = value.get("__typename")
        if type_name is None:
            raise TypeError(f"a {f.named} value needs '__typename' to be projected: {value!r}"[:300])
        ctx.runtime_types[path] = type_name
    else:
        type_name = f.named
    return project_object(ctx, value, type_name, plan_for(ctx, f, type_name), path)
