"""Reading a single-object resource (``root: shop``): one query, one record, one commit.

Such a root is no connection, so there are no pages and no bulk form (a bulk query needs a
connection); whichever path is configured, the stream reads it with
:func:`shopsync.queries.builder.object_query`, and the record is byte-identical either way. The
answer is checked (an object with an id) before it is written, and the record commits with the
stream's state.
"""

from __future__ import annotations

from functools import partial

from shopsync.engine.context import StreamContext
from shopsync.engine.records import normalize_node
from shopsync.queries import builder
from shopsync.shopify.shape import object_problem
from shopsync.state.models import Record, StreamState


async def read_object(ctx: StreamContext, state: StreamState) -> StreamState:
    """Read the resource's one record and commit it with ``state`` (its window then complete)."""
    resource = ctx.resource
    response = await ctx.shop.client.execute(
        builder.object_query(resource),
        {},
        priority=ctx.priority,
        operation=f"resource {resource.name}",
        check=partial(object_problem, field=resource.root_field),
    )
    ctx.meter.add(response)
    record, _pending = normalize_node(response.data[resource.root_field], resource)  # no nested: checked at load
    state = state.with_page(None, 1)
    await ctx.state_store.commit(state, [Record.from_node(shop=ctx.shop.name, resource=resource.name, data=record)])
    ctx.observer.on_records(ctx.shop.name, resource.name, state.path or "paginated", 1)
    return state


__all__ = ["read_object"]
