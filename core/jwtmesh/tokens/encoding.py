"""Strict base64url and JSON, as JWS compact serialisation needs them."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from jwtmesh.tokens.errors import MalformedToken

# Unpadded base64url only: no '=', no whitespace, no '+' or '/'.
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_B64URL = re.compile(r"[A-Za-z0-9_-]*")
_SEXTET = {char: index for index, char in enumerate(_ALPHABET)}
# The low bits of the last character that carry no data, by the text's length mod 4: with
# 2 characters left the last one holds 2 data bits of its 6, with 3 left it holds 4.
_UNUSED_BITS = {0: 0, 2: 0b1111, 3: 0b11}


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Decode unpadded base64url, refusing anything a strict encoder would not produce."""
    if not _B64URL.fullmatch(text) or len(text) % 4 == 1:
        raise MalformedToken("not unpadded base64url")
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise MalformedToken("not unpadded base64url") from exc
    # The last character may carry unused low bits; a decoder that ignores them accepts
    # several spellings of one signature (a malleable token, a second cache key). Only the
    # canonical spelling, the one an encoder produces, is accepted: those bits are zero.
    # (Read off the last character instead of encoding the data again to compare.)
    if text and _SEXTET[text[-1]] & _UNUSED_BITS[len(text) % 4]:
        raise MalformedToken("not canonical base64url (non-zero trailing bits)")
    return data


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    # Two parsers may disagree on which duplicate wins: refuse the ambiguity (naming the
    # first member that repeats).
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise MalformedToken(f"duplicate JSON member {key[:40]!r}")
        seen.add(key)
    raise AssertionError("unreachable: a dict shorter than its pairs has a repeated key")


def _refuse_constant(name: str) -> Any:
    raise MalformedToken(f"non-standard JSON constant {name}")


def decode_json_object(data: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object strictly: UTF-8, no duplicate keys, no NaN/Infinity."""
    try:
        text = data.decode("utf-8")
        value = json.loads(
            text, object_pairs_hook=_refuse_duplicate_keys, parse_constant=_refuse_constant
        )
    except MalformedToken:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedToken(f"{what} is not valid JSON") from exc
    if not isinstance(value, dict):
        raise MalformedToken(f"{what} is not a JSON object")
    return value


def compact_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode("utf-8")
