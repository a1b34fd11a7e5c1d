"""A trust domain bigger than one shard, against a real kube-apiserver: the operator
(with a 4 KiB shard limit, so a few dozen identities need several shards) publishes
shards and a manifest, and the real sidecar reading them as a Pod mounts them (one
projected volume, kubelet-style) accepts a token of every identity."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh.cluster import BUNDLE_OBJECT_LABEL
from jwtmesh.identity import active_key, parse_identity
from jwtmesh.shards import MANIFEST_FILE, digest, parse_manifest
from jwtmesh.tokens.mint import mint_token
from jwtmesh_operator.injection import bundle_sources
from jwtmesh_operator.kube import METADATA_ONLY, Kube
from jwtmesh_sidecar.app import Sidecar
from jwtmesh_sidecar.config import config_from_dict
from jwtmesh_testing.kubeapply import create_object, patch_object, service_identity, wait_for
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.processes import free_port

pytestmark = pytest.mark.k8s
BUNDLE = "jwtmesh-trust-bundle"
SHARD_BYTES = 4096
IDENTITIES = 30


@pytest.fixture(scope="module")
def small_shards(
    local_cluster: LocalCluster,
    cluster_objects: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The namespace of an operator with 4 KiB shards that watches only it: the trust
    domain is this test's identities alone, not those earlier tests of the session left
    (which would be in every bundle, and some of them rotating every few seconds)."""
    ns = cluster_objects.namespace("shards")
    process = OperatorProcess.for_cluster(
        local_cluster,
        tmp_path_factory.mktemp("shards"),
        extra=[f"--bundle-shard-bytes={SHARD_BYTES}", f"--namespace={ns}"],
    )
    yield ns
    process.stop()


def configmap(core: client.CoreV1Api, ns: str, name: str) -> Any:
    try:
        return core.read_namespaced_config_map(name, ns)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def projected(core: client.CoreV1Api, ns: str) -> dict[str, bytes]:
    """The files of the Pod's bundle volume, from the sources injection gives it."""
    files: dict[str, bytes] = {}
    for source in bundle_sources(BUNDLE):
        found = configmap(core, ns, source["configMap"]["name"])
        for item in source["configMap"]["items"]:
            if found is not None and item["key"] in (found.data or {}):
                files[item["path"]] = found.data[item["key"]].encode()
    return files


def consistent(files: dict[str, bytes]) -> bool:
    if MANIFEST_FILE not in files:
        return False
    manifest = parse_manifest(files[MANIFEST_FILE])
    return all(
        digest(files.get(f"shard-{i}.json", b"")) == wanted
        for i, wanted in enumerate(manifest.digests)
    )


def kids_in(files: dict[str, bytes]) -> dict[str, set[str]]:
    manifest = parse_manifest(files[MANIFEST_FILE])
    found: dict[str, set[str]] = {}
    for index in range(manifest.count):
        for issuer, entry in json.loads(files[f"shard-{index}.json"])["issuers"].items():
            assert issuer not in found, "an issuer is in one shard only"
            found[issuer] = {key["kid"] for key in entry["jwks"]["keys"]}
    return found


def signing_key(cluster_objects: Any, ns: str, name: str) -> Any:
    data = cluster_objects.secret_data(ns, f"{name}-jwtmesh-key")
    return active_key(parse_identity(data["signing-keys.json"]), time.time())


