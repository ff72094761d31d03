"""contrib/kubernetes: the example manifests validate against Kubernetes' published JSON schemas
(kubernetes-validate bundles them), and they wire what the README's "Scaling out" promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from shopsync.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = sorted((ROOT / "contrib" / "kubernetes").glob("*.yaml"))
#: The Kubernetes version the manifests are checked against.
K8S = "1.31"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                out.append((path.name, doc))
    return out


def _by_kind() -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for _, doc in _documents():
        kinds.setdefault(doc["kind"], []).append(doc)
    return kinds


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=lambda v: v if isinstance(v, str) else v["kind"])
def test_each_manifest_validates_against_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S, strict=True)


def test_the_validator_rejects_a_wrong_manifest() -> None:
    (deployment,) = _by_kind()["Deployment"]
    broken = yaml.safe_load(yaml.safe_dump(deployment))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S, strict=True)
    typo = yaml.safe_load(yaml.safe_dump(deployment))
    typo["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S, strict=True)


def test_the_deployment_runs_replicas_with_probes_config_and_secret_files(tmp_path: Path) -> None:
    kinds = _by_kind()
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    (configmap,) = kinds["ConfigMap"]
    assert mounts["/etc/shopsync"]["configMap"]["name"] == configmap["metadata"]["name"]
    secrets = {s["metadata"]["name"]: s for s in kinds["Secret"]}
    assert mounts["/run/secrets/shopify"]["secret"]["secretName"] in secrets
    # The grace period covers shopsync's stop_timeout (leases released on SIGTERM).
    assert pod["terminationGracePeriodSeconds"] >= 25
    assert pod["securityContext"]["runAsNonRoot"] is True

    # The configuration loads as shopsync reads it, with the Secret's token files in place.
    config = tmp_path / "etc" / "shopsync.toml"
    config.parent.mkdir()
    text = configmap["data"]["shopsync.toml"]
    tokens = secrets[mounts["/run/secrets/shopify"]["secret"]["secretName"]]["stringData"]
    for shop, token in tokens.items():
        path = tmp_path / "shopify" / shop
        path.parent.mkdir(exist_ok=True)
        path.write_text(token)
        path.chmod(0o440)
        text = text.replace(f"/run/secrets/shopify/{shop}", str(path))
    config.write_text(text)
    settings = load_settings(config, env={})
    assert settings.database.startswith("postgresql://")
    assert {s.name for s in settings.shops} == set(tokens)
    assert settings.daemon.listen_host == "0.0.0.0"
    assert settings.daemon.lease.total_seconds() == 30 and settings.daemon.lease_renew.total_seconds() == 10
