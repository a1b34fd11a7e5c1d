"""kopf indexes: what the operator keeps in memory of every object the bundle depends on.

kopf fills them completely before any handler runs, so a restarted operator never
publishes a partial bundle. Each index turns an object into a small frozen record; the
pure modules (tenancy, revocations, sources) decide from the records. The
ServiceIdentities and signing-key Secrets are not watched by kopf but by the operator itself
(informer.py), their records kept in `OperatorState.identity_records` and
`.signing_secrets` (`identity_record`, `secret_record` below), listed before kopf starts.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import kopf

from jwtmesh.tokens.keys import PublicJwk
from jwtmesh_operator.keystore import PUBLISHED_KEYS, read_published
from jwtmesh_operator.revocations import RevocationRecord
from jwtmesh_operator.sources import BundleSources, SecretRecord, gather, owns
from jwtmesh_operator.spec import (
    API_GROUP,
    API_VERSION,
    IDENTITY_LABEL,
    ROTATE_ANNOTATION,
    default_secret_name,
)
from jwtmesh_operator.state import OperatorState
from jwtmesh_operator.tenancy import Grant, IdentityRecord, Resolved

GRANTS = (API_GROUP, API_VERSION, "clusteridentitygrants")
REVOCATIONS = (API_GROUP, API_VERSION, "tokenrevocations")
CLUSTER_REVOCATIONS = (API_GROUP, API_VERSION, "clustertokenrevocations")
INDEX_NAMES = (
    "grants",
    "revocations",
    "cluster_revocations",
    "bundle_namespaces",
    "namespace_rotations",
)


def operator_state(memo: Any) -> OperatorState:
    state: OperatorState = memo["state"]
    return state


def identity_record(namespace: str, name: str, meta: Any, spec: Any) -> IdentityRecord:
    return IdentityRecord(
        namespace=namespace,
        name=name,
        uid=str(meta.get("uid", "")),
        created=str(meta.get("creationTimestamp", "")),
        spec_issuer=spec.get("issuer"),
        spec_audience=spec.get("audience"),
        secret_name=spec.get("secretName") or default_secret_name(name),
        service_accounts=tuple(spec.get("serviceAccounts") or ()),
    )


# The index functions are coroutines though they await nothing: kopf runs a plain function
# in the default thread pool (the one the API calls wait in), a thread hop for every watch
# event: ~6% of the operator's time in a 10,000-identity rotation sweep (profiled).
@kopf.index(*GRANTS)
async def grants(name: str, spec: Any, **_: Any) -> Any:
    identity = spec.get("identity") or {}
    grant = Grant(
        name=name,
        namespace=str(identity.get("namespace", "")),
        identity=str(identity.get("name", "")),
        issuer=spec.get("issuer"),
        audience=spec.get("audience"),
        claims=dict(spec.get("claims") or {}),
    )
    return {"all": grant}


def secret_record(
    secret: dict[str, Any], identities: Mapping[tuple[str, str], IdentityRecord]
) -> SecretRecord:
    """What the bundle keeps of a signing-key Secret (informer.py hands them on). One its
    identity owns (sources.owns): its public keys, each checked against its kid and then
    kept as its JWK members (PublicJwk: a tenth of a parsed key's memory), at most MAX_KEYS
    (keystore.read_published refuses more). Any other: its name, label and owners only,
    its keys never read (only an owned Secret's are published). The issuer is not read
    from here."""
    meta = secret["metadata"]
    namespace, name = str(meta["namespace"]), str(meta["name"])
    bare = SecretRecord(
        namespace,
        name,
        frozenset(str(ref.get("uid")) for ref in meta.get("ownerReferences") or []),
        identity=str((meta.get("labels") or {}).get(IDENTITY_LABEL, "")),
        read=False,
    )
    if not owns(identities.get((namespace, bare.identity)), bare):
        return bare
    raw = (secret.get("data") or {}).get(PUBLISHED_KEYS)
    try:
        _schedules, public, _damaged = read_published(base64.b64decode(raw) if raw else None)
    except ValueError:
        public = {}
    keys = {kid: PublicJwk.of(key) for kid, key in public.items()}
    return replace(bare, keys=keys, read=True)


@kopf.index(*REVOCATIONS)
async def revocations(namespace: Any, name: str, spec: Any, **_: Any) -> Any:
    return {"all": RevocationRecord(name=name, namespace=namespace, spec=dict(spec))}


@kopf.index(*CLUSTER_REVOCATIONS)
async def cluster_revocations(name: str, spec: Any, **_: Any) -> Any:
    return {"all": RevocationRecord(name=name, namespace=None, spec=dict(spec))}


def _labeled_for_bundle(labels: Any, memo: Any, **_: Any) -> bool:
    return operator_state(memo).config.bundle_label in labels


# A filter, not a None result: kopf purges objects that stop matching a filter.
@kopf.index("", "v1", "namespaces", when=_labeled_for_bundle)
async def bundle_namespaces(name: str, **_: Any) -> Any:
    return {"labeled": name}


@kopf.index("", "v1", "namespaces", annotations={ROTATE_ANNOTATION: kopf.PRESENT})
async def namespace_rotations(name: str, annotations: Any, **_: Any) -> Any:
    """Namespaces asking every identity in them to rotate (rotation_requests.py)."""
    return {name: str(annotations[ROTATE_ANNOTATION])}


def namespace_rotation(indexes: dict[str, Any], namespace: str) -> str | None:
    """The namespace's rotate annotation (None: it has none)."""
    for value in indexes["namespace_rotations"].get(namespace, ()):
        return str(value)
    return None


def pick(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The indexes among a handler's kwargs."""
    return {name: kwargs[name] for name in INDEX_NAMES}


def revocation_records(indexes: dict[str, Any]) -> list[RevocationRecord]:
    return [
        *indexes["revocations"].get("all", []),
        *indexes["cluster_revocations"].get("all", []),
    ]


def resolved_identities(
    indexes: dict[str, Any], state: OperatorState
) -> dict[tuple[str, str], Resolved]:
    """Who holds which issuer and audience: the identities and the grants index only."""
    return state.resolver.resolve_all(
        list(state.identity_records.values()),
        indexes["grants"].get("all", []),
        state.config.trust_domain,
    )


def sources(indexes: dict[str, Any], state: OperatorState) -> BundleSources:
    """Everything decided from the indexes at this moment."""
    return gather(
        identities=(),
        grants=(),
        secrets=list(state.signing_secrets.values()),
        revocations=revocation_records(indexes),
        labeled_namespaces=indexes["bundle_namespaces"].get("labeled", []),
        trust_domain=state.config.trust_domain,
        now=state.clock(),
        resolved=state.names_memo.get(lambda: resolved_identities(indexes, state)),
    )
