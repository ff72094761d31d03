"""Compiling a request's selection sets into :class:`~shopsync.simulator.plan.Plan` objects.

Fields are collected by response key (aliases, fragments, inline fragments with type conditions,
``@skip``/``@include``), classified by kind, and the hot shapes get generated projectors. Plans
are compiled once per request and cached on their parent field per concrete type.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
    value_from_ast_untyped,
)
from graphql.pyutils import Undefined

from shopsync.shopify.cost import is_connection_type
from shopsync.simulator.data import Ref
from shopsync.simulator.exec_context import ExecContext
from shopsync.simulator.plan import (
    CONNECTION,
    LEAF,
    LEAF_SPECIAL,
    NEVER_REF,
    OBJECT,
    OBJLIST,
    REF_ID,
    SIMPLE,
    SIMPLE_LIST,
    TYPENAME,
    Plan,
    PlanField,
    generate_projector,
    has_variables,
    ref_projector,
)

__all__ = ["collect_fields", "compile_plan", "field_args", "object_type", "plan_for"]


def object_type(schema: GraphQLSchema, name: str) -> GraphQLObjectType:
    """The object type ``name`` of ``schema``; ``KeyError`` if it is not one."""
    t = schema.get_type(name)
    if not is_object_type(t):
        raise KeyError(f"{name} is not an object type of the schema")
    return t


def _applies(schema: GraphQLSchema, cond: str | None, obj: GraphQLObjectType) -> bool:
    if cond is None or cond == obj.name:
        return True
    t = schema.get_type(cond)
    return t is not None and is_abstract_type(t) and schema.is_sub_type(t, obj)


def _included(ctx: ExecContext, node: Any) -> bool:
    for d in node.directives or ():
        name = d.name.value
        if name in ("skip", "include"):
            arg = next((a for a in d.arguments or () if a.name.value == "if"), None)
            val = bool(value_from_ast_untyped(arg.value, ctx.variables)) if arg else False
            if (name == "skip" and val) or (name == "include" and not val):
                return False
    return True


def collect_fields(
    ctx: ExecContext, obj: GraphQLObjectType, sets: Sequence[SelectionSetNode], out: dict[str, list[FieldNode]]
) -> None:
    """Group the fields of ``sets`` that apply to ``obj`` by response key into ``out``."""
    schema = ctx.executor.schema
    for ss in sets:
        for sel in ss.selections:
            if not _included(ctx, sel):
                continue
            if isinstance(sel, FieldNode):
                key = sel.alias.value if sel.alias else sel.name.value
                out.setdefault(key, []).append(sel)
            elif isinstance(sel, InlineFragmentNode):
                cond = sel.type_condition.name.value if sel.type_condition else None
                if _applies(schema, cond, obj):
                    collect_fields(ctx, obj, (sel.selection_set,), out)
            elif isinstance(sel, FragmentSpreadNode):
                frag = ctx.fragments.get(sel.name.value)
                if frag is not None and _applies(schema, frag.type_condition.name.value, obj):
                    collect_fields(ctx, obj, (frag.selection_set,), out)


def compile_plan(ctx: ExecContext, obj: GraphQLObjectType, sets: Sequence[SelectionSetNode]) -> Plan:
    """The plan of ``sets`` on the concrete type ``obj``."""
    grouped: dict[str, list[FieldNode]] = {}
    collect_fields(ctx, obj, sets, grouped)
    plan = Plan()
    for key, nodes in grouped.items():
        name = nodes[0].name.value
        if name == "__typename":
            plan.append(PlanField(key, name, TYPENAME, nodes, obj.name))
        else:
            plan.append(_compile_field(ctx, obj, key, nodes))
    plan.fast = generate_projector(plan, obj.name)
    return plan


def _compile_field(ctx: ExecContext, obj: GraphQLObjectType, key: str, nodes: list[FieldNode]) -> PlanField:
    name = nodes[0].name.value
    fdef = obj.fields[name]
    named = get_named_type(fdef.type)
    t = fdef.type.of_type if is_non_null_type(fdef.type) else fdef.type
    is_list = is_list_type(t)
    if is_leaf_type(named):
        kind = LEAF
    elif is_connection_type(named):
        kind = CONNECTION
    elif is_list:
        kind = OBJLIST
    else:
        kind = OBJECT
    f = PlanField(key, name, kind, nodes, obj.name)
    f.fdef = fdef
    f.named = named.name
    f.abstract = is_abstract_type(named)
    f.is_list = is_list
    f.special = ctx.executor.specials.get((obj.name, name))
    if f.special is not None and kind == LEAF:
        f.kind = LEAF_SPECIAL
    args = nodes[0].arguments or ()
    if not any(has_variables(a.value) for a in args):
        f.args_static = {a.name.value: value_from_ast_untyped(a.value) for a in args}
    if kind == CONNECTION:
        f.node_field = _node_field(ctx, cast(GraphQLObjectType, named), f)
    elif kind in (OBJECT, OBJLIST) and f.special is None and not f.abstract and f.sub:
        sub = plan_for(ctx, f, named.name)
        interfaces = cast(GraphQLObjectType, named).interfaces
        can_be_ref = named.name not in NEVER_REF and any(i.name == "Node" for i in interfaces)
        id_only = all(p.kind == TYPENAME or (p.name == "id" and p.kind == LEAF) for p in sub)
        if kind == OBJECT and can_be_ref and id_only:
            f.kind = REF_ID
            f.fn = ref_projector(sub, named.name, _exists_fn(ctx))
        elif sub.fast is not None and (kind == OBJECT or "first" not in fdef.args):
            # A reference (Ref) value makes ``sub.fast`` raise TypeError: the general
            # path then resolves it.
            f.kind = SIMPLE if kind == OBJECT else SIMPLE_LIST
            f.fn = sub.fast
    return f


def _node_field(ctx: ExecContext, conn: GraphQLObjectType, f: PlanField) -> PlanField:
    """A pseudo-field for the nodes of connection ``f`` (edges.node and nodes selections merged)."""
    node_sets: list[SelectionSetNode] = []
    grouped: dict[str, list[FieldNode]] = {}
    collect_fields(ctx, conn, f.sub, grouped)
    edge_type = cast(GraphQLObjectType, get_named_type(conn.fields["edges"].type))
    f.edge_cursors = False
    for nodes in grouped.values():
        name = nodes[0].name.value
        if name == "nodes":
            node_sets.extend(n.selection_set for n in nodes if n.selection_set)
        elif name == "edges":
            eg: dict[str, list[FieldNode]] = {}
            collect_fields(ctx, edge_type, [n.selection_set for n in nodes if n.selection_set], eg)
            for enodes in eg.values():
                if enodes[0].name.value == "node":
                    node_sets.extend(n.selection_set for n in enodes if n.selection_set)
                elif enodes[0].name.value == "cursor":
                    f.edge_cursors = True
    node_type = get_named_type(conn.fields["nodes"].type)
    nf = PlanField("node", "node", OBJECT, [], conn.name)
    nf.sub = tuple(node_sets)
    nf.named = node_type.name
    nf.abstract = is_abstract_type(node_type)
    return nf


def _exists_fn(ctx: ExecContext) -> Callable[[Ref], bool]:
    """Reference existence checks, memoised for one request (the store cannot change during a
    synchronous execution; bulk exports and materializations are lazy, so they are not)."""
    exists = ctx.store.exists_ref
    if ctx.mode != "page":
        return exists
    memo = ctx.exists_memo

    def check(ref: Ref) -> bool:
        r = memo.get(ref.gid)
        if r is None:
            r = memo[ref.gid] = exists(ref)
        return r

    return check


def plan_for(ctx: ExecContext, f: PlanField, type_name: str) -> Plan:
    """The plan of ``f``'s sub-selection on ``type_name`` (compiled on first use, then cached)."""
    plan = f.plans.get(type_name)
    if plan is None:
        plan = f.plans[type_name] = compile_plan(ctx, object_type(ctx.executor.schema, type_name), f.sub)
    return plan


def field_args(ctx: ExecContext, f: PlanField) -> dict[str, Any]:
    """``f``'s arguments: the static ones compiled once, else evaluated with the variables."""
    if f.args_static is not None:
        return f.args_static
    out = {}
    for a in f.nodes[0].arguments or ():
        v = value_from_ast_untyped(a.value, ctx.variables)
        if v is not Undefined:
            out[a.name.value] = v
    return out
