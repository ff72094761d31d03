"""``[reconcile]`` and a shop's ``reconcile_every``."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shopsync.errors import ConfigError
from shopsync.settings import load_settings

from .test_config import ENV, MINIMAL, write


def test_reconcile_defaults_daily_and_marks_deletions(tmp_path):
    s = load_settings(write(tmp_path, MINIMAL), env=ENV)
    assert s.reconcile.every == timedelta(days=1) and s.reconcile.delete_rows is False
    assert s.shops[0].reconcile_every is None


def test_reconcile_table_and_per_shop_override(tmp_path):
    text = MINIMAL.replace("[[shop]]", '[reconcile]\nevery = "6h"\ndelete_rows = true\n\n[[shop]]') + 'reconcile_every = "30m"\n'
    s = load_settings(write(tmp_path, text), env=ENV)
    assert s.reconcile.every == timedelta(hours=6) and s.reconcile.delete_rows is True
    assert s.shops[0].reconcile_every == timedelta(minutes=30)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ('[reconcile]\ndelete_rows = "yes"\n', "reconcile.delete_rows: must be true or false, not a string"),
        ('[reconcile]\nevery = 0\n', "reconcile.every"),
        ('[reconcile]\nevry = "1d"\n', "reconcile.evry: unknown key"),
    ],
)
def test_reconcile_mistakes_name_the_key(tmp_path, table, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, MINIMAL.replace("[[shop]]", table + "\n[[shop]]")), env=ENV)
    assert expected in str(info.value)
