"""``shopsync check``: validate the configuration and every query; print the access scopes needed.

Exit codes: 0 valid (warnings go to stderr), 2 a configuration or query problem (raised as
:class:`~shopsync.errors.ConfigError` and reported by :mod:`shopsync.commands.main`), 1 a webhook
subscription not created. Nothing is sent to Shopify (the check runs offline against the pinned
schema) unless ``--create-webhooks`` asks for the ``[webhooks]`` subscriptions to be created.
``--api-version V`` / ``--schema FILE`` also compare every document with another version's schema.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Iterator, Mapping
from datetime import date
from pathlib import Path

from shopsync import API_VERSION
from shopsync.daemon.webhooks import PATH as WEBHOOK_PATH
from shopsync.daemon.webhooks import SUBSCRIPTION_MUTATION, subscription_topics, topic_enum
from shopsync.errors import ConfigError, ShopsyncError
from shopsync.queries import READ_ALL_ORDERS, Resource, minimal_scopes, packaged_dir
from shopsync.queries import builder as b
from shopsync.queries.builder.reconcile import ids_resource, nodes_query
from shopsync.settings import Settings, ShopConfig, load_settings
from shopsync.shopify.schema.versions import (
    SHIPPED_VERSIONS,
    FieldChange,
    VersionSchema,
    document_changes,
    schema_from_file,
    shipped_schema,
    support_warning,
)

READ_ALL_ORDERS_NOTE = (
    f"{READ_ALL_ORDERS}: without it Shopify shows only the last 60 days of orders, so older orders "
    "would be missing; it must be requested for the app (Partner or Dev Dashboard) before it can be granted"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="configuration file (default: $SHOPSYNC_CONFIG, else ./shopsync.toml)",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument(
        "--api-version",
        default=None,
        metavar="V",
        help=f"also validate every query against API version V ({', '.join(SHIPPED_VERSIONS)} are shipped) "
        "and list the fields removed or deprecated there",
    )
    parser.add_argument(
        "--create-webhooks",
        action="store_true",
        help="create the [webhooks] subscriptions of every shop at [webhooks] url (webhookSubscriptionCreate); "
        "contacts Shopify",
    )
    target.add_argument(
        "--schema",
        type=Path,
        default=None,
        metavar="FILE",
        help="like --api-version, with Shopify's published schema for a newer version (admin_<version>.json[.gz])",
    )


def shop_scopes(resources: list[Resource]) -> tuple[str, ...]:
    """The fewest scopes covering every resource's ``requiredAccess`` (+ read_all_orders for orders)."""
    requirements = [req for r in resources for req in r.access_requirements]
    scopes = set(minimal_scopes(requirements))
    if any(READ_ALL_ORDERS in r.required_scopes for r in resources):
        scopes.add(READ_ALL_ORDERS)
    return tuple(sorted(scopes))


def report(settings: Settings) -> tuple[list[str], list[str]]:
    """The lines to print (stdout) and the warnings (stderr) for valid ``settings``."""
    out: list[str] = []
    warnings: list[str] = []
    resources = settings.resources
    out.append(f"configuration: {settings.path} ({len(settings.shops)} shop{'s' if len(settings.shops) != 1 else ''})")
    if settings.api_version == API_VERSION:
        out.append(f"api_version: {settings.api_version} (the pinned version)")
    else:
        out.append(f"api_version: {settings.api_version}")
        warnings.append(
            f"warning: api_version {settings.api_version} differs from the pinned {API_VERSION}: every query is "
            f"validated against {API_VERSION} only, and fields may differ in {settings.api_version}"
        )
    window = support_warning(settings.api_version, date.today())
    if window is not None and window.warn:
        warnings.append(f"warning: {window.message()}")
    packaged = packaged_dir()
    user = sorted(name for name, r in resources.items() if r.path.parent != packaged)
    out.append(f"queries: {len(resources)} resources, every document valid against the pinned {API_VERSION} schema")
    if settings.queries_dir is not None:
        out.append(f"  from {settings.queries_dir}: {', '.join(user) if user else '(no .graphql files)'}")
    out.append(f"sink: {settings.to_redacted_dict()['sink']['url']}")
    for shop in settings.shops:
        auth = "client credentials" if shop.uses_client_credentials else "access token"
        out.append(f"shop {shop.name} ({shop.domain}, {auth}, {shop.api_url})")
        out.append(f"  resources: {', '.join(shop.resources)}")
        chosen = [resources[name] for name in shop.resources]
        scopes = shop_scopes(chosen)
        out.append(f"  access scopes: {', '.join(scopes)}")
        for r in chosen:
            out.append(f"    {r.name}: {', '.join(r.required_scopes) or '(none)'}")
        if READ_ALL_ORDERS in scopes:
            out.append(f"  note: {READ_ALL_ORDERS_NOTE}")
        if settings.webhooks.enabled:
            out.extend(webhook_lines(settings, shop))
    out.append("ok")
    return out, warnings


