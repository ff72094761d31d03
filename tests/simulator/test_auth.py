"""Tokens, the client-credentials grant, whole-shop statuses (401/402/403/423) and versions."""

from __future__ import annotations

import pytest

from shopsync.errors import ConfigError
from shopsync.simulator.server import run_simulator

Q = "{ orders(first: 2) { nodes { id } } }"
INVALID = {"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}
GRANT = {"grant_type": "client_credentials", "client_id": "sim-client-id", "client_secret": "sim-client-secret"}


async def test_missing_or_wrong_token_is_401_in_shopify_shape(server, gql) -> None:
    shop = server.shop()
    for token in (None, "shpat_wrong"):
        ans = await gql(shop, Q, token=token)
        assert ans.status == 401
        assert ans.body == INVALID
    assert shop.counters.auth_failures == 2
    assert shop.counters.http_status[401] == 2


@pytest.mark.parametrize(
    ("status", "text"),
    [(402, "Unavailable Shop"), (403, "requires merchant approval for read_orders scope"), (423, "Unavailable Shop")],
)
async def test_shop_status_switch_at_runtime(server, gql, status: int, text: str) -> None:
    shop = server.shop()
    assert (await gql(shop, Q)).status == 200
    shop.set_status(status)
    ans = await gql(shop, Q)
    assert ans.status == status
    assert text in ans.body["errors"]
    shop.set_status(None)
    assert (await gql(shop, Q)).status == 200


async def test_shop_status_from_config_and_bad_value(make_config, gql) -> None:
    async with run_simulator(make_config(status_override=423)) as srv:
        assert (await gql(srv.shop(), Q)).status == 423
        with pytest.raises(ConfigError):
            srv.shop().set_status(418)
    with pytest.raises(ConfigError):
        make_config(status_override=500)


async def test_missing_scope_answers_403_naming_it_for_that_resource_only(server, gql) -> None:
    shop = server.shop()
    shop.set_scopes(s for s in shop.config.scopes if s != "read_customers")
    denied = await gql(shop, "{ customers(first: 2) { nodes { id } } }")
    assert denied.status == 403
    assert denied.body == {"errors": "[API] This action requires merchant approval for read_customers scope."}
    assert (await gql(shop, Q)).status == 200  # orders still readable


async def test_client_credentials_grant_issue_use_expire(server, gql, http, clock) -> None:
    shop = server.shop()
    async with http.post(shop.token_url, data=GRANT) as r:
        assert r.status == 200
        body = await r.json()
    assert set(body) == {"access_token", "scope", "expires_in"}
    assert body["expires_in"] == shop.config.issued_token_ttl
    assert "read_orders" in body["scope"].split(",")
    token = body["access_token"]
    assert (await gql(shop, Q, token=token)).status == 200

    clock.advance(shop.config.issued_token_ttl - 1)
    assert (await gql(shop, Q, token=token)).status == 200
    clock.advance(1)
    expired = await gql(shop, Q, token=token)
    assert expired.status == 401 and expired.body == INVALID


async def test_revoked_tokens_are_refused_and_a_new_grant_works(server, gql, http) -> None:
    shop = server.shop()
    async with http.post(shop.token_url, json=GRANT) as r:  # JSON bodies are accepted too
        token = (await r.json())["access_token"]
    assert shop.revoke_tokens() == 1
    assert (await gql(shop, Q, token=token)).status == 401
    assert (await gql(shop, Q)).status == 200  # the static token survives by default
    async with http.post(shop.token_url, data=GRANT) as r:
        fresh = (await r.json())["access_token"]
    assert (await gql(shop, Q, token=fresh)).status == 200
    shop.revoke_tokens(static=True)
    assert (await gql(shop, Q)).status == 401


@pytest.mark.parametrize(
    ("form", "status", "error"),
    [
        ({**GRANT, "client_secret": "nope"}, 401, "invalid_client"),
        ({**GRANT, "client_id": "other"}, 401, "invalid_client"),
        ({**GRANT, "grant_type": "authorization_code"}, 400, "unsupported_grant_type"),
        ({"grant_type": "client_credentials", "client_id": "sim-client-id"}, 400, "invalid_request"),
    ],
)
async def test_grant_errors(server, http, form: dict, status: int, error: str) -> None:
    async with http.post(server.shop().token_url, data=form) as r:
        assert r.status == status
        body = await r.json()
    assert body["error"] == error
    assert "access_token" not in body


async def test_bare_token_url_serves_the_first_shop(server, http) -> None:
    async with http.post(f"{server.url}/admin/oauth/access_token", data=GRANT) as r:
        assert r.status == 200


async def test_version_header_and_fall_forward(server, gql) -> None:
    shop = server.shop()
    pinned = shop.config.api_version
    ans = await gql(shop, Q)
    assert ans.headers["X-Shopify-API-Version"] == pinned
    for retired in ("2023-01", "2099-01", "unstable"):
        url = f"{shop.base_url}/admin/api/{retired}/graphql.json"
        old = await gql(shop, Q, url=url)
        assert old.status == 200 and old.body["data"]["orders"]["nodes"]
        assert old.headers["X-Shopify-API-Version"] == pinned  # served the pinned version instead
    bad = await gql(shop, Q, url=f"{shop.base_url}/admin/api/latest/graphql.json")
    assert bad.status == 404


async def test_secrets_stay_out_of_reprs(server) -> None:
    shop = server.shop()
    assert shop.token not in repr(shop.config)
    assert "sim-client-secret" not in repr(shop.config)
    assert shop.token not in repr(shop.tokens)
