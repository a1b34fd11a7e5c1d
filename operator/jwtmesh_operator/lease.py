"""The shell around `leadership`: keep trying to hold the Lease, and say whether we act.

Runs in every replica. `acting` is set while this replica holds the Lease (renewed within
2/3 of its duration), and cleared the moment a renewal fails or another replica holds it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jwtmesh_operator.leadership import (
    DEFAULT_DURATION,
    RENEW_EVERY,
    LeaseRecord,
    Observation,
    claim,
    observe,
    still_leading,
)

log = logging.getLogger("jwtmesh.operator.lease")


def _record(lease: Any) -> LeaseRecord | None:
    if lease is None:
        return None
    spec = lease.spec
    renew = spec.renew_time
    return LeaseRecord(
        holder=spec.holder_identity,
        renew_time=renew.isoformat() if isinstance(renew, datetime) else renew,
        duration=float(spec.lease_duration_seconds or DEFAULT_DURATION),
        transitions=int(spec.lease_transitions or 0),
    )


class LeaseKeeper:
    def __init__(
        self,
        api: client.ApiClient,
        namespace: str,
        name: str,
        me: str,
        on_change: Callable[[bool], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
        owner: dict[str, Any] | None = None,
    ) -> None:
        self._leases: Any = client.CoordinationV1Api(api)
        self._namespace, self._name, self._me = namespace, name, me
        self._on_change = on_change
        self._clock = clock
        # Owned like the trust bundles, by the ServiceIdentity CRD: `helm uninstall` keeps
        # it (harmless: no holder renews it), removing the CRDs removes it.
        self._owner = owner
        self._seen: Observation | None = None
        self._renewed: float | None = None
        self.acting = asyncio.Event()

    async def run(self) -> None:
        """Forever: renew or try to take the Lease every RENEW_EVERY seconds."""
        while True:
            try:
                await self._round()
            except Exception:  # the loop must survive an API outage; acting ends meanwhile
                log.exception("lease round failed")
            self._set_acting(still_leading(self._renewed, self._clock(), DEFAULT_DURATION))
            await asyncio.sleep(RENEW_EVERY)

    async def _round(self) -> None:
        lease = await self._read()
        now = self._clock()
        self._seen = observe(self._seen, _record(lease), now)
        wanted = claim(self._seen, self._me, now, datetime.now(UTC).isoformat())
        if wanted is None:
            self._renewed = None
            return
        if await self._write(lease, wanted):
            self._renewed = self._clock()

    async def _read(self) -> Any:
        try:
            return await asyncio.to_thread(
                self._leases.read_namespaced_lease, self._name, self._namespace
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def _write(self, lease: Any, record: LeaseRecord) -> bool:
        """Create or replace with the resourceVersion read; False if someone else wrote."""
        body = client.V1Lease(
            metadata=client.V1ObjectMeta(
                name=self._name,
                namespace=self._namespace,
                resource_version=None if lease is None else lease.metadata.resource_version,
                owner_references=[client.V1OwnerReference(**self._owner)] if self._owner else None,
            ),
            spec=client.V1LeaseSpec(
                holder_identity=record.holder or None,
                lease_duration_seconds=int(record.duration),
                renew_time=datetime.now(UTC),
                lease_transitions=record.transitions,
            ),
        )
        try:
            if lease is None:
                await asyncio.to_thread(self._leases.create_namespaced_lease, self._namespace, body)
            else:
                await asyncio.to_thread(
                    self._leases.replace_namespaced_lease, self._name, self._namespace, body
                )
        except ApiException as exc:
            if exc.status in (404, 409):
                return False
            raise
        return True

    async def release(self) -> None:
        """On shutdown: give the Lease up, so another replica takes over within one renewal
        period instead of waiting out the lease (a rollout then pauses rotation ~5 s)."""
        if not self.acting.is_set():
            return
        self._set_acting(False)
        lease = await self._read()
        record = _record(lease)
        if record is not None and record.holder == self._me:
            released = LeaseRecord(None, record.renew_time, record.duration, record.transitions)
            await self._write(lease, released)

    def _set_acting(self, acting: bool) -> None:
        if acting == self.acting.is_set():
            return
        if acting:
            self.acting.set()
        else:
            self.acting.clear()
        log.info("%s the jwtmesh-operator Lease", "holding" if acting else "not holding")
        self._on_change(acting)
