"""Who may hold which issuer and audience (pure): the namespace is the boundary, the older
claimant keeps a name, grants come from cluster admins."""

from __future__ import annotations

import pytest

from jwtmesh_operator.revocations import (
    MAX_JTI_REVOCATIONS_PER_NAMESPACE,
    RevocationRecord,
    effective,
    judge,
    judge_all,
)
from jwtmesh_operator.tenancy import (
    Grant,
    IdentityRecord,
    Refusal,
    resolve,
    resolve_all,
    service_account_refusal,
)

TD = "mesh.test"
NOW = 1_800_000_000.0


def record(
    ns: str, name: str, created: str = "2026-01-01T00:00:00Z", **spec: str
) -> IdentityRecord:
    return IdentityRecord(
        ns,
        name,
        f"uid-{ns}-{name}",
        created,
        spec_issuer=spec.get("issuer"),
        spec_audience=spec.get("audience"),
        secret_name=f"{name}-jwtmesh-key",
    )


@pytest.mark.parametrize(
    ("issuer", "refused"),
    [
        (f"https://{TD}/ns/dev/api", False),
        (f"https://{TD}/ns/dev/team/api", False),
        (f"https://{TD}/ns/prod/payments", True),
        (f"https://{TD}/ns/dev/", True),
        (f"https://{TD}/ns/dev/../prod/payments", True),
        (f"https://{TD}/ns/dev//x", True),
        (f"https://{TD}/ns/development/x", True),
        ("https://elsewhere.example/ns/dev/api", True),
    ],
)
def test_an_identity_names_its_issuer_only_under_its_namespace(issuer: str, refused: bool) -> None:
    resolved = resolve(record("dev", "api", issuer=issuer), [], TD)
    assert (resolved.refusal is not None) is refused
    if refused:
        assert resolved.refusal is not None
        assert resolved.refusal.reason == "IssuerNotInNamespace"


@pytest.mark.parametrize(
    ("audience", "refused"),
    [
        ("api.dev", False),
        ("payments.prod", True),
        ("api.dev.prod", True),
        ("dev", True),
        ("A.dev", True),
    ],
)
def test_an_identity_names_its_audience_only_in_its_namespace(audience: str, refused: bool) -> None:
    resolved = resolve(record("dev", "api", audience=audience), [], TD)
    assert (resolved.refusal is not None) is refused


def test_defaults_are_the_namespace_and_name() -> None:
    resolved = resolve(record("shop", "cart"), [], TD)
    assert (resolved.issuer, resolved.audience, resolved.refusal) == (
        f"https://{TD}/ns/shop/cart",
        "cart.shop",
        None,
    )


def test_a_grant_gives_names_and_claims_beyond_the_namespace() -> None:
    grant = Grant(
        "g",
        "prod",
        "payments",
        issuer="https://auth.example/p",
        audience="p.example",
        claims={"roles": ["reader"]},
    )
    resolved = resolve(record("prod", "payments"), [grant], TD)
    assert (resolved.issuer, resolved.audience, dict(resolved.claims)) == (
        "https://auth.example/p",
        "p.example",
        {"roles": ["reader"]},
    )
    other = resolve(record("dev", "payments"), [grant], TD)
    assert other.issuer == f"https://{TD}/ns/dev/payments", "a grant is for one identity only"


def test_two_grants_giving_different_names_refuse_the_identity() -> None:
    grants = [
        Grant("a", "prod", "p", issuer="https://one/x"),
        Grant("b", "prod", "p", issuer="https://two/x"),
    ]
    refusal = resolve(record("prod", "p"), grants, TD).refusal
    assert refusal is not None
    assert refusal.reason == "GrantConflict"


def test_of_two_claimants_the_older_keeps_the_name_and_the_later_is_refused() -> None:
    shared = f"https://{TD}/ns/dev/shared"
    older = record("dev", "a", "2026-01-01T00:00:00Z", issuer=shared)
    later = record("dev", "b", "2026-01-02T00:00:00Z", issuer=shared)
    result = resolve_all([later, older], [], TD)
    assert result[older.key].refusal is None
    refusal = result[later.key].refusal
    assert refusal == Refusal("IssuerConflict", f"the issuer {shared!r} already belongs to dev/a")
    assert resolve_all([later], [], TD)[later.key].refusal is None, "alone, it takes the name"


def test_an_identity_refused_for_its_names_holds_none_of_them() -> None:
    """dev/intruder asking for prod's issuer never blocks prod/payments from it."""
    intruder = record(
        "dev", "intruder", "2020-01-01T00:00:00Z", issuer=f"https://{TD}/ns/prod/payments"
    )
    payments = record("prod", "payments", "2026-01-01T00:00:00Z")
    result = resolve_all([intruder, payments], [], TD)
    assert result[payments.key].refusal is None


