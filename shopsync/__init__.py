"""shopsync: keeps an exact, always-fresh copy of Shopify stores' data in your own database."""

__version__ = "0.1.0"

#: The Shopify Admin API version every document is written and validated against.
API_VERSION = "2026-10"
