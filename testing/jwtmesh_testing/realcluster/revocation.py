"""A TokenRevocation created, then awaited in the trust bundle ConfigMap.

Publishing a revocation is work only the acting operator replica does, so the same wait
times a failover's take-over and starts the clock of "in the bundle → in force in a
sidecar" (the kubelet's sync of the mounted bundle).
"""

from __future__ import annotations

import time

from jwtmesh_testing.realcluster.clusterapi import ClusterApi
from jwtmesh_testing.realcluster.rotation import poll


def revoke_and_await_publish(
    api: ClusterApi, namespace: str, name: str, identity: str, issuer: str, jti: str, what: str
) -> float:
    """Revokes `jti` of `identity`; returns the time the bundle ConfigMap first listed it."""
    api.revoke(namespace, name, identity, jti)
    poll(what, lambda: jti in api.revoked_jtis(namespace, issuer), 60, 0.2)
    return time.time()
