"""A ServiceIdentity's spec, with the defaults the CRD and the operator apply."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jwtmesh.cluster import API_GROUP, API_VERSION, IDENTITY_LABEL, ROTATE_ANNOTATION
from jwtmesh.policy import Policy, PolicyError, policy_from_dict
from jwtmesh.tokens.keys import MIN_RSA_BITS
from jwtmesh_operator.durations import format_duration, parse_duration
from jwtmesh_operator.errors import OperatorError
from jwtmesh_operator.netpol import OpenPort, OpenPortError, parse_open_ports
from jwtmesh_operator.planning import Rotation
from jwtmesh_operator.tenancy import default_audience, default_issuer

DEFAULT_TRUST_DOMAIN = "jwtmesh.cluster.local"
# Left on identities by operators that ran a kopf daemon per identity; with no operator it
# would block the deletion of the identity, its namespace and the CRDs for ever.
LEFTOVER_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
__all__ = ["API_GROUP", "API_VERSION", "IDENTITY_LABEL", "ROTATE_ANNOTATION"]


class SpecError(OperatorError, ValueError):
    """The spec cannot be acted on (the CRD's validation should have refused it)."""


@dataclass(frozen=True)
class IdentitySpec:
    namespace: str
    name: str
    issuer: str
    audience: str
    algorithm: str
    rsa_bits: int
    max_lifetime: float
    rotation: Rotation
    secret_name: str
    policy: Policy | None
    policy_document: Mapping[str, Any] | None
    open_ports: tuple[OpenPort, ...] = ()  # reachable without Envoy (the NetworkPolicy)


# The defaults of a ServiceIdentity's spec. The CRD states the same values (so `kubectl get`
# shows them); tests/operator/test_spec.py holds the two equal.
DEFAULT_ALGORITHM = "ES256"
DEFAULT_RSA_BITS = 3072
DEFAULT_MAX_TOKEN_LIFETIME = "15m"
DEFAULT_ROTATION_PERIOD = "720h"
DEFAULT_PRE_PUBLISH = "1h"
DEFAULT_RETAIN = "2h"
# The largest RSA key the operator makes (the CRD's keySize maximum too): a 4096-bit key
# takes ~1 s to generate, an 8192-bit one 10-20 s, a tenant's to spend on every rotation.
MAX_RSA_BITS = 4096


def period_refusal(rotation: Rotation, floor: float) -> str | None:
    """Why this operator does not rotate so often (its --min-rotation-period), or None."""
    if rotation.period >= floor:
        return None
    return (
        f"rotation.period {format_duration(rotation.period)} is shorter than this operator's "
        f"minimum {format_duration(floor)} (--min-rotation-period): every rotation rewrites "
        "the trust bundle in every namespace"
    )


def default_secret_name(name: str) -> str:
    return f"{name}-jwtmesh-key"


def parse_spec(
    namespace: str, name: str, spec: Mapping[str, Any], trust_domain: str
) -> IdentitySpec:
    rotation = spec.get("rotation") or {}
    try:
        parsed_rotation = Rotation(
            period=parse_duration(rotation.get("period", DEFAULT_ROTATION_PERIOD)),
            pre_publish=parse_duration(rotation.get("prePublish", DEFAULT_PRE_PUBLISH)),
            retain=parse_duration(rotation.get("retain", DEFAULT_RETAIN)),
        )
        max_lifetime = parse_duration(spec.get("maxTokenLifetime", DEFAULT_MAX_TOKEN_LIFETIME))
    except ValueError as exc:
        raise SpecError(str(exc)) from exc
    if parsed_rotation.retain < max_lifetime + 30:
        raise SpecError("rotation.retain must be at least maxTokenLifetime + 30s")
    rsa_bits = int(spec.get("keySize", DEFAULT_RSA_BITS))
    if not MIN_RSA_BITS <= rsa_bits <= MAX_RSA_BITS:
        raise SpecError(
            f"keySize {rsa_bits} is outside {MIN_RSA_BITS}..{MAX_RSA_BITS}: the operator makes "
            f"RSA keys of at most {MAX_RSA_BITS} bits (larger ones take it tens of seconds each)"
        )
    policy_document = spec.get("policy")
    try:
        policy = policy_from_dict(dict(policy_document)) if policy_document is not None else None
    except PolicyError as exc:
        raise SpecError(f"policy: {exc}") from exc
    try:
        open_ports = parse_open_ports(spec.get("openPorts"))
    except OpenPortError as exc:
        raise SpecError(str(exc)) from exc
    return IdentitySpec(
        namespace=namespace,
        name=name,
        issuer=spec.get("issuer") or default_issuer(trust_domain, namespace, name),
        audience=spec.get("audience") or default_audience(namespace, name),
        algorithm=spec.get("algorithm", DEFAULT_ALGORITHM),
        rsa_bits=rsa_bits,
        max_lifetime=max_lifetime,
        rotation=parsed_rotation,
        secret_name=spec.get("secretName") or default_secret_name(name),
        policy=policy,
        policy_document=policy_document,
        open_ports=open_ports,
    )
