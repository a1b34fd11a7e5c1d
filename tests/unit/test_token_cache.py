"""The verified-token cache is shared by the gRPC pollers and the HTTP loop: it must hold
under concurrent use, stay bounded, and never serve an expired result."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import pytest

from jwtmesh.tokens.cache import VerifiedTokenCache
from jwtmesh.tokens.verify import VerifiedToken

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
