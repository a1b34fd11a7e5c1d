"""Which revocations take effect, and why the others do not. Pure.

A TokenRevocation lives in a namespace and reaches only that namespace's identities: it
names one of them (`identity`) or the issuer of one of them (`issuer`). Revoking across
namespaces takes a ClusterTokenRevocation, which only cluster admins can create. A cutoff
(`issuedBefore`) in the future would refuse tokens not minted yet, a lasting outage for
its identity: it is refused too (a compromised key is a `kid` revocation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from jwtmesh.tokens.verify import MAX_LEEWAY
from jwtmesh_operator.bundles import Revocation
from jwtmesh_operator.tenancy import Refusal, Resolved

# Condition/Event reasons (CamelCase, stable).
ACCEPTED = "Accepted"
CROSS_NAMESPACE = "CrossNamespace"  # names an issuer or identity outside its namespace
UNKNOWN_IDENTITY = "UnknownIdentity"  # names an identity (or issuer) that does not exist
FUTURE_CUTOFF = "FutureCutoff"  # issuedBefore later than now: it would revoke future tokens
INVALID_REVOCATION = "InvalidRevocation"  # a time that does not parse
TOO_MANY_REVOCATIONS = "TooManyRevocations"  # over its namespace's jti revocations in force
MAX_CUTOFF_AHEAD = 60.0  # seconds of clock skew tolerated for issuedBefore
# Every jti revocation is in every namespace's bundle until its token expires (70 to 330 bytes
# each), so one namespace's TokenRevocations could otherwise fill the trust domain's bundle
# for all. A real incident needs a few; many tokens at once are one issuedBefore or kid.
MAX_JTI_REVOCATIONS_PER_NAMESPACE = 1000


@dataclass(frozen=True)
class RevocationRecord:
    """A TokenRevocation (namespace set) or a ClusterTokenRevocation (namespace None)."""

    name: str
    namespace: str | None
    spec: Mapping[str, Any] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return "TokenRevocation" if self.namespace is not None else "ClusterTokenRevocation"


def unix(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _target_issuer(
    record: RevocationRecord, identities: Mapping[tuple[str, str], Resolved]
) -> str | Refusal:
    """The issuer this revocation may act on, or why it may not act at all."""
    spec = record.spec
    identity = spec.get("identity")
    if identity is not None:
        if isinstance(identity, Mapping):  # a ClusterTokenRevocation names {namespace, name}
            key = (str(identity.get("namespace")), str(identity.get("name")))
        else:
            key = (str(record.namespace), str(identity))
        found = identities.get(key)
        if found is None or (record.namespace is not None and key[0] != record.namespace):
            return Refusal(UNKNOWN_IDENTITY, f"no ServiceIdentity {key[0]}/{key[1]}")
        if found.refusal is not None:
            # Its issuer may be another's (that is why it was refused): never act on it.
            return Refusal(UNKNOWN_IDENTITY, f"ServiceIdentity {key[0]}/{key[1]} is not published")
        return found.issuer
    issuer = str(spec.get("issuer", ""))
    if record.namespace is None:
        return issuer
    holders = [r for r in identities.values() if r.issuer == issuer and r.refusal is None]
    if not any(holder.record.namespace == record.namespace for holder in holders):
        where = "another namespace's" if holders else "no identity's"
        return Refusal(
            CROSS_NAMESPACE,
            f"issuer {issuer[:200]!r} is {where}, not one of namespace {record.namespace!r}: "
            f"a TokenRevocation reaches only its own namespace (use a ClusterTokenRevocation)",
        )
    return issuer


def judge(
    record: RevocationRecord, identities: Mapping[tuple[str, str], Resolved], now: float
) -> Revocation | Refusal:
    """What this revocation revokes, or why it is refused."""
    target = _target_issuer(record, identities)
    if isinstance(target, Refusal):
        return target
    spec = record.spec
    try:
        expires_at = unix(spec["expiresAt"]) if spec.get("expiresAt") else None
        issued_before = unix(spec["issuedBefore"]) if spec.get("issuedBefore") else None
    except (TypeError, ValueError):
        return Refusal(INVALID_REVOCATION, "expiresAt or issuedBefore is not an RFC 3339 time")
    if issued_before is not None and issued_before > now + MAX_CUTOFF_AHEAD:
        return Refusal(
            FUTURE_CUTOFF,
            "issuedBefore is in the future: it would also refuse tokens not minted yet "
            "(for a compromised key use kid, to stop an identity delete it)",
        )
    return Revocation(
        issuer=target,
        jti=spec.get("jti"),
        expires_at=expires_at,
        issued_before=issued_before,
        kid=spec.get("kid"),
    )


def judge_all(
    records: list[RevocationRecord], identities: Mapping[tuple[str, str], Resolved], now: float
) -> dict[tuple[str | None, str], Revocation | Refusal]:
    """Each revocation's verdict, (namespace, name) → it, with each namespace's budget of jti
    revocations in force applied: past it, the ones expiring last are refused."""
    verdicts: dict[tuple[str | None, str], Revocation | Refusal] = {
        (record.namespace, record.name): judge(record, identities, now) for record in records
    }
    in_force: dict[str, list[tuple[float, str]]] = {}
    for (namespace, name), verdict in verdicts.items():
        if namespace is None or not isinstance(verdict, Revocation):
            continue  # a cluster admin's ClusterTokenRevocations are not budgeted
        expires_at = verdict.expires_at
        if verdict.jti is not None and expires_at is not None and expires_at + MAX_LEEWAY >= now:
            in_force.setdefault(namespace, []).append((expires_at, name))
    for namespace, entries in in_force.items():
        for _, name in sorted(entries)[MAX_JTI_REVOCATIONS_PER_NAMESPACE:]:
            verdicts[(namespace, name)] = Refusal(
                TOO_MANY_REVOCATIONS,
                f"namespace {namespace!r} has more than {MAX_JTI_REVOCATIONS_PER_NAMESPACE} "
                "token (jti) revocations in force; those expiring last are refused: revoke "
                "many tokens with issuedBefore or kid, and delete revocations no longer needed",
            )
    return verdicts


def effective(
    records: list[RevocationRecord], identities: Mapping[tuple[str, str], Resolved], now: float
) -> list[Revocation]:
    verdicts = judge_all(records, identities, now).values()
    return [verdict for verdict in verdicts if isinstance(verdict, Revocation)]
