"""The verified-token cache is shared by the gRPC pollers and the HTTP loop: it must hold
under concurrent use, stay bounded (by entries and by bytes), and never serve an expired
result; a token too big or complex to cache is verified every time (finding 2)."""

from __future__ import annotations

import base64
import json
import sys
import threading
import tracemalloc
from collections.abc import Iterator

import pytest

from jwtmesh.tokens.cache import (
    MAX_CLAIM_DEPTH,
    MAX_CLAIM_VALUES,
    MAX_ENTRY_BYTES,
    VerifiedTokenCache,
    claims_cost,
    entry_cost,
)
from jwtmesh.tokens.errors import TokenError
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle
from jwtmesh.tokens.verify import VerifiedToken, Verifier, VerifierSettings

NOW = 1_800_000_000.0


def verified(subject: str, expires_at: float = NOW + 60) -> VerifiedToken:
    return VerifiedToken("https://iss", subject, "kid", "jti", expires_at, {"sub": subject})


@pytest.fixture
def tight_switching() -> Iterator[None]:
    """Switch threads every few bytecodes, so an unlocked race shows within a second."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("tight_switching")
@pytest.mark.parametrize("round_", range(3))
def test_many_threads_inserting_and_evicting_at_once_never_fail_and_stay_bounded(
    round_: int,
) -> None:
    """Without the lock this fails in most rounds (a lost count or a RuntimeError)."""
    cache = VerifiedTokenCache(max_entries=16)
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def hammer(worker: int) -> None:
        start.wait()
        try:
            for i in range(10_000):
                token = f"t{worker}-{i % 1000}"
                if cache.get(token, NOW, 30) is None:
                    cache.put(token, verified(token))
        except BaseException as exc:  # any failure is the finding
            errors.append(exc)

    threads = [threading.Thread(target=hammer, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(cache) <= 16
    assert cache.hits + cache.misses == 8 * 10_000, "no lookup lost its count"


def test_an_entry_past_its_expiry_is_a_miss_and_is_dropped() -> None:
    cache = VerifiedTokenCache(max_entries=10)
    cache.put("a", verified("a", expires_at=NOW))
    assert cache.get("a", NOW + 29, leeway=30) is not None
    assert cache.get("a", NOW + 30, leeway=30) is None
    assert len(cache) == 0


def test_the_oldest_entry_goes_first_and_a_zero_size_cache_holds_nothing() -> None:
    cache = VerifiedTokenCache(max_entries=2)
    for name in "abc":
        cache.put(name, verified(name))
    assert cache.get("a", NOW, 30) is None
    assert cache.get("c", NOW, 30) is not None
    empty = VerifiedTokenCache(max_entries=0)
    empty.put("a", verified("a"))
    assert len(empty) == 0


# --- bounded by bytes (data-plane hardening, finding 2) ------------------------------


def test_the_cache_is_bounded_by_bytes_not_only_entries() -> None:
    cache = VerifiedTokenCache(max_entries=10_000, max_bytes=100_000)
    claims = {"sub": "x", "groups": [f"group-{n}" for n in range(40)]}
    for n in range(1000):
        cache.put(f"token-{n}", VerifiedToken("https://iss", "x", "k", None, NOW + 60, claims))
    assert cache.bytes <= 100_000
    assert 0 < len(cache) < 100, "far fewer than max_entries fit in the byte budget"
    assert cache.get("token-999", NOW, 30) is not None, "the newest stays"
    assert cache.get("token-0", NOW, 30) is None, "the oldest went first"
    assert cache.bytes == sum(
        entry_cost(f"token-{n}", claims) or 0 for n in range(1000) if f"token-{n}" in cache._entries
    )


@pytest.mark.parametrize(
    ("shape", "claims"),
    [
        ("the finding: thousands of empty lists", {"x": [[] for _ in range(2000)]}),
        ("too many values", {"x": list(range(MAX_CLAIM_VALUES + 1))}),
        (
            "too deep",
            json.loads('{"a":' * (MAX_CLAIM_DEPTH + 1) + "1" + "}" * (MAX_CLAIM_DEPTH + 1)),
        ),
        ("too big", {"x": "y" * MAX_ENTRY_BYTES}),
    ],
)
def test_claims_too_big_or_complex_are_not_cached(shape: str, claims: dict[str, object]) -> None:
    assert entry_cost("t", claims) is None, shape
    cache = VerifiedTokenCache(max_entries=10)
    cache.put("t", VerifiedToken("https://iss", "x", "k", None, NOW + 60, claims))
    assert (len(cache), cache.bytes, cache.uncacheable) == (0, 0, 1)


@pytest.mark.parametrize(
    "claims",
    [
        {"roles": ["reader"], "tenant": {"id": "t-1", "tier": "gold"}},
        {"x": [[] for _ in range(700)]},
        {"x": [{} for _ in range(600)]},
        {"x": "a" * 6000},
        {"x": [f"{n:04}" for n in range(600)]},
        {"x": [1.5] * 1000},
    ],
    ids=["typical", "lists", "objects", "one string", "strings", "floats"],
)
def test_the_cost_of_an_entry_errs_high(claims: dict[str, object]) -> None:
    """What 100 entries really hold (tracemalloc; claims decoded from the token's JSON as a
    verifier decodes them; the claims header computed) is at most what they are charged."""
    text = json.dumps(claims)
    payload = base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")
    tokens = [f"eyJhbGciOiJFUzI1NiJ9.{payload}.{n:086}" for n in range(100)]  # as long as real
    cache = VerifiedTokenCache(max_entries=1000, max_bytes=1 << 30)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for token in tokens:
            entry = VerifiedToken("https://iss", "x", "k", None, NOW + 60, json.loads(text))
            assert entry.claims_b64
            cache.put(token, entry)
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert cache.uncacheable == 0
    assert held <= cache.bytes, f"held {held} bytes, charged {cache.bytes}"


def test_a_token_too_complex_to_cache_is_still_answered_correctly_every_time() -> None:
    key = generate_signing_key()
    verifier = Verifier(
        TrustBundle({"https://idp": IssuerTrust({key.kid: key.public})}),
        VerifierSettings(audience="census"),
    )
    token = mint_token(
        key,
        issuer="https://idp",
        subject="caller",
        audience="census",
        now=NOW,
        lifetime=60,
        extra_claims={"x": [[] for _ in range(1500)]},
    )
    for _ in range(3):
        assert len(verifier.verify(token, NOW).claims["x"]) == 1500
    assert (verifier.cache.uncacheable, len(verifier.cache)) == (3, 0)
    with pytest.raises(TokenError) as expired:
        verifier.verify(token, NOW + 3600)
    assert expired.value.reason == "token_expired"


@pytest.mark.parametrize(
    ("claims", "cacheable"),
    [
        (json.loads('{"a":' * (MAX_CLAIM_DEPTH - 1) + "1" + "}" * (MAX_CLAIM_DEPTH - 1)), True),
        (json.loads('{"a":' * MAX_CLAIM_DEPTH + "1" + "}" * MAX_CLAIM_DEPTH), True),
        (json.loads('{"a":' * (MAX_CLAIM_DEPTH + 1) + "1" + "}" * (MAX_CLAIM_DEPTH + 1)), False),
        ({"x": list(range(MAX_CLAIM_VALUES - 2))}, True),
        ({"x": list(range(MAX_CLAIM_VALUES - 1))}, False),
    ],
    ids=["depth 15", "depth 16", "depth 17", "1,024 values", "1,025 values"],
)
def test_the_shape_limits_are_exact(claims: dict[str, object], cacheable: bool) -> None:
    assert (claims_cost(claims) is not None) is cacheable