def webhook_lines(settings: Settings, shop: ShopConfig) -> list[str]:
    """The subscriptions a shop needs for ``[webhooks]`` (topics and URL)."""
    signer = "webhook_secret" if shop.webhook_secret is not None else "client_secret"
    url = settings.webhooks.url or f"(set [webhooks] url: the public https address of {WEBHOOK_PATH})"
    topics = subscription_topics(shop.resources)
    return [
        f"  webhooks: {len(topics)} subscriptions to {url}, verified with the shop's {signer}:",
        *(f"    {topic} ({topic_enum(topic)})" for topic in topics),
    ]


async def create_subscriptions(settings: Settings) -> tuple[list[str], int]:
    """``webhookSubscriptionCreate`` for every shop's topics; the lines to print and the failures.

    A topic already subscribed at that address ("already been taken") counts as done.
    """
    from shopsync.engine.engine import SyncEngine
    from shopsync.state.memory import MemoryDatabase, MemoryStateStore

    url = settings.webhooks.url
    if not url:
        raise ConfigError(f"{settings.path}: webhooks.url: missing (--create-webhooks subscribes that address)")
    lines: list[str] = []
    failures = 0
    async with SyncEngine(settings, MemoryStateStore(MemoryDatabase()), work_dir=settings.work_dir) as engine:
        for shop in settings.shops:
            client = engine.runtime(shop).client
            for topic in subscription_topics(shop.resources):
                variables = {"topic": topic_enum(topic), "webhookSubscription": {"uri": url, "format": "JSON"}}
                try:
                    answer = await client.execute(
                        SUBSCRIPTION_MUTATION, variables, operation="webhook subscription", idempotent=False
                    )
                except ShopsyncError as exc:
                    failures += 1
                    lines.append(f"shop {shop.name}: {topic}: not created: {exc}")
                    continue
                payload = answer.data.get("webhookSubscriptionCreate") or {}
                errors = [e.get("message", "") for e in payload.get("userErrors") or ()]
                created = payload.get("webhookSubscription") or {}
                if created.get("id"):
                    lines.append(f"shop {shop.name}: {topic}: created {created['id']} → {url}")
                elif errors and all("already been taken" in e for e in errors):
                    lines.append(f"shop {shop.name}: {topic}: already subscribed at {url}")
                else:
                    failures += 1
                    lines.append(f"shop {shop.name}: {topic}: not created: {'; '.join(errors) or 'no subscription returned'}")
    return lines, failures


def resource_documents(resource: Resource) -> Iterator[tuple[str, str]]:
    """(label, text) of every document the engine can build for ``resource``."""
    name = resource.name
    if resource.singular:
        yield f"{name} object", b.object_query(resource)
        return
    yield f"{name} page", b.page_query(resource)
    size = b.plan_page_size(resource)
    yield f"{name} planned page", b.page_query(resource, size.first, size.nested_first)
    if resource.parent_field:
        yield f"{name} parents", b.parent_ids_query(resource)
    for nc in resource.all_nested():
        yield f"{name} drain {'.'.join(nc.path)}", b.drain_query(resource, nc, b.drain_first(resource, nc))
    if resource.exportable:  # bulk: no resources are never exported
        yield f"{name} bulk", b.bulk_query(resource, None)
    count = b.count_query(resource)
    if count:
        yield f"{name} count", count
    yield f"{name} reconcile listing", b.page_query(ids_resource(resource))
    yield f"{name} reconcile bulk listing", b.bulk_query(ids_resource(resource), None)
    yield f"{name} reconcile nodes", nodes_query(resource)


