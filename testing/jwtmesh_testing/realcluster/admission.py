"""Labeled Pods created in a loop while something else happens (an upgrade, a failover):
each must be admitted with the sidecars injected.

The Pods are created with a server-side dry run: the API server runs the whole admission
chain, the injection webhook included (it declares `sideEffects: None`), and stores
nothing, so hundreds of them cost no containers on a 2-core node.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from jwtmesh_testing.realcluster.clusterapi import ClusterApi


@dataclass
class AdmissionTally:
    admitted: int = 0
    refused: list[str] = field(default_factory=list)  # "HH:MM:SS message", first ones kept
    refusals: int = 0

    @property
    def attempts(self) -> int:
        return self.admitted + self.refusals

    def __str__(self) -> str:
        return f"{self.attempts} labeled Pods created, {self.refusals} refused"


def labeled_pod(identity: str, service_account: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "generateName": "admission-probe-",
            "labels": {"jwtmesh.io/identity": identity},
        },
        "spec": {
            "serviceAccountName": service_account,
            "containers": [
                {
                    "name": "app",
                    "image": image,
                    "command": ["demo-http", "idle"],
                    "ports": [{"containerPort": 8080}],
                }
            ],
        },
    }


class AdmissionLoop:
    """Creates a labeled Pod every `interval` seconds in a thread, from start to stop."""

    def __init__(
        self, api: ClusterApi, namespace: str, pod: dict[str, Any], interval: float = 0.2
    ) -> None:
        self.api, self.namespace, self.pod, self.interval = api, namespace, pod, interval
        self.tally = AdmissionTally()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="admission-loop", daemon=True)

    def __enter__(self) -> AdmissionLoop:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            refusal = self._create_one()
            if refusal is None:
                self.tally.admitted += 1
            else:
                self.tally.refusals += 1
                if len(self.tally.refused) < 10:
                    self.tally.refused.append(f"{time.strftime('%H:%M:%S')} {refusal}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))

    def _create_one(self) -> str | None:
        """None when admitted with the sidecars, else why not."""
        try:
            pod: Any = self.pod  # the client takes a plain dict too
            created: Any = self.api.core.create_namespaced_pod(
                self.namespace, pod, dry_run="All", _request_timeout=30
            )
        except ApiException as exc:
            return str(exc.body or exc.reason)[:300]
        except OSError as exc:
            return f"no answer from the API server: {exc}"
        containers = [c.name for c in created.spec.containers]
        if "jwtmesh-sidecar" not in containers:
            return f"admitted without the sidecars: {containers}"
        return None
