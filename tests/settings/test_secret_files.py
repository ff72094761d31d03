"""Secret files are checked like OpenSSH checks a private key; platform secret mounts keep their modes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shopsync.errors import ConfigError
from shopsync.settings import load_settings
from shopsync.settings import secrets as secrets_mod
from shopsync.settings.secrets import (
    MAX_SECRET_BYTES,
    SecretFileError,
    platform_secret_mount,
    read_secret_file,
    secret_file_problem,
)

TOKEN = "shpat_from_a_file_0123456789"
CONFIG = """
database = "sqlite:///state/shopsync.db"
[[shop]]
name = "acme"
domain = "acme.myshopify.com"
"""


def token_file(path: Path, mode: int, text: str = TOKEN + "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)
    return path


def load(tmp_path: Path, secrets: str, env: dict[str, str] | None = None):
    config = tmp_path / "shopsync.toml"
    config.write_text(CONFIG + secrets + "\n")
    return load_settings(config, env=env or {})


def refused(tmp_path: Path, secrets: str, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, secrets, env)
    message = str(info.value)
    assert TOKEN not in message
    return message


@pytest.mark.parametrize(
    ("mode", "problem"),
    [
        (0o664, "is mode 0664: group or others can write it; chmod 600 it"),
        (0o620, "is mode 0620: group or others can write it; chmod 600 it"),
        (0o602, "is mode 0602: group or others can write it; chmod 600 it"),
        (0o666, "is mode 0666: group or others can write it; chmod 600 it"),
        (0o644, "is mode 0644: others can read it; chmod 600 it (or 640 with a group of its own)"),
        (0o604, "is mode 0604: others can read it; chmod 600 it (or 640 with a group of its own)"),
    ],
)
def test_token_file_others_can_change_or_read_is_refused(tmp_path: Path, mode: int, problem: str) -> None:
    path = token_file(tmp_path / "acme.token", mode)
    message = refused(tmp_path, 'access_token = { file = "acme.token" }')
    assert message == f"{tmp_path / 'shopsync.toml'}: shop[0] (acme).access_token.file: {path} {problem}"


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640, 0o440])
def test_private_or_group_readable_token_file_is_read(tmp_path: Path, mode: int) -> None:
    token_file(tmp_path / "acme.token", mode)
    settings = load(tmp_path, 'access_token = { file = "acme.token" }')
    assert settings.shops[0].access_token.reveal() == TOKEN


def test_client_secret_is_checked_client_id_only_for_writers(tmp_path: Path) -> None:
    token_file(tmp_path / "id", 0o644, "client-id-1\n")  # an OAuth client id is not secret on its own
    token_file(tmp_path / "secret", 0o644, "client-secret-1\n")
    message = refused(tmp_path, 'client_id = { file = "id" }\nclient_secret = { file = "secret" }')
    assert "shop[0] (acme).client_secret.file:" in message and "others can read it" in message
    (tmp_path / "secret").chmod(0o600)
    shop = load(tmp_path, 'client_id = { file = "id" }\nclient_secret = { file = "secret" }').shops[0]
    assert (shop.client_id.reveal(), shop.client_secret.reveal()) == ("client-id-1", "client-secret-1")
    (tmp_path / "id").chmod(0o664)
    message = refused(tmp_path, 'client_id = { file = "id" }\nclient_secret = { file = "secret" }')
    assert f"client_id.file: {tmp_path / 'id'} is mode 0664: group or others can write it; chmod go-w it" in message


def test_a_symlink_is_judged_by_the_file_it_points_to(tmp_path: Path) -> None:
    target = token_file(tmp_path / "real" / "token", 0o644)
    (tmp_path / "acme.token").symlink_to(target)
    message = refused(tmp_path, 'access_token = { file = "acme.token" }')
    assert f"{tmp_path / 'acme.token'} is mode 0644: others can read it" in message
    target.chmod(0o600)
    assert load(tmp_path, 'access_token = { file = "acme.token" }').shops[0].access_token.reveal() == TOKEN


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root (see the pure test below)")
def test_token_file_owned_by_another_user_is_refused(tmp_path: Path) -> None:
    path = token_file(tmp_path / "acme.token", 0o600)
    os.chown(path, 4242, -1)
    message = refused(tmp_path, 'access_token = { file = "acme.token" }')
    assert f"access_token.file: {path} belongs to uid 4242, not to the user shopsync runs as (uid 0" in message
    assert "chown it" in message


def test_owner_rule_pure() -> None:
    p = Path("/etc/x/token")
    assert secret_file_problem(p, 0o100600, 1000, euid=1000) is None
    assert secret_file_problem(p, 0o100600, 0, euid=1000) is None  # root-owned (and readable to us)
    problem = secret_file_problem(p, 0o100600, 1001, euid=1000)
    assert problem is not None and problem.startswith("/etc/x/token belongs to uid 1001")
    assert "(uid 1000" in problem
    # in a platform's mount the platform owns the file (Docker: root; Kubernetes: fsGroup)
    assert secret_file_problem(p, 0o100444, 1001, euid=1000, platform=True) is None
    # but nobody else may be able to change it, anywhere
    assert "can write it" in (secret_file_problem(p, 0o100666, 0, euid=1000, platform=True) or "")
    # not confidential (a client id): any reader and owner, no writer
    assert secret_file_problem(p, 0o100644, 1001, euid=1000, confidential=False) is None


def test_systemd_credentials_keep_their_modes(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    token_file(creds / "acme", 0o444)
    env = {"CREDENTIALS_DIRECTORY": str(creds)}
    assert load(tmp_path, 'access_token = { credential = "acme" }', env).shops[0].access_token.reveal() == TOKEN
    # the same file named by path is in the credentials directory too
    settings = load(tmp_path, f'access_token = {{ file = "{creds / "acme"}" }}', env)
    assert settings.shops[0].access_token.reveal() == TOKEN
    (creds / "acme").chmod(0o666)
    message = refused(tmp_path, 'access_token = { credential = "acme" }', env)
    assert f"access_token.credential: {creds / 'acme'} is mode 0666: group or others can write it" in message


def test_container_secret_mounts_keep_their_modes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert platform_secret_mount(Path("/run/secrets/acme-token")) == "container secrets (/run/secrets)"
    assert platform_secret_mount(Path("/var/run/secrets/kubernetes.io/serviceaccount/token")) is not None
    assert platform_secret_mount(Path("/etc/shopsync/acme-token")) is None
    assert platform_secret_mount(Path("/run/secretsX/acme-token")) is None
    # end to end, with the mount moved to a temporary directory: Docker's 0444 root:root is read
    mount = tmp_path / "run-secrets"
    monkeypatch.setattr(secrets_mod, "SECRET_MOUNTS", (mount,))
    token_file(mount / "acme-token", 0o444)
    settings = load(tmp_path, f'access_token = {{ file = "{mount / "acme-token"}" }}')
    assert settings.shops[0].access_token.reveal() == TOKEN


def kubernetes_volume(root: Path, mode: int, *, data_link: bool = True) -> Path:
    """The kubelet's AtomicWriter layout: ``token -> ..data/token``, ``..data -> ..<timestamp>``."""
    stamp = root / "..2026_01_02_03_04_05.1234567890"
    token_file(stamp / "token", mode)
    if data_link:
        (root / "..data").symlink_to(stamp.name)
        (root / "token").symlink_to("..data/token")
    else:
        (root / "token").symlink_to(f"{stamp.name}/token")
    return root / "token"


