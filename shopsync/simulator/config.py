"""Configuration of a simulated shop (frozen dataclasses; built from CLI flags or by tests)."""

from __future__ import annotations

from dataclasses import dataclass, field

from shopsync import API_VERSION
from shopsync.errors import ConfigError

#: Whole-shop answers a shop can be switched to: frozen, missing scope, locked.
SHOP_STATUSES = frozenset({402, 403, 423})
#: ``BulkOperationErrorCode`` values the bulk-failure fault can produce.
BULK_FAILURES = ("INTERNAL_SERVER_ERROR", "TIMEOUT")
#: How a bulk export lists its root rows. Shopify does not promise the ``sortKey`` order
#: (shopify-api-facts §3, §10): "sorted" keeps it, "shuffled_blocks" lists blocks of
#: ``BULK_ORDER_BLOCK`` roots in a seeded random order, "by_id" lists roots by id.
BULK_ORDERS = ("sorted", "shuffled_blocks", "by_id")

#: Hostile answers (issue 10): each switch's allowed values (see :mod:`shopsync.simulator.hostile`).
HOSTILE_VARIANTS: dict[str, tuple[object, ...]] = {
    "redirect": ("other_host", "same_host"),
    "cursor": ("repeat", "null", "empty_page"),
    "bad_data": ("empty", "null", "nodes_string", "no_page_info", "count_string"),
    "retry_status": (429, 503),
    "throttle_status": ("zero", "negative", "missing", "null", "absent"),
    "bulk_bad_line": ("not_json", "orphan"),
}
#: The deterministic hostile switches: each has ``<mode>_count`` (None: every request) and,
#: except ``bulk_bad_line``, ``<mode>_match`` (only requests naming that operation or root field).
HOSTILE_MODES: tuple[str, ...] = ("redirect", "cursor", "bad_data", "retry_status", "throttle_status", "huge_body", "bulk_bad_line")
#: Where the redirect switch answers a redirect instead of the real answer.
REDIRECT_ENDPOINTS = ("graphql", "token", "download")
THROTTLE_STATUS_FIELDS = ("maximumAvailable", "currentlyAvailable", "restoreRate")

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
    #: Money records (:mod:`shopsync.simulator.finance_records`); few, so default runs stay fast.
    shopify_payments: bool = True  # False: shopifyPaymentsAccount is null (no Shopify Payments)
    balance_transactions: int = 12
    payouts: int = 4
    disputes: int = 2
    gift_cards: int = 6
    #: Metafields per owner (shopsync/simulator/metafield_records.py): the shop's, each product's …
    shop_metafields: int = 3
    product_metafields: int = 2
    variant_metafields: int = 1
    collection_metafields: int = 1
    customer_metafields: int = 0
    order_metafields: int = 0
    #: shopsync/simulator/commerce_records.py
    draft_orders: int = 5
    abandoned_checkouts: int = 5
    fulfillment_orders: int = 6
    markets: int = 3
    #: shopsync/simulator/discount_records.py (node idx is member idx % 8 of the Discount union)
    discount_nodes: int = 10
    big_discount_codes: int = 120  # the redeem codes of node 0 (more than a drain page: 90)


