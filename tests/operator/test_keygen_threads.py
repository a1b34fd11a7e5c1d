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
