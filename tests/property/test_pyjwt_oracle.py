"""PyJWT as the oracle for the token core.

jwtmesh parses a JWS by hand (strict base64url, no duplicate JSON members, the key found by
kid within the token's own issuer, the algorithm bound to that key) and borrows only PyJWT's
algorithm objects. This file checks that the strictness never turns into leniency: for
generated valid and near-valid tokens, across ES256, RS256, PS256 and EdDSA, whatever
jwtmesh's Verifier accepts, `jwt.decode` accepts too, with the same key, algorithm, audience,
issuer, leeway and clock, requiring exp, iss, sub and aud, and it returns the same claims.

The other direction is allowed on purpose, and listed. STRICTER below holds one concrete token
per case where PyJWT accepts and jwtmesh refuses, with the reason code jwtmesh gives.
docs/formats.md ("Stricter than PyJWT, on purpose") lists the same cases, and a test keeps the
two lists equal. When the property meets such a case it records it as a hypothesis event
(`pytest --hypothesis-show-statistics`) and checks that its reason code is a documented one.

The fast suite runs 200 derandomised examples. JWTMESH_ORACLE_EXAMPLES=20000 runs a longer,
randomised search.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import jwt
import jwt.api_jwt
import pytest
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from jwtmesh.tokens.encoding import b64url_decode, b64url_encode
from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.keys import PublicKey, SigningKey, generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import (
    DEFAULT_LEEWAY,
    DEFAULT_MAX_TOKEN_BYTES,
    Verifier,
    VerifierSettings,
)
from jwtmesh_testing import forge
from jwtmesh_testing.fuzzing import ISSUER, KEY, NOW, VALID

# The oracle is PyJWT at the version the lock file pins: the tables below record that
# version's behaviour (what it accepts that we refuse, and what both refuse). Other PyJWT
# versions, such as the oldest pyproject.toml allows (make test-min), differ in those
# details and are not an oracle; jwtmesh itself only uses PyJWT's algorithm objects.
ORACLE_PYJWT = "2.15.1"
pytestmark = pytest.mark.skipif(
    jwt.__version__ != ORACLE_PYJWT,
    reason=f"the PyJWT oracle is written against PyJWT {ORACLE_PYJWT}, not {jwt.__version__}",
)

DOCS = Path(__file__).resolve().parents[2] / "docs" / "formats.md"
EXAMPLES = os.environ.get("JWTMESH_ORACLE_EXAMPLES")
ORACLE = settings(
    max_examples=int(EXAMPLES or 200),
    deadline=None,
    derandomize=EXAMPLES is None,  # the fast suite sees the same examples on every run
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# A test-only key, fixed so that no run pays for generating a 2048-bit RSA key.
RSA_2048_PEM = """\
-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCqWqdRg2ZhGWz4
rS/bHU7tm+XNdDeZGlb/8aN6fSpkdwWVtmGZosjNZ+q+IVUjNPiA+ExhPRiaMrPi
2ovHQ/sIQErPrYd2vgyHXBWvZ6fgmgVNNG3JrSuH0iB/nSpAAcWelJj6RSd94VDI
DHO5SaslQpFb3Ytrzm+E7otR7nHa4T9tYjWfvXY1fFrUDd9dE+9tBH5FzxgReJw1
D12XjyHiIYQ3FPbtYey2+zCfWGrsvQlQQgeGLgN6alO0Qv+52txPDl8qsMqV4lpQ
i3nqUmY2Tldzcyn/TuoGA6B5gFdq1A5YMHZeD+42B936bhD06wjsGJZbw2SD/d55
rhnhvRZDAgMBAAECggEAEXRmbnCzPcG4K6a7H41aN/hgTHPa+oH7ZhAhOvy2KkMT
vGpKh85pGrrKD58ktQ3JZJWMZe43ph0J13WjGtC5WPgVckAKgD0q1Xe29Rj+14GQ
h3+WvDJVIn6CO/EjkhlcYUpCfmo1iK1cdJLqDJMiyReQA0So82vce1dhyQxQeCeu
+B+ebyiErmGDy9e3GLBmOmDieV5rWbiC89LgondNvrGHXNXlDZIURZsjduDDpWve
rr3WconfAo72F5xWqQxgynIO33rLPlH0apK0emiqLXvLzYfRLRJYZ1ZahvQUZwXU
AgkjuNmri7nP61BdZLgdOkH8nVchEMRqvU2UbDF5UQKBgQDw0G88wcjUre0aGt0c
fKqI8HH2vOajwUqLH7WhLNYf+TjtG1a+biLVSMdnftPJMk+liGeFilkA6FLZEVEb
g7ys/0byHl7fRKfu9Eq05idoOxfvYB8ZOAn4BL9VcksB9XZAmoc2FljVwU/jbmX/
7kqMO6TKU8VyCxtPvMF7Oe4o2QKBgQC1GMCNLSPfSyoQ5xwjgSj5f+xHLChIscgZ
OqRTkFpgaxcZUyB4LxFF4ITyuCB/yoiuq5WI8iy2J5NRXW3b7H/wmuNlhGwLX/l3
gG18k7xpSyiiDI6O7wMp+4T0tGF3psQMzXBNvPftvg4JhlcbnvzTECwq6Iy+Iega
s04S+rFmewKBgE4RZF5v/ClmkR0LZG8dwzNNr8RrjOG9gesERp+Pp4MKCnhjioWF
sukuBOb6aLIrC0MAq37RUPVIW8NfJ8ohtQLoZxmK2vrKiR6gN6/ZhSD3N1U09h/4
2NJ8x4Jt4P8rkkBzWC4ipH33g2yZl5uWprg7hbrJ2ZKVIy+AY8ENELZRAoGAO7m0
F1thz0zMzNJLt3Hrf42u8TIg/wiTA68RbvXWuKHY9mMx/DEZsz/+2MXdAghb16+D
G60zDcgzj8wOZU+0Sjfq8xofQAkhD0Zt1X4rz1YYSol1orI1Cu2GxeWPl5SKZ+aB
OUIvSls56e5CYDupCjr1NhmIAVTRZazo/N1tEG0CgYEAz3O/ysQz/k3ajuO1QW75
Ce0k9DI7TLo9Rgy6YW3KgOJyKZgcvDHkHxELi8sm5TOtcJHhhbWRQFZCc/chEXLu
s27/ofhqi8eMIyJhhCGF8WS42t3zfETSP5D84K/7aGnc6Rv0oSiKYlH1vDYmm4I3
I5PdKhEQp1LeB3rJBHmXpec=
-----END PRIVATE KEY-----
"""

AUDIENCE = "census"  # the audience fuzzing.VALID is minted for
OTHER_ISSUER = "https://mesh.test/billing"
ES256 = KEY  # fuzzing's key, so fuzzing.VALID verifies here too
ES256_SPARE = generate_signing_key("ES256")  # never signs: a kid to point at the wrong key
RS256 = SigningKey.from_pem(RSA_2048_PEM, "RS256")
# The same RSA key material bound to PS256 under another kid: the algorithm belongs to the
# bundle entry, not to the key material.
PS256 = dataclasses.replace(SigningKey.from_pem(RSA_2048_PEM, "PS256"), kid="ps256-" + RS256.kid)
EDDSA = generate_signing_key("EdDSA")
OTHER = generate_signing_key("ES256")  # the only key of OTHER_ISSUER
REVOKED_JTI = "revoked-jti"
CUTOFF = NOW - 1000  # OTHER_ISSUER revoked everything it issued before this

BUNDLE = TrustBundle(
    {
        ISSUER: IssuerTrust(
            {key.kid: key.public for key in (ES256, ES256_SPARE, RS256, PS256, EDDSA)},
            revoked_jtis={REVOKED_JTI: NOW + 7200},
        ),
        OTHER_ISSUER: IssuerTrust({OTHER.kid: OTHER.public}, revoked_before=CUTOFF),
    }
)
SIGNERS: list[tuple[SigningKey, str]] = [
    (ES256, ISSUER),
    (RS256, ISSUER),
    (PS256, ISSUER),
    (EDDSA, ISSUER),
    (OTHER, OTHER_ISSUER),
]


def verifier(leeway: float = DEFAULT_LEEWAY, require_jti: bool = True) -> Verifier:
    settings_ = VerifierSettings(audience=AUDIENCE, leeway=leeway, require_jti=require_jti)
    return Verifier(BUNDLE, settings_)


class _FrozenClock:
    """Stands in for `datetime` in jwt.api_jwt, whose claim checks read the wall clock."""

    def __init__(self, now: float) -> None:
        self._now = now

    def now(self, tz: Any = None) -> _FrozenClock:
        return self

    def timestamp(self) -> float:
        return self._now


def pyjwt_decode(
    token: str, key: PublicKey, *, issuer: str, now: float, leeway: float
) -> dict[str, Any]:
    """`jwt.decode` as a careful PyJWT user calls it, at our `now` instead of the wall clock."""
    with mock.patch.object(jwt.api_jwt, "datetime", _FrozenClock(now)):
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=[key.alg],
            audience=AUDIENCE,
            issuer=issuer,
            leeway=leeway,
            options={"require": ["exp", "iss", "sub", "aud"]},
        )
    return claims


# --- building tokens byte by byte ---------------------------------------------------------


@dataclass(frozen=True)
class Raw:
    """A JSON value written as is (NaN, 1e400, a 400-digit integer)."""

    text: str


ABSENT = Raw("<absent>")  # as a claim or header value: leave the member out

STYLES: dict[str, dict[str, Any]] = {
    "compact": {"separators": (",", ":")},
    "sorted": {"separators": (",", ":"), "sort_keys": True},
    "spaced": {},
    "indented": {"indent": 2},
    "raw-unicode": {"separators": (",", ":"), "ensure_ascii": False},
}
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def json_document(
    members: dict[str, Any],
    style: str = "compact",
    duplicate: tuple[str, Any] | None = None,
    encoding: str = "utf-8",
) -> bytes:
    """A JSON object as bytes: a layout, Raw values, an optional duplicated member first."""
    raws: dict[str, str] = {}
    document: dict[str, Any] = {}
    for name, value in members.items():
        if value is ABSENT:
            continue
        if isinstance(value, Raw):
            placeholder = f"\x00raw{len(raws)}\x00"
            raws[json.dumps(placeholder)] = value.text
            value = placeholder
        document[name] = value
    text = json.dumps(document, **STYLES[style])
    for placeholder, raw in raws.items():
        text = text.replace(placeholder, raw)
    if duplicate is not None:
        name, value = duplicate
        comma = "," if document else ""
        text = "{" + json.dumps(name) + ":" + json.dumps(value) + comma + text[1:]
    if encoding == "utf-8-bom":
        return b"\xef\xbb\xbf" + text.encode("utf-8")
    if encoding == "utf-16":
        return text.encode("utf-16")
    if encoding == "whitespace":
        return b" \n" + text.encode("utf-8") + b"\t"
    return text.encode("utf-8")


def spell(data: bytes, how: str = "canonical") -> str:
    """base64url, canonically or in one of the spellings a lenient decoder also reads."""
    text = b64url_encode(data)
    if how == "padded":
        return text + "=" * (-len(text) % 4)
    if how == "loose-bits" and len(text) % 4 in (2, 3):
        # The last character carries unused low bits; set one.
        return text[:-1] + _ALPHABET[_ALPHABET.index(text[-1]) ^ 1]
    if how == "standard-alphabet":
        return text.replace("-", "+").replace("_", "/")
    return text


def sign_bytes(
    key: SigningKey,
    header: bytes,
    payload: bytes,
    spellings: tuple[str, str, str] = ("canonical", "canonical", "canonical"),
    mangle: Callable[[bytes], bytes] = lambda signature: signature,
) -> str:
    """Sign exactly these header and payload bytes, as spelled; the signature may be mangled."""
    signing_input = spell(header, spellings[0]) + "." + spell(payload, spellings[1])
    signature = mangle(key.sign(signing_input.encode("ascii")))
    return signing_input + "." + spell(signature, spellings[2])


def standard_header(key: SigningKey) -> dict[str, Any]:
    return {"alg": key.alg, "kid": key.kid, "typ": "JWT"}


# --- the generator of near-valid tokens ---------------------------------------------------


@dataclass
class Draft:
    """A token before it is encoded, with every way it will be mis-encoded."""

    signer: SigningKey
    issuer: str
    now: float
    leeway: float
    header: dict[str, Any]
    claims: dict[str, Any]
    require_jti: bool = True
    warm_up: float | None = None  # verify once at this earlier time first (the cache)
    styles: list[str] = field(default_factory=lambda: ["compact", "compact"])
    encodings: list[str] = field(default_factory=lambda: ["utf-8", "utf-8"])
    duplicates: list[tuple[str, Any] | None] = field(default_factory=lambda: [None, None])
    spellings: list[str] = field(default_factory=lambda: ["canonical"] * 3)
    signature_change: str = "none"
    signature_byte: int = 0
    shape: str = "plain"
    applied: list[str] = field(default_factory=list)

    def token(self) -> str:
        header = json_document(self.header, self.styles[0], self.duplicates[0], self.encodings[0])
        payload = json_document(self.claims, self.styles[1], self.duplicates[1], self.encodings[1])
        spellings = (self.spellings[0], self.spellings[1], self.spellings[2])
        token = sign_bytes(self.signer, header, payload, spellings, self._mangle)
        if self.shape == "trailing-dot":
            return token + "."
        if self.shape == "four-parts":
            return token + ".e30"
        if self.shape == "no-signature":
            return token.rsplit(".", 1)[0] + "."
        if self.shape == "leading-space":
            return " " + token
        return token

    def _mangle(self, signature: bytes) -> bytes:
        change, index = self.signature_change, self.signature_byte % len(signature)
        if change == "truncate":
            return signature[: -(1 + self.signature_byte % 3)]
        if change == "extend":
            return signature + b"\x00"
        if change == "flip":
            return signature[:index] + bytes([signature[index] ^ 1]) + signature[index + 1 :]
        if change == "empty":
            return b""
        if change == "another-message":
            return self.signer.sign(b"another message")
        return signature


EDGE = st.sampled_from([-1.0, -0.5, -0.1, 0.0, 0.1, 0.5, 0.75, 1.0, 2.0])
JSON_VALUE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
BIG_INTEGER = "1" + "0" * 400
ALGS = ["ES256", "RS256", "PS256", "EdDSA", "HS256", "none", "es256", "ES384", 5]


def _number(value: Any) -> Any:
    """A whole number of seconds as a JSON integer, any other time as is (ABSENT stays)."""
    if isinstance(value, float) and value == int(value):
        return int(value)
    return value


@st.composite
def _times(draw: st.DrawFn, now: float, leeway: float) -> tuple[Any, Any, Any]:
    """(iat, nbf, exp): mostly as mint_token writes them, else around the edges (the
    leeway either side, whole and fractional seconds, the maximum lifetime)."""
    if draw(st.sampled_from(["minted", "minted", "edges"])) == "minted":
        iat = float(int(now) - draw(st.integers(0, 120)))
        nbf = draw(st.sampled_from([iat, ABSENT]))
        exp = iat + draw(st.sampled_from([60, 300, 900, 3600]))
    else:
        iat = draw(
            st.sampled_from([ABSENT, float(int(now))])
            | EDGE.map(lambda edge: now + leeway + edge)
            | st.integers(1, 3700).map(lambda ago: now - ago)
        )
        nbf = draw(
            st.sampled_from([ABSENT, iat])
            | EDGE.map(lambda edge: now + leeway + edge)
            | st.integers(1, 3700).map(lambda ago: now - ago)
        )
        start = iat if iat is not ABSENT else (nbf if nbf is not ABSENT else now)
        exp = draw(
            EDGE.map(lambda edge: now - leeway + edge)
            | EDGE.map(lambda edge: start + 3600 + edge)
            | st.integers(1, 3600).map(lambda life: start + life)
            | st.integers(-100, 5000).map(lambda delta: now + delta)
        )
    return _number(iat), _number(nbf), _number(exp)


def _set(where: Any, name: Any, value: Any) -> None:
    """Assignment as an expression, for the lambdas below (a dict member or a list item)."""
    where[name] = value


MUTATIONS: dict[str, Callable[[st.DrawFn, Draft], None]] = {
    "typ": lambda draw, d: _set(
        d.header, "typ", draw(st.sampled_from([ABSENT, "jwt", "at+jwt", "JOSE", 5, None]))
    ),
    "header member": lambda draw, d: d.header.update(
        draw(
            st.sampled_from(
                [
                    {"cty": "JWT"},
                    {"x5u": "https://evil.example/cert"},
                    {"jku": "https://evil.example/jwks"},
                    {"jwk": OTHER.public.to_jwk()},
                    {"zip": "DEF"},
                    {"b64": True},
                    {"b64": False},
                    {"b64": 0},
                    {"b64": "false"},
                    {"crit": ["b64"], "b64": True},
                    {"crit": ["exp"]},
                    {"crit": []},
                    {"x-ünïcode": "värde"},
                ]
            )
        )
    ),
    "kid": lambda draw, d: _set(
        d.header,
        "kid",
        draw(
            st.sampled_from(
                [ABSENT, None, "", "unknown", 5, "k" * 256, "k" * 257]
                + [key.kid for key in (ES256, ES256_SPARE, RS256, PS256, EDDSA, OTHER)]
            )
        ),
    ),
    "alg": lambda draw, d: _set(d.header, "alg", draw(st.sampled_from([ABSENT, *ALGS]))),
    "aud": lambda draw, d: _set(
        d.claims,
        "aud",
        draw(
            st.sampled_from(
                [
                    [AUDIENCE],
                    ["billing", AUDIENCE],
                    ["billing"],
                    "billing",
                    [],
                    "",
                    [AUDIENCE, 5],
                    5,
                    None,
                    ABSENT,
                    {"aud": AUDIENCE},
                ]
            )
        ),
    ),
    "sub": lambda draw, d: _set(
        d.claims,
        "sub",
        draw(
            st.sampled_from(
                ["hérald", "ハロルド 🦀", "", "herald\r\nx-admin: 1", " ", 5, None, ABSENT]
            )
        ),
    ),
    "jti": lambda draw, d: _set(
        d.claims,
        "jti",
        draw(
            st.sampled_from(
                [REVOKED_JTI, "", "j" * 256, "j" * 257, "j\tti", 5, None, ABSENT, "jtï"]
            )
        ),
    ),
    "require_jti": lambda draw, d: setattr(d, "require_jti", False),
    "iss": lambda draw, d: _set(
        d.claims,
        "iss",
        draw(st.sampled_from([ISSUER, OTHER_ISSUER, "https://evil.example", "", 5, None, ABSENT])),
    ),
    "time as": lambda draw, d: _set(
        d.claims,
        draw(st.sampled_from(["exp", "nbf", "iat"])),
        draw(
            st.sampled_from(
                [
                    None,
                    ABSENT,
                    True,
                    str(int(d.now) + 60),
                    float(int(d.now) + 60),
                    int(d.now) + 60,
                    Raw(BIG_INTEGER),
                    Raw("-" + BIG_INTEGER),
                    Raw("1e400"),
                    Raw("NaN"),
                    Raw("Infinity"),
                    Raw("-Infinity"),
                    Raw("1800000060.000000000000000000001"),
                    1e300,
                ]
            )
        ),
    ),
    "extra claims": lambda draw, d: d.claims.update(
        draw(st.dictionaries(st.text(max_size=6), JSON_VALUE, max_size=3))
    ),
    "big number": lambda draw, d: _set(
        d.claims,
        "n",
        draw(st.sampled_from([Raw(BIG_INTEGER), 2**64, -(2**63), 1e300, 5e-324, Raw("1E+2")])),
    ),
    "non-standard constant": lambda draw, d: _set(
        d.claims, "score", draw(st.sampled_from([Raw("NaN"), Raw("Infinity"), Raw("-Infinity")]))
    ),
    "size": lambda draw, d: _set(d.claims, "pad", "x" * draw(st.integers(5500, 6500))),
    "layout": lambda draw, d: _set(
        d.styles, draw(st.sampled_from([0, 1])), draw(st.sampled_from(list(STYLES)))
    ),
    "encoding": lambda draw, d: _set(
        d.encodings,
        draw(st.sampled_from([0, 1])),
        draw(st.sampled_from(["utf-8-bom", "utf-16", "whitespace"])),
    ),
    "duplicate member": lambda draw, d: _set(
        d.duplicates,
        draw(st.sampled_from([0, 1])),
        (
            draw(st.sampled_from(["alg", "kid", "typ", "iss", "sub", "aud", "exp", "jti"])),
            draw(st.sampled_from(["admin", AUDIENCE, ISSUER, ES256.kid, "ES256", 0])),
        ),
    ),
    "spelling": lambda draw, d: _set(
        d.spellings,
        draw(st.sampled_from([0, 1, 2])),
        draw(st.sampled_from(["padded", "loose-bits", "standard-alphabet"])),
    ),
    "signature": lambda draw, d: (
        setattr(
            d,
            "signature_change",
            draw(st.sampled_from(["truncate", "extend", "flip", "empty", "another-message"])),
        ),
        setattr(d, "signature_byte", draw(st.integers(0, 511))),
    ),
    "shape": lambda draw, d: setattr(
        d,
        "shape",
        draw(st.sampled_from(["trailing-dot", "four-parts", "no-signature", "leading-space"])),
    ),
    "warm cache": lambda draw, d: setattr(
        d, "warm_up", d.now - draw(st.sampled_from([0.0, 0.5, 1.0, 30.0, 61.0, 3000.0]))
    ),
}


@st.composite
def drafts(draw: st.DrawFn) -> Draft:
    """A valid token near the edges of its validity, then up to three mutations."""
    signer, issuer = draw(st.sampled_from(SIGNERS))
    leeway = draw(st.sampled_from([0.0, 0.1, 0.5, 1.0, 30.0]))
    now = NOW + draw(st.sampled_from([0.0, 0.1, 0.25, 0.5]))
    iat, nbf, exp = draw(_times(now, leeway))
    claims = {
        "iss": issuer,
        "sub": "herald",
        "aud": AUDIENCE,
        "iat": iat,
        "nbf": nbf,
        "exp": exp,
        "jti": "jti-" + draw(st.text(_ALPHABET, min_size=1, max_size=22)),
    }
    draft = Draft(signer, issuer, now, leeway, standard_header(signer), claims)
    for name in draw(st.lists(st.sampled_from(list(MUTATIONS)), max_size=3)):
        MUTATIONS[name](draw, draft)
        draft.applied.append(name)
    return draft


# --- the property -------------------------------------------------------------------------

KID_REASONS = frozenset({"unknown_kid", "alg_not_allowed", "bad_signature"})


def deliberate(reason: str, header: dict[str, Any], signer: SigningKey) -> bool:
    """A refusal PyJWT would not make is deliberate if the table below documents its reason.
    The kid reasons only count when the kid does not name the key that signed: PyJWT is handed
    that key and never reads kid, jwtmesh finds its key by kid."""
    if reason in KID_REASONS and header.get("kid") == signer.kid:
        return False
    return reason in {expected for expected, *_ in STRICTER.values()}


def record_refusal(draft: Draft, token: str, refusal: TokenError) -> None:
    """Both refuse, or jwtmesh alone does: recorded as an event, and it must be deliberate."""
    try:
        pyjwt_decode(
            token, draft.signer.public, issuer=draft.issuer, now=draft.now, leeway=draft.leeway
        )
    except jwt.PyJWTError:
        event(f"both refuse ({refusal.reason})")
        return
    event(f"stricter than PyJWT: {refusal.reason}")
    assert deliberate(refusal.reason, draft.header, draft.signer), (
        f"jwtmesh refused with {refusal.reason} ({refusal.message}) what PyJWT accepts, "
        "and docs/formats.md does not list that as deliberate"
    )


@ORACLE
@given(drafts())
def test_whatever_jwtmesh_accepts_pyjwt_accepts_with_the_same_claims(draft: Draft) -> None:
    token = draft.token()
    note(f"mutations {draft.applied}; now {draft.now}, leeway {draft.leeway}; token {token}")
    ours = verifier(draft.leeway, draft.require_jti)
    if draft.warm_up is not None:
        with contextlib.suppress(TokenError):
            ours.verify(token, draft.warm_up)
    try:
        verified = ours.verify(token, draft.now)
    except TokenError as refusal:
        record_refusal(draft, token, refusal)
        return
    event(f"both accept ({draft.signer.alg})")
    key = BUNDLE.issuers[verified.issuer].keys[verified.kid]
    # Raises if PyJWT refuses what jwtmesh accepted: jwtmesh is more lenient, a bug.
    claims = pyjwt_decode(token, key, issuer=verified.issuer, now=draft.now, leeway=draft.leeway)
    assert claims == verified.claims


def test_pyjwt_reads_the_frozen_clock() -> None:
    """Otherwise the property compares jwtmesh at NOW with PyJWT at the wall clock."""
    assert pyjwt_decode(VALID, ES256.public, issuer=ISSUER, now=NOW, leeway=0)["sub"] == "herald"
    with pytest.raises(jwt.ExpiredSignatureError):
        pyjwt_decode(VALID, ES256.public, issuer=ISSUER, now=NOW + 60, leeway=0)


@pytest.mark.parametrize(("signer", "issuer"), SIGNERS, ids=[f"{k.alg}-{i}" for k, i in SIGNERS])
def test_both_accept_a_minted_token_of_every_key(signer: SigningKey, issuer: str) -> None:
    token = mint_token(signer, issuer=issuer, subject="s", audience=AUDIENCE, now=NOW, lifetime=60)
    claims = pyjwt_decode(token, signer.public, issuer=issuer, now=NOW, leeway=0)
    assert claims == verifier(leeway=0).verify(token, NOW).claims


# --- stricter than PyJWT, on purpose: one concrete token per documented case ---------------


def claims_with(**changes: Any) -> dict[str, Any]:
    claims = forge.standard_claims(ISSUER, "herald", AUDIENCE, NOW)
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not ABSENT}


def signed(key: SigningKey = ES256, header: dict[str, Any] | None = None, **changes: Any) -> str:
    return forge.sign_with(key, header or standard_header(key), claims_with(**changes))


def with_header(**changes: Any) -> str:
    return signed(header={**standard_header(ES256), **changes})


def with_payload(payload: bytes, key: SigningKey = ES256) -> str:
    return sign_bytes(key, json_document(standard_header(key)), payload)


def padded_signature() -> str:
    token = signed()
    return token + "=" * (-len(token.rsplit(".", 1)[1]) % 4)


# case -> (jwtmesh's reason, the token, the key and issuer PyJWT is given)
STRICTER: dict[str, tuple[str, Callable[[], str], SigningKey, str]] = {
    "padded-base64url": ("malformed_token", padded_signature, ES256, ISSUER),
    "duplicate-claim": (
        "malformed_token",
        lambda: with_payload(json_document(claims_with(), duplicate=("sub", "admin"))),
        ES256,
        ISSUER,
    ),
    "duplicate-header-member": (
        "malformed_token",
        lambda: sign_bytes(
            ES256,
            json_document(standard_header(ES256), duplicate=("kid", "x")),
            json_document(claims_with()),
        ),
        ES256,
        ISSUER,
    ),
    "nan-or-infinity": (
        "malformed_token",
        lambda: with_payload(json_document(claims_with(score=Raw("NaN")))),
        ES256,
        ISSUER,
    ),
    "utf-8-byte-order-mark": (
        "malformed_token",
        lambda: with_payload(json_document(claims_with(), encoding="utf-8-bom")),
        ES256,
        ISSUER,
    ),
    "utf-16-json": (
        "malformed_token",
        lambda: with_payload(json_document(claims_with(), encoding="utf-16")),
        ES256,
        ISSUER,
    ),
    "b64-not-true": ("malformed_token", lambda: with_header(b64=0), ES256, ISSUER),
    "typ-not-jwt": ("unsupported_typ", lambda: with_header(typ="at+jwt"), ES256, ISSUER),
    "crit-header": (
        "unsupported_crit",
        lambda: with_header(crit=["b64"], b64=True),
        ES256,
        ISSUER,
    ),
    "missing-kid": (
        "unknown_kid",
        lambda: signed(header={"alg": "ES256", "typ": "JWT"}),
        ES256,
        ISSUER,
    ),
    "empty-kid": ("malformed_token", lambda: with_header(kid=""), ES256, ISSUER),
    "kid-over-256-characters": (
        "malformed_token",
        lambda: with_header(kid="k" * 257),
        ES256,
        ISSUER,
    ),
    "kid-of-another-issuer": ("unknown_kid", lambda: signed(OTHER, iss=ISSUER), OTHER, ISSUER),
    "kid-of-another-key": (
        "bad_signature",
        lambda: with_header(kid=ES256_SPARE.kid),
        ES256,
        ISSUER,
    ),
    "kid-of-a-key-for-another-alg": (
        "alg_not_allowed",
        lambda: with_header(kid=EDDSA.kid),
        ES256,
        ISSUER,
    ),
    "missing-jti": ("missing_claim", lambda: signed(jti=ABSENT), ES256, ISSUER),
    "empty-jti": ("invalid_claim", lambda: signed(jti=""), ES256, ISSUER),
    "jti-over-256-characters": ("invalid_claim", lambda: signed(jti="j" * 257), ES256, ISSUER),
    "empty-sub": ("invalid_claim", lambda: signed(sub=""), ES256, ISSUER),
    "sub-with-a-line-break": (
        "invalid_claim",
        lambda: signed(sub="herald\r\nx-admin: 1"),
        ES256,
        ISSUER,
    ),
    "lifetime-over-the-maximum": (
        "lifetime_too_long",
        lambda: signed(exp=int(NOW) + 3601),
        ES256,
        ISSUER,
    ),
    "time-as-a-string": ("invalid_claim", lambda: signed(exp=str(int(NOW) + 60)), ES256, ISSUER),
    "time-as-a-boolean": ("invalid_claim", lambda: signed(iat=True), ES256, ISSUER),
    "time-beyond-the-float-range": (
        "invalid_claim",
        lambda: with_payload(json_document(claims_with(exp=Raw(BIG_INTEGER)))),
        ES256,
        ISSUER,
    ),
    "fractional-nbf-in-the-future": (
        "token_not_yet_valid",
        lambda: signed(nbf=NOW + DEFAULT_LEEWAY + 0.5),
        ES256,
        ISSUER,
    ),
    "fractional-iat-in-the-future": (
        "token_issued_in_future",
        lambda: signed(iat=NOW + DEFAULT_LEEWAY + 0.5, nbf=ABSENT),
        ES256,
        ISSUER,
    ),
    "revoked-jti": ("token_revoked", lambda: signed(jti=REVOKED_JTI), ES256, ISSUER),
    "issued-before-the-issuer-cutoff": (
        "token_revoked",
        lambda: signed(OTHER, iss=OTHER_ISSUER, iat=int(CUTOFF) - 1, nbf=ABSENT),
        OTHER,
        OTHER_ISSUER,
    ),
    "token-over-8192-bytes": (
        "token_too_large",
        lambda: signed(pad="x" * DEFAULT_MAX_TOKEN_BYTES),
        ES256,
        ISSUER,
    ),
}


@pytest.mark.parametrize("case", list(STRICTER))
def test_stricter_than_pyjwt_on_purpose(case: str) -> None:
    reason, make, key, issuer = STRICTER[case]
    token = make()
    claims = pyjwt_decode(token, key.public, issuer=issuer, now=NOW, leeway=DEFAULT_LEEWAY)
    assert claims["iss"] == issuer  # PyJWT accepts...
    with pytest.raises(TokenError) as refused:
        verifier().verify(token, NOW)
    assert refused.value.reason == reason  # ...and jwtmesh refuses, for the documented reason


def documented_cases() -> dict[str, str]:
    """The table of docs/formats.md's "Stricter than PyJWT, on purpose": case -> reason."""
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## Stricter than PyJWT, on purpose", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    return dict(rows)


