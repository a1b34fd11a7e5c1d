"""The cheaper forms of three parsing checks give the answers of the plain forms they
replaced: canonical base64url read off the last character (was: encode again and
compare), duplicate JSON members found through dict() (was: a Python loop), and the JOSE
header decoded once per distinct header (was: every time)."""

from __future__ import annotations

import base64
import itertools
import json

import pytest

from jwtmesh.tokens.encoding import b64url_decode, b64url_encode, decode_json_object
from jwtmesh.tokens.errors import MalformedToken
from jwtmesh.tokens.verify import HEADER_MEMO_CHARS, decode_header

ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def _by_encoding_again(text: str) -> bytes | None:
    """The check as it was: decode, encode, compare (None: refused)."""
    if len(text) % 4 == 1:
        return None
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    return data if b64url_encode(data) == text else None


def _decoded(text: str) -> bytes | None:
    try:
        return b64url_decode(text)
    except MalformedToken:
        return None


@pytest.mark.parametrize("prefix", ["", "A", "AB", "ABC", "ABCD", "eyJh"])
def test_canonical_base64url_agrees_with_encoding_again_for_every_last_character(
    prefix: str,
) -> None:
    for last in itertools.product(ALPHABET, repeat=2):
        text = prefix + "".join(last)
        assert _decoded(text) == _by_encoding_again(text), text


@pytest.mark.parametrize(
    ("document", "first_repeated"),
    [
        ('{"a":1,"a":2}', "a"),
        ('{"a":1,"b":2,"b":3,"a":4}', "b"),
        ('{"x":{"k":1,"k":1}}', "k"),
        ('{"x":[{"k":1},{"k":2,"k":3}]}', "k"),
    ],
)
def test_a_repeated_member_is_refused_by_name(document: str, first_repeated: str) -> None:
    with pytest.raises(MalformedToken, match=f"duplicate JSON member '{first_repeated}'"):
        decode_json_object(document.encode(), "payload")


def test_distinct_members_at_any_depth_decode_as_json_does() -> None:
    document = '{"a":1,"b":{"a":[{"a":null,"b":true}]},"c":"a"}'
    assert decode_json_object(document.encode(), "payload") == json.loads(document)


def _segment(header: object) -> str:
    return b64url_encode(json.dumps(header).encode())


def test_a_remembered_header_is_a_fresh_copy_each_time() -> None:
    segment = _segment({"alg": "ES256", "kid": "k1", "typ": "JWT"})
    first = decode_header(segment)
    first["alg"] = "none"
    assert decode_header(segment) == {"alg": "ES256", "kid": "k1", "typ": "JWT"}


@pytest.mark.parametrize(
    "segment",
    [
        b64url_encode(b'{"alg":"ES256","alg":"RS256"}'),
        b64url_encode(b"[1, 2]"),
        "eyJhbGciOiJFUzI1NiJ9=",
        "eyJhbGciOiJFUzI1NiJ9" + "A" * (HEADER_MEMO_CHARS + 1),
    ],
    ids=["duplicate alg", "not an object", "padded", "too long to remember"],
)
def test_a_refused_header_is_refused_every_time(segment: str) -> None:
    for _ in range(3):
        with pytest.raises(MalformedToken):
            decode_header(segment)


def test_a_header_too_long_to_remember_still_decodes() -> None:
    header = {"alg": "ES256", "kid": "k" * HEADER_MEMO_CHARS}
    assert decode_header(_segment(header)) == header
