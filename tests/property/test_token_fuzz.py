"""Property-based: whatever bytes arrive, the verifier answers with a TokenError or a
verified token, and nothing else escapes. The same for the policy matcher."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jwtmesh.tokens.encoding import b64url_encode
from jwtmesh_testing.fuzzing import METHODS, VALID, check_policy, check_token, make_verifier

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def refused_or_valid(token: str) -> None:
    check_token(make_verifier(), token)


@FUZZ
@given(st.text(max_size=600))
def test_random_text_is_refused_with_a_typed_error(token: str) -> None:
    refused_or_valid(token)


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_are_refused_with_a_typed_error(raw: bytes) -> None:
    refused_or_valid(raw.decode("latin-1"))


@FUZZ
@given(st.integers(min_value=0, max_value=len(VALID) - 1))
def test_truncated_tokens_are_refused(cut: int) -> None:
    refused_or_valid(VALID[:cut])


def test_every_single_bit_flip_is_refused() -> None:
    """Exhaustive, not sampled: a few thousand tokens, each one bit away from VALID.

    Sampling once let a flip of an unused trailing base64url bit through (a token spelled
    differently that still verified); every bit is now checked on every run.
    """
    for bit in range(len(VALID) * 8):
        raw = bytearray(VALID.encode())
        raw[bit // 8] ^= 1 << (bit % 8)
        refused_or_valid(raw.decode("latin-1"))


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@FUZZ
@given(
    st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "jwk", "jku", "x5u"]) | st.text(max_size=5),
        JSON,
        max_size=6,
    ),
    st.dictionaries(
        st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "jti", "bdy"])
        | st.text(max_size=5),
        JSON,
        max_size=9,
    ),
)
def test_arbitrary_json_headers_and_claims_are_refused(
    header: dict[str, Any], claims: dict[str, Any]
) -> None:
    token = (
        b64url_encode(json.dumps(header).encode())
        + "."
        + b64url_encode(json.dumps(claims).encode())
        + "."
        + b64url_encode(b"sig")
    )
    refused_or_valid(token)


@FUZZ
@given(
    st.text(max_size=60),
    st.sampled_from(METHODS),
    st.dictionaries(st.text(max_size=6), JSON, max_size=5),
)
def test_the_policy_matcher_always_answers(path: str, method: str, claims: dict[str, Any]) -> None:
    check_policy(method, path, claims)