@pytest.mark.parametrize(
    ("allowed", "account", "refused"),
    [((), "api", False), ((), "default", True), (("a", "b"), "b", False), (("a",), "api", True)],
)
def test_a_pod_uses_an_identity_only_as_an_allowed_service_account(
    allowed: tuple[str, ...], account: str, refused: bool
) -> None:
    identity = IdentityRecord("dev", "api", "u", "", service_accounts=allowed)
    assert (service_account_refusal(identity, account) is not None) is refused


# --- revocations --------------------------------------------------------------------------

IDENTITIES = resolve_all(
    [
        record("prod", "payments"),
        record("dev", "own"),
        record("dev", "squatter", issuer=f"https://{TD}/ns/prod/payments"),
    ],
    [],
    TD,
)


@pytest.mark.parametrize(
    ("namespace", "spec", "outcome"),
    [
        ("dev", {"identity": "own", "issuedBefore": "2026-01-01T00:00:00Z"}, "accepted"),
        (
            "dev",
            {"issuer": f"https://{TD}/ns/dev/own", "jti": "j", "expiresAt": "2030-01-01T00:00:00Z"},
            "accepted",
        ),
        ("dev", {"issuer": f"https://{TD}/ns/prod/payments", "kid": "k"}, "CrossNamespace"),
        ("dev", {"identity": "payments", "kid": "k"}, "UnknownIdentity"),
        (
            "dev",
            {"identity": "squatter", "issuedBefore": "2026-01-01T00:00:00Z"},
            "UnknownIdentity",
        ),
        ("dev", {"identity": "own", "issuedBefore": "2100-01-01T00:00:00Z"}, "FutureCutoff"),
        ("dev", {"identity": "own", "issuedBefore": "yesterday"}, "InvalidRevocation"),
        (None, {"identity": {"namespace": "prod", "name": "payments"}, "kid": "k"}, "accepted"),
        (None, {"issuer": f"https://{TD}/ns/prod/payments", "kid": "k"}, "accepted"),
    ],
    ids=[
        "its own identity",
        "its own issuer",
        "another namespace's issuer",
        "another's identity",
        "its own identity squatting another's issuer",
        "a cutoff in the future",
        "a bad time",
        "a cluster revocation by identity",
        "a cluster revocation by issuer",
    ],
)
def test_a_revocation_reaches_its_own_namespace_only(
    namespace: str | None, spec: dict[str, object], outcome: str
) -> None:
    verdict = judge(RevocationRecord("r", namespace, spec), IDENTITIES, NOW)
    assert (verdict.reason if isinstance(verdict, Refusal) else "accepted") == outcome


def test_one_namespace_cannot_fill_every_bundle_with_jti_revocations() -> None:
    """Past its budget of jti revocations in force, a namespace's revocations expiring last
    are refused (the attacker's far-future ones first); other namespaces keep theirs."""
    soon, late = "2027-01-15T08:00:00Z", "9999-12-31T23:59:59Z"
    flood = [
        RevocationRecord(
            f"f{i}", "dev", {"identity": "own", "jti": f"{i:0256d}", "expiresAt": late}
        )
        for i in range(MAX_JTI_REVOCATIONS_PER_NAMESPACE)
    ]
    real = RevocationRecord("stolen", "dev", {"identity": "own", "jti": "s", "expiresAt": soon})
    expired = RevocationRecord(
        "old", "dev", {"identity": "own", "jti": "o", "expiresAt": "2020-01-01T00:00:00Z"}
    )
    prod = RevocationRecord("p", "prod", {"identity": "payments", "jti": "p", "expiresAt": late})
    verdicts = judge_all([*flood, real, expired, prod], IDENTITIES, NOW)
    refused = [key for key, v in verdicts.items() if isinstance(v, Refusal)]
    assert refused == [("dev", f"f{MAX_JTI_REVOCATIONS_PER_NAMESPACE - 1}")]
    assert verdicts[("dev", f"f{MAX_JTI_REVOCATIONS_PER_NAMESPACE - 1}")].reason == (
        "TooManyRevocations"
    )
    kept = effective([*flood, real, expired, prod], IDENTITIES, NOW)
    assert {r.jti for r in kept} >= {"s", "p"}, "the real one and another namespace's stay"
    assert len([r for r in kept if r.issuer.endswith("/ns/dev/own")]) == (
        MAX_JTI_REVOCATIONS_PER_NAMESPACE + 1  # the expired one costs no budget
    )
