"""What the cluster tests read and send from the host, as the admin: identities' keys from
their Secrets (an attacker holding a key signs what it likes), trust bundles, the acting
operator replica, and requests to a Service's ClusterIP (kube-proxy takes them from the
host into the pod network)."""

from __future__ import annotations

import base64
import http.client
import json
import time
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh.identity import IdentityKeys, active_key, parse_identity
from jwtmesh.tokens.keys import SigningKey
from jwtmesh.tokens.mint import mint_token
from jwtmesh_testing.kubeapply import GROUP, VERSION, api_client
from jwtmesh_testing.realcluster.layout import Layout

BUNDLE = "jwtmesh-trust-bundle"
OPERATOR_LEASE = "jwtmesh-operator"  # the chart's replicas elect their leader with it


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str  # the refusal's reason code ("" for an answer that is no refusal)

    def __str__(self) -> str:
        return f"{self.status} {self.reason}".strip()


def send(
    address: str, port: int, path: str, *, token: str | None = None, method: str = "GET"
) -> Answer:
    """One request (a new connection); status 0 if nothing answered."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    connection = http.client.HTTPConnection(address, port, timeout=5)
    try:
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        body = response.read()
    except OSError:
        return Answer(0, "no answer")
    finally:
        connection.close()
    try:
        reason = json.loads(body).get("error", "")
    except (ValueError, AttributeError):
        reason = ""
    return Answer(response.status, reason if isinstance(reason, str) else "")


def sign(
    identity: IdentityKeys,
    audience: str,
    key: SigningKey | None = None,
    lifetime: float = 300,
    **claims: Any,
) -> str:
    """A token signed with the identity's active key (or `key`); `sub` may be overridden."""
    signing = key or active_key(identity, time.time())
    assert signing is not None, "the identity has no active key"
    subject = claims.pop("sub", identity.subject)
    return mint_token(
        signing,
        issuer=identity.issuer,
        subject=subject,
        audience=audience,
        now=time.time(),
        lifetime=lifetime,
        extra_claims=claims,
    )


def token_part(token: str, index: int) -> dict[str, Any]:
    """The token's header (0) or claims (1), decoded (not verified)."""
    segment = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(
        base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    )
    return decoded


class ClusterApi:
    """The admin's API client for the real cluster (fast polling, no kubectl processes)."""

    def __init__(self, layout: Layout) -> None:
        self.api = api_client(layout.admin_kubeconfig)
        self.core = client.CoreV1Api(self.api)
        self.custom = client.CustomObjectsApi(self.api)
        self.coordination = client.CoordinationV1Api(self.api)

    def identity(self, namespace: str, name: str) -> dict[str, Any]:
        found: Any = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, "serviceidentities", name
        )
        return dict(found)

    def identity_keys(self, namespace: str, name: str) -> IdentityKeys:
        secret: Any = self.core.read_namespaced_secret(f"{name}-jwtmesh-key", namespace)
        return parse_identity(base64.b64decode(secret.data["signing-keys.json"]))

    def bundle_kids(self, namespace: str, issuer: str) -> set[str]:
        """The kids the namespace's trust bundle publishes for `issuer` (API, not mounts)."""
        try:
            found: Any = self.core.read_namespaced_config_map(BUNDLE, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return set()
            raise
        bundle = json.loads(found.data["bundle.json"])
        entry = bundle.get("issuers", {}).get(issuer, {})
        return {key["kid"] for key in entry.get("jwks", {}).get("keys", [])}

    def request_rotation(self, namespace: str, name: str) -> None:
        patch = {"metadata": {"annotations": {"jwtmesh.io/rotate": f"{time.time():.3f}"}}}
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "serviceidentities", name, patch
        )

    def revoke(self, namespace: str, name: str, identity: str, jti: str) -> None:
        expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 900))
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "TokenRevocation",
            "metadata": {"name": name},
            "spec": {"identity": identity, "jti": jti, "expiresAt": expires},
        }
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "tokenrevocations", body
        )

    def revoked_jtis(self, namespace: str, issuer: str) -> set[str]:
        found: Any = self.core.read_namespaced_config_map(BUNDLE, namespace)
        entry = json.loads(found.data["bundle.json"]).get("issuers", {}).get(issuer, {})
        return set(entry.get("revocations", {}).get("jtis", {}))

    def service_address(self, namespace: str, name: str) -> tuple[str, int]:
        service: Any = self.core.read_namespaced_service(name, namespace)
        return str(service.spec.cluster_ip), int(service.spec.ports[0].port)

    def pods(self, namespace: str, selector: str) -> list[Any]:
        listed: Any = self.core.list_namespaced_pod(namespace, label_selector=selector)
        return [pod for pod in listed.items if pod.metadata.deletion_timestamp is None]

    def acting_operator(self, namespace: str) -> str | None:
        """The operator replica holding the leader-election Lease (a Pod name), if any.
        Holders are "<hostname>-<8 hex>", and a Pod's hostname is its name."""
        try:
            lease: Any = self.coordination.read_namespaced_lease(OPERATOR_LEASE, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        holder = lease.spec.holder_identity
        return str(holder).rpartition("-")[0] if holder else None