def test_kubernetes_secret_volume_keeps_its_default_mode(tmp_path: Path) -> None:
    path = kubernetes_volume(tmp_path / "etc-secrets", 0o644)
    assert platform_secret_mount(path) == "Kubernetes volume (..data)"
    assert load(tmp_path, f'access_token = {{ file = "{path}" }}').shops[0].access_token.reveal() == TOKEN
    # a directory merely named like the kubelet's, without the ..data link, is an ordinary directory
    fake = kubernetes_volume(tmp_path / "fake", 0o644, data_link=False)
    assert platform_secret_mount(fake) is None
    assert "others can read it" in refused(tmp_path, f'access_token = {{ file = "{fake}" }}')


def test_not_a_regular_file_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "token.fifo"
    os.mkfifo(fifo, 0o600)  # reading it would wait for a writer forever
    message = refused(tmp_path, 'access_token = { file = "token.fifo" }')
    assert message.endswith(f"access_token.file: {fifo} is not a regular file")


def test_huge_file_is_refused(tmp_path: Path) -> None:
    path = token_file(tmp_path / "big", 0o600, "x" * (MAX_SECRET_BYTES + 1))
    with pytest.raises(SecretFileError, match=rf"{path} is {MAX_SECRET_BYTES + 1} bytes, too large"):
        read_secret_file(path)


def test_world_readable_config_with_a_database_password_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = tmp_path / "shopsync.toml"
    body = 'access_token = { env = "T" }\n'
    text = CONFIG.replace("sqlite:///state/shopsync.db", "postgresql://sync:pg-pass-123@db/shopsync") + body
    config.write_text(text)
    config.chmod(0o644)
    with caplog.at_level("WARNING", logger="shopsync.settings.load"):
        load_settings(config, env={"T": TOKEN})
    (warning,) = [r.getMessage() for r in caplog.records]
    assert warning.startswith(f"{config} is mode 0644 and database holds a password: any local user can read it")
    assert "pg-pass-123" not in warning
    caplog.clear()
    config.chmod(0o640)  # group-readable is a deliberate choice: no warning
    with caplog.at_level("WARNING", logger="shopsync.settings.load"):
        load_settings(config, env={"T": TOKEN})
    config.write_text(CONFIG + body)  # no password anywhere: a 0644 file is fine
    config.chmod(0o644)
    with caplog.at_level("WARNING", logger="shopsync.settings.load"):
        load_settings(config, env={"T": TOKEN})
    assert caplog.records == []
