"""Cursor walks of the paginated path against a scripted client: drains that do not advance stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from shopsync.client import CostBudget
from shopsync.engine import paginated
from shopsync.engine.context import ShopRuntime, StreamContext
from shopsync.errors import MalformedAnswerError, PaginationStalledError
from shopsync.queries import load_resources
from shopsync.settings import SyncConfig

ORDER = "gid://shopify/Order/1"


def items(*ids: int, more: bool, cursor: str | None) -> dict:
    return {"pageInfo": {"hasNextPage": more, "endCursor": cursor}, "edges": [{"node": {"id": f"gid://shopify/LineItem/{i}"}} for i in ids]}


@dataclass
class Response:
    data: dict[str, Any]
    requested_cost: float | None = 10.0
    actual_cost: float | None = 4.0
    duration: float = 0.01


class ScriptedClient:
    """Answers drain requests from a script, applying the engine's check as ShopClient does
    (a problem would be a MalformedAnswerError; here it is raised at once)."""

    def __init__(self, answers: list[dict]) -> None:
        self.answers = list(answers)
        self.afters: list[str | None] = []

    async def execute(self, document: str, variables: dict, *, check=None, **_: Any) -> Response:
        self.afters.append(variables.get("after"))
        data = self.answers.pop(0)
        problem = check(data) if check is not None else None
        if problem is not None:
            raise MalformedAnswerError(f"malformed answer: {problem}")
        return Response(data)


def context(client: ScriptedClient) -> StreamContext:
    runtime = ShopRuntime(name="acme", client=client, budget=CostBudget(), bulk_slots=asyncio.Semaphore(1))  # type: ignore[arg-type]
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    return StreamContext(
        shop=runtime, resource=load_resources()["orders"], state_store=None,  # type: ignore[arg-type]
        settings=SyncConfig(), session=None, work_dir=Path("."), sleep=sleep,  # type: ignore[arg-type]
    )  # fmt: skip


def node_with_more_items() -> dict:
    return {"id": ORDER, "lineItems": items(1, 2, more=True, cursor="c1")}


async def test_a_drain_glitch_is_read_again_and_the_record_is_complete():
    client = ScriptedClient([
        {"node": {"lineItems": items(3, more=True, cursor="c1")}},  # repeats the cursor it was asked with
        {"node": {"lineItems": items(3, 4, more=True, cursor="c2")}},
        {"node": {"lineItems": items(5, more=False, cursor="c3")}},
    ])  # fmt: skip
    record = await paginated._complete(context(client), node_with_more_items())
    assert [li["id"].rsplit("/", 1)[1] for li in record["lineItems"]] == ["1", "2", "3", "4", "5"]
    assert client.afters == ["c1", "c1", "c2"]


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ({"node": {"lineItems": items(3, more=True, cursor="c1")}}, "is the cursor the page was asked with"),
        ({"node": {"lineItems": items(3, more=True, cursor=None)}}, "endCursor is null"),
        ({"node": {"lineItems": items(more=True, cursor="c9")}}, "an empty page with hasNextPage true"),
    ],
)
async def test_a_drain_that_never_advances_stops_after_one_retry(answer, problem):
    client = ScriptedClient([answer] * 10)
    with pytest.raises(PaginationStalledError, match=problem) as info:
        await paginated._complete(context(client), node_with_more_items())
    assert str(info.value).startswith(f"shop acme: resource orders: pagination does not advance: drain of lineItems of {ORDER}")
    assert client.afters == ["c1", "c1"]  # read twice, then stopped: no loop


async def test_a_drain_cycling_between_cursors_stops():
    client = ScriptedClient([
        {"node": {"lineItems": items(3, more=True, cursor="c2")}},
        {"node": {"lineItems": items(4, more=True, cursor="c3")}},
        {"node": {"lineItems": items(5, more=True, cursor="c2")}},
    ] * 3)  # fmt: skip
    with pytest.raises(PaginationStalledError, match="endCursor 'c2' was already returned by an earlier page"):
        await paginated._complete(context(client), node_with_more_items())


async def test_a_malformed_drain_answer_is_refused_before_anything_is_appended():
    client = ScriptedClient([{"node": {"lineItems": {"edges": []}}}])
    with pytest.raises(MalformedAnswerError, match=r"data\.node\.lineItems\.pageInfo missing"):
        await paginated._complete(context(client), node_with_more_items())
    # A parent deleted meanwhile is not malformed: the record keeps what it has.
    record = await paginated._complete(context(ScriptedClient([{"node": None}])), node_with_more_items())
    assert len(record["lineItems"]) == 2
