"""Parsing one resource file into a :class:`~shopsync.queries.model.Resource`.

The header is read by :func:`shopsync.queries.header.parse_header`; here each value is checked
against the pinned schema, the fragment is parsed, its nested connections are found (with their
page sizes and the bulk query's limits) and the access scopes the documents need are collected.
Every error is a :class:`~shopsync.errors.QueryDocumentError` naming the file and the line.
Documents built from the resource are validated separately (:mod:`shopsync.queries.validation`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

from graphql import (
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    SelectionSetNode,
    Source,
    get_named_type,
    is_abstract_type,
    is_enum_type,
    is_leaf_type,
    is_non_null_type,
    parse,
)
from graphql.pyutils import Undefined

from shopsync.errors import QueryDocumentError
from shopsync.queries.header import ResourceHeader, header_error, parse_header
from shopsync.queries.model import (
    BULK_MAX_CONNECTIONS,
    BULK_MAX_NESTING,
    BULK_VALUES,
    FILTERS,
    MAX_PAGE_SIZE,
    READ_ALL_ORDERS,
    RESERVED_ARGS,
    NestedConnection,
    Resource,
)
from shopsync.queries.scopes import minimal_scopes
from shopsync.shopify.cost import is_connection_type
from shopsync.shopify.schema import format_graphql_error, required_access
from shopsync.timeutil import parse_duration

_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")


def parse_resource(name: str, path: Path, text: str, schema: GraphQLSchema) -> Resource:
    """The resource called ``name`` from the file ``path`` holding ``text``, checked against ``schema``.

    Raises :class:`~shopsync.errors.QueryDocumentError` naming ``path``, the line and the field.
    """
    return _ResourceParser(name, Path(path), text, schema).parse()


@dataclass(frozen=True)
class _Root:
    """What the header's ``root`` names: the records' connection and, for ``parent.child``, the
    parents'; for ``object.connection``, the singular QueryRoot object above the records'."""

    text: str
    field: str
    parent_field: str | None
    parent_node_type: str | None
    conn_def: GraphQLField
    #: The connection field ``root_args`` apply to (the parents' for ``parent.child``).
    args_owner_def: GraphQLField
    node_type: GraphQLObjectType | GraphQLInterfaceType
    root_path: tuple[str, ...] = ()
    root_object_type: str | None = None
    singular: bool = False


class _ResourceParser:
    def __init__(self, name: str, path: Path, text: str, schema: GraphQLSchema) -> None:
        self.name = name
        self.path = path
        self.text = text
        self.schema = schema
        self.header = ResourceHeader(origin=str(path))
        self.access: list[tuple[str, ...]] = []
        self.exportable = True
        self.record_type = ""
        query_root = schema.query_type
        assert query_root is not None
        self.query_root: GraphQLObjectType = query_root

    def fail(self, message: str, line: int | None = None) -> QueryDocumentError:
        return header_error(str(self.path), message, line)

    def value(self, key: str) -> str | None:
        return self.header.value(key)

    def line(self, key: str) -> int | None:
        return self.header.line(key)

    # -- schema helpers --------------------------------------------------------------------
    def connection_node_type(self, conn: GraphQLObjectType) -> GraphQLObjectType | GraphQLInterfaceType:
        if "nodes" in conn.fields:
            return get_named_type(conn.fields["nodes"].type)
        edge = get_named_type(conn.fields["edges"].type)
        return get_named_type(edge.fields["node"].type)

    def concrete_names(self, t: Any) -> tuple[str, ...]:
        if is_abstract_type(t):
            return tuple(sorted(p.name for p in self.schema.get_possible_types(t)))
        return (t.name,)

    def note_access(self, type_name: str, field_name: str | None = None) -> None:
        info = required_access(type_name, field_name)
        if info is not None and info.scopes:
            self.access.append(info.scopes)

    # -- the whole file ---------------------------------------------------------------------
    def parse(self) -> Resource:
        if not _NAME_RE.match(self.name):
            raise self.fail(f"resource name {self.name!r} (the file name) must be lower_snake_case")
        self.header = parse_header(self.text, str(self.path))
        # The checks run in header order, then the fragment: the first problem is the one reported.
        root = self.parse_root()
        incremental = self.parse_filter(root)
        sort_key = self.parse_sort(root)
        root_args = self.value("root_args") or ""
        if root_args:
            self.check_root_args(root_args, root.args_owner_def, root.parent_field or root.field)
        count_field = self.parse_count()
        deletion_subject = self.parse_deletions()
        every = self.parse_every(incremental)
        self.exportable = self.parse_bulk()
        fragment, nested = self.parse_body(root, incremental)

        scopes = list(minimal_scopes(self.access))
        if root.node_type.name == "Order":
            scopes.append(READ_ALL_ORDERS)
        return Resource(
            name=self.name,
            path=self.path,
            root_field=root.field,
            parent_field=root.parent_field,
            parent_node_type=root.parent_node_type,
            root_args=root_args,
            sort_key=sort_key,
            incremental=incremental,
            count_field=count_field,
            deletion_subject=deletion_subject,
            node_type=root.node_type.name,
            fragment_name=fragment.name.value,
            fragment_source=self.text,
            nested=nested,
            required_scopes=tuple(sorted(set(scopes))),
            access_requirements=tuple(dict.fromkeys(self.access)),
            root_path=root.root_path,
            root_object_type=root.root_object_type,
            every=every,
            exportable=self.exportable,
            singular=root.singular,
            fragment_ast=fragment,
            header_lines=MappingProxyType(dict(self.header.lines)),
        )

    # -- header values ------------------------------------------------------------------------
    def parse_root(self) -> _Root:
        """``root``: a connection field of QueryRoot, ``parent.child`` (paged under each parent) or
        ``object.connection`` (the connection of a singular QueryRoot object, ``shop.metafields``)."""
        query_root = self.query_root
        root_text = self.value("root") or ""
        root_line = self.line("root")
        parent_field: str | None = None
        parent_node_type: str | None = None
        if "." in root_text:
            parent_field, _, root_field = root_text.partition(".")
            if not parent_field or not root_field or "." in root_field:
                raise self.fail(
                    f"root: {root_text!r} must be 'field', 'parent.child' or 'object.connection'", root_line
                )
            parent_def = query_root.fields.get(parent_field)
            if parent_def is not None and not is_leaf_type(get_named_type(parent_def.type)) and not is_connection_type(
                get_named_type(parent_def.type)
            ):
                return self.object_root(root_text, parent_field, parent_def, root_field, root_line)
            if parent_def is None or not is_connection_type(get_named_type(parent_def.type)):
                raise self.fail(
                    f"root: {parent_field!r} is neither a connection field nor an object field of QueryRoot", root_line
                )
            parent_conn = get_named_type(parent_def.type)
            parent_type = self.connection_node_type(parent_conn)
            if is_abstract_type(parent_type):
                raise self.fail(f"root: {parent_field!r} returns {parent_type.name}, an abstract type", root_line)
            parent_node_type = parent_type.name
            conn_def = parent_type.fields.get(root_field)
            if conn_def is None or not is_connection_type(get_named_type(conn_def.type)):
                raise self.fail(f"root: {parent_type.name}.{root_field} is not a connection field", root_line)
            if "Node" not in {i.name for i in parent_type.interfaces}:
                raise self.fail(f"root: {parent_type.name} does not implement Node (needed to page under it)", root_line)
            args_owner_def = parent_def
            self.note_access("QueryRoot", parent_field)
            self.note_access(parent_type.name)
            self.note_access(parent_type.name, root_field)
        else:
            root_field = root_text
            conn_def = query_root.fields.get(root_field)
            if (
                conn_def is not None and isinstance(get_named_type(conn_def.type), GraphQLObjectType)
                and not is_connection_type(get_named_type(conn_def.type)) and not _required_args(conn_def)
            ):  # fmt: skip
                return self.singular_root(root_text, conn_def, root_line)
            if conn_def is None or not is_connection_type(get_named_type(conn_def.type)):
                raise self.fail(f"root: {root_field!r} is not a connection field of QueryRoot", root_line)
            args_owner_def = conn_def
            self.note_access("QueryRoot", root_field)
        conn_type: GraphQLObjectType = get_named_type(conn_def.type)
        node_type = self.connection_node_type(conn_type)
        if "id" not in node_type.fields:
            raise self.fail(f"root: {node_type.name} has no id field", root_line)
        return _Root(root_text, root_field, parent_field, parent_node_type, conn_def, args_owner_def, node_type)

    def object_root(self, root_text: str, object_field: str, object_def: GraphQLField, root_field: str, line) -> _Root:
        """``object.connection``: the records' connection on a singular QueryRoot object."""
        obj_type = get_named_type(object_def.type)
        if not isinstance(obj_type, GraphQLObjectType):
            raise self.fail(f"root: {object_field!r} returns {obj_type.name}, an abstract type", line)
        required = [n for n, a in object_def.args.items() if is_non_null_type(a.type) and a.default_value is Undefined]
        if required:
            raise self.fail(f"root: {object_field} needs arguments ({', '.join(required)}); it cannot be a root", line)
        conn_def = obj_type.fields.get(root_field)
        if conn_def is None or not is_connection_type(get_named_type(conn_def.type)):
            raise self.fail(f"root: {obj_type.name}.{root_field} is not a connection field", line)
        self.note_access("QueryRoot", object_field)
        self.note_access(obj_type.name)
        self.note_access(obj_type.name, root_field)
        node_type = self.connection_node_type(get_named_type(conn_def.type))
        if "id" not in node_type.fields:
            raise self.fail(f"root: {node_type.name} has no id field", line)
        return _Root(
            root_text, root_field, None, None, conn_def, conn_def, node_type,
            root_path=(object_field,), root_object_type=obj_type.name,
        )  # fmt: skip

    def singular_root(self, root_text: str, object_def: GraphQLField, line) -> _Root:
        """A singular QueryRoot object (``shop``): the resource is that one record."""
        obj_type = get_named_type(object_def.type)
        assert isinstance(obj_type, GraphQLObjectType)  # parse_root checked
        if "id" not in obj_type.fields:
            raise self.fail(f"root: {obj_type.name} has no id field", line)
        # One record read by one query: no windows, pages, count or deletion events apply.
        for key in ("sort", "count", "deletions", "root_args"):
            if self.value(key) is not None:
                raise self.fail(f"{key}: {root_text} is a single object (not a connection); remove {key}", self.line(key))
        if self.value("filter") != "none":
            raise self.fail(f"filter: {root_text} is a single object, read whole: use filter: none", self.line("filter"))
        self.note_access("QueryRoot", root_text)
        return _Root(root_text, root_text, None, None, object_def, object_def, obj_type, singular=True)

    def parse_every(self, incremental: bool) -> timedelta | None:
        """``every``: the resource's own schedule (a duration), for resources read whole."""
        text = self.value("every")
        if text is None:
            return None
        try:
            every = parse_duration(text)
        except (ValueError, TypeError) as exc:
            raise self.fail(f"every: {text!r} is not a duration ('30m', '6h', '1d'): {exc}", self.line("every")) from exc
        if every.total_seconds() <= 0:
            raise self.fail(f"every: {text!r} must be longer than 0", self.line("every"))
        return every

    def parse_bulk(self) -> bool:
        """``bulk``: ``no`` reads the resource page by page only (its fragment holds a connection
        Shopify's bulk queries refuse); ``yes``, the default, lets the engine export it."""
        text = self.value("bulk") or "yes"
        if text not in BULK_VALUES:
            raise self.fail(f"bulk: {text!r} must be one of {', '.join(BULK_VALUES)}", self.line("bulk"))
        return text == "yes"

    def parse_filter(self, root: _Root) -> bool:
        """``filter``: whether the resource is read in ``updated_at`` windows."""
        filt = self.value("filter")
        if filt not in FILTERS:
            raise self.fail(f"filter: {filt!r} must be one of {', '.join(FILTERS)}", self.line("filter"))
        incremental = filt == "updated_at"
        if incremental and "query" not in root.conn_def.args:
            raise self.fail(f"filter: updated_at needs a query argument, which {root.field} does not take", self.line("filter"))
        docs = root.conn_def.args["query"].description or "" if incremental else ""
        if incremental and docs and "| updated_at |" not in docs:
            # The schema documents each connection's search filters: without updated_at a window
            # would silently match nothing (or everything).
            raise self.fail(
                f"filter: updated_at: the schema lists no updated_at search filter for {root.text}; "
                "use filter: none (read whole, with its own every)",
                self.line("filter"),
            )
        return incremental

    def parse_sort(self, root: _Root) -> str | None:
        """``sort``: a value of the records' connection's ``sortKey`` enum."""
        sort_key = self.value("sort")
        if sort_key is not None:
            arg = root.conn_def.args.get("sortKey")
            if arg is None:
                raise self.fail(f"sort: {root.field} takes no sortKey argument", self.line("sort"))
            enum = get_named_type(arg.type)
            if not is_enum_type(enum) or sort_key not in enum.values:
                known = ", ".join(enum.values) if is_enum_type(enum) else ""
                raise self.fail(f"sort: {sort_key!r} is not a value of {enum.name} ({known})", self.line("sort"))
        return sort_key

    def parse_count(self) -> str | None:
        """``count``: a ``Count`` field of QueryRoot."""
        count_field = self.value("count")
        if count_field is not None:
            count_def = self.query_root.fields.get(count_field)
            if count_def is None or get_named_type(count_def.type).name != "Count":
                raise self.fail(f"count: {count_field!r} is not a Count field of QueryRoot", self.line("count"))
            self.note_access("QueryRoot", count_field)
        return count_field

    def parse_deletions(self) -> str | None:
        """``deletions``: the ``EventSubjectType`` of the records' destroy events."""
        deletion_subject = self.value("deletions")
        if deletion_subject is not None:
            subjects = self.schema.get_type("EventSubjectType")
            if deletion_subject not in subjects.values:  # type: ignore[union-attr]
                raise self.fail(
                    f"deletions: {deletion_subject!r} is not an EventSubjectType ({', '.join(subjects.values)})",  # type: ignore[union-attr]
                    self.line("deletions"),
                )
        return deletion_subject

    # -- the fragment -------------------------------------------------------------------------
    def parse_body(self, root: _Root, incremental: bool) -> tuple[FragmentDefinitionNode, tuple[NestedConnection, ...]]:
        """The file's one fragment (on the records' type) and the connections nested in it."""
        node_type = root.node_type
        fragment = self.parse_fragment()
        frag_line = fragment.loc.source.get_location(fragment.loc.start).line if fragment.loc else None
        cond = fragment.type_condition.name.value
        if cond != node_type.name:
            raise self.fail(
                f"fragment {fragment.name.value} is on {cond}, but {root.text} returns {node_type.name} nodes",
                frag_line,
            )
        top = self.top_level_fields(fragment.selection_set)
        if "id" not in top:
            raise self.fail(f"fragment {fragment.name.value} must select id", frag_line)
        if incremental and "updatedAt" not in top:
            raise self.fail(f"fragment {fragment.name.value} must select updatedAt (filter: updated_at)", frag_line)
        self.note_access(node_type.name)
        self.record_type = node_type.name
        nested = self.find_connections(node_type, fragment.selection_set, path=(), depth=1, in_object=False)
        if root.singular and nested:
            raise self.fail(
                f"{nested[0].field}: the record of a single-object root ({root.text}) cannot hold a connection; "
                f"read it as a resource of its own (root: {root.text}.{nested[0].field})",
                nested[0].line or frag_line,
            )
        self.check_nesting(nested, root.parent_field is not None, node_type.name, root.parent_node_type, frag_line)
        return fragment, nested

    def check_root_args(self, root_args: str, owner_def, owner_name: str) -> None:
        line = self.line("root_args") or 1
        # Pad with newlines so graphql-core's line numbers are the header line's.
        source = Source("\n" * (line - 1) + "{ f(" + root_args + ") }", str(self.path))
        try:
            doc = parse(source)
        except GraphQLError as exc:
            raise QueryDocumentError(format_graphql_error(exc, str(self.path)) + " (in root_args)") from exc
        field_node = doc.definitions[0].selection_set.selections[0]  # type: ignore[attr-defined]
        for arg in field_node.arguments or ():
            name = arg.name.value
            if name in RESERVED_ARGS:
                raise self.fail(f"root_args: {name} is set by shopsync and must not be given here", line)
            if name not in owner_def.args:
                raise self.fail(f"root_args: {owner_name} takes no argument {name!r}", line)

    def parse_fragment(self) -> FragmentDefinitionNode:
        try:
            doc = parse(Source(self.text, str(self.path)))
        except GraphQLError as exc:
            raise QueryDocumentError(format_graphql_error(exc, str(self.path))) from exc
        defs = doc.definitions
        if len(defs) != 1 or not isinstance(defs[0], FragmentDefinitionNode):
            raise self.fail("the file must hold exactly one fragment definition (and nothing else)")
        return defs[0]

    def top_level_fields(self, selection_set: SelectionSetNode) -> set[str]:
        names: set[str] = set()
        for sel in selection_set.selections:
            if isinstance(sel, FieldNode) and sel.alias is None:
                names.add(sel.name.value)
            elif isinstance(sel, InlineFragmentNode) and sel.type_condition is None:
                names |= self.top_level_fields(sel.selection_set)
        return names

    def node_line(self, node) -> int | None:
        return node.loc.source.get_location(node.loc.start).line if node.loc else None

    def find_connections(
        self,
        parent,
        selection_set: SelectionSetNode | None,
        *,
        path: tuple[str, ...],
        depth: int,
        in_object: bool,
        through: tuple[str, ...] = (),
        within: tuple[str, ...] = (),
    ) -> tuple[NestedConnection, ...]:
        """The connections selected on ``parent`` nodes (recursing into their node selections).

        Field errors (unknown fields) are left to document validation, which reports them with
        their line; this walk only needs the shape.
        """
        found: list[NestedConnection] = []
        if selection_set is None:
            return ()
        for sel in selection_set.selections:
            if isinstance(sel, FragmentSpreadNode):
                raise self.fail(
                    f"fragment spread ...{sel.name.value}: a resource file holds one fragment; inline the fields",
                    self.node_line(sel),
                )
            if isinstance(sel, InlineFragmentNode):
                target = parent
                if sel.type_condition is not None:
                    target = self.schema.get_type(sel.type_condition.name.value) or parent
                found.extend(
                    self.find_connections(
                        target, sel.selection_set, path=path, depth=depth, in_object=in_object, through=through,
                        within=within,
                    )
                )
                continue
            assert isinstance(sel, FieldNode)
            fields = getattr(parent, "fields", {})
            field_def = fields.get(sel.name.value)
            if field_def is None:
                continue
            named = get_named_type(field_def.type)
            self.note_access(parent.name, sel.name.value)
            if is_leaf_type(named):
                continue
            self.note_access(named.name)
            if not is_connection_type(named):
                if self.pages_under_list(sel, field_def, named, in_object, through):
                    # A list of nodes (Order.refunds): a connection of each element is drained
                    # under the element's id (page by page only: bulk: no).
                    found.extend(
                        self.find_connections(
                            named, sel.selection_set, path=path, depth=depth, in_object=False, through=(sel.name.value,)
                        )
                    )
                    continue
                if self.drains_within(sel, field_def, path, in_object, through, within):
                    # One object of the record (DiscountNode.discount): its connections are
                    # drained under the record's id, through the object (page by page only).
                    found.extend(
                        self.find_connections(
                            named, sel.selection_set, path=path, depth=depth, in_object=False, within=(sel.name.value,)
                        )
                    )
                    continue
                # A plain object: connections inside it could not be drained (no node id to page
                # under), so they are refused below.
                self.find_connections(named, sel.selection_set, path=path, depth=depth, in_object=True)
                continue
            found.append(
                self.nested_connection(
                    parent, sel, named, path=path, depth=depth, in_object=in_object, through=through, within=within
                )
            )
        return tuple(found)

    def drains_below(self, sel: FieldNode, in_object: bool, through) -> bool:
        """Whether connections below ``sel`` may be drained at all: a ``bulk: no`` resource, ``sel``
        selected on a record or connection node (not in a plain object), not inside a list already."""
        return not self.exportable and not in_object and not through and sel.selection_set is not None

    def drains_within(self, sel: FieldNode, field_def: GraphQLField, path, in_object: bool, through, within) -> bool:
        """Whether ``sel`` is one object (not a list) of the record whose connections may be drained
        under the record's id through it: a ``bulk: no`` resource, directly on the record."""
        return (
            self.drains_below(sel, in_object, through)
            and not within
            and not path
            and sel.alias is None
            and not _is_list(field_def)
        )

    def lookup_field(self, type_name: str, line) -> str:
        """The QueryRoot field that finds a ``type_name`` by its id alone (``discountNode(id:)``)."""
        for name, f in self.query_root.fields.items():
            named = get_named_type(f.type)
            id_arg = f.args.get("id")
            if (
                getattr(named, "name", None) == type_name and id_arg is not None
                and get_named_type(id_arg.type).name == "ID" and _required_args(f) == ["id"]
                and not f.deprecation_reason
            ):  # fmt: skip
                self.note_access("QueryRoot", name)
                return name
        raise self.fail(f"QueryRoot has no field finding a {type_name} by id, to drain a connection under it", line)

    def pages_under_list(self, sel: FieldNode, field_def: GraphQLField, named, in_object: bool, through) -> bool:
        """Whether ``sel`` is a list of nodes whose connections may be drained under each element's
        id: a ``bulk: no`` resource, directly on a record or connection node, one list deep."""
        return (
            self.drains_below(sel, in_object, through)
            and _is_list(field_def)
            and isinstance(named, GraphQLObjectType)
            and "Node" in {i.name for i in named.interfaces}
            and sel.selection_set is not None  # (drains_below checked it; this narrows the type)
            and "id" in self.top_level_fields(sel.selection_set)
        )

    def implements_node(self, node_type) -> bool:
        """A Node type, or an interface or union whose every member is one (``Product.media``)."""
        if is_abstract_type(node_type):
            members = self.schema.get_possible_types(node_type)
            return bool(members) and all("Node" in {i.name for i in m.interfaces} for m in members)
        return "Node" in {i.name for i in getattr(node_type, "interfaces", ())}

    def nested_connection(
        self, parent, sel: FieldNode, conn, *, path, depth, in_object, through=(), within=()
    ) -> NestedConnection:
        line = self.node_line(sel)
        name = sel.name.value
        if in_object:
            hint = (
                " or, with bulk: no, on a list of nodes that selects id or in one object of the record"
                if not self.exportable else ""
            )  # fmt: skip
            raise self.fail(
                f"{parent.name}.{name}: a connection must be selected directly on a record or on a "
                f"nested connection's node{hint} (it cannot be paged under a plain object)",
                line,
            )
        if sel.alias is not None and not within:
            raise self.fail(f"{name}: aliases are not supported on connection fields (but inside one object of the record)", line)
        key = sel.alias.value if sel.alias is not None else name
        if depth > 2:
            raise self.fail(f"{name}: connections may nest at most 2 levels below the record", line)
        first = None
        for arg in sel.arguments or ():
            if arg.name.value in ("last", "after", "before"):
                raise self.fail(f"{name}: {arg.name.value} is set by shopsync; give only first: N", line)
            if arg.name.value == "first":
                if not isinstance(arg.value, IntValueNode):
                    raise self.fail(f"{name}: first must be an integer literal (the page size)", line)
                first = int(arg.value.value)
        if first is None:
            raise self.fail(f"{name}: a nested connection needs first: N (its page size)", line)
        if not 1 <= first <= MAX_PAGE_SIZE:
            raise self.fail(f"{name}: first: {first} must be between 1 and {MAX_PAGE_SIZE}", line)
        node_type = self.connection_node_type(conn)
        node_sel = self.connection_node_selection(sel, name, line)
        if node_sel is None:
            raise self.fail(f"{name}: select the nodes with edges {{ node {{ … }} }} or nodes {{ … }}", line)
        if not self.implements_node(node_type) and self.exportable:
            raise self.fail(
                f"{name}: {node_type.name} does not implement Node, and Shopify's bulk queries take only "
                "Node connections; read the resource page by page only with 'bulk: no' in its header",
                line,
            )
        self.note_access(node_type.name)
        own_path = path + through + within + (key,)
        children = self.find_connections(node_type, node_sel, path=own_path, depth=depth + 1, in_object=False)
        if "id" not in self.top_level_fields(node_sel) and (self.exportable or children):
            why = "bulk results join children by id" if self.exportable else "its own connections are drained by id"
            raise self.fail(f"{name}: the nested nodes must select id ({why})", line)
        return NestedConnection(
            field=key,
            path=own_path,
            through=through,
            within=within,
            lookup=self.lookup_field(self.record_type, line) if within else None,
            parent_type=parent.name,
            node_type=node_type.name,
            node_types=self.concrete_names(node_type),
            page_size=first,
            depth=depth,
            children=children,
            line=line or 0,
        )

    def connection_node_selection(self, sel: FieldNode, name: str, line) -> SelectionSetNode | None:
        edges_node = nodes = None
        for sub in sel.selection_set.selections if sel.selection_set else ():
            if not isinstance(sub, FieldNode):
                raise self.fail(f"{name}: use plain fields (edges, nodes) inside a connection", line)
            if sub.name.value == "edges":
                for inner in sub.selection_set.selections if sub.selection_set else ():
                    if isinstance(inner, FieldNode) and inner.name.value == "node":
                        edges_node = inner.selection_set
                    elif not (isinstance(inner, FieldNode) and inner.name.value == "cursor"):
                        raise self.fail(f"{name}: only node and cursor may be selected on edges", line)
            elif sub.name.value == "nodes":
                nodes = sub.selection_set
            elif sub.name.value != "pageInfo":
                raise self.fail(f"{name}: {sub.name.value} cannot be kept in a record (select edges or nodes)", line)
        if edges_node is not None and nodes is not None:
            raise self.fail(f"{name}: select either edges {{ node }} or nodes, not both", line)
        return edges_node if edges_node is not None else nodes

    def check_nesting(self, nested, is_parent_child: bool, node_type: str, parent_type: str | None, line) -> None:
        flat: list[NestedConnection] = []
        stack = list(reversed(nested))
        while stack:  # depth first, in file order (so messages name the later duplicate)
            nc = stack.pop()
            flat.append(nc)
            stack.extend(reversed(nc.children))
        connections = 1 + (1 if is_parent_child else 0) + len(flat)
        if connections > BULK_MAX_CONNECTIONS and self.exportable:
            raise self.fail(
                f"the bulk query would hold {connections} connections; Shopify allows at most {BULK_MAX_CONNECTIONS}",
                line,
            )
        deepest = max((nc.depth for nc in flat), default=0) + (1 if is_parent_child else 0)
        if deepest > BULK_MAX_NESTING:
            raise self.fail(
                f"the bulk query would nest connections {deepest} levels deep; Shopify allows at most {BULK_MAX_NESTING}",
                line,
            )
        # Bulk child lines are matched to their nested connection by GID type, so the types must
        # be unambiguous.
        owner: dict[str, NestedConnection] = {}
        reserved = {node_type} if is_parent_child else set()
        if parent_type:
            reserved.add(parent_type)
        for nc in (flat if self.exportable else ()):  # page by page, each list is known by its path
            for t in nc.node_types:
                if t in reserved:
                    raise self.fail(f"{nc.field}: its node type {t} is also the record or parent type", nc.line)
                if t in owner:
                    raise self.fail(
                        f"{nc.field} and {owner[t].field} both hold {t} nodes; bulk results could not be "
                        "told apart (select only one of them)",
                        nc.line,
                    )
                owner[t] = nc



def _is_list(field_def: GraphQLField) -> bool:
    """Whether the field returns a list (under its non-null wrapper, if any)."""
    wrapped = field_def.type
    while is_non_null_type(wrapped):
        wrapped = wrapped.of_type
    return isinstance(wrapped, GraphQLList)


def _required_args(field_def: GraphQLField) -> list[str]:
    """The arguments a field cannot be selected without (``order(id:)``)."""
    return [n for n, a in field_def.args.items() if is_non_null_type(a.type) and a.default_value is Undefined]


__all__ = ["parse_resource"]