def allowed(port: int, token: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/inbound/orders", headers={"authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_a_trust_domain_bigger_than_one_shard_reaches_a_sidecar_whole(
    small_shards: str,
    cluster_objects: Any,
    tmp_path: Path,
    local_cluster: LocalCluster,
) -> None:
    ns = small_shards
    core = cluster_objects.core
    names = [f"svc-{i:02d}" for i in range(IDENTITIES)]
    for name in names:
        create_object(cluster_objects.api, ns, "serviceidentities", service_identity(name))
    statuses = {name: cluster_objects.ready_identity(ns, name)["status"] for name in names}
    wanted = {status["issuer"]: status["activeKid"] for status in statuses.values()}

    def published() -> dict[str, bytes] | None:
        files = projected(core, ns)
        if not consistent(files):
            return None
        found = kids_in(files)
        return files if all(kid in found.get(iss, ()) for iss, kid in wanted.items()) else None

    files = wait_for(published, 30, "every identity's key in a consistent set of shards")
    manifest = parse_manifest(files[MANIFEST_FILE])
    assert manifest.count > 1, "the bundle needs several shards"
    for index in range(manifest.count):
        assert len(files[f"shard-{index}.json"]) <= SHARD_BYTES
    assert set(kids_in(files)) == set(wanted), "no other issuer"
    assert json.loads(files["bundle.json"])["issuers"].keys() == set(wanted), (
        "the single-object form, while it fits, for Pods injected before shards"
    )
    selector = f"{BUNDLE_OBJECT_LABEL}=true"
    versions = asyncio.run(Kube(cluster_objects.api).configmap_versions(ns, selector))
    raw = core.list_namespaced_config_map(
        ns, label_selector=selector, _preload_content=False, _headers={"Accept": METADATA_ONLY}
    )
    listed = json.loads(raw.data)
    assert listed["kind"] == "PartialObjectMetadataList", "each publish lists metadata only"
    assert all("data" not in item for item in listed["items"])
    assert set(versions) == {
        BUNDLE,
        f"{BUNDLE}-manifest",
        *(f"{BUNDLE}-{i}" for i in range(manifest.count)),
    }

    shown = subprocess.run(
        [sys.executable, "-m", "jwtmesh_sidecar.cli", "bundle", "show", "--namespace", ns,
         "-o", "json", "--kubeconfig", str(local_cluster.kubeconfig)],
        capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    assert set(json.loads(shown.stdout)["issuers"]) == set(wanted), "the CLI reads the shards"

    # The real sidecar, reading the volume as the kubelet writes it.
    volume = KubeletVolume(tmp_path / "bundle")
    volume.write(files)
    port = free_port()
    sidecar = Sidecar(
        config_from_dict(
            {
                "identity": f"census.{ns}",
                "listen": {"http": f"127.0.0.1:{port}"},
                "trust": {"bundleDirs": [str(volume.root)]},
                "noPolicy": True,
                "pollIntervalSeconds": 0.05,
            }
        )
    )
    sidecar.start()
    try:
        for name in names:
            key = signing_key(cluster_objects, ns, name)
            token = mint_token(
                key,
                issuer=statuses[name]["issuer"],
                subject=statuses[name]["audience"],
                audience=f"census.{ns}",
                now=time.time(),
                lifetime=60,
            )
            assert allowed(port, token) == 200, name
        _one_rotation_rewrites_one_shard(cluster_objects, ns, volume, sidecar, files)
    finally:
        sidecar.stop()


def _one_rotation_rewrites_one_shard(
    cluster_objects: Any, ns: str, volume: KubeletVolume, sidecar: Sidecar, before: dict[str, bytes]
) -> None:
    """Rotating one identity changes one shard (and the manifest and the single form);
    the sidecar takes the new key."""
    core = cluster_objects.core
    patch_object(
        cluster_objects.api,
        ns,
        "serviceidentities",
        "svc-07",
        {"metadata": {"annotations": {"jwtmesh.io/rotate": "now"}}},
    )
    issuer = cluster_objects.identity(ns, "svc-07")["status"]["issuer"]
    old = kids_in(before)[issuer]

    def rotated() -> dict[str, bytes] | None:
        files = projected(core, ns)
        return files if consistent(files) and kids_in(files)[issuer] - old else None

    after = wait_for(rotated, 30, "the new key of svc-07 published")
    changed = [
        name for name in after if name.startswith("shard-") and after[name] != before.get(name)
    ]
    assert len(changed) == 1, changed
    assert issuer in json.loads(after[changed[0]])["issuers"]
    new_kid = next(iter(kids_in(after)[issuer] - old))
    volume.write(after)
    assert sidecar.trust is not None
    wait_for(
        lambda: new_kid in sidecar.trust.verifier.bundle.issuers[issuer].keys,  # type: ignore[union-attr]
        10,
        "the sidecar to take the new key",
    )
