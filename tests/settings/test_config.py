"""shopsync.toml → Settings: defaults, secrets, path resolution and one clear message per mistake."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shopsync.errors import ConfigError
from shopsync.settings import Secret, load_settings

TOKEN = "shpat_supersecret_value_123"
ENV = {"ACME_TOKEN": TOKEN, "CID": "client-id-1", "CSECRET": "client-secret-xyz"}

MINIMAL = """
database = "sqlite:///state/shopsync.db"
[[shop]]
name = "acme"
domain = "acme.myshopify.com"
access_token = { env = "ACME_TOKEN" }
"""


def write(tmp_path: Path, text: str, name: str = "shopsync.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load(tmp_path: Path, text: str, env=ENV):
    return load_settings(write(tmp_path, text), env=env)


def error(tmp_path: Path, text: str, env=ENV) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    message = str(info.value)
    assert message.startswith(str(tmp_path / "shopsync.toml") + ": ")
    assert TOKEN not in message and "client-secret-xyz" not in message
    return message


def test_minimal_config_and_defaults(tmp_path):
    s = load(tmp_path, MINIMAL)
    assert s.path == tmp_path / "shopsync.toml" and s.config_dir == tmp_path.resolve()
    assert s.api_version == "2026-10" and s.sink_url == s.database == "sqlite:///state/shopsync.db"
    assert s.sync.safety_margin == timedelta(seconds=60) and s.sync.overlap == timedelta(minutes=5)
    assert (s.sync.bulk_threshold, s.sync.max_concurrent_bulk, s.sync.max_attempts, s.sync.path) == (None, 5, 8, "auto")
    assert s.daemon.every == timedelta(minutes=5) and s.daemon.cron is None and s.daemon.listen == "127.0.0.1:9464"
    (shop,) = s.shops
    assert shop.label == "acme" and shop.index == 0
    assert shop.api_url == "https://acme.myshopify.com/admin/api/2026-10/graphql.json"
    assert shop.token_url == "https://acme.myshopify.com/admin/oauth/access_token"
    assert shop.access_token.reveal() == TOKEN and not shop.uses_client_credentials
    assert shop.resources == tuple(s.resources) and "orders" in s.resources
    assert shop.with_resources(("orders",)).resources == ("orders",)
    assert s.shop("acme") is shop


def test_every_key(tmp_path, monkeypatch):
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "b.token").write_text("\n  shpat_from_file \n")
    (tmp_path / "secrets" / "b.token").chmod(0o600)
    # Files in $CREDENTIALS_DIRECTORY keep the platform's modes: this one is 0644 under umask 022.
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "c-secret").write_text("cred-secret\n")
    text = """
