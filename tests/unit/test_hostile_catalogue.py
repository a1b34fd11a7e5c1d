"""The hostile-token catalogue against the Verifier itself: typed error, right reason."""

from __future__ import annotations

import pytest

from jwtmesh.testing.hostile import Keys, catalogue
from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings

NOW = 1_800_000_000.0
KEYS = Keys(
    issuer_a="https://mesh.test/a",
    issuer_b="https://mesh.test/b",
    audience="census.a",
    a_es256=generate_signing_key("ES256"),
    a_rsa=generate_signing_key("RS256", 2048),
    b_eddsa=generate_signing_key("EdDSA"),
    stranger=generate_signing_key("ES256"),
    removed=generate_signing_key("ES256"),
)
CUTOFF = NOW - 200
CASES = catalogue(KEYS, NOW, revoked_jti="stolen", cutoff=CUTOFF)
VERIFIER = Verifier(
    TrustBundle(
        {
            KEYS.issuer_a: IssuerTrust(
                {KEYS.a_es256.kid: KEYS.a_es256.public, KEYS.a_rsa.kid: KEYS.a_rsa.public},
                revoked_jtis={"stolen": NOW + 600},
                revoked_before=CUTOFF,
            ),
            KEYS.issuer_b: IssuerTrust({KEYS.b_eddsa.kid: KEYS.b_eddsa.public}),
        }
    ),
    VerifierSettings(audience=KEYS.audience),
)


def test_the_catalogue_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_token_is_refused_with_its_reason(case: str) -> None:
    make, reason = CASES[case]
    with pytest.raises(TokenError) as refused:
        VERIFIER.verify(make(), NOW)
    assert refused.value.reason == reason
