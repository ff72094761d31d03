"""Configuration of a simulated shop (frozen dataclasses; built from CLI flags or by tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shopsync import API_VERSION
from shopsync.errors import ConfigError

#: Whole-shop answers a shop can be switched to: frozen, missing scope, locked.
SHOP_STATUSES = frozenset({402, 403, 423})
#: ``BulkOperationErrorCode`` values the bulk-failure fault can produce.
BULK_FAILURES = ("INTERNAL_SERVER_ERROR", "TIMEOUT")

#: Bucket size and restore rate (points/second) per plan. Current docs give the restore rates;
#: bucket sizes follow the observed 20× rule (shopify-api-facts §2).
PLANS: dict[str, tuple[float, float]] = {
    "standard": (2000.0, 100.0),
    "advanced": (4000.0, 200.0),
    "plus": (20000.0, 1000.0),
    "enterprise": (40000.0, 2000.0),
}


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    """The seeded store. Everything generated is a pure function of these values."""

    seed: int = 1
    orders: int = 10_000
    customers: int | None = None  # default: max(10, orders // 4)
    products: int = 200
    locations: int = 4
    collections: int = 20
    history_days: float = 365.0
    #: Epoch seconds at which the base data's timestamps end (default: start time, floored to the
    #: minute). Base records' createdAt/updatedAt lie in [anchor - history_days, anchor].
    anchor: float | None = None
    big_orders: int = 3  # orders with several hundred line items
    big_order_line_items: int = 400
    tie_groups: int = 2  # groups of orders sharing one updatedAt second
    tie_group_size: int = 600


@dataclass(frozen=True, kw_only=True)
class MutatorConfig:
    """Live changes. Rates are per simulated day and multiplied by the time scale."""

    orders_per_day: float = 0.0  # 0: the mutator is off
    update_ratio: float = 2.0  # updates of existing records per created order
    delete_ratio: float = 0.02  # deletions per created order
    burst_every: float = 0.0  # seconds between bursts (0: none)
    burst_size: int = 300  # records updated within one updatedAt second in a burst


@dataclass(frozen=True, kw_only=True)
class FaultConfig:
    """Initial fault switches; all can be changed at run time through ``SimulatedShop.faults``."""

    http_500: float = 0.0  # probability per GraphQL request
    http_502: float = 0.0
    http_503: float = 0.0
    http_504: float = 0.0
    http_429: float = 0.0
    retry_after: float = 1.0  # seconds, sent with 429
    drop_connection: float = 0.0  # connection closed mid-response
    slow: float = 0.0  # probability of a slow response
    slow_seconds: float = 2.0
    truncated_body: float = 0.0  # JSON cut short
    malformed_body: float = 0.0  # not JSON at all
    bulk_fail: str | None = None  # "INTERNAL_SERVER_ERROR" (with partial data) or "TIMEOUT"
    bulk_fail_after: float = 0.5  # fraction of the objects exported before the failure
    bulk_fail_count: int | None = None  # fail only the next N bulk operations (None: every one)
    download_cut: float = 0.0  # probability a result download is cut off mid-file
    download_cut_at: float = 0.5  # fraction of the remaining bytes sent before the cut
    download_cut_count: int | None = None  # cut only the next N downloads (None: no limit)
    #: Seed of the fault dice (None: the data seed), so a fault sequence is reproducible.
    seed: int | None = None


@dataclass(frozen=True, kw_only=True)
class SimConfig:
    """One simulated shop: its data, plan, rates, tokens and faults (see README "The simulated shop")."""

    shop_name: str = "sim"
    api_version: str = API_VERSION
    # Tokens and the client secret stay out of reprs (they are secrets to the client under test).
    access_tokens: tuple[str, ...] = field(default=("shpat_simulated_token",), repr=False)
    client_id: str | None = "sim-client-id"
    client_secret: str | None = field(default="sim-client-secret", repr=False)
    issued_token_ttl: float = 86_400.0  # seconds a client-credentials token lives
    plan: str = "standard"
    maximum_available: float | None = None  # overrides the plan's bucket size
    restore_rate: float | None = None  # overrides the plan's restore rate (points/second)
    #: Multiplies every simulated rate (bucket restore, mutator, bulk progress) and divides the
    #: simulated delays, so tests run fast. Reported ``restoreRate`` is the effective rate.
    time_scale: float = 1.0
    index_lag: float = 2.0  # simulated seconds (÷ time_scale) before search filters see a change
    bulk_objects_per_second: float = 20_000.0  # bulk export speed (times time_scale)
    bulk_url_ttl: float = 7 * 86_400.0
    max_concurrent_bulk: int = 5
    status_override: int | None = None  # 402 (frozen), 403 (missing scope), 423 (locked)
    #: Scopes granted to the app (sent back by the client-credentials grant).
    scopes: tuple[str, ...] = (
        "read_orders",
        "read_all_orders",
        "read_products",
        "read_customers",
        "read_inventory",
        "read_locations",
    )
    #: Versions served as asked; any other ``YYYY-MM``/``unstable`` falls forward to ``api_version``.
    supported_versions: tuple[str, ...] = (API_VERSION,)
    bulk_cancel_delay: float = 1.0  # simulated seconds spent in CANCELING (divided by time_scale)
    data: DataConfig = field(default_factory=DataConfig)
    mutator: MutatorConfig = field(default_factory=MutatorConfig)
    faults: FaultConfig = field(default_factory=FaultConfig)

    def __post_init__(self) -> None:
        if self.plan not in PLANS:
            raise ConfigError(f"simulator: unknown plan {self.plan!r} (one of {', '.join(PLANS)})")
        if self.time_scale <= 0:
            raise ConfigError(f"simulator: time_scale must be > 0, not {self.time_scale}")
        if self.status_override not in (None, *SHOP_STATUSES):
            raise ConfigError(f"simulator: status_override must be one of {sorted(SHOP_STATUSES)}")
        if self.faults.bulk_fail not in (None, *BULK_FAILURES):
            raise ConfigError(f"simulator: bulk_fail must be one of {', '.join(BULK_FAILURES)}")

    @property
    def domain(self) -> str:
        return f"{self.shop_name}.myshopify.com"

    def bucket_limits(self) -> tuple[float, float]:
        """(maximumAvailable, effective restoreRate) — the rate already multiplied by time_scale."""
        size, rate = PLANS[self.plan]
        if self.maximum_available is not None:
            size = self.maximum_available
        if self.restore_rate is not None:
            rate = self.restore_rate
        return size, rate * self.time_scale
