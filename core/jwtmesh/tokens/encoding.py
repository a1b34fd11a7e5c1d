"""Strict base64url and JSON, as JWS compact serialisation needs them."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from jwtmesh.tokens.errors import MalformedToken

# Unpadded base64url only: no '=', no whitespace, no '+' or '/'.
_B64URL = re.compile(r"[A-Za-z0-9_-]*")


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
    # canonical spelling, the one an encoder produces, is accepted.
    if b64url_encode(data) != text:
        raise MalformedToken("not canonical base64url (non-zero trailing bits)")
    return data


def _refuse_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            # Two parsers may disagree on which duplicate wins: refuse the ambiguity.
            raise MalformedToken(f"duplicate JSON member {key[:40]!r}")
        result[key] = value
    return result


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
