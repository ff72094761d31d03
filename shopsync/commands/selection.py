"""Which shops and resources a command works on: ``--shop`` and ``--resource`` against the settings."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from shopsync.settings import Settings, ShopConfig

__all__ = ["select_streams"]


def select_streams(
    settings: Settings, shops: Sequence[str] | None, resources: Sequence[str] | None, *, command: str
) -> list[ShopConfig] | None:
    """The configured shops named by ``shops`` (all when empty), each with only the ``resources``
    named (all when empty); None after printing which names are unknown (the command exits 2)."""
    selected = list(settings.shops)
    if shops:
        unknown = set(shops) - {s.name for s in selected}
        if unknown:
            print(f"shopsync {command}: unknown shop(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return None
        selected = [s for s in selected if s.name in shops]
    if resources:
        unknown = set(resources) - set(settings.resources)
        if unknown:
            print(f"shopsync {command}: unknown resource(s): {', '.join(sorted(unknown))}", file=sys.stderr)
            return None
        selected = [s.with_resources(tuple(r for r in s.resources if r in resources)) for s in selected]
    return selected
