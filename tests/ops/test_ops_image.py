"""The container image built by ``make image`` (mmdebstrap base + podman, no registry): shopsync
runs in it as the non-root user, ``--version`` and ``check`` on a configuration inside.

The image is built by ``make image`` (minutes); this test runs against it with
``buildah run --isolation chroot`` (``podman run`` does not work on this machine) and is skipped,
saying so, when the image has not been built here.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

IMAGE = "localhost/shopsync:latest"
BUILDAH = shutil.which("buildah")


def _image_exists() -> bool:
    if BUILDAH is None:
        return False
    return subprocess.run([BUILDAH, "inspect", "--type", "image", IMAGE], capture_output=True, timeout=60).returncode == 0


pytestmark = pytest.mark.skipif(not _image_exists(), reason=f"{IMAGE} not built (run `make image`)")

CONFIG = """
database = "sqlite:///var/lib/shopsync/shopsync.db"
[daemon]
listen = "0.0.0.0:9464"
[[shop]]
name = "acme"
domain = "acme.myshopify.com"
access_token = { file = "/tmp/acme-token" }
"""


@pytest.fixture
def container():
    assert BUILDAH is not None
    name = subprocess.run([BUILDAH, "from", IMAGE], capture_output=True, text=True, check=True, timeout=120).stdout.strip()
    try:
        yield name
    finally:
        subprocess.run([BUILDAH, "rm", name], capture_output=True, timeout=120)


def _run(container: str, *argv: str, user: str = "10001:10001") -> subprocess.CompletedProcess[str]:
    assert BUILDAH is not None
    return subprocess.run(
        [BUILDAH, "run", "--isolation", "chroot", "--user", user, container, "--", *argv],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_shopsync_version_and_check_run_in_the_image_as_the_non_root_user(container: str) -> None:
    assert BUILDAH is not None
    config = subprocess.run([BUILDAH, "config", "--user", "", container], capture_output=True, timeout=60)
    assert config.returncode == 0
    inspect = subprocess.run([BUILDAH, "inspect", "--type", "image", "--format", "{{.OCIv1.Config.User}}", IMAGE],
                             capture_output=True, text=True, timeout=60)  # fmt: skip
    assert inspect.stdout.strip() == "10001:10001"
    version = _run(container, "shopsync", "--version")
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("shopsync ")
    whoami = _run(container, "python", "-c", "import os; print(os.getuid(), os.getgid())")
    assert whoami.stdout.split() == ["10001", "10001"], whoami.stderr
    write = _run(
        container, "sh", "-c",
        f"umask 077 && printf shpat_not_a_real_token > /tmp/acme-token && cat > /tmp/shopsync.toml <<'EOF'\n{CONFIG}\nEOF",
    )  # fmt: skip
    assert write.returncode == 0, write.stderr
    check = _run(container, "shopsync", "check", "--config", "/tmp/shopsync.toml")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "acme" in check.stdout
