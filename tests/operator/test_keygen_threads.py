"""Key generation runs in threads of its own (OperatorState.keygen): the API calls' pool
(the default executor) serves the Lease renewal, the webhook's reads and every reconcile,
and a tenant's RSA identities rotating every second once kept all of its threads busy."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from jwtmesh.tokens.keys import SigningKey, generate_signing_key
from jwtmesh_operator import reconcile
from jwtmesh_operator.desired import decide_identity
from jwtmesh_operator.fair_executor import FairExecutor
from jwtmesh_operator.spec import parse_spec
from jwtmesh_operator.state import Counters, keygen_executor

API_THREADS = 4  # Kube.pool_size at its smallest
SPEC = parse_spec("dev", "burn", {"algorithm": "RS256", "keySize": 2048}, "mesh.test")


def test_an_api_call_never_waits_behind_key_generation(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()
    made = generate_signing_key("ES256")

    def slow_key(_alg: str, _bits: int) -> SigningKey:
        release.wait(10)  # an RSA-8192 key took 9-20 s
        return made

    monkeypatch.setattr(reconcile, "generate_signing_key", slow_key)
    state: Any = SimpleNamespace(counters=Counters(), keygen=keygen_executor())
    decision = decide_identity(
        SPEC, None, None, time.time(), rotate_requested=False, compromised=frozenset()
    )

    async def main() -> float:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(ThreadPoolExecutor(max_workers=API_THREADS))
        # As many as the scheduler runs at once (twice the API threads).
        generating = [
            asyncio.create_task(reconcile._generate_new_keys(state, SPEC, decision, None))
            for _ in range(2 * API_THREADS)
        ]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        try:
            await asyncio.wait_for(asyncio.to_thread(lambda: None), 2.0)  # a Lease read
            return time.monotonic() - started
        finally:
            release.set()
            await asyncio.gather(*generating)

    assert asyncio.run(main()) < 1.0
    state.keygen.shutdown()


def test_an_ec_key_never_waits_behind_another_namespaces_rsa_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every keygen thread busy with a flood's slow RSA keys: an ES256 identity's key is
    made at once, not after them."""
    release = threading.Event()
    real = generate_signing_key

    def slow_rsa(alg: str, bits: int) -> SigningKey:
        if alg == "RS256":
            release.wait(10)
        return real(alg, bits)

    monkeypatch.setattr(reconcile, "generate_signing_key", slow_rsa)
    state: Any = SimpleNamespace(counters=Counters(), keygen=keygen_executor())
    now = time.time()
    shop = parse_spec("shop", "cart", {}, "mesh.test")
    shop_decision = decide_identity(
        shop, None, None, now, rotate_requested=False, compromised=frozenset()
    )
    flood_decision = decide_identity(
        SPEC, None, None, now, rotate_requested=False, compromised=frozenset()
    )

    async def main() -> float:
        flood = [
            asyncio.create_task(reconcile._generate_new_keys(state, SPEC, flood_decision, None))
            for _ in range(8)
        ]
        await asyncio.sleep(0.1)
        started = time.monotonic()
        try:
            schedules, _, private = await asyncio.wait_for(
                reconcile._generate_new_keys(state, shop, shop_decision, None), 2.0
            )
            assert [key.alg for key in private.values()] == ["ES256"]
            assert all(schedule.kid in private for schedule in schedules)
            return time.monotonic() - started
        finally:
            release.set()
            await asyncio.gather(*flood)

    assert asyncio.run(main()) < 1.0
    state.keygen.shutdown()


def test_namespaces_take_turns_for_the_keygen_threads() -> None:
    """One thread, busy with a flood's key; the flood queues five more, then `shop` one:
    shop's comes after one more of the flood's, not after all five."""
    executor = FairExecutor(1, name="test-keygen")
    started, busy, order = threading.Event(), threading.Event(), []

    def job(name: str) -> str:
        started.set()
        busy.wait(10)
        order.append(name)
        return name

    first = executor.submit("flood", job, "flood-0")
    assert started.wait(10)
    queued = [executor.submit("flood", job, f"flood-{n}") for n in range(1, 6)]
    shop = executor.submit("shop", job, "shop-0")
    cancelled = executor.submit("flood", job, "flood-cancelled")
    assert cancelled.cancel()
    busy.set()
    assert shop.result(10) == "shop-0"
    assert [future.result(10) for future in [first, *queued]] == [f"flood-{n}" for n in range(6)]
    assert order[:3] == ["flood-0", "flood-1", "shop-0"], "then turns: flood, shop, flood"
    assert "flood-cancelled" not in order
    executor.shutdown()


def test_a_failed_job_fails_its_future_and_the_threads_go_on() -> None:
    executor = FairExecutor(1, name="test-keygen")
    failed = executor.submit("dev", generate_signing_key, "HS256")
    assert isinstance(failed.exception(10), Exception)
    assert executor.submit("dev", generate_signing_key, "ES256").result(10).alg == "ES256"
    executor.shutdown()
    with pytest.raises(RuntimeError):
        executor.submit("dev", generate_signing_key, "ES256")
