"""Herald's key rotated three times (forced, `jwtmesh.io/rotate`) while wrk sends Herald's
tokens to Census's Service, with the kubelet's default sync of mounted ConfigMaps and
Secrets; during the third rotation the acting operator replica is deleted. Labeled Pods
are created throughout. During the first rotation one token's `jti` is revoked (`make
demo`'s revoked-token check, timed while the rotations publish).

Herald's `prePublish` is the example's (2 minutes): each new key is published that long
before Herald's sidecar signs with it. Measured per rotation and per sidecar: the time
from "bundle ConfigMap written" to "the new key in force in the sidecar", which is what
`prePublish` must exceed (docs/real-cluster.md has the figures).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Generic, TypeVar

import pytest

from jwtmesh.identity import IdentityKeys, active_key
from jwtmesh_testing.realcluster.admission import AdmissionLoop, AdmissionTally, labeled_pod
from jwtmesh_testing.realcluster.clusterapi import ClusterApi, send, sign, token_part
from jwtmesh_testing.realcluster.daemons import say
from jwtmesh_testing.realcluster.failover import FailoverRecord, fail_over
from jwtmesh_testing.realcluster.load import TokenFeed, Wrk, WrkResult
from jwtmesh_testing.realcluster.revocation import revoke_and_await_publish
from jwtmesh_testing.realcluster.rotation import RotationRecord, Rotations, Verifier, poll
from jwtmesh_testing.realcluster.workloads import (
    DEMO_NAMESPACE,
    RELEASE_NAMESPACE,
    Kube,
    LocalImages,
)

pytestmark = pytest.mark.cluster
ROTATIONS = 3
T = TypeVar("T")


@dataclass
class RevocationRecord:
    before: str  # Census's answer to the token before its revocation
    delay: float  # the revocation in the bundle ConfigMap → refused by Census's sidecar
    after: str  # Census's answer afterwards


@dataclass
class Scenario:
    rotations: list[RotationRecord]
    revocation: RevocationRecord
    load: WrkResult
    failover: FailoverRecord
    admission: AdmissionTally
    first_kid: str
    first_probe: str  # a token of the key that signed before the first rotation
    status_after: float  # the last key's activation → the identity's status says so


def verifiers(api: ClusterApi) -> list[Verifier]:
    census = api.service_address(DEMO_NAMESPACE, "census")
    herald = api.pods(DEMO_NAMESPACE, "app=herald")[0].status.pod_ip
    return [
        Verifier("census", *census, audience="census.demo"),  # through its Service
        Verifier("herald", herald, 15006, audience="herald.demo"),  # its own inbound
    ]


class Background(Generic[T]):
    """`work()` in a thread; `result()` returns its value or raises its exception."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._outcome: list[T | BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(work,), daemon=True)

    def _run(self, work: Callable[[], T]) -> None:
        try:
            self._outcome.append(work())
        except BaseException as exc:  # handed to result()
            self._outcome.append(exc)

    def start(self) -> None:
        self._thread.start()

    def result(self, timeout: float) -> T:
        self._thread.join(timeout)
        assert self._outcome, f"not finished after {timeout:.0f} s"
        outcome = self._outcome[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def revoke_a_token(
    api: ClusterApi, herald: IdentityKeys, census: tuple[str, int]
) -> RevocationRecord:
    """A TokenRevocation of one token's jti: in the bundle ConfigMap within seconds, in force
    in Census's sidecar once the kubelet has updated the mounted bundle (its sync period)."""
    token = sign(herald, "census.demo", lifetime=600)
    before = send(*census, "/users/7", token=token)
    jti = token_part(token, 1)["jti"]
    published = revoke_and_await_publish(
        api,
        DEMO_NAMESPACE,
        "stolen-token",
        "herald",
        herald.issuer,
        jti,
        "the revocation in the bundle",
    )
    poll(
        "the revocation in force in Census's sidecar",
        lambda: send(*census, "/users/7", token=token).status == 401,
        150,
        interval=0.25,
    )
    delay = time.time() - published
    say(f"revocation: bundle ConfigMap → in force in Census's sidecar after {delay:.1f} s")
    return RevocationRecord(str(before), delay, str(send(*census, "/users/7", token=token)))


def run_scenario(kube: Kube, api: ClusterApi, images: LocalImages, workdir: Path) -> Scenario:
    herald = api.identity_keys(DEMO_NAMESPACE, "herald")
    first = active_key(herald, time.time())
    assert first is not None
    first_probe = sign(herald, "census.demo", lifetime=840)
    pod = api.pods(DEMO_NAMESPACE, "app=herald")[0].metadata.name
    address, port = api.service_address(DEMO_NAMESPACE, "census")
    token_file = workdir / "token"
    revocation = Background(lambda: revoke_a_token(api, herald, (address, port)))
    failover = Background(
        lambda: fail_over(api, RELEASE_NAMESPACE, DEMO_NAMESPACE, "herald", herald.issuer)
    )
    admission = AdmissionLoop(api, DEMO_NAMESPACE, labeled_pod("herald", "herald", images.demo))
    feed = TokenFeed(kube.kubectl_argv(), DEMO_NAMESPACE, pod, "census.demo", token_file)
    wrk = Wrk(f"http://{address}:{port}/users/7", "census.demo.svc:8080", token_file)
    with feed, admission, wrk:
        rotations = Rotations(
            api, DEMO_NAMESPACE, "herald", verifiers(api), lambda: dict(feed.kid_first_seen)
        )
        revocation.start()  # its wait for the kubelet overlaps the first rotation's
        records = [rotations.rotate() for _ in range(ROTATIONS - 1)]
        revoked = revocation.result(timeout=60)
        # The last one with a failover as soon as its key is published (pending).
        records.append(rotations.rotate(on_published=failover.start))
        failed_over = failover.result(timeout=180)
        status_after = wait_for_status(api, records[-1])
        time.sleep(5)
        load = wrk.stop()
    say(f"under load: {load}; {admission.tally}; token feed errors: {feed.errors}")
    return Scenario(
        records, revoked, load, failed_over, admission.tally, first.kid, first_probe, status_after
    )


def wait_for_status(api: ClusterApi, last: RotationRecord) -> float:
    """The acting replica (the one that took over) reports the last key active."""
    poll(
        "the last key active in the identity's status",
        lambda: (
            api.identity(DEMO_NAMESPACE, "herald").get("status", {}).get("activeKid") == last.kid
        ),
        max(0.0, last.activates_at - time.time()) + 60,
        interval=0.5,
    )
    return time.time() - last.activates_at


@pytest.fixture(scope="module")
def scenario(
    herald_census: Kube,
    api: ClusterApi,
    images: LocalImages,
    tmp_path_factory: pytest.TempPathFactory,
) -> Scenario:
    result = run_scenario(herald_census, api, images, tmp_path_factory.mktemp("load"))
    figures = herald_census.layout.logs / "e2e-rotation-figures.json"
    figures.write_text(json.dumps(asdict(result), indent=1, default=str))
    say(f"figures written to {figures}")
    return result


def test_no_request_fails_while_keys_rotate(scenario: Scenario) -> None:
    assert len(scenario.rotations) == ROTATIONS
    assert scenario.load.requests > 10_000
    assert scenario.load.failed == 0, scenario.load.first_failures


def test_each_new_key_is_in_force_in_every_sidecar_before_it_signs(scenario: Scenario) -> None:
    for record in scenario.rotations:
        assert set(record.in_force_at) == {"census", "herald"}
        assert min(record.margins().values()) > 0, record.summary()
        assert record.signing_at is not None
        assert record.signing_at >= record.activates_at - 1
    delays = [d for r in scenario.rotations for d in r.delays().values()]
    say(f"bundle ConfigMap written → key in force: {', '.join(f'{d:.1f}' for d in delays)} s")


def test_a_revoked_token_is_refused_with_its_reason(scenario: Scenario) -> None:
    revocation = scenario.revocation
    assert (revocation.before, revocation.after) == ("200", "401 token_revoked")


def test_the_standby_operator_takes_over(scenario: Scenario) -> None:
    failover = scenario.failover
    assert failover.successor != failover.deleted
    assert failover.left_after < 20  # preStop 5 s, then it gives the Lease up as it stops
    assert failover.revocation_after < 15
    assert scenario.status_after < 30


def test_no_key_that_signed_is_lost(scenario: Scenario, api: ClusterApi) -> None:
    """Every key that signed stays published (its retain is 2 hours) and still verifies,
    the one that signed before the test included."""
    herald = api.identity_keys(DEMO_NAMESPACE, "herald")
    kids = {scenario.first_kid, *(r.kid for r in scenario.rotations)}
    assert kids <= api.bundle_kids(DEMO_NAMESPACE, herald.issuer)
    address, port = api.service_address(DEMO_NAMESPACE, "census")
    probes = [scenario.first_probe, *(r.probes["census"] for r in scenario.rotations)]
    answers = [str(send(address, port, "/users/7", token=probe)) for probe in probes]
    assert answers == ["200"] * len(probes)


def test_labeled_pods_are_admitted_throughout(scenario: Scenario) -> None:
    assert scenario.admission.refusals == 0, scenario.admission.refused
    assert scenario.admission.attempts > 300
