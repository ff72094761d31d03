"""A simulated Shopify shop speaking the GraphQL Admin API, faithful enough to test a sync daemon.

See docs/ARCHITECTURE.md for its parts. Start one with ``shopsync simulate`` or, in tests, with
:func:`shopsync.simulator.server.run_simulator`.
"""