api_version = "2026-07"
database = "sqlite:////var/lib/shopsync/shopsync.db"
work_dir = "scratch"
[sink]
url = "jsonl:///out"
rotate_bytes = 1048576
[sync]
path = "bulk"
safety_margin = "2m"
overlap = 600
bulk_threshold = 100
max_concurrent_bulk = 2
request_timeout = "30s"
max_connections = 8
max_attempts = 3
backoff_base = "0.25s"
backoff_cap = "1m"
bulk_poll_min = "2s"
bulk_poll_max = "1m30s"
[daemon]
listen = "[::1]:0"
cron = "*/10 * * * *"
jitter = "0s"
stop_timeout = "5s"
log_format = "json"
log_level = "DEBUG"
park_backoff = "1m"
park_backoff_max = "1d"
[[shop]]
name = "a"
domain = "a.myshopify.com"
access_token = { env = "ACME_TOKEN" }
resources = ["orders", "products"]
start_date = 2024-01-01
every = "2m"
[[shop]]
name = "b"
domain = "b.example.com"
access_token = { file = "secrets/b.token" }
start_date = "2024-02-03T04:05:06Z"
[[shop]]
name = "c"
domain = "c.myshopify.com"
client_id = { env = "CID" }
client_secret = { credential = "c-secret" }
api_url = "http://127.0.0.1:8080/admin/api/2026-10/graphql.json"
cron = "0 * * * *"
"""
    s = load(tmp_path, text, env={**ENV, "CREDENTIALS_DIRECTORY": str(creds)})
    assert s.api_version == "2026-07" and s.sink_url == "jsonl:///out" and s.sink.rotate_bytes == 1048576
    assert s.work_dir == tmp_path.resolve() / "scratch"
    assert s.sync.path == "bulk" and s.sync.overlap == timedelta(minutes=10) and s.sync.bulk_poll_max == timedelta(seconds=90)
    assert (s.sync.max_connections, s.sync.max_attempts, s.sync.backoff_base) == (8, 3, timedelta(seconds=0.25))
    assert (s.daemon.listen_host, s.daemon.listen_port, s.daemon.listen) == ("::1", 0, "[::1]:0")
    assert s.daemon.every is None and s.daemon.cron == "*/10 * * * *" and s.daemon.log_level == "debug"
    a, b, c = s.shops
    assert a.resources == ("orders", "products") and a.every == timedelta(minutes=2)
    assert a.start_date == datetime(2024, 1, 1, tzinfo=UTC) and a.api_url.endswith("/admin/api/2026-07/graphql.json")
    assert b.access_token.reveal() == "shpat_from_file"  # stripped, path relative to the config file
    assert b.start_date == datetime(2024, 2, 3, 4, 5, 6, tzinfo=UTC)
    assert c.uses_client_credentials and c.client_secret.reveal() == "cred-secret"
    assert c.token_url == "http://127.0.0.1:8080/admin/oauth/access_token" and c.cron == "0 * * * *"


def test_default_work_dir_is_next_to_the_sqlite_database(tmp_path):
    s = load(tmp_path, MINIMAL.replace("sqlite:///state/shopsync.db", "sqlite:////srv/shopsync/state.db"))
    assert s.work_dir == Path("/srv/shopsync/work")


def test_config_path_resolution(tmp_path, monkeypatch):
    explicit = write(tmp_path, MINIMAL, "explicit.toml")
    from_env = write(tmp_path, MINIMAL.replace('"acme"', '"envshop"'), "env.toml")
    write(tmp_path, MINIMAL.replace('"acme"', '"cwdshop"'))
    monkeypatch.chdir(tmp_path)
    env = {**ENV, "SHOPSYNC_CONFIG": str(from_env)}
    assert load_settings(explicit, env=env).shops[0].name == "acme"
    assert load_settings(None, env=env).shops[0].name == "envshop"
    assert load_settings(None, env=ENV).shops[0].name == "cwdshop"
    assert load_settings(None, env=ENV).path == Path("shopsync.toml")


def test_secrets_never_show(tmp_path):
    s = load(tmp_path, MINIMAL)
    secret = s.shops[0].access_token
    assert repr(secret) == str(secret) == f"{secret}" == "'***'"
    assert TOKEN not in repr(s) and TOKEN not in repr(s.shops[0])
    redacted = s.to_redacted_dict()
    assert TOKEN not in str(redacted) and redacted["shops"][0]["access_token"] == "<env:ACME_TOKEN>"
    with pytest.raises(TypeError):
        pickle.dumps(secret)
    assert Secret("a") == Secret("a") != Secret("b")


def test_the_documented_message_shape(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, MINIMAL + '[[shop]]\nname = "acme2"\ndomain = "b.myshopify.com"\naccess_token = { file = "/x/y" }\n')
    with pytest.raises(ConfigError) as info:
        load_settings(env=ENV)
    assert str(info.value) == "shopsync.toml: shop[1] (acme2).access_token.file: cannot read /x/y: No such file or directory"


SHOP = '[[shop]]\nname = "acme"\ndomain = "acme.myshopify.com"\naccess_token = { env = "ACME_TOKEN" }\n'
DB = 'database = "sqlite:///s.db"\n'


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (DB + "[sync]\nsafty_margin = \"1m\"\n" + SHOP, "sync.safty_margin: unknown key; did you mean 'safety_margin'?"),
        (DB + "colour = 1\n" + SHOP, "colour: unknown key (known: api_version"),
        (DB + SHOP + "colour = 1\n", "shop[0] (acme).colour: unknown key"),
        (DB + "[daemon]\nlisten = \"localhost\"\n" + SHOP, "daemon.listen: 'localhost' must be host:port"),
        (DB + "[sync]\nmax_attempts = \"8\"\n" + SHOP, "sync.max_attempts: must be an integer, not a string"),
        (DB + "[sync]\nmax_attempts = true\n" + SHOP, "sync.max_attempts: must be an integer, not a boolean"),
        (DB + "[sync]\nmax_attempts = 0\n" + SHOP, "sync.max_attempts: must be at least 1, not 0"),
        (DB + "[sync]\nmax_concurrent_bulk = 9\n" + SHOP, "sync.max_concurrent_bulk: Shopify runs at most 5"),
        (DB + "[sync]\noverlap = \"5 minutes\"\n" + SHOP, "sync.overlap: not a duration: '5 minutes'"),
        (DB + "[sync]\noverlap = [1]\n" + SHOP, "sync.overlap: must be a duration"),
        (DB + "[sync]\nbackoff_cap = \"0.1s\"\n" + SHOP, "sync.backoff_cap: must not be less than backoff_base"),
        (DB + "[sync]\npath = \"fast\"\n" + SHOP, "sync.path: 'fast' must be one of auto, bulk, paginated"),
        (DB + "sync = 3\n" + SHOP, "sync: must be a table, not an integer"),
        (DB + "[daemon]\nevery = \"1m\"\ncron = \"* * * * *\"\n" + SHOP, "daemon.cron: give either every or cron, not both"),
        (DB + "[daemon]\ncron = \"every tuesday\"\n" + SHOP, "daemon.cron: 'every tuesday' is not a crontab expression"),
        (DB + "[daemon]\nlog_format = \"xml\"\n" + SHOP, "daemon.log_format: 'xml' must be one of auto, json, text"),
        (DB + "[daemon]\nlog_level = \"loud\"\n" + SHOP, "daemon.log_level: 'loud' must be one of"),
        (DB + "api_version = \"2026-13\"\n" + SHOP, "api_version: '2026-13' is not an API version"),
        (SHOP, "database: missing"),
        ('database = "mysql://x/y"\n' + SHOP, "database: 'mysql://x/y' must start with one of sqlite://"),
        (DB + "[sink]\nurl = \"s3://bucket\"\n" + SHOP, "sink.url: 's3://bucket' must start with one of"),
        (DB, "shop: no [[shop]] configured"),
        (DB + "shop = 1\n", "shop: must be an array of tables"),
        (DB + SHOP.replace('name = "acme"\n', ""), "shop[0].name: missing"),
        (DB + SHOP.replace('"acme"', '"a b"', 1), "shop[0].name: 'a b' must be 1-63 letters"),
        (DB + SHOP + SHOP.replace("acme.myshopify.com", "x.myshopify.com"), "shop[1] (acme).name: 'acme' is already used by shop[0]"),
        (DB + SHOP.replace('domain = "acme.myshopify.com"\n', ""), "shop[0] (acme).domain: missing"),
        (DB + SHOP.replace('"acme.myshopify.com"', '"https://acme.myshopify.com"'), "shop[0] (acme).domain: 'https://acme.myshopify.com' must be a host name"),
        (DB + SHOP + 'api_url = "ftp://x/admin/api/2026-10/graphql.json"\n', "shop[0] (acme).api_url: 'ftp://x/admin/api/2026-10/graphql.json' must be an http"),
        (DB + SHOP + 'api_url = "http://127.0.0.1:8080/graphql"\n', "shop[0] (acme).api_url: 'http://127.0.0.1:8080/graphql' must end with /admin/api/<version>/graphql.json"),
        (DB + SHOP.replace('access_token = { env = "ACME_TOKEN" }\n', ""), "shop[0] (acme): missing credentials"),
        (DB + SHOP + 'client_id = { env = "CID" }\nclient_secret = { env = "CSECRET" }\n', "shop[0] (acme).access_token: give either access_token or client_id + client_secret, not both"),
        (DB + SHOP.replace('access_token = { env = "ACME_TOKEN" }', 'client_id = { env = "CID" }'), "shop[0] (acme).client_secret: missing (client_id is set)"),
        (DB + SHOP.replace('{ env = "ACME_TOKEN" }', '"shpat_inline"'), "shop[0] (acme).access_token: secrets are not accepted inline"),
        (DB + SHOP.replace('{ env = "ACME_TOKEN" }', '{ env = "NOPE" }'), "shop[0] (acme).access_token.env: environment variable NOPE is not set or empty"),
        (DB + SHOP.replace('{ env = "ACME_TOKEN" }', '{ vault = "x" }'), "shop[0] (acme).access_token.vault: unknown secret source"),
        (DB + SHOP.replace('{ env = "ACME_TOKEN" }', '{ env = "A", file = "b" }'), "shop[0] (acme).access_token: must be one of"),
        (DB + SHOP.replace('{ env = "ACME_TOKEN" }', '{ credential = "tok" }'), "shop[0] (acme).access_token.credential: $CREDENTIALS_DIRECTORY is not set"),
        (DB + SHOP + 'resources = ["order"]\n', "shop[0] (acme).resources: unknown resource 'order'; did you mean 'orders'?"),
        (DB + SHOP + 'resources = []\n', "shop[0] (acme).resources: must name at least one resource"),
        (DB + SHOP + 'resources = ["orders", "orders"]\n', "shop[0] (acme).resources: 'orders' is listed twice"),
        (DB + SHOP + 'start_date = "last year"\n', "shop[0] (acme).start_date: 'last year' is not a date"),
        (DB + SHOP + 'every = "1m"\ncron = "* * * * *"\n', "shop[0] (acme).cron: give either every or cron, not both"),
        (DB + SHOP + 'every = "0s"\n', "shop[0] (acme).every: must be more than 0"),
        (DB + "queries_dir = \"nowhere\"\n" + SHOP, "queries_dir: "),
        ("database = \n", "not valid TOML"),
    ],
)
def test_one_message_per_mistake(tmp_path, text, expected):
    assert expected in error(tmp_path, text)


def test_unreadable_or_empty_token_files(tmp_path):
    (tmp_path / "dir.token").mkdir()
    message = error(tmp_path, DB + SHOP.replace('{ env = "ACME_TOKEN" }', '{ file = "dir.token" }'))
    assert f"shop[0] (acme).access_token.file: cannot read {tmp_path / 'dir.token'}: Is a directory" in message
    (tmp_path / "empty.token").write_text("  \n")
    (tmp_path / "empty.token").chmod(0o600)
    message = error(tmp_path, DB + SHOP.replace('{ env = "ACME_TOKEN" }', '{ file = "empty.token" }'))
    assert "access_token.file:" in message and "is empty" in message


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration file: No such file or directory"):
        load_settings(tmp_path / "absent.toml", env=ENV)


def test_queries_dir_adds_resources_shops_can_name(tmp_path):
    q = tmp_path / "queries"
    q.mkdir()
    (q / "drafts.graphql").write_text(
        "# shopsync:resource\n# root: draftOrders\n# filter: updated_at\nfragment D on DraftOrder { id updatedAt }\n"
    )
    s = load(tmp_path, 'queries_dir = "queries"\n' + DB + SHOP + 'resources = ["drafts", "orders"]\n')
    assert s.queries_dir == tmp_path.resolve() / "queries"
    assert s.shops[0].resources == ("drafts", "orders") and s.resources["drafts"].root_field == "draftOrders"
    (q / "broken.graphql").write_text("# shopsync:resource\n# root: orders\n# filter: none\nfragment B on Order { id nme }\n")
    with pytest.raises(ConfigError, match=r"broken\.graphql:4:.*nme"):
        load(tmp_path, 'queries_dir = "queries"\n' + DB + SHOP)
