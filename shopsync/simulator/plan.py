"""Compiled selections: the plan of one selection set on one concrete type, and its fast paths.

A :class:`Plan` lists the :class:`PlanField` of each response key. When every field of a plan is
a plain leaf, a plain nested object or an id-only reference (line items, money bags, addresses),
:func:`generate_projector` writes a small function projecting a record in one dict display — the
hot path of a page. The plans themselves are built by :mod:`shopsync.simulator.compiler`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graphql import FieldNode, ListValueNode, ObjectValueNode, SelectionSetNode, VariableNode

from shopsync.simulator.data import Ref

__all__ = [
    "CONNECTION",
    "LEAF",
    "LEAF_SPECIAL",
    "NEVER_REF",
    "OBJECT",
    "OBJLIST",
    "OMIT",
    "REF_ID",
    "SIMPLE",
    "SIMPLE_LIST",
    "TYPENAME",
    "Plan",
    "PlanField",
    "generate_projector",
    "has_variables",
    "ref_projector",
]

# Field kinds. SIMPLE, REF_ID and SIMPLE_LIST are objects projected by generated functions.
TYPENAME, LEAF, OBJECT, OBJLIST, CONNECTION, SIMPLE, LEAF_SPECIAL, REF_ID, SIMPLE_LIST = range(9)
OMIT = object()  # a field left out of the row (bulk children)
#: Node types whose values in records are always embedded dicts, never references.
NEVER_REF = frozenset({"MailingAddress"})
_CODE_CACHE: dict[str, Any] = {}


class Plan(list["PlanField"]):
    """The compiled fields of one selection on one concrete type.

    ``fast`` is a generated function projecting a record in one dict display when every field is a
    plain leaf, a plain nested object or an id-only reference (the hot path: line items, money
    bags, addresses); it raises ``KeyError``/``TypeError`` on anything unexpected, and the caller
    then takes the general path, which reports the problem properly.
    """

    __slots__ = ("fast",)
    fast: Callable[[dict], dict] | None


class PlanField:
    """One response key of a selection on one concrete type (fields merged by response key)."""

    __slots__ = (
        "key", "name", "kind", "nodes", "sub", "named", "abstract", "is_list", "special", "fdef",
        "args_static", "plans", "node_field", "parent_type", "fn", "edge_cursors",
    )  # fmt: skip

    def __init__(self, key: str, name: str, kind: int, nodes: list[FieldNode], parent_type: str) -> None:
        self.key = key
        self.name = name
        self.kind = kind
        self.nodes = nodes
        self.parent_type = parent_type
        self.sub: tuple[SelectionSetNode, ...] = tuple(n.selection_set for n in nodes if n.selection_set)
        self.named = ""
        self.abstract = False
        self.is_list = False
        self.special: Callable[..., Any] | None = None
        self.fdef: Any = None
        self.args_static: dict | None = None
        self.plans: dict[str, Plan] = {}
        self.node_field: PlanField | None = None
        self.fn: Callable[[Any], Any] | None = None
        self.edge_cursors = True


def generate_projector(plan: Plan, type_name: str) -> Callable[[dict], dict] | None:
    """The fast projector of ``plan`` (see :class:`Plan`), or ``None`` if a field needs the general path."""
    parts = []
    env: dict[str, Any] = {"list": list}
    for i, f in enumerate(plan):
        k, n = repr(f.key), repr(f.name)
        if f.kind == LEAF:
            parts.append(f"{k}: (None if (v := rec[{n}]) is None else list(v))" if f.is_list else f"{k}: rec[{n}]")
        elif f.kind == SIMPLE:
            env[f"F{i}"] = f.fn
            parts.append(f"{k}: (None if (v := rec[{n}]) is None else F{i}(v))")
        elif f.kind == REF_ID:
            env[f"F{i}"] = f.fn
            parts.append(f"{k}: F{i}(rec[{n}])")
        elif f.kind == SIMPLE_LIST:
            env[f"F{i}"] = f.fn
            parts.append(f"{k}: (None if (v := rec[{n}]) is None else [F{i}(x) for x in v])")
        elif f.kind == TYPENAME:
            parts.append(f"{k}: {type_name!r}")
        else:
            return None
    src = "def fast(rec):\n    return {" + ", ".join(parts) + "}\n"
    code = _CODE_CACHE.get(src)
    if code is None:
        if len(_CODE_CACHE) > 4096:
            _CODE_CACHE.clear()
        code = _CODE_CACHE[src] = compile(src, "<shopsync-simulator-projection>", "exec")
    exec(code, env)  # noqa: S102 - source built from schema field names only
    fast: Callable[[dict], dict] = env["fast"]
    return fast


def ref_projector(plan: Plan, type_name: str, exists: Callable[[Ref], bool]) -> Callable[[Any], dict | None]:
    """For ``{ id }`` / ``{ id __typename }`` on a reference: check existence, build nothing."""
    keys = tuple((f.key, f.kind == TYPENAME) for f in plan)
    if len(keys) == 1 and not keys[0][1]:
        key = keys[0][0]

        def project_id(v: Any) -> dict | None:  # the common case, kept lean
            if type(v) is Ref:
                return {key: v.gid} if exists(v) else None
            return None if v is None else {key: v["id"]}

        return project_id

    def project(v: Any) -> dict | None:
        if v is None:
            return None
        if type(v) is Ref:
            if not exists(v):
                return None
            gid = v.gid
        else:
            gid = v["id"]
        return {k: (type_name if is_type else gid) for k, is_type in keys}

    return project


def has_variables(node: Any) -> bool:
    """Whether an argument value refers to a variable (then it is evaluated per execution)."""
    if isinstance(node, VariableNode):
        return True
    if isinstance(node, ListValueNode):
        return any(has_variables(v) for v in node.values)
    if isinstance(node, ObjectValueNode):
        return any(has_variables(f.value) for f in node.fields)
    return False
