"""``shopsync check --api-version`` / ``--schema``: every query against another version's schema,
and the support window of API versions (issue 13)."""

from __future__ import annotations

import gzip
import hashlib
import re
from datetime import date
from importlib import resources as pkg

import orjson
import pytest

from shopsync.commands.main import main
from shopsync.shopify.schema import SCHEMA_SHA256, schema_path
from shopsync.shopify.schema.versions import (
    SHIPPED_VERSIONS,
    document_changes,
    replacement_in,
    shipped_schema,
    support_ends,
    support_warning,
)
from tests.engine.test_check import config

# A user resource selecting CustomerPhoneNumber.smsMarketingConsent: new in 2026-10. In 2026-07
# the same data is the deprecated CustomerPhoneNumber.marketingState, whose deprecation reason
# there names the replacement ("Use `smsMarketingConsent.state` instead.").
PHONES = """# shopsync:resource
# root: customers
# sort: UPDATED_AT
# filter: updated_at
# count: customersCount
fragment CustomerPhone on Customer {
  id
  updatedAt
  defaultPhoneNumber { phoneNumber smsMarketingConsent { state } }
}
"""


@pytest.fixture(autouse=True)
def token_env(monkeypatch):
    monkeypatch.setenv("CHECK_TOKEN", "shpat_x")
    monkeypatch.delenv("SHOPSYNC_CONFIG", raising=False)


def phones_config(tmp_path):
    queries = tmp_path / "queries"
    queries.mkdir()
    (queries / "customer_phones.graphql").write_text(PHONES)
    shops = (
        '[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "CHECK_TOKEN" }\n'
        'resources = ["orders", "customer_phones"]\n'
    )
    return config(tmp_path, 'queries_dir = "queries"', shops=shops)


def field_line(out: str, name: str) -> str | None:
    return next((line for line in out.splitlines() if line.strip().startswith(f"{name}:")), None)


def test_check_against_2026_07_reports_a_field_that_differs_with_its_replacement(tmp_path, capsys):
    path = phones_config(tmp_path)
    assert main(["check", "--config", str(path), "--api-version", "2026-07"]) == 0
    out, err = capsys.readouterr()
    line = field_line(out, "CustomerPhoneNumber.smsMarketingConsent")
    assert line is not None, out
    assert "not in 2026-07" in line and "customer_phones" in line and "user file customer_phones" in line
    assert "replacement: marketingState" in line
    assert "Use `smsMarketingConsent.state` instead." in line  # the 2026-07 schema's own reason
    assert "document problem(s) in 2026-07" in err
    # The shipped resources alone select nothing that 2026-07 lacks.
    assert "user file" not in out.replace(line, "")
    assert out.rstrip().endswith("ok")


def test_the_same_check_against_the_pinned_version_finds_nothing(tmp_path, capsys):
    path = phones_config(tmp_path)
    assert main(["check", "--config", str(path), "--api-version", "2026-10"]) == 0
    out, err = capsys.readouterr()
    assert field_line(out, "CustomerPhoneNumber.smsMarketingConsent") is None
    assert re.search(r"api version 2026-10 \(.*\): \d+ field\(s\) differ, 0 other error\(s\)", out), out
    assert "not in 2026-10" not in out and "document problem" not in err
    # What the pinned version itself deprecates is still listed, with its replacement.
    line = field_line(out, "CustomerPhoneNumber.marketingState")
    assert line is not None and "deprecated in 2026-10 (used by customers)" in line
    assert "replacement: smsMarketingConsent.state" in line


def test_deprecated_field_is_listed_with_the_replacement_its_reason_names():
    query = "query { customers(first: 1) { nodes { id defaultPhoneNumber { marketingState } } } }"
    (change,) = document_changes(query, shipped_schema("2026-10")).fields
    assert (change.name, change.kind, change.replacement) == (
        "CustomerPhoneNumber.marketingState",
        "deprecated",
        "smsMarketingConsent.state",
    )


def test_a_newer_schema_file_reports_removed_fields_with_the_pinned_replacement(tmp_path, capsys):
    # A "2027-01" made from the pinned schema with Order.email removed: a field removed in a newer
    # version is listed as not there (the pinned schema has it undeprecated, so no replacement).
    intro = orjson.loads(gzip.decompress(schema_path("2026-10").read_bytes()))
    order = next(t for t in intro["data"]["__schema"]["types"] if t["name"] == "Order")
    order["fields"] = [f for f in order["fields"] if f["name"] != "email"]
    newer = tmp_path / "admin_2027-01.json.gz"
    newer.write_bytes(gzip.compress(orjson.dumps(intro)))
    assert main(["check", "--config", str(config(tmp_path)), "--schema", str(newer)]) == 0
    out, err = capsys.readouterr()
    line = field_line(out, "Order.email")
    assert line is not None and "not in 2027-01" in line and "orders" in line, out
    assert "document problem(s) in 2027-01" in err


def test_unknown_version_and_unreadable_schema_are_configuration_errors(tmp_path, capsys):
    assert main(["check", "--config", str(config(tmp_path)), "--api-version", "2027-01"]) == 2
    assert "no schema shipped for it" in capsys.readouterr().err
    bad = tmp_path / "admin_2027-01.json"
    bad.write_text('{"data": {}}')
    assert main(["check", "--config", str(config(tmp_path)), "--schema", str(bad)]) == 2
    assert f"--schema {bad}: cannot read a schema" in capsys.readouterr().err


def test_replacement_is_read_from_the_deprecation_reason():
    assert replacement_in("Use `valueV2` instead.") == "valueV2"
    assert replacement_in("Use discountCode and discountTitle instead. This field will be removed in 2026-10.") == (
        "discountCode and discountTitle"
    )
    assert replacement_in("Use [LineItem.quantity](https://shopify.dev/x#field-quantity) instead.") == "LineItem.quantity"
    assert replacement_in("No longer supported.") is None


def test_support_window_is_twelve_months_from_the_quarterly_release():
    assert support_ends("2026-01") == date(2027, 1, 1)
    assert support_ends("2026-10") == date(2027, 10, 1)
    assert support_ends("unstable") is None
    early = support_warning("2026-10", date(2027, 7, 2))
    late = support_warning("2026-10", date(2027, 7, 3))
    assert early is not None and late is not None
    assert (early.days_left, early.warn) == (91, False)
    assert (late.days_left, late.warn) == (90, True)
    gone = support_warning("2026-01", date(2027, 2, 1))
    assert gone is not None and gone.warn and "reached the end of its support" in gone.message()


def test_shipped_schemas_match_their_recorded_checksums():
    source_md = (pkg.files("shopsync.shopify.schema") / "SOURCE.md").read_text()
    for version in SHIPPED_VERSIONS:
        actual = hashlib.sha256(schema_path(version).read_bytes()).hexdigest()
        assert actual == SCHEMA_SHA256[version]
        assert f"admin_{version}.json.gz" in source_md and actual in source_md
