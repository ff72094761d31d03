"""Documents as the simulated shop receives them: parsed, validated, and what scopes they touch.

Pure: validation errors are reshaped into the messages Shopify (graphql-ruby) answers, and every
type and field a document touches is mapped to its ``requiredAccess`` scopes (for the 403 answer
of a shop that did not grant them). Compiled documents are cached by their text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    GraphQLError,
    TypeInfo,
    TypeInfoVisitor,
    Visitor,
    get_named_type,
    parse,
    validate,
    visit,
)

from shopsync.shopify.schema import load_schema, required_access

__all__ = ["Compiled", "access_of", "compile_document", "error_locations", "shopify_error"]


@dataclass(frozen=True)
class Compiled:
    """A parsed document and what validation said; cached by document text."""

    document: DocumentNode | None
    errors: tuple[dict, ...]
    #: requiredAccess scope alternatives of every type and field the document touches.
    access: tuple[tuple[str, ...], ...]



def error_locations(err: GraphQLError) -> list[dict]:
    """The ``locations`` of a graphql-core error, as plain dicts."""
    return [{"line": loc.line, "column": loc.column} for loc in err.locations or ()]


_SHOPIFY_MESSAGES: list[tuple[re.Pattern[str], Callable[[re.Match[str]], tuple[str, dict]]]] = [
    (
        re.compile(r"^Cannot query field '(?P<f>[^']+)' on type '(?P<t>[^']+)'"),
        lambda m: (
            f"Field '{m['f']}' doesn't exist on type '{m['t']}'",
            {"code": "undefinedField", "typeName": m["t"], "fieldName": m["f"]},
        ),
    ),
    (
        re.compile(r"^Unknown argument '(?P<a>[^']+)' on field '(?:[^'.]+\.)?(?P<f>[^']+)'"),
        lambda m: (
            f"Field '{m['f']}' doesn't accept argument '{m['a']}'",
            {"code": "argumentNotAccepted", "name": m["f"], "typeName": "Field", "argumentName": m["a"]},
        ),
    ),
    (
        re.compile(r"^Argument '(?:[^'.]+\.)?(?P<f>[^'(.]+)\((?P<a>[^:)]+):\)' of type '[^']+' is required"),
        lambda m: (
            f"Field '{m['f']}' is missing required arguments: {m['a']}",
            {"code": "missingRequiredArguments", "className": "Field", "name": m["f"], "arguments": m["a"]},
        ),
    ),
    (
        re.compile(r"^Field '(?P<f>[^']+)' argument '(?P<a>[^']+)' of type '[^']+' is required"),
        lambda m: (
            f"Field '{m['f']}' is missing required arguments: {m['a']}",
            {"code": "missingRequiredArguments", "className": "Field", "name": m["f"], "arguments": m["a"]},
        ),
    ),
    (
        re.compile(r"^Unknown type '(?P<t>[^']+)'"),
        lambda m: (f"No such type {m['t']}, so it can't be a fragment condition", {"code": "undefinedType", "typeName": m["t"]}),
    ),
    (
        re.compile(r"^Variable '\$(?P<v>[^']+)' is never used"),
        lambda m: (f"Variable ${m['v']} is declared by anonymous query but not used", {"code": "variableNotUsed", "variableName": m["v"]}),
    ),
    (
        re.compile(r"^Variable '\$(?P<v>[^']+)' is not defined"),
        lambda m: (f"Variable ${m['v']} is used by anonymous query but not declared", {"code": "variableNotDefined", "variableName": m["v"]}),
    ),
    (
        re.compile(r"^Field '(?P<f>[^']+)' of type '(?P<t>[^']+)' must have a selection of subfields"),
        lambda m: (
            f"Field must have selections (field '{m['f']}' returns {m['t'].strip('[]!')} but has no selections. Did you mean '{m['f']} {{ ... }}'?)",
            {"code": "selectionMismatch", "nodeName": f"field '{m['f']}'", "typeName": m["t"].strip("[]!")},
        ),
    ),
]


def shopify_error(err: GraphQLError) -> dict:
    """A graphql-core validation error in the shape Shopify (graphql-ruby) answers."""
    for pattern, build in _SHOPIFY_MESSAGES:
        m = pattern.match(err.message)
        if m:
            message, extensions = build(m)
            return {"message": message, "locations": error_locations(err), "extensions": extensions}
    return {"message": err.message, "locations": error_locations(err), "extensions": {"code": "validationError"}}


def _touched_access(document: DocumentNode) -> tuple[tuple[str, ...], ...]:
    schema = load_schema()
    info = TypeInfo(schema)
    found: set[tuple[str, ...]] = set()

    class _Collect(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            parent = info.get_parent_type()
            if parent is not None:
                acc = required_access(parent.name, node.name.value)
                if acc and acc.scopes:
                    found.add(acc.scopes)
            named = get_named_type(info.get_type())
            if named is not None:
                acc = required_access(named.name)
                if acc and acc.scopes:
                    found.add(acc.scopes)

    visit(document, TypeInfoVisitor(info, _Collect()))
    return tuple(sorted(found))


def access_of(document: DocumentNode) -> Compiled:
    """A document already known to be valid, with the scopes it touches."""
    return Compiled(document, (), _touched_access(document))


@lru_cache(maxsize=2048)
def compile_document(source: str) -> Compiled:
    """Parse and validate against the pinned schema (LRU-cached by document text)."""
    try:
        document = parse(source)
    except GraphQLError as exc:
        detail = exc.message.removeprefix("Syntax Error: ")
        return Compiled(None, ({"message": f"syntax error, {detail}", "locations": error_locations(exc)},), ())
    errors = validate(load_schema(), document)
    if errors:
        return Compiled(None, tuple(shopify_error(e) for e in errors), ())
    return Compiled(document, (), _touched_access(document))
