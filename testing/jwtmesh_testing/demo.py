"""`make demo`: Herald (notifications) calls Census (user directory), end to end.

A real local control plane, the real operator, and both services behind a real Envoy and
the jwtmesh sidecar. The Secret and ConfigMaps the operator writes are copied to files the
way a kubelet mounts them. Then: requests that pass, requests that are refused, and a
forced key rotation in the middle of steady traffic.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client

from jwtmesh.envoy_config import AuthzEndpoint, Destination, PodEnvoy
from jwtmesh.identity import active_key, parse_identity
from jwtmesh.tokens.mint import mint_token
from jwtmesh_testing.demo_report import DemoReport, SteadyTraffic, outcome, request
from jwtmesh_testing.guarded import guarded_service
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
from jwtmesh_testing.paths import EXAMPLES
from jwtmesh_testing.processes import (
    EchoUpstream,
    ManagedProcess,
    free_port,
    start_envoy,
    start_sidecar,
)

NAMESPACE = "demo"
# Census's owner grants the roles: Herald may read, the ops identity may also delete. A
# caller's own token can never give it a role (a mesh identity's claims are not trusted).
CENSUS_POLICY = {
    "roles": {
        "reader": [{"subject": f"herald.{NAMESPACE}"}],
        "admin": [{"subject": f"lra-ops.{NAMESPACE}"}],
    },
    "rules": [
        {
            "name": "read-users",
            "paths": [{"prefix": "/users"}],
            "methods": ["GET"],
            "roles": ["reader", "admin"],
        },
        {
            "name": "delete-users",
            "paths": [{"prefix": "/users"}],
            "methods": ["DELETE"],
            "roles": ["admin"],
        },
    ],
}
# Short pre-publication so the forced rotation happens within the demo.
HERALD_ROTATION = {"rotation": {"period": "720h", "prePublish": "3s", "retain": "2h"}}
LRA_POLICY = yaml.safe_load((EXAMPLES / "policies" / "lra-coordinator.yaml").read_text())
IDENTITIES: dict[str, dict[str, Any]] = {
    "census": {"policy": CENSUS_POLICY},
    "herald": HERALD_ROTATION,
    "lra-coordinator": {"policy": LRA_POLICY},
    "booking": {},
    "lra-participant": {},
    "lra-ops": {},
}
# One allowed and one refused call per role of the coordinator's table.
LRA_CALLS = [
    ("client", "booking", "POST", "/lra-coordinator/start", "200 allowed"),
    ("client", "booking", "GET", "/lra-coordinator/recovery", "403 role_required"),
    ("system", "lra-participant", "PUT", "/lra-coordinator/nested/7/complete", "200 allowed"),
    ("system", "lra-participant", "POST", "/lra-coordinator/start", "403 role_required"),
    ("admin", "lra-ops", "GET", "/lra-coordinator/recovery", "200 allowed"),
    ("admin", "lra-ops", "PUT", "/lra-coordinator/42/close", "403 role_required"),
]


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


class Demo:
    """The scenario's moving parts, and how to take them down again."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.cleanups: list[Callable[[], None]] = []
        self.processes: list[ManagedProcess] = []
        self.statuses: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        say("cleaning up")
        for process in reversed(self.processes):
            process.stop()
        for cleanup in reversed(self.cleanups):
            try:
                cleanup()
            except Exception as exc:  # cleanup goes on whatever failed
                say(f"cleanup step failed: {exc}")

    def control_plane(self, cluster: LocalCluster | None) -> client.ApiClient:
        if cluster is None:
            say("starting a local control plane (etcd, kube-apiserver, kube-controller-manager)")
            cluster = LocalCluster(self.workdir / "cluster")
            cluster.start()
            self.cleanups.append(cluster.stop)
        api = api_client(cluster.kubeconfig)
        say("installing the CRDs")
        install_crds(api)
        create_namespace(api, NAMESPACE)
        say("starting the jwtmesh operator (with the chart's RBAC)")
        operator = OperatorProcess.for_cluster(cluster, self.workdir, name="operator")
        self.cleanups.append(operator.stop)
        self.api = api
        return api

    def apply_identities(self) -> None:
        say(f"applying ServiceIdentities: {', '.join(IDENTITIES)}")
        for name, spec in IDENTITIES.items():
            if get_object(self.api, NAMESPACE, "serviceidentities", name) is None:
                create_object(
                    self.api, NAMESPACE, "serviceidentities", service_identity(name, spec)
                )
        for name in IDENTITIES:
            status = wait_for(lambda n=name: _ready_status(self.api, n), 30, f"{name} Ready")
            self.statuses[name] = status
            say(f"{name} is Ready: issuer {status['issuer']}, kid {status['activeKid'][:12]}…")

    def mount_volumes(self) -> None:
        say("mounting Secrets and ConfigMaps as files, as a kubelet would")
        kubelet = MiniKubelet(self.api, NAMESPACE, self.workdir / "volumes")
        kubelet.mount("bundle", "configmap", "jwtmesh-trust-bundle")
        wait_for(lambda: _synced(kubelet, "bundle", "bundle.json"), 20, "the trust bundle")
        self.census_policy = kubelet.mount("census-policy", "configmap", "census-jwtmesh-policy")
        self.herald_keys = kubelet.mount("herald-identity", "secret", "herald-jwtmesh-key")
        kubelet.start()
        self.cleanups.append(kubelet.stop)
        self.bundle_file = kubelet.volumes["bundle"][2].path("bundle.json")

    def start_census(self) -> None:
        say("starting Census: its app behind Envoy + jwtmesh sidecar (HTTP ext_authz)")
        upstream = EchoUpstream().start()
        self.cleanups.append(upstream.stop)
        self.upstream_port = upstream.port
        authz, self.census_port = free_port(), free_port()
        sidecar = {
            "identity": self.statuses["census"]["audience"],
            "listen": {"http": f"127.0.0.1:{authz}"},
            "trust": {"bundleFiles": [str(self.bundle_file)]},
            "policyFile": str(self.census_policy.path("policy.yaml")),
        }
        self.processes.append(start_sidecar(sidecar, self.workdir, "census-sidecar"))
        envoy = PodEnvoy(
            inbound_port=self.census_port,
            app_port=upstream.port,
            admin_port=free_port(),
            listen_address="127.0.0.1",
            authz=AuthzEndpoint("http", port=authz),
        )
        self.processes.append(start_envoy(envoy, self.workdir, "census-envoy"))

    def start_herald(self) -> None:
        say("starting Herald: Envoy egress listener + jwtmesh sidecar minting its tokens")
        authz, self.herald_egress = free_port(), free_port()
        sidecar = {
            "listen": {"http": f"127.0.0.1:{authz}"},
            "identityKeys": str(self.herald_keys.path("signing-keys.json")),
            "egress": {
                "audiences": {"census": self.statuses["census"]["audience"]},
                "tokenLifetimeSeconds": 60,
            },
        }
        self.processes.append(start_sidecar(sidecar, self.workdir, "herald-sidecar"))
        envoy = PodEnvoy(
            inbound_port=free_port(),
            app_port=self.upstream_port,
            admin_port=free_port(),
            listen_address="127.0.0.1",
            authz=AuthzEndpoint("http", port=authz),
            egress_port=self.herald_egress,
            destinations=(Destination("census", "127.0.0.1", self.census_port),),
        )
        self.processes.append(start_envoy(envoy, self.workdir, "herald-envoy"))

    def herald_token(self, audience: str, **claims: Any) -> str:
        """A token Herald's key signs, as an attacker holding that key could make it."""
        identity = parse_identity(self.herald_keys.path("signing-keys.json").read_bytes())
        key = active_key(identity, time.time())
        assert key is not None
        subject = claims.pop("sub", identity.subject)
        return mint_token(
            key,
            issuer=identity.issuer,
            subject=subject,
            audience=audience,
            now=time.time(),
            lifetime=300,
            extra_claims=claims,
        )

    def census(self, token: str | None, method: str = "GET") -> str:
        headers = {"authorization": f"Bearer {token}"} if token else {}
        return outcome(*request(self.census_port, "/users/7", method=method, headers=headers))

    def request_checks(self, report: DemoReport) -> None:
        say("sending requests")
        census_aud = self.statuses["census"]["audience"]
        status, body = request(self.herald_egress, "/users/7", headers={"host": "census"})
        report.add("Herald → Census with a minted token", "200", str(status))
        seen = body.get("headers", {}).get("x-jwtmesh-subject", "")
        report.add("Census sees the verified caller", f"herald.{NAMESPACE}", seen)
        report.add("no token", "401 missing_token", self.census(None))
        other = self.herald_token(f"billing.{NAMESPACE}")
        report.add("a token for another audience", "401 wrong_audience", self.census(other))
        deleting = outcome(
            *request(self.herald_egress, "/users/7", method="DELETE", headers={"host": "census"})
        )
        report.add(
            "a caller without the required role (Herald deletes)", "403 role_required", deleting
        )
        asserted = self.herald_token(census_aud, roles=["admin"])
        report.add(
            "a caller giving itself a role in its token",
            "401 claim_not_granted",
            self.census(asserted, "DELETE"),
        )
        posing = self.herald_token(census_aud, sub=census_aud)
        report.add(
            "Herald's key naming another service as sub",
            "401 subject_mismatch",
            self.census(posing),
        )

    def revocation_check(self, report: DemoReport) -> None:
        revoked = self.herald_token(self.statuses["census"]["audience"])
        jti = json.loads(base64.urlsafe_b64decode(revoked.split(".")[1] + "=="))["jti"]
        assert self.census(revoked) == "200"
        say("revoking one token by its jti (TokenRevocation)")
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 300))
        body = {
            "apiVersion": "jwtmesh.io/v1alpha1",
            "kind": "TokenRevocation",
            "metadata": {"name": "stolen-token"},
            "spec": {"identity": "herald", "jti": jti, "expiresAt": expires},
        }
        create_object(self.api, NAMESPACE, "tokenrevocations", body)
        refused = wait_for(
            lambda: (answer := self.census(revoked)) != "200" and answer, 20, "the revocation"
        )
        report.add("a revoked token", "401 token_revoked", refused)

    def lra_checks(self, report: DemoReport) -> None:
        say("an LRA coordinator: roles from its own policy; per role one call allowed, one not")
        policy = yaml.safe_load(
            self.api_configmap("lra-coordinator-jwtmesh-policy").data["policy.yaml"]
        )
        with guarded_service(
            self.workdir / "lra", "lra-coordinator.demo", self.bundle_file.read_bytes(), policy
        ) as coordinator:
            for role, caller, method, path, expected in LRA_CALLS:
                token = self.identity_token(caller, "lra-coordinator.demo")
                answer = coordinator.call(method, path, token)
                actual = f"{answer.status} {answer.reason}"
                report.add(f"LRA {role}: {caller} {method} {path}", expected, actual)

    def api_configmap(self, name: str) -> Any:
        return client.CoreV1Api(self.api).read_namespaced_config_map(name, NAMESPACE)

    def identity_token(self, name: str, audience: str) -> str:
        """A token from the identity's Secret, as its sidecar mints it."""
        core: Any = client.CoreV1Api(self.api)
        secret = core.read_namespaced_secret(f"{name}-jwtmesh-key", NAMESPACE)
        identity = parse_identity(base64.b64decode(secret.data["signing-keys.json"]))
        key = active_key(identity, time.time())
        assert key is not None
        return mint_token(
            key,
            issuer=identity.issuer,
            subject=identity.subject,
            audience=audience,
            now=time.time(),
            lifetime=300,
            extra_claims=identity.claims,
        )

    def rotation(self, report: DemoReport) -> None:
        say("forcing a rotation of Herald's key in the middle of steady traffic")
        old_kid = self.statuses["herald"]["activeKid"]
        with SteadyTraffic(self.herald_egress) as traffic:
            time.sleep(1.0)
            rotate = {"metadata": {"annotations": {"jwtmesh.io/rotate": str(time.time())}}}
            patch_object(self.api, NAMESPACE, "serviceidentities", "herald", rotate)
            new_kid = wait_for(lambda: _kid_changed(self.api, old_kid), 30, "the new key")
            # Keep the traffic going until Herald's sidecar signs with the new key.
            wait_for(lambda: _mounted_signer(self.herald_keys) == new_kid, 15, "it mounted")
            time.sleep(3.0)
        report.rotation = {
            "requests": traffic.requests,
            "failed": len(traffic.failures),
            "seconds": traffic.seconds,
            "old_kid": old_kid,
            "new_kid": new_kid,
            "failures": traffic.failures[:5],
        }
        status, _ = request(self.herald_egress, "/users/7", headers={"host": "census"})
        report.add("Herald → Census after the rotation", "200", str(status))


def run_demo(workdir: Path, cluster: LocalCluster | None = None) -> DemoReport:
    report = DemoReport()
    demo = Demo(workdir)
    try:
        demo.control_plane(cluster)
        demo.apply_identities()
        demo.mount_volumes()
        demo.start_census()
        demo.start_herald()
        demo.request_checks(report)
        demo.revocation_check(report)
        demo.lra_checks(report)
        demo.rotation(report)
        return report
    finally:
        demo.close()


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
