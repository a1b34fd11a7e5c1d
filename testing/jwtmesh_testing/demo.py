"""`make demo`: Herald (notifications) calls Census (user directory), end to end.

A real local control plane, the real operator, and both services behind a real Envoy and
the jwtmesh sidecar. The Secret and ConfigMaps the operator writes are copied to files the
way a kubelet mounts them. Then: requests that pass, requests that are refused, and a
forced key rotation in the middle of steady traffic.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client

from jwtmesh.envoy_config import AuthzEndpoint, Destination, PodEnvoy
from jwtmesh.identity import active_key, parse_identity
from jwtmesh.tokens.mint import mint_token
from jwtmesh_testing.kubeapply import (
    api_client,
    create_namespace,
    create_object,
    get_object,
    install_crds,
    patch_object,
    service_identity,
    wait_for,
)
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.localcluster import LocalCluster
from jwtmesh_testing.minikubelet import MiniKubelet
from jwtmesh_testing.operator_process import OperatorProcess
from jwtmesh_testing.processes import (
    EchoUpstream,
    ManagedProcess,
    free_port,
    start_envoy,
    start_sidecar,
)

NAMESPACE = "demo"
CENSUS_POLICY = {
    "rules": [
        {
            "name": "read-users",
            "paths": [{"prefix": "/users"}],
            "methods": ["GET"],
            "subjects": [f"herald.{NAMESPACE}"],
        },
        {
            "name": "delete-users",
            "paths": [{"prefix": "/users"}],
            "methods": ["DELETE"],
            "claims": [{"claim": "roles", "contains": "admin"}],
        },
    ]
}
# Short pre-publication so the forced rotation happens within the demo.
HERALD_ROTATION = {"rotation": {"period": "720h", "prePublish": "3s", "retain": "2h"}}


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


@dataclass
class Check:
    name: str
    expected: str
    actual: str

    @property
    def ok(self) -> bool:
        return self.expected == self.actual


@dataclass
class DemoReport:
    checks: list[Check] = field(default_factory=list)
    rotation: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks) and self.rotation.get("failed") == 0

    def render(self) -> str:
        lines = ["", "jwtmesh demo — Herald → Census", ""]
        for check in self.checks:
            mark = "ok  " if check.ok else "FAIL"
            lines.append(
                f"  {mark} {check.name:<52} expected {check.expected:<34} got {check.actual}"
            )
        r = self.rotation
        if r:
            lines += [
                "",
                f"  rotation under load: {r['requests']} requests in {r['seconds']:.1f} s, "
                f"{r['failed']} failed; signing key {r['old_kid'][:10]}… → {r['new_kid'][:10]}…",
            ]
        lines += ["", "  RESULT: " + ("all checks passed" if self.ok else "SOME CHECKS FAILED"), ""]
        return "\n".join(lines)


def request(
    port: int, path: str, *, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        response = connection.getresponse()
        raw = response.read()
        return response.status, json.loads(raw) if raw else {}
    finally:
        connection.close()


def outcome(status: int, body: dict[str, Any]) -> str:
    return f"{status} {body.get('error', '')}".strip()


class SteadyTraffic:
    """Herald → Census through the egress listener, as fast as a few threads go."""

    def __init__(self, port: int, threads: int = 4) -> None:
        self.port = port
        self.requests = 0
        self.failures: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        while not self._stop.is_set():
            try:
                connection.request("GET", "/users/7", headers={"host": "census"})
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, connection = (
                    0,
                    http.client.HTTPConnection("127.0.0.1", self.port, timeout=10),
                )
                with self._lock:
                    self.failures.append(type(exc).__name__)
            with self._lock:
                self.requests += 1
                if status != 200 and status != 0:
                    self.failures.append(str(status))
        connection.close()

    def __enter__(self) -> SteadyTraffic:
        self.started = time.monotonic()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        self.seconds = time.monotonic() - self.started


def run_demo(workdir: Path, cluster: LocalCluster | None = None) -> DemoReport:
    report = DemoReport()
    cleanups: list[Callable[[], None]] = []
    try:
        if cluster is None:
            say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)")
            cluster = LocalCluster(workdir / "cluster")
            cluster.start()
            cleanups.append(cluster.stop)
        api = api_client(cluster.kubeconfig)
        say("installing the CRDs")
        install_crds(api)
        create_namespace(api, NAMESPACE)
        say("starting the jwtmesh operator")
        operator = OperatorProcess(cluster.kubeconfig, workdir, name="operator")
        cleanups.append(operator.stop)

        say("applying ServiceIdentities: herald (notifications) and census (user directory)")
        for name, spec in (("census", {"policy": CENSUS_POLICY}), ("herald", HERALD_ROTATION)):
            if get_object(api, NAMESPACE, "serviceidentities", name) is None:
                create_object(api, NAMESPACE, "serviceidentities", service_identity(name, spec))
        statuses = {}
        for name in ("census", "herald"):
            statuses[name] = wait_for(
                lambda n=name: _ready_status(api, n), 30, f"{name} to be Ready"
            )
            kid = statuses[name]["activeKid"]
            say(f"{name} is Ready: issuer {statuses[name]['issuer']}, signing kid {kid[:12]}…")

        say("mounting Secrets and ConfigMaps as files, as a kubelet would")
        kubelet = MiniKubelet(api, NAMESPACE, workdir / "volumes")
        kubelet.mount("bundle", "configmap", "jwtmesh-trust-bundle")
        wait_for(lambda: _synced(kubelet, "bundle", "bundle.json"), 20, "the trust bundle")
        policy = kubelet.mount("census-policy", "configmap", "census-jwtmesh-policy")
        herald_keys = kubelet.mount("herald-identity", "secret", "herald-jwtmesh-key")
        kubelet.start()
        cleanups.append(kubelet.stop)
        bundle_file = kubelet.volumes["bundle"][2].path("bundle.json")

        say("starting Census: its app behind Envoy + jwtmesh sidecar (HTTP ext_authz)")
        upstream = EchoUpstream().start()
        cleanups.append(upstream.stop)
        processes: list[ManagedProcess] = []

        def stop_processes() -> None:
            for process in reversed(processes):
                process.stop()

        cleanups.append(stop_processes)
        census_authz, census_port = free_port(), free_port()
        processes.append(
            start_sidecar(
                {
                    "identity": statuses["census"]["audience"],
                    "listen": {"http": f"127.0.0.1:{census_authz}"},
                    "trust": {"bundleFiles": [str(bundle_file)]},
                    "policyFile": str(policy.path("policy.yaml")),
                },
                workdir,
                "census-sidecar",
            )
        )
        processes.append(
            start_envoy(
                PodEnvoy(
                    inbound_port=census_port,
                    app_port=upstream.port,
                    admin_port=free_port(),
                    listen_address="127.0.0.1",
                    authz=AuthzEndpoint("http", port=census_authz),
                ),
                workdir,
                "census-envoy",
            )
        )

        say("starting Herald: Envoy egress listener + jwtmesh sidecar minting its tokens")
        herald_authz, herald_egress = free_port(), free_port()
        processes.append(
            start_sidecar(
                {
                    "listen": {"http": f"127.0.0.1:{herald_authz}"},
                    "identityKeys": str(herald_keys.path("signing-keys.json")),
                    "egress": {
                        "audiences": {"census": statuses["census"]["audience"]},
                        "tokenLifetimeSeconds": 60,
                    },
                },
                workdir,
                "herald-sidecar",
            )
        )
        processes.append(
            start_envoy(
                PodEnvoy(
                    inbound_port=free_port(),
                    app_port=upstream.port,
                    admin_port=free_port(),
                    listen_address="127.0.0.1",
                    authz=AuthzEndpoint("http", port=herald_authz),
                    egress_port=herald_egress,
                    destinations=(Destination("census", "127.0.0.1", census_port),),
                ),
                workdir,
                "herald-envoy",
            )
        )

        def herald_token(audience: str, **claims: Any) -> str:
            identity = parse_identity(herald_keys.path("signing-keys.json").read_bytes())
            key = active_key(identity, time.time())
            assert key is not None
            return mint_token(
                key,
                issuer=identity.issuer,
                subject=identity.subject,
                audience=audience,
                now=time.time(),
                lifetime=300,
                extra_claims=claims,
            )

        census_aud = statuses["census"]["audience"]
        say("sending requests")
        status, body = request(herald_egress, "/users/7", headers={"host": "census"})
        report.checks.append(Check("Herald → Census with a minted token", "200", str(status)))
        seen = body.get("headers", {}).get("x-jwtmesh-subject", "")
        report.checks.append(Check("Census sees the verified caller", f"herald.{NAMESPACE}", seen))
        status, body = request(census_port, "/users/7")
        report.checks.append(Check("no token", "401 missing_token", outcome(status, body)))
        status, body = request(
            census_port,
            "/users/7",
            headers={"authorization": f"Bearer {herald_token('billing.demo')}"},
        )
        report.checks.append(
            Check("a token for another audience", "401 wrong_audience", outcome(status, body))
        )
        status, body = request(
            herald_egress, "/users/7", method="DELETE", headers={"host": "census"}
        )
        report.checks.append(
            Check(
                "a caller without the required role",
                "403 claim_requirement_failed",
                outcome(status, body),
            )
        )

        revoked = herald_token(census_aud)
        jti = json.loads(base64.urlsafe_b64decode(revoked.split(".")[1] + "=="))["jti"]
        assert (
            request(census_port, "/users/7", headers={"authorization": f"Bearer {revoked}"})[0]
            == 200
        )
        say("revoking one token by its jti (TokenRevocation)")
        create_object(
            api,
            NAMESPACE,
            "tokenrevocations",
            {
                "apiVersion": "jwtmesh.io/v1alpha1",
                "kind": "TokenRevocation",
                "metadata": {"name": "stolen-token"},
                "spec": {
                    "identity": "herald",
                    "jti": jti,
                    "expiresAt": time.strftime(
                        "%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300)
                    ),
                },
            },
        )
        refused = wait_for(
            lambda: (
                (
                    r := request(
                        census_port, "/users/7", headers={"authorization": f"Bearer {revoked}"}
                    )
                )[0]
                == 401
                and r
            ),
            20,
            "the revocation to reach Census",
        )
        report.checks.append(Check("a revoked token", "401 token_revoked", outcome(*refused)))

        say("forcing a rotation of Herald's key in the middle of steady traffic")
        old_kid = statuses["herald"]["activeKid"]
        with SteadyTraffic(herald_egress) as traffic:
            time.sleep(1.0)
            patch_object(
                api,
                NAMESPACE,
                "serviceidentities",
                "herald",
                {"metadata": {"annotations": {"jwtmesh.io/rotate": str(time.time())}}},
            )
            new_kid = wait_for(lambda: _kid_changed(api, old_kid), 30, "the new key to sign")
            # Keep the traffic going until Herald's sidecar signs with the new key.
            wait_for(lambda: _mounted_signer(herald_keys) == new_kid, 15, "the new key mounted")
            time.sleep(3.0)
        report.rotation = {
            "requests": traffic.requests,
            "failed": len(traffic.failures),
            "seconds": traffic.seconds,
            "old_kid": old_kid,
            "new_kid": new_kid,
            "failures": traffic.failures[:5],
        }
        status, body = request(herald_egress, "/users/7", headers={"host": "census"})
        report.checks.append(Check("Herald → Census after the rotation", "200", str(status)))
        return report
    finally:
        say("cleaning up")
        for cleanup in reversed(cleanups):
            try:
                cleanup()
            except Exception as exc:  # cleanup goes on whatever failed
                say(f"cleanup step failed: {exc}")


def _ready_status(api: client.ApiClient, name: str) -> dict[str, Any] | None:
    body = get_object(api, NAMESPACE, "serviceidentities", name) or {}
    status: dict[str, Any] = body.get("status", {})
    ready = any(
        c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])
    )
    return status if ready and status.get("activeKid") else None


def _synced(kubelet: MiniKubelet, volume: str, key: str) -> bool:
    kubelet.sync_once()
    return kubelet.volumes[volume][2].path(key).exists()


def _kid_changed(api: client.ApiClient, old_kid: str) -> str | None:
    status = _ready_status(api, "herald") or {}
    kid = status.get("activeKid")
    return str(kid) if kid and kid != old_kid else None


def _mounted_signer(volume: KubeletVolume) -> str | None:
    identity = parse_identity(volume.path("signing-keys.json").read_bytes())
    key = active_key(identity, time.time())
    return key.kid if key else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="jwtmesh-demo-"))
    started = time.monotonic()
    report = run_demo(workdir)
    print(report.render())
    say(f"finished in {time.monotonic() - started:.0f} s (logs in {workdir})")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
