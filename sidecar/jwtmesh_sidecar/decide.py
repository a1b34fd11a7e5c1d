"""The decision core: one request in, one decision out, whichever transport asked.

Inbound: find the token, verify it against the trust bundle in memory, check body
binding, evaluate the policy. Egress: attach a token minted for the destination's
audience. Pure: no I/O and no waiting; the clock is an argument. An unknown kid or
issuer is refused at once from what is loaded (the shell then asks the trust store's
poller for a refresh). Adapters translate `CheckInput`/`Decision` to and from the wire.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from jwtmesh import policy as policy_rules
from jwtmesh import reasons
from jwtmesh.envoy_config import METHOD_OVERRIDE_HEADERS
from jwtmesh.policy import Caller, Policy
from jwtmesh.reasons import Reason, reason_for
from jwtmesh.tokens.claims import listed
from jwtmesh.tokens.errors import BodyMismatch, MissingToken, TokenError
from jwtmesh.tokens.mint import body_hash
from jwtmesh.tokens.verify import VerifiedToken, Verifier
from jwtmesh_sidecar.why import policy_denial_message

HEADER_ISSUER = "x-jwtmesh-issuer"
HEADER_SUBJECT = "x-jwtmesh-subject"
HEADER_CLAIMS = "x-jwtmesh-claims"
RESERVED_PREFIX = "x-jwtmesh-"
PARTIAL_BODY_HEADER = "x-envoy-auth-partial-body"


@dataclass(frozen=True)
class CheckInput:
    method: str
    path: str
    host: str
    headers: Mapping[str, str]  # lower-case names
    body: bytes | None = None
    egress: bool = False


InputKey = tuple[bool, str, str, str, bytes | None, tuple[tuple[str, str], ...]]


def input_key(request: CheckInput) -> InputKey:
    """Every field of `request`, hashable: two requests with the same key are decided
    alike with the same bundle, policy and clock. The gRPC answer memo's key: a CheckRequest
    also carries a request id, a time and a source port, none of which a decision reads, so
    its own bytes never repeat."""
    headers = tuple(sorted(request.headers.items()))
    return (request.egress, request.method, request.path, request.host, request.body, headers)


@dataclass(frozen=True)
class Decision:
    allowed: bool
    status: int  # 200 when allowed
    reason: str  # stable code: "allowed" or why not
    message: str = ""
    upstream_headers: tuple[tuple[str, str], ...] = ()  # set (overwrite) on the upstream request
    remove_headers: tuple[str, ...] = ()  # removed from the upstream request
    client_headers: tuple[tuple[str, str], ...] = ()  # on the denial response
    body: str = ""  # denial response body (JSON)
    subject: str | None = None
    issuer: str | None = None
    rule: str | None = None
    audited_denial: bool = False
    kid: str | None = None
    jti: str | None = None
    # False: issuer, subject, kid and jti are what a refused token claims, unverified.
    verified: bool = True
    # An allowed inbound decision holds for the same request, bundle and policy until then
    # (the token's expiry plus leeway, as the verified-token cache); None: decide each time.
    valid_until: float | None = None


@dataclass(frozen=True)
class TokenSettings:
    header: str = "authorization"  # a custom header carries the bare token
    strip: bool = False  # remove the token before the upstream sees it


def extract_token(headers: Mapping[str, str], settings: TokenSettings) -> str:
    raw = headers.get(settings.header)
    if raw is None or not raw.strip():
        raise MissingToken(f"no token in the {settings.header} header")
    value = raw.strip()
    scheme, _, rest = value.partition(" ")
    if scheme.lower() == "bearer":
        if not rest.strip():
            raise MissingToken(f"the {settings.header} header carries an empty Bearer token")
        return rest.strip()
    if settings.header == "authorization":
        raise MissingToken("the authorization header does not carry a Bearer token")
    return value


def _json_body(reason: str, message: str) -> str:
    return json.dumps({"error": reason, "message": message}, separators=(",", ":"))


def _quoted(text: str) -> str:
    return text.replace("\\", "").replace('"', "'")


def deny_unauthenticated(error: TokenError) -> Decision:
    if isinstance(error, MissingToken):
        challenge = 'Bearer realm="jwtmesh"'
    else:
        challenge = (
            f'Bearer realm="jwtmesh", error="invalid_token", '
            f'error_description="{error.reason}: {_quoted(error.message)}"'
        )
    facts = error.token_facts
    return Decision(
        allowed=False,
        status=401,
        reason=error.reason,
        message=error.message,
        client_headers=(("www-authenticate", challenge), ("content-type", "application/json")),
        body=_json_body(error.reason, error.message),
        issuer=facts.get("iss"),
        subject=facts.get("sub"),
        kid=facts.get("kid"),
        jti=facts.get("jti"),
        verified=isinstance(error, BodyMismatch),  # only then did the token itself verify
    )


def deny(reason: Reason, message: str, challenge: str | None = None, **extra: Any) -> Decision:
    """A refusal with its status from the reason table (and a WWW-Authenticate challenge)."""
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    if challenge is not None:
        headers = (("www-authenticate", challenge), *headers)
    return Decision(
        allowed=False,
        status=reason.http_status,
        reason=reason.code,
        message=message,
        client_headers=headers,
        body=_json_body(reason.code, message),
        **extra,
    )


def insufficient_scope(reason: Reason, message: str) -> str:
    """RFC 6750 §3.1: the token is fine, it does not allow this request."""
    return (
        f'Bearer realm="jwtmesh", error="insufficient_scope", '
        f'error_description="{reason.code}: {_quoted(message)}"'
    )


@dataclass
class Inbound:
    """Everything an inbound decision reads; the stores swap `verifier` and `policy`."""

    get_verifier: Callable[[], Verifier]
    get_policy: Callable[[], Policy]
    token: TokenSettings = field(default_factory=TokenSettings)
    # Envoy's max_request_bytes (body binding); 0: Envoy sends no body, `bdy` is refused.
    max_body_bytes: int = 0


_SET_BY_US = frozenset({HEADER_ISSUER, HEADER_SUBJECT, HEADER_CLAIMS})


def _removals(headers: Mapping[str, str], token: TokenSettings) -> tuple[str, ...]:
    """Client-sent x-jwtmesh-* headers we do not overwrite anyway, method overrides (the
    app gets the method the policy decided on), and the token if stripped. (Envoy applies
    removals after additions, so our own headers must not be listed.)"""
    spoofed = [
        name
        for name in headers
        if (name.startswith(RESERVED_PREFIX) and name not in _SET_BY_US)
        or name in METHOD_OVERRIDE_HEADERS
    ]
    if token.strip:
        spoofed.append(token.header)
    return tuple(spoofed)


def decide_inbound(request: CheckInput, inbound: Inbound, now: float) -> Decision:
    try:
        token = extract_token(request.headers, inbound.token)
        verifier = inbound.get_verifier()
        verified: VerifiedToken = verifier.verify(token, now)
        bound_hash = verified.claims.get("bdy")
        if bound_hash is not None:
            check_body_binding(bound_hash, request, inbound.max_body_bytes)
    except TokenError as error:
        if isinstance(error, BodyMismatch):
            # The token itself verified: its own facts are known and true.
            error.token_facts = {
                "iss": verified.issuer,
                "sub": verified.subject,
                "kid": verified.kid,
                **({"jti": verified.jti} if verified.jti else {}),
            }
        return deny_unauthenticated(error)

    policy = inbound.get_policy()
    caller = Caller.of(verified)
    result = policy_rules.evaluate(policy, method=request.method, path=request.path, caller=caller)
    if not result.allowed:
        reason = reason_for(result.reason)
        message = policy_denial_message(policy, result, caller, request.method, request.path)
        return deny(
            reason,
            message,
            insufficient_scope(reason, message),
            subject=verified.subject,
            issuer=verified.issuer,
            rule=result.rule,
            kid=verified.kid,
            jti=verified.jti,
        )
    return Decision(
        allowed=True,
        status=200,
        reason="allowed" if not result.audited_denial else result.reason,
        upstream_headers=(
            (HEADER_ISSUER, verified.issuer),
            (HEADER_SUBJECT, verified.subject),
            (HEADER_CLAIMS, verified.claims_b64),
        ),
        remove_headers=_removals(request.headers, inbound.token),
        subject=verified.subject,
        issuer=verified.issuer,
        rule=result.rule,
        audited_denial=result.audited_denial,
        kid=verified.kid,
        jti=verified.jti,
        message=(
            policy_denial_message(policy, result, caller, request.method, request.path)
            if result.audited_denial
            else ""
        ),
        # An audited denial writes its log line every time: never answered from memory.
        valid_until=None
        if result.audited_denial
        else verified.expires_at + verifier.settings.leeway,
    )


def check_body_binding(bound_hash: Any, request: CheckInput, max_body_bytes: int) -> None:
    """`bdy` holds only for a body the verifier received whole: Envoy buffers bodies up to
    `max_body_bytes` and a body at that size may have been cut there, so it never counts
    (nor does any body when Envoy buffers none)."""
    if max_body_bytes <= 0:
        raise BodyMismatch(
            "the token is bound to a body, and this service does not buffer bodies "
            "(jwtmesh.io/max-body-bytes)"
        )
    if (
        request.body is None
        or request.headers.get(PARTIAL_BODY_HEADER) == "true"
        or len(request.body) >= max_body_bytes
    ):
        raise BodyMismatch("the token is bound to a body the verifier did not receive whole")
    if not isinstance(bound_hash, str) or not hmac.compare_digest(
        bound_hash.encode(), body_hash(request.body).encode()
    ):
        raise BodyMismatch("the request body does not match the token's bdy claim")


# --- egress --------------------------------------------------------------------------


@dataclass
class Egress:
    """Outbound requests: which audience each destination host is, and how to get a token."""

    audiences: Mapping[str, str]  # host or host:port → audience
    token_for: Callable[[str, float], str | None]  # (audience, now) -> token, None if no key


def audience_for_host(audiences: Mapping[str, str], host: str) -> str | None:
    if host in audiences:
        return audiences[host]
    return audiences.get(host.rsplit(":", 1)[0])


def decide_egress(request: CheckInput, egress: Egress, now: float) -> Decision:
    audience = audience_for_host(egress.audiences, request.host)
    if audience is None:
        return deny(
            reasons.UNKNOWN_DESTINATION,
            f"no audience is configured for host {request.host[:255]!r} "
            f"(known: {listed(sorted(egress.audiences))})",
        )
    token = egress.token_for(audience, now)
    if token is None:
        return deny(reasons.NO_SIGNING_KEY, "this identity has no active signing key")
    return Decision(
        allowed=True,
        status=200,
        reason="allowed",
        upstream_headers=(("authorization", f"Bearer {token}"),),
    )
