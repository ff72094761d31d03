"""Talking to one Shopify shop: cost budget, access tokens, the GraphQL client.

``retry`` (the retry policy) is imported from :mod:`shopsync.client.retry` directly.
"""

from shopsync.client.auth import ClientCredentialsToken, StaticToken, TokenProvider, token_provider_for
from shopsync.client.budget import BudgetSnapshot, CostBudget, Reservation
from shopsync.client.graphql import GraphQLResponse, NoopObserver, RequestObserver, ShopClient, make_session

__all__ = [
    "BudgetSnapshot",
    "ClientCredentialsToken",
    "CostBudget",
    "GraphQLResponse",
    "NoopObserver",
    "RequestObserver",
    "Reservation",
    "ShopClient",
    "StaticToken",
    "TokenProvider",
    "make_session",
    "token_provider_for",
]
