"""`jwtmesh explain`: the sidecar's own decision for one token and request, and the facts
behind it.

The decision is the sidecar's: the same `DecisionService` and `decide_inbound`, the same
token header handling, verifier settings and policy (tests/unit/test_explain.py holds the
two equal over the hostile-token catalogue). The facts are read from the token without
trusting it, to say what it claims next to what this service expects; they never decide.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

from jwtmesh.policy import Policy
from jwtmesh.times import relative, rfc3339
from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.trust import TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings, parse_token
from jwtmesh_sidecar.decide import CheckInput, Decision, Inbound, TokenSettings
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.service import DecisionLog, DecisionService

MAX_SHOWN_BYTES = 1 << 20  # the most of a token explain decodes for its facts


@dataclass(frozen=True)
class Question:
    """One request as Envoy would ask the sidecar about it."""

    token: str | None  # None: no token at all
    method: str = "GET"
    path: str = "/"
    body: bytes = b""  # what the sidecar sees when Envoy forwards no body


def normalise(pasted: str) -> str | None:
    """A token as people paste it: `Bearer eyJ...`, `Authorization: Bearer eyJ...`, with a
    trailing newline. None when nothing is left (no token at all)."""
    text = pasted.strip()
    if text.lower().startswith("authorization:"):
        text = text[len("authorization:") :].strip()
    if text[:7].lower() == "bearer ":
        text = text[7:].strip()
    elif text.lower() == "bearer":
        text = ""
    return text or None


def check_input(question: Question, token_settings: TokenSettings) -> CheckInput:
    headers: dict[str, str] = {}
    if question.token is not None:
        bearer = token_settings.header == "authorization"
        headers[token_settings.header] = f"Bearer {question.token}" if bearer else question.token
    return CheckInput(
        method=question.method.upper(),
        path=question.path,
        host="",
        headers=headers,
        body=question.body,
    )


def decide(
    question: Question,
    bundle: TrustBundle,
    settings: VerifierSettings,
    policy: Policy,
    token_settings: TokenSettings,
    now: float,
    max_body_bytes: int = 0,
) -> Decision:
    """The sidecar's answer: its DecisionService over this bundle and policy."""
    verifier = Verifier(bundle, settings)
    inbound = Inbound(lambda: verifier, lambda: policy, token_settings, max_body_bytes)
    service = DecisionService(
        inbound, None, SidecarMetrics(), DecisionLog(io.StringIO()), clock=lambda: now
    )
    return service.check(check_input(question, token_settings))


def _time(value: Any, now: float) -> dict[str, Any] | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None if value is None else {"invalid": repr(value)[:80]}
    return {"unix": value, "at": rfc3339(float(value)), "relative": relative(float(value), now)}


def _issuer_facts(claims: dict[str, Any], header: dict[str, Any], bundle: TrustBundle) -> Any:
    issuer = claims.get("iss")
    trust = bundle.issuers.get(issuer) if isinstance(issuer, str) else None
    kid = header.get("kid")
    return {
        "actual": issuer,
        "trusted": trust is not None,
        "kids": sorted(trust.keys) if trust is not None else [],
        "tokenKid": kid,
        "kidKnown": trust is not None and isinstance(kid, str) and kid in trust.keys,
        "expectedSubject": trust.mesh.subject if trust is not None and trust.mesh else None,
        "grantedClaims": dict(trust.mesh.granted_claims) if trust and trust.mesh else None,
    }


def token_facts(
    question: Question, bundle: TrustBundle, settings: VerifierSettings, now: float
) -> dict[str, Any]:
    """What the token claims, unverified, beside what this service expects."""
    if question.token is None:
        return {"present": False}
    token = question.token
    facts: dict[str, Any] = {
        "present": True,
        "bytes": len(token),
        "maxTokenBytes": settings.max_token_bytes,
    }
    try:
        parsed = parse_token(token, MAX_SHOWN_BYTES)
    except TokenError as error:
        facts["unreadable"] = f"{error.reason}: {error.message}"
        return facts
    claims, header = parsed.claims, parsed.header
    facts.update(header=header, claims=claims)
    facts["times"] = {
        "now": rfc3339(now),
        **{name: _time(claims.get(name), now) for name in ("exp", "nbf", "iat")},
        "leewaySeconds": settings.leeway,
        "maxLifetimeSeconds": settings.max_lifetime,
    }
    facts["audience"] = {"expected": settings.audience, "actual": claims.get("aud")}
    facts["issuer"] = _issuer_facts(claims, header, bundle)
    facts["subject"] = {
        "actual": claims.get("sub"),
        "expected": facts["issuer"]["expectedSubject"],
    }
    facts["jti"] = claims.get("jti")
    return facts


def policy_facts(decision: Decision, policy: Policy, source: str) -> dict[str, Any]:
    facts: dict[str, Any] = {"source": source, "mode": policy.mode, "rules": len(policy.rules)}
    if not policy.rules:
        facts["note"] = "no rules: every authenticated caller passes"
    facts["rule"] = decision.rule
    if (not decision.allowed and decision.status == 403) or decision.audited_denial:
        facts["failedRequirement"] = decision.message  # why.py: the rule and what failed
    return facts


def explain(
    question: Question,
    bundle: TrustBundle,
    settings: VerifierSettings,
    policy: Policy,
    policy_source: str,
    token_settings: TokenSettings,
    now: float,
    max_body_bytes: int = 0,
) -> dict[str, Any]:
    """The decision and the facts behind it, as one JSON-able document."""
    decision = decide(question, bundle, settings, policy, token_settings, now, max_body_bytes)
    return {
        "decision": {
            "allowed": decision.allowed,
            "status": decision.status,
            "reason": decision.reason,
            "message": decision.message,
            "auditedDenial": decision.audited_denial,
        },
        "request": {
            "method": question.method.upper(),
            "path": question.path,
            "bodyBytes": len(question.body),
            "tokenHeader": token_settings.header,
        },
        "token": token_facts(question, bundle, settings, now),
        "policy": policy_facts(decision, policy, policy_source),
    }
