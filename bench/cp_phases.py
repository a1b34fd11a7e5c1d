"""The steps of the control-plane benchmark (bench/controlplane.py), each a function that
prints a progress line every few seconds and returns its figures."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cp_mount import BundleMount, SidecarProcess, check_all, secret_name, token_for
from cp_watch import GROUP, PLURAL, VERSION, Key, RawWatch, signing_kid
from kubernetes import client

from jwtmesh_testing.kubeapply import service_identity
from jwtmesh_testing.operator_metrics import api_requests

ROTATE = "jwtmesh.io/rotate"
PROGRESS_EVERY = 5.0


def say(message: str) -> None:
    print(f"[bench] {message}", flush=True)


@dataclass
class Bench:
    """What every step uses: the API, the watches, the Pod's mounted bundle and sidecar."""

    api: client.ApiClient
    identities: RawWatch  # (ns, name) → (ready, issuer, active kid, kids in status)
    secrets: RawWatch  # (ns, Secret name) → data
    mount: BundleMount
    sidecar: SidecarProcess
    keys: list[Key] = field(default_factory=list)

    def published(self, view: dict[Key, Any], key: Key) -> bool:
        """The identity is Ready and its active kid is in the Pod's mounted bundle."""
        ready, issuer, kid = view.get(key, (False, "", ""))[:3]
        return bool(ready and kid and kid in self.mount.kids.get(issuer, ()))


def wait_until(what: str, done: Callable[[], tuple[int, int]], timeout: float) -> float:
    """Seconds until done() says (n, n); a progress line every PROGRESS_EVERY s."""
    started = last = time.monotonic()
    while True:
        count, total = done()
        elapsed = time.monotonic() - started
        if count >= total:
            return elapsed
        if elapsed > timeout:
            raise TimeoutError(f"{what}: {count}/{total} after {timeout:.0f} s")
        if time.monotonic() - last >= PROGRESS_EVERY:
            say(f"  {what}: {count}/{total} after {elapsed:.0f} s")
            last = time.monotonic()
        time.sleep(0.5)


def create(bench: Bench, count: int, namespaces: int, spec: dict[str, Any]) -> dict[str, float]:
    """Apply `count` identities; seconds until all are Ready, and until every active key
    is in the bundle the sidecar mounts; then one token per identity checked by it."""
    custom = client.CustomObjectsApi(bench.api)
    bench.keys = [(f"scale-{i % namespaces}", f"svc-{i:05d}") for i in range(count)]
    started = time.monotonic()

    def apply(key: Key) -> None:
        body = service_identity(key[1], spec)
        custom.create_namespaced_custom_object(GROUP, VERSION, key[0], PLURAL, body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(apply, bench.keys))
    applied = time.monotonic() - started
    say(f"  {count} identities applied in {applied:.1f} s")

    def ready() -> tuple[int, int]:
        view = bench.identities.snapshot()
        return sum(1 for key in bench.keys if view.get(key, (False,))[0]), count

    def published() -> tuple[int, int]:
        view = bench.identities.snapshot()
        return sum(1 for key in bench.keys if bench.published(view, key)), count

    wait_until("Ready", ready, 1200)
    all_ready = time.monotonic() - started
    wait_until("active key in the mounted bundle", published, 1200)
    in_bundle = time.monotonic() - started
    say(f"  from the first apply: all Ready {all_ready:.1f} s, all keys in {in_bundle:.1f} s")
    checked, failures = verify_all(bench)
    return {
        "apply_seconds": round(applied, 1),
        "ready_seconds": round(all_ready, 1),
        "ready_and_published_seconds": round(max(all_ready, in_bundle), 1),
        "tokens_checked": checked,
        "token_failures": len(failures),
    }


def verify_all(bench: Bench) -> tuple[int, list[str]]:
    """One token per identity, minted from its Secret now, checked by the real sidecar."""
    wait_until("key Secrets seen", lambda: (len(bench.secrets.snapshot()), len(bench.keys)), 300)
    bench.sidecar.wait_ready()
    started = time.monotonic()
    checked, failures = check_all(bench.sidecar, bench.secrets.snapshot(), bench.keys)
    say(
        f"  sidecar checked {checked} tokens (one per identity) in "
        f"{time.monotonic() - started:.1f} s: {len(failures)} refused {failures[:3]}"
    )
    return checked, failures


class MintLoad(threading.Thread):
    """Tokens minted as the Pods would (the key their Secret says is active now), round
    robin over the identities, each checked by the sidecar at once; at most `rate` a second."""

    def __init__(self, bench: Bench, rate: float = 200.0) -> None:
        super().__init__(daemon=True)
        self._bench, self._rate = bench, rate
        self._stopping = False
        self.minted = 0
        self.with_new_key = 0  # signed by a key that was not signing when the load started
        self.failures: list[str] = []
        self._old = {key: view[2] for key, view in bench.identities.snapshot().items()}

    def stop(self) -> None:
        self._stopping = True
        self.join()

    def run(self) -> None:
        for key in itertools.cycle(self._bench.keys):
            if self._stopping:
                return
            started = time.monotonic()
            data = self._bench.secrets.items.get((key[0], secret_name(key[1])))
            if data is not None:
                token, kid = token_for(data, self._bench.sidecar.audience, time.time())
                status = self._bench.sidecar.check(token)
                self.minted += 1
                self.with_new_key += kid != self._old.get(key)
                if status != 200:
                    self.failures.append(f"{key[0]}/{key[1]} kid {kid}: HTTP {status}")
            time.sleep(max(0.0, 1 / self._rate - (time.monotonic() - started)))


