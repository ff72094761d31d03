"""Talking to one Shopify shop: cost budget, access tokens, the transport and the GraphQL client.

``retry`` (the retry policy) is imported from :mod:`shopsync.client.retry` directly; the observer
protocol the client reports to is :class:`shopsync.observability.events.RequestObserver`.
"""

from shopsync.client.auth import ClientCredentialsToken, StaticToken, TokenProvider, token_provider_for
from shopsync.client.budget import BudgetSnapshot, CostBudget, Reservation
from shopsync.client.graphql import GraphQLResponse, ShopClient
from shopsync.client.transport import make_session

__all__ = [
    "BudgetSnapshot",
    "ClientCredentialsToken",
    "CostBudget",
    "GraphQLResponse",
    "Reservation",
    "ShopClient",
    "StaticToken",
    "TokenProvider",
    "make_session",
    "token_provider_for",
]
