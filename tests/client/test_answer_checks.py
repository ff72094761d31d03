"""ShopClient.execute(check=...): an ok answer of the wrong shape is a MalformedAnswerError, retried like a 5xx."""

from __future__ import annotations

import pytest

from shopsync.errors import MalformedAnswerError, OutcomeUnknownError
from shopsync.shopify.shape import PageShape, check_page
from tests.client.test_graphql import SHOP_QUERY, Harness, ok, session, shop  # noqa: F401 (fixtures)

ORDERS = PageShape(path=("orders",))
PAGE = {"orders": {"pageInfo": {"hasNextPage": False, "endCursor": None}, "edges": [{"node": {"id": "gid://shopify/Order/1"}}]}}


def check(data):
    return check_page(data, ORDERS)


async def test_a_malformed_answer_is_resent_with_backoff_and_the_good_one_returned(shop, session):  # noqa: F811
    shop.script = [ok({"orders": {"edges": []}}), ok(PAGE)]
    h = Harness(shop, session)
    resp = await h.client.execute(SHOP_QUERY, check=check, operation="resource orders")
    assert resp.data == PAGE and resp.attempts == 2
    assert [e[2] for e in h.observer.of("retry")] == ["malformed"]
    assert h.retry_sleeps == pytest.approx(h.expected_backoffs(1))
    assert h.budget.in_flight() == 0  # it ran: the reservation was settled, not left hanging


async def test_a_shape_that_stays_wrong_fails_after_max_attempts_naming_shop_operation_and_path(shop, session):  # noqa: F811
    shop.script = [ok({})] * 5
    h = Harness(shop, session, max_attempts=3)
    with pytest.raises(MalformedAnswerError) as info:
        await h.client.execute(SHOP_QUERY, check=check, operation="resource orders")
    assert str(info.value) == "shop acme: resource orders: malformed answer: data.orders missing"
    assert info.value.reason == "malformed" and len(shop.requests) == 3
    assert h.budget.in_flight() == 0


async def test_a_malformed_answer_to_a_request_that_starts_something_is_not_resent(shop, session):  # noqa: F811
    shop.script = [ok({}), ok(PAGE)]
    h = Harness(shop, session)
    with pytest.raises(OutcomeUnknownError, match="malformed answer: data.orders missing"):
        await h.client.execute(SHOP_QUERY, check=check, idempotent=False, operation="bulk start")
    assert len(shop.requests) == 1  # it ran: resending could start a second operation


async def test_without_a_check_any_object_is_data(shop, session):  # noqa: F811
    shop.script = [ok({"orders": "nonsense"})]
    resp = await Harness(shop, session).client.execute(SHOP_QUERY)
    assert resp.data == {"orders": "nonsense"}
