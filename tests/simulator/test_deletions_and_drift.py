"""The simulator's deletions of every resource and its updates hidden from search (issue 13)."""

from __future__ import annotations

from collections import Counter

import pytest

from shopsync.simulator.config import DataConfig, MutatorConfig
from shopsync.simulator.data import fmt_ts
from shopsync.simulator.mutator import Mutator
from shopsync.simulator.search import parse_search
from shopsync.simulator.store import DELETABLE_WITHOUT_EVENTS, ShopStore
from tests.support import FakeClock

START = 1_790_000_000.0


def make(**kw: object) -> tuple[ShopStore, FakeClock]:
    clock = FakeClock(START)
    data = DataConfig(seed=5, orders=200, products=10, customers=30, locations=3, collections=3, anchor=START - 100, **kw)  # type: ignore[arg-type]
    return ShopStore(data, clock=clock, index_lag=1.0), clock


def events(store: ShopStore) -> int:
    return store.live_count("BasicEvent")


def test_location_deletion_takes_its_inventory_levels_and_records_no_event() -> None:
    store, _clock = make()
    location = store.gid_of("Location", 1)
    levels_before = store.truth_ids("InventoryLevel")
    at_location = [g for g in levels_before if store.get(g) is not None and store.get(g)["location"].gid == location]  # type: ignore[index]
    assert at_location
    before_events = events(store)

    assert store.delete(location) is None

    assert location not in store.truth_ids("Location")
    assert set(store.truth_ids("InventoryLevel")) == set(levels_before) - set(at_location)
    assert events(store) == before_events
    assert "Location" in DELETABLE_WITHOUT_EVENTS


def test_inventory_item_and_level_deletions() -> None:
    store, _clock = make()
    item = store.gid_of("InventoryItem", 2)
    level = store.truth_ids("InventoryLevel")[-1]
    store.delete(item)
    store.delete(level)
    assert item not in store.truth_ids("InventoryItem")
    levels = store.truth_ids("InventoryLevel")
    assert level not in levels
    assert all(store.get(g)["item"].gid != item for g in levels)  # type: ignore[index]


def test_variant_deletion_changes_its_product_and_removes_its_inventory_item() -> None:
    store, clock = make()
    product = next(store.get(g) for g in store.truth_ids("Product") if len(store.get(g)["variants"]) > 1)  # type: ignore[index]
    assert product is not None
    variant = product["variants"][0]
    clock.advance(5)

    changed = store.delete_variant(variant["id"])

    assert variant["id"] not in [v["id"] for v in changed["variants"]]
    assert changed["updatedAt"] == fmt_ts(clock())  # the product's record carries the change
    assert store.get(product["id"]) == changed
    assert variant["inventoryItem"].gid not in store.truth_ids("InventoryItem")
    with pytest.raises(KeyError):
        store.delete_variant(variant["id"])


def test_hidden_update_is_live_by_id_but_never_found_by_updated_at_search() -> None:
    store, clock = make()
    gid = store.gid_of("Order", 7)
    old = store.get(gid)["updatedAt"]  # type: ignore[index]
    clock.advance(10)
    new = store.update(gid, hidden=True)
    clock.advance(60)  # far past the index lag

    assert store.get(gid) == new and new["updatedAt"] == fmt_ts(START + 10)
    recent = parse_search(f"updated_at:>='{new['updatedAt']}'")
    assert gid not in [r["id"] for _k, _i, r in store.scan("Order", sort="updated", query=recent, view="index")]
    stale = parse_search(f"updated_at:<='{old}' AND updated_at:>='{old}'")
    assert gid in [r["id"] for _k, _i, r in store.scan("Order", sort="updated", query=stale, view="index")]
    assert store.counters.hidden_updates == 1


def test_mutator_deletes_every_kind_it_is_given_and_hides_updates() -> None:
    store, clock = make()
    weights = tuple((t, 1.0) for t in ("Order", "Product", "ProductVariant", "Customer", "Collection", "InventoryItem", "InventoryLevel", "Location"))
    config = MutatorConfig(orders_per_day=86_400.0, update_ratio=2.0, delete_ratio=1.0, hidden_updates=0.5, delete_weights=weights)
    mutator = Mutator(store, config, seed=3, clock=clock)
    counts_before = {t: store.live_count(t) for t in ("Order", "Product", "Customer", "Collection", "InventoryItem", "InventoryLevel", "Location")}
    mutator.step()
    for _ in range(40):
        clock.advance(1)
        mutator.step()
    c = mutator.counters
    assert c.deleted > 10 and 0 < c.hidden_updates < c.updated
    shrunk = Counter({t: counts_before[t] - store.live_count(t) for t in counts_before})
    for t in ("Product", "Collection", "InventoryItem", "InventoryLevel", "Location"):
        assert shrunk[t] > 0, (t, shrunk)
    # Customers with orders are never deleted (Shopify refuses).
    live = set(store.truth_ids("Customer"))
    gone = [i for i in range(30) if store.data.gid("Customer", i) not in live]
    assert all(store.data.generate("Customer", i)["numberOfOrders"] == "0" for i in gone), gone


def test_default_mutator_deletes_only_orders_and_collections() -> None:
    store, clock = make()
    mutator = Mutator(store, MutatorConfig(orders_per_day=86_400.0, delete_ratio=1.0), seed=3, clock=clock)
    mutator.step()
    for _ in range(20):
        clock.advance(1)
        mutator.step()
    assert mutator.counters.deleted > 0 and mutator.counters.hidden_updates == 0
    assert store.live_count("Location") == 3 and store.live_count("Product") == 10
