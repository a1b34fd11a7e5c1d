"""Deleting the acting operator replica and timing the standby's take-over.

The replicas elect a leader through the Lease `jwtmesh-operator` in the release's
namespace: its holder acts. A deleted replica keeps acting through its preStop pause (5 s),
then gives the Lease up as it stops; the standby takes it at its next renewal round (5 s).
"Took over" is measured by work only an acting operator does: a TokenRevocation created
after the deleted replica let go must reach the trust bundle.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any

from jwtmesh_testing.realcluster.clusterapi import ClusterApi
from jwtmesh_testing.realcluster.daemons import say
from jwtmesh_testing.realcluster.revocation import revoke_and_await_publish
from jwtmesh_testing.realcluster.rotation import poll

OPERATOR_SELECTOR = "app.kubernetes.io/name=jwtmesh,app.kubernetes.io/component=operator"


@dataclass(frozen=True)
class FailoverRecord:
    deleted: str
    successor: str
    left_after: float  # deletion → the deleted replica no longer holds the Lease
    revocation_after: float  # it left → a new TokenRevocation published by the successor
    replacement_after: float  # deletion → two Ready replicas again

    def summary(self) -> str:
        return (
            f"deleted the acting replica {self.deleted}: it let the Lease go after "
            f"{self.left_after:.1f} s, {self.successor} published a revocation "
            f"{self.revocation_after:.1f} s later; two replicas Ready again after "
            f"{self.replacement_after:.0f} s"
        )


def ready_replicas(api: ClusterApi, namespace: str) -> list[str]:
    def ready(pod: Any) -> bool:
        return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])

    return [p.metadata.name for p in api.pods(namespace, OPERATOR_SELECTOR) if ready(p)]


def fail_over(
    api: ClusterApi, system: str, namespace: str, identity: str, issuer: str
) -> FailoverRecord:
    acting = api.acting_operator(system)
    assert acting is not None, "no operator replica holds the Lease"
    deleted_at = time.time()
    api.core.delete_namespaced_pod(acting, system)  # graceful, as a drain or rollout does
    poll(
        "the deleted replica letting the Lease go",
        lambda: api.acting_operator(system) != acting,
        60,
        0.2,
    )
    left_at = time.time()
    revoked_at = revoke_and_await_publish(
        api,
        namespace,
        f"failover-{int(left_at)}",
        identity,
        issuer,
        secrets.token_urlsafe(16),
        "a revocation published by the standby",
    )
    successor = api.acting_operator(system)
    poll(
        "two Ready operator replicas again",
        lambda: len([p for p in ready_replicas(api, system) if p != acting]) >= 2,
        120,
        0.5,
    )
    record = FailoverRecord(
        deleted=acting,
        successor=successor or "?",
        left_after=left_at - deleted_at,
        revocation_after=revoked_at - left_at,
        replacement_after=time.time() - deleted_at,
    )
    say(f"failover: {record.summary()}")
    return record
