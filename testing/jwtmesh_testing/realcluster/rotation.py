"""Forced rotations of a caller's key on the real cluster, each measured: when the new key
reached the API (Secret, then trust-bundle ConfigMap), when each sidecar had it in force
(mounted by the kubelet, re-read by the sidecar), when it activated, and when the caller's
sidecar signed with it.

"In force" is measured directly: a token signed with the new, still pending key (read
from the caller's Secret, as the admin) is sent to the verifier until it is accepted.
The time from "bundle ConfigMap written" to "in force" is what `prePublish` must exceed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from jwtmesh.identity import ScheduledKey
from jwtmesh_testing.realcluster.clusterapi import ClusterApi, send, sign
from jwtmesh_testing.realcluster.daemons import say

T = TypeVar("T")


@dataclass(frozen=True)
class Verifier:
    """A sidecar that verifies the caller's tokens, reached through `address:port`."""

    name: str
    address: str
    port: int
    audience: str

    def accepts(self, token: str) -> bool:
        # Not 401: the token passed (Census answers 200; Herald's Envoy 503, no app listens).
        return send(self.address, self.port, "/users/7", token=token).status not in (0, 401)


@dataclass
class RotationRecord:
    kid: str
    requested_at: float
    in_secret_at: float = 0.0
    in_bundle_at: float = 0.0
    activates_at: float = 0.0
    in_force_at: dict[str, float] = field(default_factory=dict)
    signing_at: float | None = None  # the caller's sidecar's first token with the key
    probes: dict[str, str] = field(default_factory=dict)  # verifier → a token of this key

    def delays(self) -> dict[str, float]:
        """Per verifier: bundle ConfigMap written → the key in force in that sidecar."""
        return {name: at - self.in_bundle_at for name, at in self.in_force_at.items()}

    def margins(self) -> dict[str, float]:
        """Per verifier: how long before the key signed it was in force (> 0 is safe)."""
        return {name: self.activates_at - at for name, at in self.in_force_at.items()}

    def summary(self) -> str:
        delays = ", ".join(f"{n} {d:.1f} s" for n, d in sorted(self.delays().items()))
        signing = f"{self.signing_at - self.activates_at:+.1f} s" if self.signing_at else "never"
        return (
            f"key {self.kid[:8]}…: Secret +{self.in_secret_at - self.requested_at:.1f} s, "
            f"bundle +{self.in_bundle_at - self.requested_at:.1f} s after the request; "
            f"bundle → in force: {delays}; activation at +"
            f"{self.activates_at - self.in_bundle_at:.0f} s; caller signs with it {signing}"
        )


def poll(what: str, check: Callable[[], T | None], timeout: float, interval: float = 0.1) -> T:
    """`check()` until it returns something true; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout:.0f} s")
        time.sleep(interval)


class Rotations:
    """Forced rotations of `caller` (namespace `namespace`) measured at `verifiers`."""

    def __init__(
        self,
        api: ClusterApi,
        namespace: str,
        caller: str,
        verifiers: list[Verifier],
        signed_kids: Callable[[], dict[str, float]],
    ) -> None:
        self.api, self.namespace, self.caller = api, namespace, caller
        self.verifiers, self.signed_kids = verifiers, signed_kids
        self.issuer = api.identity_keys(namespace, caller).issuer

    def _new_key(self, old: set[str]) -> ScheduledKey | None:
        keys = self.api.identity_keys(self.namespace, self.caller).keys
        return next((k for k in keys if k.key.kid not in old), None)

    def rotate(self, on_published: Callable[[], None] = lambda: None) -> RotationRecord:
        old = {k.key.kid for k in self.api.identity_keys(self.namespace, self.caller).keys}
        requested = time.time()
        self.api.request_rotation(self.namespace, self.caller)
        new = poll("the new key in the Secret", lambda: self._new_key(old), 30)
        record = RotationRecord(new.key.kid, requested, time.time(), activates_at=new.activates_at)
        poll(
            "the new key in the trust bundle ConfigMap",
            lambda: record.kid in self.api.bundle_kids(self.namespace, self.issuer),
            30,
        )
        record.in_bundle_at = time.time()
        on_published()
        identity = self.api.identity_keys(self.namespace, self.caller)
        record.probes = {
            v.name: sign(identity, v.audience, key=new.key, lifetime=840) for v in self.verifiers
        }
        self._wait_in_force(record)
        record.signing_at = poll(
            "the caller's sidecar signing with the new key",
            lambda: self.signed_kids().get(record.kid),
            max(0.0, record.activates_at - time.time()) + 150,
            interval=0.5,
        )
        say(f"rotation: {record.summary()}")
        return record

    def _wait_in_force(self, record: RotationRecord) -> None:
        """Until every verifier accepts the new key (bounded: prePublish plus a minute)."""
        deadline = record.activates_at + 60
        waiting = {v.name: v for v in self.verifiers}
        while waiting:
            for name, verifier in list(waiting.items()):
                if verifier.accepts(record.probes[name]):
                    record.in_force_at[name] = time.time()
                    del waiting[name]
            if time.time() > deadline:
                raise AssertionError(f"key {record.kid} never in force in {sorted(waiting)}")
            time.sleep(0.25)
