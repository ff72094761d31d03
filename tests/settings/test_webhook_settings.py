"""``[webhooks]`` and a shop's ``webhook_secret`` (issue 13)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shopsync.errors import ConfigError
from shopsync.observability.logs import redact, register_secrets
from shopsync.settings import load_settings

from .test_config import ENV, MINIMAL, write

CREDENTIALS = MINIMAL.replace('access_token = { env = "ACME_TOKEN" }', 'client_id = { env = "CID" }\nclient_secret = { env = "CSECRET" }')


def test_webhooks_are_off_by_default(tmp_path):
    s = load_settings(write(tmp_path, MINIMAL), env=ENV)
    assert s.webhooks.enabled is False and s.webhooks.url is None and s.webhooks.max_age == timedelta(minutes=5)
    assert s.shops[0].signing_secret is None  # fine while webhooks are off


def test_the_signing_secret_defaults_to_the_client_secret(tmp_path):
    text = CREDENTIALS + "[webhooks]\nenabled = true\n"
    s = load_settings(write(tmp_path, text), env=ENV)
    assert s.webhooks.enabled and s.shops[0].signing_secret is not None
    assert s.shops[0].signing_secret.reveal() == ENV["CSECRET"]


def test_webhook_secret_is_a_secret_like_the_token(tmp_path):
    text = CREDENTIALS + 'webhook_secret = { env = "WHSEC" }\n' + (
        '[webhooks]\nenabled = true\nurl = "https://sync.example.com/webhooks/shopify"\nmax_age = "2m"\n'
    )
    s = load_settings(write(tmp_path, text), env={**ENV, "WHSEC": "whsec-value-42"})
    shop = s.shops[0]
    assert shop.signing_secret is shop.webhook_secret and shop.webhook_secret is not None
    assert shop.webhook_secret.reveal() == "whsec-value-42" and "whsec-value-42" not in repr(shop)
    assert s.webhooks.url == "https://sync.example.com/webhooks/shopify" and s.webhooks.max_age == timedelta(minutes=2)
    register_secrets(s)
    assert "whsec-value-42" not in redact("the secret is whsec-value-42")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (MINIMAL + "[webhooks]\nenabled = true\n",
         "shop[0] (acme).webhook_secret: missing: [webhooks] enabled needs each shop's signing secret"),
        (MINIMAL + '[webhooks]\nenabled = "yes"\n', "webhooks.enabled: must be true or false, not a string"),
        (MINIMAL + "[webhooks]\nenabeld = true\n", "webhooks.enabeld: unknown key"),
        (MINIMAL + '[webhooks]\nurl = "ftp://x"\n', "webhooks.url"),
        (MINIMAL + "[webhooks]\nmax_age = 0\n", "webhooks.max_age"),
        (MINIMAL + 'webhook_secret = "inline"\n', "shop[0] (acme).webhook_secret"),
    ],
)
def test_webhook_mistakes_name_the_key(tmp_path, text, expected):
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), env=ENV)
    assert expected in str(info.value)
