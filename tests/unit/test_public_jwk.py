"""The operator keeps public keys as JWK members (PublicJwk): the same bundle bytes, a
fraction of the memory."""

from __future__ import annotations

import pytest

from jwtmesh.tokens.keys import PublicJwk, generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, render_issuer


@pytest.mark.parametrize("alg", ["ES256", "RS256", "EdDSA"])
def test_a_public_jwk_renders_and_parses_as_the_key_it_was_made_from(alg: str) -> None:
    key = generate_signing_key(alg, rsa_bits=2048).public
    kept = PublicJwk.of(key)
    assert kept.to_jwk() == key.to_jwk()
    assert (kept.kid, kept.alg) == (key.kid, key.alg)
    assert kept.key == key.key
    assert render_issuer(IssuerTrust(keys={kept.kid: kept})) == render_issuer(
        IssuerTrust(keys={key.kid: key})
    )


def test_a_public_jwk_holds_no_parsed_key() -> None:
    kept = PublicJwk.of(generate_signing_key("ES256").public)
    assert not hasattr(kept, "__dict__")  # slots: kid, alg and the members only
    assert all(isinstance(value, str) for _, value in kept.members)