def shipped_documents(resources: Iterable[Resource]) -> Iterator[tuple[str, str]]:
    """(label, text) of every document shopsync sends for ``resources``, the shared ones first."""
    yield "bulk start", b.bulk_mutation()
    yield "bulk status", b.bulk_status_query()
    yield "bulk cancel", b.bulk_cancel_mutation()
    yield "recent bulk operations", b.recent_bulk_operations_query()
    yield "deletion events", b.deletions_query()
    yield "webhook subscription", SUBSCRIPTION_MUTATION
    for r in resources:
        yield from resource_documents(r)


def version_report(resources: Mapping[str, Resource], target: VersionSchema) -> tuple[list[str], int]:
    """The lines comparing every document with ``target``, and how many problems they list.

    Each field is listed once, with the documents (resources) selecting it: removed or not in the
    target version, or deprecated there, with the replacement its deprecation reason names.
    """
    packaged = packaged_dir()
    by_field: dict[tuple[str, str], tuple[FieldChange, list[str]]] = {}
    errors: dict[str, list[str]] = {}
    for label, text in shipped_documents(resources[n] for n in sorted(resources)):
        changes = document_changes(text, target)
        for change in changes.fields:
            key = (change.name, change.kind)
            owner = label.split(" ")[0] if label.split(" ")[0] in resources else label
            by_field.setdefault(key, (change, []))[1].append(owner)
        for message in changes.errors:
            errors.setdefault(message, []).append(label)
    lines = [f"api version {target.name} ({target.source}): {len(by_field)} field(s) differ, {len(errors)} other error(s)"]
    for (name, kind), (change, owners) in sorted(by_field.items()):
        used_by = ", ".join(dict.fromkeys(owners))
        user = [o for o in dict.fromkeys(owners) if o in resources and resources[o].path.parent != packaged]
        where = f"{used_by}" + (f"; user file {', '.join(user)}" if user else "")
        what = f"not in {target.name}" if kind == "absent" else f"deprecated in {target.name}"
        line = f"  {name}: {what} (used by {where})"
        if change.replacement:
            line += f"; replacement: {change.replacement}"
        if change.reason:
            line += f' — "{change.reason}"'
        lines.append(line)
    for message, labels in sorted(errors.items()):
        lines.append(f"  invalid in {target.name}: {message} ({', '.join(dict.fromkeys(labels))})")
    absent = sum(1 for _, kind in by_field if kind == "absent")
    return lines, absent + len(errors)


def run(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    lines, warnings = report(settings)
    target = None
    if getattr(args, "schema", None) is not None:
        target = schema_from_file(args.schema)
    elif getattr(args, "api_version", None) is not None:
        target = shipped_schema(args.api_version)
    if target is not None:
        version_lines, problems = version_report(settings.resources, target)
        lines[-1:-1] = version_lines
        window = support_warning(target.name, date.today())
        if window is not None and window.warn:
            warnings.append(f"warning: {window.message()}")
        if problems:
            warnings.append(
                f"warning: {problems} document problem(s) in {target.name}: queries selecting those fields fail "
                f"there; change them before moving api_version to {target.name}"
            )
    for line in warnings:
        print(line, file=sys.stderr)
    print("\n".join(lines))
    if getattr(args, "create_webhooks", False):
        created, failures = asyncio.run(create_subscriptions(settings))
        print("\n".join(created))
        if failures:
            print(f"{failures} webhook subscription(s) not created", file=sys.stderr)
            return 1
    return 0