def test_the_documented_list_is_the_tested_list() -> None:
    assert documented_cases() == {case: reason for case, (reason, *_) in STRICTER.items()}


def loose_bits_signature() -> str:
    header, payload, signature = signed().split(".")
    return f"{header}.{payload}.{spell(b64url_decode(signature), 'loose-bits')}"


# Refused by both, named in the paragraph under the table: kept true by this list.
REFUSED_BY_BOTH: dict[str, Callable[[], str]] = {
    "non-zero unused trailing bits": loose_bits_signature,
    "standard base64 alphabet": lambda: sign_bytes(
        ES256,
        json_document(standard_header(ES256)),
        json_document(claims_with(pad="ÿÿÿ"), "raw-unicode"),  # base64url: w7_Dv8O_
        ("canonical", "standard-alphabet", "canonical"),
    ),
    "alg none": lambda: forge.unsigned({"alg": "none", "kid": ES256.kid}, claims_with()),
    "HS256 keyed with the public key": lambda: forge.hs256_with_public_key(ES256, claims_with()),
    "another algorithm than the key's": lambda: with_header(alg="RS256"),
    "b64 false": lambda: with_header(b64=False),
    "kid not a string": lambda: with_header(kid=7),
    "null nbf": lambda: signed(nbf=None),
    "null jti": lambda: signed(jti=None),
    "exp at the edge of the leeway": lambda: signed(
        exp=int(NOW - DEFAULT_LEEWAY), iat=int(NOW) - 100, nbf=ABSENT
    ),
    "nbf a second beyond the leeway": lambda: signed(nbf=int(NOW + DEFAULT_LEEWAY) + 1),
    "iat a second beyond the leeway": lambda: signed(iat=int(NOW + DEFAULT_LEEWAY) + 1, nbf=ABSENT),
    "aud without us": lambda: signed(aud=["billing"]),
}


@pytest.mark.parametrize("case", list(REFUSED_BY_BOTH))
def test_refused_by_both(case: str) -> None:
    token = REFUSED_BY_BOTH[case]()
    with pytest.raises(jwt.PyJWTError):
        pyjwt_decode(token, ES256.public, issuer=ISSUER, now=NOW, leeway=DEFAULT_LEEWAY)
    with pytest.raises(TokenError):
        verifier().verify(token, NOW)
