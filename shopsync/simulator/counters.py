"""What one simulated shop has answered: the counters behind ``GET /_sim/counters``."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Counters"]


@dataclass
class Counters:
    """What one shop has answered. ``as_dict()`` is what ``GET /_sim/counters`` returns."""

    faults: Counter[str]
    bulk: Counter[str]
    requests: int = 0
    throttled: int = 0
    max_cost_exceeded: int = 0
    invalid_documents: int = 0
    auth_failures: int = 0
    points_requested: int = 0  # requested cost of the queries that ran
    points_spent: int = 0  # their actual cost (requested minus the refunds)
    redirects_followed: int = 0  # requests that came back through a same-host redirect (/_sim/moved)
    http_status: Counter[int] = field(default_factory=Counter)

    @property
    def downloads(self) -> int:
        return self.bulk["downloads"]

    def as_dict(self) -> dict[str, Any]:
        statuses = ("CREATED", "COMPLETED", "FAILED", "CANCELED")
        return {
            "requests": self.requests,
            "throttled": self.throttled,
            "max_cost_exceeded": self.max_cost_exceeded,
            "invalid_documents": self.invalid_documents,
            "auth_failures": self.auth_failures,
            "points_requested": self.points_requested,
            "points_spent": self.points_spent,
            "redirects_followed": self.redirects_followed,
            "http_status": {str(k): v for k, v in sorted(self.http_status.items())},
            "faults": dict(self.faults),
            "bulk_operations": {s: self.bulk[s] for s in statuses if self.bulk[s]},
            "bulk_max_concurrent": self.bulk["max_concurrent"],
            "downloads": self.bulk["downloads"],
            "downloads_cut": self.bulk["downloads_cut"],
            "download_bytes": self.bulk["download_bytes"],
            "bulk_bad_lines": self.bulk["bad_lines"],
        }
