"""Settings that keep the token safe on the wire (issue 10): ``api_url`` must be https:// except
for loopback hosts, and ``[sync] max_response_bytes`` caps a GraphQL answer's body."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopsync.commands.main import main
from shopsync.errors import ConfigError
from shopsync.settings import load_settings
from shopsync.settings.model import SyncConfig, check_api_url, is_loopback_host

TOKEN = "shpat_hostile_settings_token"
PATH = "/admin/api/2026-10/graphql.json"


def config(tmp_path: Path, shop_extra: str = "", top: str = "") -> Path:
    path = tmp_path / "shopsync.toml"
    path.write_text(
        f'database = "sqlite:///state.db"\n{top}\n'
        '[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "HS_TOKEN" }\n'
        f"{shop_extra}\n"
    )
    return path


@pytest.mark.parametrize(
    "url",
    [
        f"https://acme.myshopify.com{PATH}",
        f"https://proxy.internal:8443{PATH}",
        f"http://127.0.0.1:8080{PATH}",
        f"http://127.255.0.9{PATH}",
        f"http://localhost:9{PATH}",
        f"http://LOCALHOST{PATH}",
        f"http://[::1]:8080{PATH}",
    ],
)
def test_https_anywhere_and_http_only_on_loopback(url):
    check_api_url(url)


@pytest.mark.parametrize(
    "url",
    [
        f"http://acme.myshopify.com{PATH}",
        f"http://10.0.0.5:8080{PATH}",
        f"http://128.0.0.1{PATH}",
        f"http://[::2]{PATH}",
        f"http://localhost.evil.example{PATH}",
        f"http://127.0.0.1.evil.example{PATH}",
    ],
)
def test_plain_http_to_another_machine_is_refused(url):
    with pytest.raises(ConfigError) as info:
        check_api_url(url)
    assert "must use https://" in str(info.value) and "loopback" in str(info.value)


def test_is_loopback_host():
    assert [is_loopback_host(h) for h in ("localhost", "127.0.0.1", "127.1.2.3", "::1", "localhost.")] == [True] * 5
    assert [is_loopback_host(h) for h in ("example.com", "0.0.0.0", "::", "10.0.0.1")] == [False] * 4


def test_user_info_in_api_url_is_refused_without_repeating_it():
    with pytest.raises(ConfigError) as info:
        check_api_url(f"https://bob:hunter2pass@acme.myshopify.com{PATH}")
    assert "hunter2pass" not in str(info.value) and "user name or password" in str(info.value)


def test_load_names_the_file_and_key_for_an_http_api_url(tmp_path):
    path = config(tmp_path, f'api_url = "http://shop.example.com{PATH}"')
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={"HS_TOKEN": TOKEN})
    message = str(info.value)
    assert message.startswith(f"{path}: shop[0] (acme).api_url: 'http://shop.example.com{PATH}' must use https://")
    assert TOKEN not in message


def test_check_reports_an_http_api_url_and_exits_2(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HS_TOKEN", TOKEN)
    monkeypatch.delenv("SHOPSYNC_CONFIG", raising=False)
    path = config(tmp_path, f'api_url = "http://10.1.2.3:8080{PATH}"')
    assert main(["check", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"shopsync check: {path}: shop[0] (acme).api_url: ")
    assert "must use https://" in err and TOKEN not in err


def test_max_response_bytes_default_and_from_the_file(tmp_path):
    assert SyncConfig().max_response_bytes == 50 * 1024 * 1024
    s = load_settings(config(tmp_path), env={"HS_TOKEN": TOKEN})
    assert s.sync.max_response_bytes == 50 * 1024 * 1024
    assert s.to_redacted_dict()["sync"]["max_response_bytes"] == 50 * 1024 * 1024
    s = load_settings(config(tmp_path, top="[sync]\nmax_response_bytes = 1048576"), env={"HS_TOKEN": TOKEN})
    assert s.sync.max_response_bytes == 1 << 20


@pytest.mark.parametrize(("value", "problem"), [("0", "must be at least 1, not 0"), ("-5", "must be at least 1"),
                                                ('"50MB"', "must be an integer")])
def test_max_response_bytes_must_be_a_positive_integer(tmp_path, value, problem):
    with pytest.raises(ConfigError) as info:
        load_settings(config(tmp_path, top=f"[sync]\nmax_response_bytes = {value}"), env={"HS_TOKEN": TOKEN})
    assert "sync.max_response_bytes: " in str(info.value) and problem in str(info.value)
    with pytest.raises(ConfigError):
        SyncConfig(max_response_bytes=0)
