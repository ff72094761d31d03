"""The container image built by ``make image`` (mmdebstrap base + host wheelhouse + podman, no
registry, no network in the build): shopsync runs in it as the non-root user, ``--version`` and
``check`` on a configuration inside, and the run image carries no installer, wheelhouse or compiler.

The image is built by ``make image`` (about a minute); this test runs against it with
``buildah run --isolation chroot`` (``podman run`` does not work in this sandbox). Where the image
has not been built the tests are skipped, saying so, unless SHOPSYNC_REQUIRE_IMAGE=1: CI sets it
after ``make image``, so there a missing image or a missing buildah fails instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from importlib.metadata import version

import pytest

IMAGE = os.environ.get("SHOPSYNC_IMAGE", "localhost/shopsync:latest")
BUILDAH = shutil.which("buildah")
REQUIRED = os.environ.get("SHOPSYNC_REQUIRE_IMAGE") == "1"
USER = "10001:10001"

# `database` on the state volume the image gives the daemon's user; the token file is written by the
# test inside the container, mode 0600 (check refuses a token file others can read).
CONFIG = """
database = "sqlite:///var/lib/shopsync/shopsync.db"
[daemon]
listen = "0.0.0.0:9464"
[[shop]]
name = "acme"
domain = "acme.myshopify.com"
access_token = { file = "/var/lib/shopsync/acme-token" }
"""


def _missing() -> str | None:
    """Why the image cannot be tested here, or None."""
    if BUILDAH is None:
        return "buildah not installed"
    found = subprocess.run([BUILDAH, "inspect", "--type", "image", IMAGE], capture_output=True, text=True, timeout=60)
    if found.returncode != 0:
        return f"{IMAGE} not built (run `make image`): {found.stderr.strip()}"
    return None


@pytest.fixture
def container() -> Iterator[str]:
    reason = _missing()
    if reason is not None:
        if REQUIRED:
            pytest.fail(f"SHOPSYNC_REQUIRE_IMAGE=1 but {reason}")
        pytest.skip(reason)
    assert BUILDAH is not None
    made = subprocess.run([BUILDAH, "from", "--pull-never", IMAGE], capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    name = made.stdout.strip()
    try:
        yield name
    finally:
        subprocess.run([BUILDAH, "rm", name], capture_output=True, timeout=120)


def _run(container: str, *argv: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
    """``argv`` in the container; as the image's own USER unless ``user`` is given."""
    assert BUILDAH is not None
    as_user = ["--user", user] if user is not None else []
    return subprocess.run(
        [BUILDAH, "run", "--isolation", "chroot", *as_user, container, "--", *argv],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_the_image_runs_as_the_non_root_user(container: str) -> None:
    assert BUILDAH is not None
    inspect = subprocess.run(
        [BUILDAH, "inspect", "--type", "image", "--format", "{{.Docker.Config.User}}", IMAGE],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert inspect.returncode == 0, inspect.stderr
    assert inspect.stdout.strip() == USER
    # No --user: the process gets the image's USER, as `podman run` / `docker run` would give it.
    ids = _run(container, "python", "-c", "import os; print(os.getuid(), os.geteuid(), os.getgid(), os.getegid())")
    assert ids.returncode == 0, ids.stderr
    assert ids.stdout.split() == ["10001", "10001", "10001", "10001"]
    # The code is root's: the daemon's user cannot change it; the state directory is its own.
    write = _run(container, "sh", "-c", "touch /opt/shopsync/bin/x; echo $?; touch /var/lib/shopsync/x; echo $?")
    assert write.stdout.split() == ["1", "0"], write.stdout + write.stderr


def test_shopsync_version_and_check_run_in_the_image(container: str) -> None:
    shown = _run(container, "shopsync", "--version")
    assert shown.returncode == 0, shown.stderr
    # The image holds this checkout's package, not some other release.
    assert shown.stdout.strip() == f"shopsync {version('shopsync')}"
    write = _run(
        container, "sh", "-c",
        "umask 077 && printf shpat_not_a_real_token > /var/lib/shopsync/acme-token"
        f" && cat > /var/lib/shopsync/shopsync.toml <<'EOF'\n{CONFIG}\nEOF",
    )  # fmt: skip
    assert write.returncode == 0, write.stderr
    check = _run(container, "shopsync", "check", "--config", "/var/lib/shopsync/shopsync.toml")
    assert check.returncode == 0, check.stdout + check.stderr
    lines = check.stdout.splitlines()
    # The queries and the pinned schema they are validated against are package data in the wheel.
    assert any(line.startswith("queries: ") and "every document valid against the pinned" in line for line in lines)
    assert "shop acme (acme.myshopify.com, access token, " in check.stdout
    assert lines[-1] == "ok"
    # And check really checks in there: a token file others can read is refused, naming the file.
    _run(container, "chmod", "0644", "/var/lib/shopsync/acme-token")
    refused = _run(container, "shopsync", "check", "--config", "/var/lib/shopsync/shopsync.toml")
    assert refused.returncode == 2
    assert "/var/lib/shopsync/acme-token is mode 0644" in refused.stderr


def test_the_run_image_has_no_installer_wheelhouse_cache_or_compiler(container: str) -> None:
    # As root, so that /root is searched too.
    leftovers = _run(
        container, "sh", "-c",
        "ls -d /wheels /tmp/pip /src 2>/dev/null; find / -xdev -path '*/.cache/pip' 2>/dev/null;"
        " for tool in gcc cc c++ make pip pip3; do command -v $tool; done; true",
        user="0:0",
    )  # fmt: skip
    assert leftovers.returncode == 0, leftovers.stderr
    assert leftovers.stdout.split() == []
    no_pip = _run(container, "python", "-c", "import pip")
    assert no_pip.returncode == 1 and "No module named 'pip'" in no_pip.stderr
    # The root filesystem is read-only at run time, so the bytecode was compiled at build time.
    compiled = _run(
        container, "python", "-c",
        "import importlib.util as u, os, shopsync.commands.main as m; print(os.path.exists(u.cache_from_source(m.__file__)))",
    )  # fmt: skip
    assert compiled.stdout.strip() == "True", compiled.stderr
