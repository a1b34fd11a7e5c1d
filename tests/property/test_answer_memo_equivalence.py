"""The answer memo never changes an answer: over generated sequences of requests, clock
moves (forward past expiry, and back), bundle reloads (a key removed, a key added, a jti
revoked) and policy reloads (narrower, audit mode), every answer of a sidecar with the memo
is byte for byte what a sidecar without it answers in the same state.

Removing the memo's bundle, policy or expiry guard makes this fail. Its guard against a
clock turned back is stricter than the full path (whose verified-token cache keeps a token
until its expiry however the clock moves), so the unit tests check that one.

The fast suite runs 600 derandomised sequences; JWTMESH_MEMO_EXAMPLES=5000 searches longer.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwtmesh.policy import ALLOW_ALL, Policy, policy_from_dict
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_testing.http_connection import HttpConnection

NOW = 1_800_000_000.0
ISS = "https://mesh.test/herald"
OLD, NEW = generate_signing_key(), generate_signing_key()
SETTINGS = VerifierSettings(audience="census", leeway=30.0)


def _token(key: Any, lifetime: float) -> str:
    return mint_token(
        key, issuer=ISS, subject="herald", audience="census", now=NOW, lifetime=lifetime
    )


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


TOKENS = [
    _token(OLD, 60),
    _token(OLD, 600),
    _token(NEW, 120),
    _token(OLD, 600)[:-4] + "AAAA",  # a bad signature
]
PATHS = ["/inbound/a", "/inbound/b", "/egress/x"]


def _bundle(keys: tuple[Any, ...], revoked: tuple[str, ...] = ()) -> TrustBundle:
    return TrustBundle(
        {
            ISS: IssuerTrust(
                {key.public.kid: key.public for key in keys},
                revoked_jtis={jti: NOW + 3600 for jti in revoked},
            )
        }
    )


BUNDLES = [
    _bundle((OLD, NEW)),
    _bundle((OLD,)),  # NEW removed
    _bundle((NEW,)),  # OLD removed
    _bundle((OLD, NEW), revoked=(_jti(TOKENS[1]),)),
]
POLICIES: list[Policy] = [
    ALLOW_ALL,
    policy_from_dict({"rules": [{"paths": ["/a"]}]}),
    policy_from_dict({"mode": "audit", "rules": [{"paths": ["/a"]}]}),
]

SEND = st.tuples(st.just("send"), st.integers(0, len(TOKENS) - 1), st.integers(0, len(PATHS) - 1))
STEP = st.one_of(
    SEND,
    SEND,  # sends twice as often: a memo is only tested by a repeat
    st.tuples(st.just("clock"), st.sampled_from([0.5, 10.0, 61.0, 100.0, -5.0, -70.0])),
    st.tuples(st.just("bundle"), st.integers(0, len(BUNDLES) - 1)),
    st.tuples(st.just("policy"), st.integers(0, len(POLICIES) - 1)),
)
MEMO = settings(
    max_examples=int(os.environ.get("JWTMESH_MEMO_EXAMPLES", "600")),
    derandomize="JWTMESH_MEMO_EXAMPLES" not in os.environ,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def _request(token: str, path: str) -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nhost: census\r\nauthorization: Bearer {token}\r\n"
        "content-length: 0\r\n\r\n"
    ).encode("latin-1")


@MEMO
@given(st.lists(STEP, min_size=1, max_size=60))
def test_the_memo_answers_exactly_what_the_full_path_answers(steps: list[Any]) -> None:
    sidecar = HttpConnection(Verifier(BUNDLES[0], SETTINGS), NOW)
    for step in steps:
        kind = step[0]
        if kind == "send":
            data = _request(TOKENS[step[1]], PATHS[step[2]])
            assert sidecar.send(data) == sidecar.answer_without_memo(data)
        elif kind == "clock":
            sidecar.now += step[1]
        elif kind == "bundle":
            sidecar.verifier = Verifier(BUNDLES[step[1]], SETTINGS)
        else:
            sidecar.policy = POLICIES[step[1]]
