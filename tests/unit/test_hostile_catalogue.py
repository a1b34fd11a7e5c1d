"""The hostile-token catalogue against the Verifier itself: typed error, right reason."""

from __future__ import annotations

import pytest

from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_testing.hostile import Keys, catalogue

NOW = 1_800_000_000.0
KEYS = Keys.generate()
CUTOFF = NOW - 200
CASES = catalogue(KEYS, NOW, revoked_jti="stolen", cutoff=CUTOFF)
VERIFIER = Verifier(KEYS.bundle(NOW, "stolen", CUTOFF), VerifierSettings(audience=KEYS.audience))


def test_the_catalogue_has_at_least_forty_cases() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("case", list(CASES))
def test_each_hostile_token_is_refused_with_its_reason(case: str) -> None:
    make, reason = CASES[case]
    with pytest.raises(TokenError) as refused:
        VERIFIER.verify(make(), NOW)
    assert refused.value.reason == reason
