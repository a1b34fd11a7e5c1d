"""What every trust bundle contains (pure), and Go-style durations."""

from __future__ import annotations

import pytest

from jwtmesh.tokens.errors import Revoked
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import MAX_LEEWAY, Verifier, VerifierSettings
from jwtmesh_operator.bundles import Revocation, build_bundle, compromised_kids
from jwtmesh_operator.durations import format_duration, parse_duration

NOW = 1_800_000_000.0
HERALD, CENSUS = "https://mesh/herald", "https://mesh/census"
K1, K2, K3 = (generate_signing_key() for _ in range(3))
PUBLISHED = {HERALD: {K1.kid: K1.public, K2.kid: K2.public}, CENSUS: {K3.kid: K3.public}}


def test_without_revocations_every_published_key_is_in_the_bundle() -> None:
    bundle = build_bundle(PUBLISHED, [], NOW)
    assert set(bundle.issuers[HERALD].keys) == {K1.kid, K2.kid}
    assert set(bundle.issuers[CENSUS].keys) == {K3.kid}
    assert bundle.issuers[HERALD].revoked_before is None


def test_a_compromised_kid_leaves_only_its_own_issuer() -> None:
    revocations = [Revocation(issuer=HERALD, kid=K1.kid), Revocation(issuer=CENSUS, kid=K1.kid)]
    bundle = build_bundle(PUBLISHED, revocations, NOW)
    assert set(bundle.issuers[HERALD].keys) == {K2.kid}
    assert set(bundle.issuers[CENSUS].keys) == {K3.kid}
    assert compromised_kids(revocations, HERALD) == {K1.kid}


def test_a_jti_revocation_lasts_until_its_token_could_no_longer_verify() -> None:
    live = Revocation(issuer=HERALD, jti="live", expires_at=NOW - MAX_LEEWAY)
    gone = Revocation(issuer=HERALD, jti="gone", expires_at=NOW - MAX_LEEWAY - 1)
    bundle = build_bundle(PUBLISHED, [live, gone], NOW)
    assert dict(bundle.issuers[HERALD].revoked_jtis) == {"live": NOW - MAX_LEEWAY}


def test_a_revoked_token_is_refused_by_a_sidecar_with_the_largest_leeway_until_it_expires() -> None:
    """A sidecar allowed the most leeway accepts a token until exp + MAX_LEEWAY; the
    revocation must still be in the bundle at every moment before that."""
    key = generate_signing_key()
    token = mint_token(
        key, issuer=HERALD, subject="herald", audience="census", now=NOW, lifetime=60
    )
    exp = NOW + 60
    settings = VerifierSettings(audience="census", leeway=MAX_LEEWAY, require_jti=True)
    jti = (
        Verifier(TrustBundle({HERALD: IssuerTrust({key.kid: key.public})}), settings)
        .verify(token, NOW)
        .jti
    )
    for at in (exp, exp + 31, exp + MAX_LEEWAY - 0.5):
        bundle = build_bundle({HERALD: {key.kid: key.public}}, [Revocation(HERALD, jti, exp)], at)
        with pytest.raises(Revoked):
            Verifier(bundle, settings).verify(token, at)


def test_of_several_cutoffs_for_one_issuer_the_latest_wins() -> None:
    revocations = [
        Revocation(issuer=HERALD, issued_before=NOW - 100),
        Revocation(issuer=HERALD, issued_before=NOW - 10),
    ]
    bundle = build_bundle(PUBLISHED, revocations, NOW)
    assert bundle.issuers[HERALD].revoked_before == NOW - 10
    assert bundle.issuers[CENSUS].revoked_before is None


def test_a_revocation_for_an_issuer_without_keys_adds_no_issuer() -> None:
    bundle = build_bundle(PUBLISHED, [Revocation(issuer="https://x", issued_before=NOW)], NOW)
    assert set(bundle.issuers) == {HERALD, CENSUS}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("1h30m", 5400), ("1.5h", 5400), ("500ms", 0.5), ("720h", 2592000)],
)
def test_go_durations_parse_to_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "1x", "h", "1h 30m", "-1s", "1h30"])
def test_anything_else_is_not_a_duration(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_durations_format_back_to_the_shortest_go_spelling() -> None:
    assert [format_duration(s) for s in (0, 59, 3600, 5430)] == ["0s", "59s", "1h", "1h30m30s"]