@dataclass(frozen=True, kw_only=True)
class MutatorConfig:
    """Live changes. Rates are per simulated day and multiplied by the time scale."""

    orders_per_day: float = 0.0  # 0: the mutator is off
    update_ratio: float = 2.0  # updates of existing records per created order
    delete_ratio: float = 0.02  # deletions per created order
    burst_every: float = 0.0  # seconds between bursts (0: none)
    burst_size: int = 300  # records updated within one updatedAt second in a burst
    #: Fraction of updates the search index never sees: the record (read by id, or listed without
    #: a ``query:``) has its new ``updatedAt``, but ``updated_at`` searches keep finding it under
    #: the old one — the drift Shopify sometimes shows, which only reconciliation repairs.
    hidden_updates: float = 0.0
    #: Which record types deletions hit, with weights (None: orders 95 %, collections 5 %; see
    #: ``mutator._DELETE_WEIGHTS``). Any of Order, Product, ProductVariant, Customer, Collection,
    #: InventoryItem, InventoryLevel, Location.
    delete_weights: tuple[tuple[str, float], ...] | None = None


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
    bulk_order: str = "sorted"  # root rows of an export: "sorted", "shuffled_blocks" or "by_id"
    # -- hostile answers (issue 10): off by default; ``<mode>_count`` None = every request --------
    #: "other_host": 307 (GraphQL POST) / 302 (token POST, download GET) to the trap server on
    #: another loopback address; "same_host": to another path on this simulator.
    redirect: str | None = None
    redirect_on: tuple[str, ...] = REDIRECT_ENDPOINTS
    redirect_status: int | None = None  # overrides 307/302
    redirect_count: int | None = None
    redirect_match: str | None = None  # only GraphQL requests with this operation / root field name
    #: "repeat": endCursor = the request's cursor; "null": endCursor null; "empty_page": no nodes —
    #: each with hasNextPage true, on every root connection of the answer.
    cursor: str | None = None
    cursor_count: int | None = None
    cursor_match: str | None = None
    #: "empty": data {}; "null": data null, no errors; "nodes_string", "no_page_info", "count_string".
    bad_data: str | None = None
    bad_data_count: int | None = None
    bad_data_match: str | None = None
    #: 429 or 503 instead of the answer (never ran), with Retry-After ``retry_after``/``retry_after_text``.
    retry_status: int | None = None
    retry_status_count: int | None = None
    retry_status_match: str | None = None
    #: Sent verbatim as Retry-After with every 429/503 ("soon", "-5"; "past": an HTTP date a day ago).
    retry_after_text: str | None = None
    #: extensions.cost.throttleStatus values made "zero", "negative", "missing", "null" (or the
    #: whole object "absent"); the shop's real bucket is unchanged.
    throttle_status: str | None = None
    throttle_status_fields: tuple[str, ...] = THROTTLE_STATUS_FIELDS
    throttle_status_count: int | None = None
    throttle_status_match: str | None = None
    #: Bytes: a GraphQL answer padded to more than this (streamed); 0 = off.
    huge_body: int = 0
    huge_body_chunked: bool = False  # no Content-Length (the client only finds out by reading)
    huge_body_count: int | None = None
    huge_body_match: str | None = None
    #: A bulk result file with one "not_json" line, or an "orphan" child (its __parentId not in the file).
    bulk_bad_line: str | None = None
    bulk_bad_line_count: int | None = None
    #: Seed of the fault dice (None: the data seed), so a fault sequence is reproducible.
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.bulk_order not in BULK_ORDERS:
            raise ConfigError(f"simulator faults: bulk_order must be one of {', '.join(BULK_ORDERS)}, not {self.bulk_order!r}")
        for mode, allowed in HOSTILE_VARIANTS.items():
            value = getattr(self, mode)
            if value is not None and value not in allowed:
                raise ConfigError(f"simulator faults: {mode} must be one of {', '.join(map(str, allowed))}, not {value!r}")
        unknown = sorted(set(self.redirect_on) - set(REDIRECT_ENDPOINTS))
        if unknown:
            raise ConfigError(f"simulator faults: redirect_on: unknown endpoint(s) {', '.join(unknown)} (known: {', '.join(REDIRECT_ENDPOINTS)})")
        if self.redirect_status is not None and self.redirect_status not in (301, 302, 303, 307, 308):
            raise ConfigError(f"simulator faults: redirect_status must be a redirect (301/302/303/307/308), not {self.redirect_status}")
        unknown = sorted(set(self.throttle_status_fields) - set(THROTTLE_STATUS_FIELDS))
        if unknown:
            raise ConfigError(f"simulator faults: throttle_status_fields: unknown field(s) {', '.join(unknown)}")


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
    #: Simulated seconds (÷ time_scale) an operation stays CREATED before it runs: Shopify queues
    #: every export for a while, however small. 0: at once (the tests' default).
    bulk_start_delay: float = 0.0
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
        "read_gift_cards",
        "read_shopify_payments",
        "read_shopify_payments_disputes",
        "read_draft_orders",
        "read_markets",
        "read_discounts",
        "read_merchant_managed_fulfillment_orders",
        "read_returns",
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
