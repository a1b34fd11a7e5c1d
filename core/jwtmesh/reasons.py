"""Every refusal code jwtmesh answers with: its HTTP status, its gRPC code, what it means.

The one home of the reason codes. Both ext_authz adapters take the status and the gRPC
code from here; the token errors, the policy and the sidecar name their codes from here;
docs/formats.md shows the same table (tests/unit/test_reasons.py compares them). The codes
are a public contract (401/403 bodies, `WWW-Authenticate`, metric labels, logs): never
rename one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class GrpcCode(IntEnum):
    """The `google.rpc.Code` values we answer with (no protobuf import in the core)."""

    OK = 0
    INVALID_ARGUMENT = 3
    PERMISSION_DENIED = 7
    UNAVAILABLE = 14
    UNAUTHENTICATED = 16


@dataclass(frozen=True)
class Reason:
    code: str
    http_status: int
    grpc_code: GrpcCode
    meaning: str


def _token(code: str, meaning: str) -> Reason:
    return Reason(code, 401, GrpcCode.UNAUTHENTICATED, meaning)


def _policy(code: str, meaning: str) -> Reason:
    return Reason(code, 403, GrpcCode.PERMISSION_DENIED, meaning)


def _unavailable(code: str, meaning: str) -> Reason:
    return Reason(code, 503, GrpcCode.UNAVAILABLE, meaning)


ALLOWED = Reason("allowed", 200, GrpcCode.OK, "the request may pass")

# 401: no token, or a token that does not prove who the caller is.
INVALID_TOKEN = _token("invalid_token", "the token was refused (generic)")
MISSING_TOKEN = _token("missing_token", "no Bearer token in the configured header")
TOKEN_TOO_LARGE = _token("token_too_large", "longer than maxTokenBytes; not parsed at all")
MALFORMED_TOKEN = _token(
    "malformed_token",
    "not three strict base64url JSON parts (or duplicate members, a bad kid type)",
)
UNSUPPORTED_TYP = _token("unsupported_typ", "typ present and not JWT")
UNSUPPORTED_CRIT = _token("unsupported_crit", "a crit header")
ALG_NOT_ALLOWED = _token(
    "alg_not_allowed", "alg not in ES256/RS256/PS256/EdDSA, or not the key's own algorithm"
)
UNKNOWN_ISSUER = _token("unknown_issuer", "iss is not in the trust bundle")
UNKNOWN_KID = _token("unknown_kid", "kid is not among the keys of the token's issuer")
BAD_SIGNATURE = _token("bad_signature", "the signature does not verify")
MISSING_CLAIM = _token("missing_claim", "a required claim (iss, sub, aud, exp, jti) is absent")
INVALID_CLAIM = _token("invalid_claim", "a claim has the wrong type or an impossible value")
TOKEN_EXPIRED = _token("token_expired", "exp is in the past, beyond the leeway")
TOKEN_NOT_YET_VALID = _token("token_not_yet_valid", "nbf is in the future, beyond the leeway")
TOKEN_ISSUED_IN_FUTURE = _token("token_issued_in_future", "iat is in the future, beyond the leeway")
LIFETIME_TOO_LONG = _token("lifetime_too_long", "exp is further from iat than the maximum")
WRONG_AUDIENCE = _token("wrong_audience", "aud does not name this service")
SUBJECT_MISMATCH = _token(
    "subject_mismatch", "sub is not the identity its issuer was published for (a mesh issuer)"
)
CLAIM_NOT_GRANTED = _token(
    "claim_not_granted",
    "a mesh identity's token carries a claim (or value) no ClusterIdentityGrant gave it",
)
TOKEN_REVOKED = _token("token_revoked", "revoked jti, or issued before the issuer's cutoff")
BODY_MISMATCH = _token(
    "body_mismatch", "bdy does not match the request body (or the body was truncated)"
)

# 403: the caller is known, and the policy does not let it do this.
AMBIGUOUS_PATH = _policy(
    "ambiguous_path", "the path could be read two ways (.., //, %2f, ...) while rules exist"
)
ISSUER_NOT_ALLOWED = _policy("issuer_not_allowed", "the matching rule does not admit this issuer")
SUBJECT_NOT_ALLOWED = _policy(
    "subject_not_allowed", "the matching rule does not admit this subject"
)
ROLE_REQUIRED = _policy(
    "role_required", "the caller holds none of the roles the matching rule requires"
)
CLAIM_REQUIREMENT_FAILED = _policy(
    "claim_requirement_failed", "a claim the matching rule requires does not hold"
)
NO_MATCHING_RULE = _policy("no_matching_rule", "rules exist and none matches method and path")
UNKNOWN_DESTINATION = _policy("unknown_destination", "egress: no audience mapped for the host")
EGRESS_DISABLED = _policy("egress_disabled", "egress check, and this sidecar mints no tokens")
INBOUND_DISABLED = _policy("inbound_disabled", "inbound check, and this sidecar verifies no tokens")

# Neither: the question could not be answered, and the request is refused (fail closed).
BAD_AUTHZ_REQUEST = Reason(
    "bad_authz_request",
    400,
    GrpcCode.INVALID_ARGUMENT,
    "the authorization request itself is unusable (a misconfigured Envoy)",
)
NO_SIGNING_KEY = _unavailable("no_signing_key", "egress: this identity has no active key")
INTERNAL_ERROR = _unavailable("internal_error", "the sidecar failed; the request is refused")

REFUSALS: dict[str, Reason] = {
    reason.code: reason
    for reason in (
        INVALID_TOKEN,
        MISSING_TOKEN,
        TOKEN_TOO_LARGE,
        MALFORMED_TOKEN,
        UNSUPPORTED_TYP,
        UNSUPPORTED_CRIT,
        ALG_NOT_ALLOWED,
        UNKNOWN_ISSUER,
        UNKNOWN_KID,
        BAD_SIGNATURE,
        MISSING_CLAIM,
        INVALID_CLAIM,
        TOKEN_EXPIRED,
        TOKEN_NOT_YET_VALID,
        TOKEN_ISSUED_IN_FUTURE,
        LIFETIME_TOO_LONG,
        WRONG_AUDIENCE,
        SUBJECT_MISMATCH,
        CLAIM_NOT_GRANTED,
        TOKEN_REVOKED,
        BODY_MISMATCH,
        AMBIGUOUS_PATH,
        ISSUER_NOT_ALLOWED,
        SUBJECT_NOT_ALLOWED,
        ROLE_REQUIRED,
        CLAIM_REQUIREMENT_FAILED,
        NO_MATCHING_RULE,
        UNKNOWN_DESTINATION,
        EGRESS_DISABLED,
        INBOUND_DISABLED,
        BAD_AUTHZ_REQUEST,
        NO_SIGNING_KEY,
        INTERNAL_ERROR,
    )
}


def reason_for(code: str) -> Reason:
    """The table entry for a code; an unknown code is treated as an internal error."""
    if code == ALLOWED.code:
        return ALLOWED
    return REFUSALS.get(code, INTERNAL_ERROR)


# --- POST /token (the sidecar's loopback token endpoint) -------------------------------


@dataclass(frozen=True)
class EndpointAnswer:
    """An answer of `POST /token` other than a token: its HTTP status and what it means.
    The body is always JSON, `{"error": code, "message": ...}`."""

    code: str
    http_status: int
    meaning: str


TOKEN_ENDPOINT: dict[str, EndpointAnswer] = {
    answer.code: answer
    for answer in (
        EndpointAnswer(
            "malformed_request",
            400,
            "the body is not one JSON object (not UTF-8 or JSON, NaN, a duplicate member)",
        ),
        EndpointAnswer(
            "unknown_field", 400, "a member other than audience, lifetimeSeconds and body"
        ),
        EndpointAnswer(
            "invalid_audience", 400, "audience is missing, or not a short printable string"
        ),
        EndpointAnswer(
            "invalid_lifetime", 400, "lifetimeSeconds is not a finite number of at least 1 second"
        ),
        EndpointAnswer("invalid_body", 400, "body is not a string"),
        EndpointAnswer("malformed_http", 400, "the HTTP request itself does not parse"),
        EndpointAnswer(
            "missing_request_header",
            403,
            "no `jwtmesh-token-request: 1` header (what an app's own request sends and a "
            "forged one, such as a server-side request forgery, does not)",
        ),
        EndpointAnswer(
            "proxied_request",
            403,
            "a Forwarded, X-Forwarded-For or Via header: the request came through a proxy",
        ),
        EndpointAnswer("not_found", 404, "a path other than /token"),
        EndpointAnswer("method_not_allowed", 405, "a method other than POST (`Allow: POST`)"),
        EndpointAnswer("request_timeout", 408, "the body did not arrive within 10 s"),
        EndpointAnswer("length_required", 411, "no Content-Length (chunked bodies are not read)"),
        EndpointAnswer("request_too_large", 413, "a body over 1 MiB"),
        EndpointAnswer("uri_too_long", 414, "a request line over 64 KiB"),
        EndpointAnswer("headers_too_large", 431, "more than 100 header lines, or one over 64 KiB"),
        EndpointAnswer("http_version_not_supported", 505, "an HTTP version other than 1.0 or 1.1"),
        EndpointAnswer(NO_SIGNING_KEY.code, 503, "this identity has no active signing key"),
        EndpointAnswer(INTERNAL_ERROR.code, 503, "the sidecar failed to mint; nothing was issued"),
    )
}
