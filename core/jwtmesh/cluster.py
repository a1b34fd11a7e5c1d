"""The names the operator and the `jwtmesh` CLI meet on in a cluster: the API group, the
resources, the annotations and the ConfigMap the trust bundle is published in.

The one home of these names: the operator writes under them, `jwtmesh status`, `rotate`,
`revoke` and `bundle show --namespace` read and write under them.
"""

from __future__ import annotations

from jwtmesh.shards import LEGACY_FILE

API_GROUP = "jwtmesh.io"
API_VERSION = "v1alpha1"
IDENTITY_PLURAL = "serviceidentities"
REVOCATION_PLURAL = "tokenrevocations"
REVOCATION_KIND = "TokenRevocation"
ROTATE_ANNOTATION = "jwtmesh.io/rotate"  # any new value asks for a rotation now
IDENTITY_LABEL = "jwtmesh.io/identity"  # on an identity's Secret, policy, and Pods
BUNDLE_CONFIGMAP = "jwtmesh-trust-bundle"  # the operator's --bundle-name default
BUNDLE_KEY = LEGACY_FILE  # the single-object bundle's key (and file)
POLICY_SUFFIX = "-jwtmesh-policy"  # ConfigMap <identity><suffix>, key policy.yaml
POLICY_KEY = "policy.yaml"
BUNDLE_OBJECT_LABEL = "jwtmesh.io/trust-bundle"  # "true" on every trust-bundle ConfigMap


def shard_configmap(bundle_name: str, index: int) -> str:
    """ConfigMap of shard `index` (key `jwtmesh.shards.shard_file(index)`)."""
    return f"{bundle_name}-{index}"


def manifest_configmap(bundle_name: str) -> str:
    """ConfigMap of the sharded bundle's manifest (key `jwtmesh.shards.MANIFEST_FILE`)."""
    return f"{bundle_name}-manifest"