def annotate(api: client.ApiClient, keys: list[Key], value: str) -> None:
    custom = client.CustomObjectsApi(api)
    patch = {"metadata": {"annotations": {ROTATE: value}}}

    def one(key: Key) -> None:
        # The reply read as bytes, not decoded into the client's models: CPU this process
        # would take from the operator's two cores (as the operator's own reads do).
        reply = custom.patch_namespaced_custom_object(
            GROUP, VERSION, key[0], PLURAL, key[1], patch, _preload_content=False
        )
        reply.data  # noqa: B018 - read to the end, so the connection is reused

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, keys))


def annotate_namespaces(api: client.ApiClient, namespaces: list[str], value: str) -> None:
    core = client.CoreV1Api(api)
    for namespace in namespaces:
        core.patch_namespace(namespace, {"metadata": {"annotations": {ROTATE: value}}})


def rotated_count(bench: Bench, before: dict[Key, Any], keys: list[Key]) -> Callable[[], Any]:
    """How many of `keys` sign with a new key (by their schedule: what their Pods sign
    with) that the mounted bundle has."""

    def count() -> tuple[int, int]:
        view, now = bench.identities.snapshot(), time.time()
        done = 0
        for key in keys:
            kid = signing_kid(view[key], now) if key in view else ""
            issuer = view[key][1] if key in view else ""
            done += bool(kid and kid != before[key][2] and kid in bench.mount.kids.get(issuer, ()))
        return done, len(keys)

    return count


def sweep(bench: Bench, metrics: Callable[[], dict[str, float]], by: str) -> dict[str, Any]:
    """Rotate every identity at once (the rotate annotation on each Namespace, or with
    `by="identity"` on each identity) while tokens are minted and checked: seconds until
    all sign with a new key the sidecar has, refused tokens, and the operator's API
    requests per rotation."""
    before = bench.identities.snapshot()
    counters_before = metrics()
    load = MintLoad(bench)
    load.start()
    started = time.monotonic()
    value = f"sweep-{time.time():.0f}"
    if by == "identity":
        annotate(bench.api, bench.keys, value)
    else:
        annotate_namespaces(bench.api, sorted({namespace for namespace, _ in bench.keys}), value)
    requested = time.monotonic() - started
    say(f"  {len(bench.keys)} rotations requested (per {by}) in {requested:.1f} s")
    wait_until("signing with a new published key", rotated_count(bench, before, bench.keys), 1800)
    elapsed = time.monotonic() - started

    def settled() -> tuple[int, int]:
        """Every status names its new key (the second reconcile of each rotation)."""
        view = bench.identities.snapshot()
        return sum(1 for key in bench.keys if view[key][2] != before[key][2]), len(bench.keys)

    wait_until("status says the new key signs", settled, 1800)
    status_done = time.monotonic() - started
    time.sleep(5)  # tokens signed by the new keys for a few seconds more
    load.stop()
    counters_after = metrics()
    requests = api_requests_between(counters_after, counters_before)
    rotations = len(bench.keys)
    say(
        f"  sweep {elapsed:.1f} s; {load.minted} tokens checked during it "
        f"({load.with_new_key} by new keys), {len(load.failures)} refused {load.failures[:3]}"
    )
    return {
        "sweep_asked_per": by,
        "sweep_request_seconds": round(requested, 1),
        "sweep_seconds": round(elapsed, 1),
        "sweep_status_seconds": round(status_done, 1),
        "tokens_during_sweep": load.minted,
        "tokens_by_new_keys": load.with_new_key,
        "token_failures_during_sweep": len(load.failures),
        "api_requests_per_rotation": round(sum(requests.values()) / rotations, 2),
        "api_requests_by_kind_per_rotation": {
            kind: round(count / rotations, 2) for kind, count in requests.most_common()
        },
        "bundle_publishes_during_sweep": counters_after["jwtmesh_operator_bundle_publishes_total"]
        - counters_before["jwtmesh_operator_bundle_publishes_total"],
        "reconciles_per_rotation": round(
            (
                counters_after["jwtmesh_operator_reconciles_total"]
                - counters_before["jwtmesh_operator_reconciles_total"]
            )
            / rotations,
            2,
        ),
    }


def api_requests_between(after: dict[str, float], before: dict[str, float]) -> Counter[str]:
    """The operator's API requests between two /metrics reads, by verb and resource."""
    return +(api_requests(after) - api_requests(before))
