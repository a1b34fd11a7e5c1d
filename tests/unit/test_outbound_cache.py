"""The egress token cache: a token is reused only while the identity file that minted it
is in force and the trust bundle does not revoke it (a responder's revocation after a
theft must not block egress until the cached token would have been renewed)."""

from __future__ import annotations

import json

import pytest

from jwtmesh.identity import IdentityKeys, ScheduledKey
from jwtmesh.tokens.encoding import b64url_decode
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.outbound import OutboundMinter

ISS = "https://jwtmesh.cluster.local/ns/dev/herald"
KEY = generate_signing_key()
T0 = 1_800_000_000.0
AUD = "census.default"
IDENTITY = IdentityKeys(ISS, "herald.dev", 900.0, (ScheduledKey(KEY, T0 - 10, None),))


def claims(token: str) -> dict[str, object]:
    parsed: dict[str, object] = json.loads(b64url_decode(token.split(".")[1]))
    return parsed


def bundle(**revoked: object) -> TrustBundle:
    trust = IssuerTrust({KEY.kid: KEY.public}, mesh=MeshIdentity("herald.dev", "dev"), **revoked)  # type: ignore[arg-type]
    return TrustBundle({ISS: trust})


def test_a_token_is_reused_while_nothing_changed() -> None:
    in_force = [bundle()]
    minter = OutboundMinter(lambda: IDENTITY, 900, lambda: in_force[0])
    assert minter.token_for(AUD, T0) == minter.token_for(AUD, T0 + 400)


@pytest.mark.parametrize("by", ["jti", "issuedBefore"])
def test_a_revoked_token_is_replaced_by_one_the_bundle_accepts(by: str) -> None:
    in_force = [bundle()]
    minter = OutboundMinter(lambda: IDENTITY, 900, lambda: in_force[0])
    first = minter.token_for(AUD, T0)
    assert first is not None
    if by == "jti":
        in_force[0] = bundle(revoked_jtis={str(claims(first)["jti"]): T0 + 900})
    else:
        in_force[0] = bundle(revoked_before=T0 + 5)
    again = minter.token_for(AUD, T0 + 400)
    assert again is not None
    assert again != first
    verifier = Verifier(in_force[0], VerifierSettings(audience=AUD))
    assert verifier.verify(again, T0 + 400).subject == "herald.dev"


def test_a_new_identity_file_mints_anew() -> None:
    """Its claims (a grant withdrawn) or lifetime may have changed with the same key."""
    granted = IdentityKeys(ISS, "herald.dev", 900.0, IDENTITY.keys, claims={"roles": ["admin"]})
    current = [granted]
    minter = OutboundMinter(lambda: current[0], 900)
    first = minter.token_for(AUD, T0)
    assert first is not None
    assert claims(first)["roles"] == ["admin"]
    current[0] = IdentityKeys(ISS, "herald.dev", 900.0, IDENTITY.keys, claims={})
    again = minter.token_for(AUD, T0 + 400)
    assert again is not None
    assert "roles" not in claims(again)
