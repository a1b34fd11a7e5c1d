"""The operator's own list and watch of a kind (informer.py), of signing-key Secrets, against the
real API server: only signing-key Secrets reach it, every change comes in order, and a
watch whose resourceVersion has expired (410 Gone) lists again and hands on what it missed."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import urllib.request
import uuid
from typing import Any

import pytest
from kubernetes import client, config

from jwtmesh_operator.informer import Informer
from jwtmesh_operator.kube import Kube
from jwtmesh_testing.kubeapply import create_namespace, create_object, service_identity
from jwtmesh_testing.localcluster import LocalCluster

pytestmark = pytest.mark.k8s


def compact_etcd(etcd_url: str) -> None:
    """Compact etcd's history up to now (the API server does so every 5 minutes): a watch
    asking for an older version is then told 410 Gone. Through etcd's JSON gateway."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        request = urllib.request.Request(
            etcd_url + path, json.dumps(body).encode(), {"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            found: dict[str, Any] = json.load(response)
        return found

    probe = base64.b64encode(b"/compact-probe").decode()
    revision = int(post("/v3/kv/range", {"key": probe})["header"]["revision"])
    post("/v3/kv/compaction", {"revision": revision, "physical": True})


def key_secret(name: str, *, labelled: bool = True, typed: bool = True) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {"jwtmesh.io/identity": name} if labelled else {"other": "x"},
        },
        "type": "jwtmesh.io/signing-key" if typed else "Opaque",
        "stringData": {"published-keys.json": "{}"},
    }


class Seen:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def __call__(self, kind: str, secret: dict[str, Any]) -> None:
        self.events.append((kind, secret["metadata"]["name"]))

    async def until(self, wanted: list[tuple[str, str]], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while self.events[: len(wanted)] != wanted:
            assert time.monotonic() < deadline, f"saw {self.events}, wanted {wanted}"
            await asyncio.sleep(0.05)


def test_signing_key_secrets_listed_watched_and_listed_again_when_expired(
    local_cluster: LocalCluster, crds: list[str]
) -> None:
    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))
    core = client.CoreV1Api(api)
    ns = f"secrets-{uuid.uuid4().hex[:6]}"
    create_namespace(api, ns)
    core.create_namespaced_secret(ns, key_secret("first"))
    core.create_namespaced_secret(ns, key_secret("unlabelled", labelled=False))
    core.create_namespaced_secret(ns, key_secret("opaque", typed=False))

    async def scenario() -> Informer:
        seen = Seen()
        watch = Informer(
            "signing-key Secrets",
            Kube(api).list_secrets,
            [ns],
            seen,
            label_selector="jwtmesh.io/identity",
            field_selector="type=jwtmesh.io/signing-key",
        )
        assert await watch.list_all() == 1
        assert seen.events == [("LISTED", "first")]
        seen.events.clear()

        # Missed before the watch starts, and the version it resumes from gone: older than
        # the restarted API server's watch cache, and compacted in etcd.
        await asyncio.to_thread(core.delete_namespaced_secret, "first", ns)
        await asyncio.to_thread(core.create_namespaced_secret, ns, key_secret("second"))
        await asyncio.to_thread(local_cluster.stop_apiserver)
        await asyncio.to_thread(local_cluster.start_apiserver)
        await asyncio.to_thread(compact_etcd, local_cluster.etcd_url)
        watch.start()
        try:
            await seen.until([("ADDED", "second"), ("DELETED", "first")])
            assert watch.relists == 1
            seen.events.clear()

            # Then followed from the new LIST's version, in order; others never come.
            await asyncio.to_thread(
                core.create_namespaced_secret, ns, key_secret("another", labelled=False)
            )
            label = {"metadata": {"labels": {"extra": "1"}}}
            await asyncio.to_thread(core.patch_namespaced_secret, "second", ns, label)
            unlabel = {"metadata": {"labels": {"jwtmesh.io/identity": None}}}
            await asyncio.to_thread(core.patch_namespaced_secret, "second", ns, unlabel)
            await seen.until([("MODIFIED", "second"), ("DELETED", "second")])
            await asyncio.sleep(1.0)
            assert seen.events == [("MODIFIED", "second"), ("DELETED", "second")]
        finally:
            watch.stop()
        return watch

    watch = asyncio.run(scenario())
    assert watch.relists == 1
    api.close()


def test_service_identities_of_one_namespace_listed_then_watched(
    local_cluster: LocalCluster, crds: list[str]
) -> None:
    """The same informer over a custom kind, scoped to a namespace as with the chart's
    watchNamespaces: nothing of another namespace comes."""
    api = config.new_client_from_config(config_file=str(local_cluster.kubeconfig))
    watched, other = (f"{prefix}-{uuid.uuid4().hex[:6]}" for prefix in ("watched", "other"))
    for ns in (watched, other):
        create_namespace(api, ns)
    create_object(api, watched, "serviceidentities", service_identity("herald"))
    custom = client.CustomObjectsApi(api)

    async def scenario() -> None:
        seen = Seen()
        lister = Kube(api).lister_of_custom("jwtmesh.io", "v1alpha1", "serviceidentities")
        informer = Informer("ServiceIdentities", lister, [watched], seen)
        assert await informer.list_all() == 1
        informer.start()
        try:
            await asyncio.to_thread(
                create_object, api, other, "serviceidentities", service_identity("elsewhere")
            )
            await asyncio.to_thread(
                create_object, api, watched, "serviceidentities", service_identity("census")
            )
            await asyncio.to_thread(
                custom.delete_namespaced_custom_object,
                "jwtmesh.io",
                "v1alpha1",
                watched,
                "serviceidentities",
                "herald",
            )
            await seen.until([("LISTED", "herald"), ("ADDED", "census"), ("DELETED", "herald")])
            await asyncio.sleep(1.0)
            assert ("ADDED", "elsewhere") not in seen.events
        finally:
            informer.stop()

    asyncio.run(scenario())
    api.close()
