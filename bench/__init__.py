"""Benchmarks of shopsync. ``python -m bench`` runs them all (``make bench``); ``python -m bench NAME``
runs one. Each module ``bench/<name>.py`` exposes ``main(argv: list[str] | None = None) -> int`` and
accepts ``--quick`` for a small slice that finishes in seconds.
"""
