"""Which fields the simulator models: refusing a document that selects anything else.

A field the simulator does not model is answered with an error naming it (``"Field
'Order.agreements' is not modelled by the shopsync simulator"``, ``extensions.code =
"NOT_MODELLED"``), never a silent null; such documents are refused before execution.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
    is_abstract_type,
    is_object_type,
)

from shopsync.shopify.cost import is_connection_type
from shopsync.simulator.data import MODELLED_FIELDS
from shopsync.simulator.exec_context import error_locations

__all__ = ["ModelChecker"]


@dataclass(frozen=True)
class ModelChecker:
    """Checks selections against what is modelled: :data:`MODELLED_FIELDS` for the record types,
    the registered resolvers for the root types, the standard shape for connections and edges."""

    schema: GraphQLSchema
    root_fields: Collection[str]
    mutation_fields: Collection[str]

    def modelled(self, type_name: str, field_name: str) -> bool | None:
        """True/False for types the simulator owns; None for types it leaves to others."""
        if type_name in MODELLED_FIELDS:
            return field_name in MODELLED_FIELDS[type_name]
        query_type = self.schema.query_type
        if query_type is not None and type_name == query_type.name:
            return field_name in self.root_fields
        mt = self.schema.mutation_type
        if mt is not None and type_name == mt.name:
            return field_name in self.mutation_fields
        t = self.schema.get_type(type_name)
        if t is not None and is_connection_type(t):
            return field_name in ("edges", "nodes", "pageInfo")
        if type_name.endswith("Edge") and t is not None and is_object_type(t) and "cursor" in t.fields:
            return field_name in ("cursor", "node")
        return None

    def check(
        self,
        parent: Any,
        ss: SelectionSetNode,
        path: tuple,
        fragments: dict[str, FragmentDefinitionNode],
        errors: list[dict],
        seen: set,
    ) -> None:
        """Append to ``errors`` one error per unmodelled (or unknown) field selected under ``parent``."""
        for sel in ss.selections:
            if isinstance(sel, FieldNode):
                self._check_field(parent, sel, path, fragments, errors, seen)
            elif isinstance(sel, InlineFragmentNode):
                t = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                self.check(t, sel.selection_set, path, fragments, errors, seen)
            elif isinstance(sel, FragmentSpreadNode):
                frag = fragments.get(sel.name.value)
                mark = (sel.name.value, path)
                if frag is not None and mark not in seen:
                    seen.add(mark)
                    t = self.schema.get_type(frag.type_condition.name.value)
                    self.check(t, frag.selection_set, path, fragments, errors, seen)

    def _check_field(
        self,
        parent: Any,
        sel: FieldNode,
        path: tuple,
        fragments: dict[str, FragmentDefinitionNode],
        errors: list[dict],
        seen: set,
    ) -> None:
        name = sel.name.value
        if name == "__typename":
            return
        key = sel.alias.value if sel.alias else name
        if hasattr(parent, "fields") and name not in parent.fields:
            # Normally caught by validation before execution; kept for unvalidated callers.
            errors.append({
                "message": f"Field '{name}' doesn't exist on type '{parent.name}'",
                "locations": error_locations(sel),
                "path": [*path, key],
                "extensions": {"code": "undefinedField", "typeName": parent.name, "fieldName": name},
            })
            return
        if is_abstract_type(parent):
            owners = [t.name for t in self.schema.get_possible_types(parent) if t.name in MODELLED_FIELDS]
        else:
            owners = [parent.name]
        for owner in owners:
            if self.modelled(owner, name) is False:
                errors.append({
                    "message": f"Field '{owner}.{name}' is not modelled by the shopsync simulator",
                    "locations": error_locations(sel),
                    "path": [*path, key],
                    "extensions": {"code": "NOT_MODELLED", "typeName": owner, "fieldName": name},
                })
        fdef = parent.fields.get(name) if hasattr(parent, "fields") else None
        if fdef is not None and sel.selection_set is not None:
            self.check(get_named_type(fdef.type), sel.selection_set, (*path, key), fragments, errors, seen)
