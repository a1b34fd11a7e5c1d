"""The memoising Resolver answers exactly as `resolve_all` does, whatever changes between
two calls: identities added, removed or edited, grants, the trust domain."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from jwtmesh_operator.tenancy import Grant, IdentityRecord, Resolver, resolve_all

NAMESPACES = ("dev", "prod")
NAMES = ("api", "db", "web")
DOMAINS = ("mesh.test", "other.test")


@st.composite
def identity(draw: st.DrawFn) -> IdentityRecord:
    ns, name = draw(st.sampled_from(NAMESPACES)), draw(st.sampled_from(NAMES))
    issuer = draw(
        st.sampled_from(
            [
                None,
                "https://mesh.test/ns/dev/shared",
                f"https://mesh.test/ns/{ns}/x",
                "https://evil",
            ]
        )
    )
    audience = draw(st.sampled_from([None, f"shared.{ns}", "shared.dev", "nope"]))
    return IdentityRecord(
        ns,
        name,
        f"uid-{ns}-{name}",
        draw(st.sampled_from(["2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"])),
        spec_issuer=issuer,
        spec_audience=audience,
        secret_name=f"{name}-jwtmesh-key",
    )


grant = st.builds(
    Grant,
    name=st.sampled_from(["g1", "g2"]),
    namespace=st.sampled_from(NAMESPACES),
    identity=st.sampled_from(NAMES),
    issuer=st.sampled_from([None, "https://legacy.example/a", "https://legacy.example/b"]),
    audience=st.sampled_from([None, "legacy-audience"]),
    claims=st.sampled_from([{}, {"roles": ["admin"]}]),
)

step = st.tuples(
    st.lists(identity(), max_size=6), st.lists(grant, max_size=2), st.sampled_from(DOMAINS)
)


def unique(records: list[IdentityRecord]) -> list[IdentityRecord]:
    """One record per (namespace, name), as the index holds them."""
    return list({record.key: record for record in records}.values())


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=8), st.booleans())
def test_the_resolver_answers_as_resolve_all(
    steps: list[tuple[list[IdentityRecord], list[Grant], str]], copy_records: bool
) -> None:
    resolver = Resolver()
    for records, grants, domain in steps:
        records = unique(records)
        if copy_records:  # equal records that are new objects (the index re-read them)
            records = [IdentityRecord(**vars(record)) for record in records]
        assert resolver.resolve_all(records, grants, domain) == resolve_all(records, grants, domain)


def test_an_edited_identity_is_resolved_again() -> None:
    resolver = Resolver()
    before = IdentityRecord("dev", "api", "u", "2026-01-01T00:00:00Z")
    assert resolver.resolve_all([before], [], "mesh.test")[before.key].issuer.endswith("/api")
    after = IdentityRecord("dev", "api", "u", "2026-01-01T00:00:00Z", spec_issuer="https://evil")
    assert resolver.resolve_all([after], [], "mesh.test")[after.key].refusal is not None
