"""The operator's process-wide state, put in kopf's memo at start-up."""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from jwtmesh.cluster import BUNDLE_CONFIGMAP, POLICY_SUFFIX
from jwtmesh.shards import SHARD_LIMIT
from jwtmesh_operator.collector import CollectorTime
from jwtmesh_operator.fair_executor import FairExecutor
from jwtmesh_operator.latest import LatestKnown
from jwtmesh_operator.listed import ListedOnce
from jwtmesh_operator.readiness import Readiness
from jwtmesh_operator.spec import DEFAULT_TRUST_DOMAIN
from jwtmesh_operator.tenancy import IdentityRecord, Resolver
from jwtmesh_operator.write_budget import WRITE_RATE

T = TypeVar("T")

if TYPE_CHECKING:
    from jwtmesh_operator.events import EventRecorder
    from jwtmesh_operator.kube import Kube, Stored
    from jwtmesh_operator.publisher import BundlePublisher
    from jwtmesh_operator.scheduler import Scheduler
    from jwtmesh_operator.sources import SecretRecord


LOG_LEVELS = ("debug", "info", "warning", "error")
# Threads of their own for key generation (an RSA-4096 key takes ~1 s): in the API calls'
# pool, a tenant's fast-rotating RSA identities held up every API call, the Lease renewal
# and the webhook's reads. Two, so that creating many RSA identities still uses two cores;
# namespaces take turns for them (fair_executor.py).
KEYGEN_THREADS = 2


def keygen_executor() -> FairExecutor:
    return FairExecutor(KEYGEN_THREADS, name="keygen")


@dataclass(frozen=True)
class OperatorConfig:
    trust_domain: str = DEFAULT_TRUST_DOMAIN
    bundle_name: str = BUNDLE_CONFIGMAP
    bundle_label: str = "jwtmesh.io/trust-bundle"  # namespaces carrying it get the bundle too
    bundle_shard_bytes: int = SHARD_LIMIT  # the largest shard (smaller only to test sharding)
    # Bytes a second the bundle publishes write on average (publisher.py: the etcd budget).
    bundle_write_rate: int = WRITE_RATE
    # The shortest rotation.period accepted (--min-rotation-period): a rotation rewrites the
    # bundle everywhere, and the write budget above is shared by every namespace.
    min_rotation_period: float = 600.0
    policy_suffix: str = POLICY_SUFFIX
    http_address: str = "0.0.0.0"  # noqa: S104 - JWKS/discovery/metrics serve the cluster
    http_port: int = 8080
    public_url: str = ""  # where verifiers outside reach the JWKS; "": https://<trust domain>
    kubeconfig: str | None = None
    # Sidecar injection (a mutating admission webhook served by kopf).
    envoy_image: str = "envoyproxy/envoy:v1.36.3"  # = the chart's envoyImage
    sidecar_image: str = "ghcr.io/jwtmesh/jwtmesh:0.1.0"
    webhook_address: str | None = None  # HOST:PORT to serve admission on; None: no injection
    webhook_cert_dir: str | None = None  # tls.crt/tls.key (chart-managed); None: self-signed
    webhook_url_host: str | None = None  # with a self-signed cert: kopf registers the webhook
    webhook_managed: str | None = None  # MutatingWebhookConfiguration kopf keeps up to date
    log_level: str = "info"
    # Injected containers' resources (a Kubernetes ResourceRequirements); None: defaults.
    sidecar_resources: dict[str, Any] | None = None
    envoy_resources: dict[str, Any] | None = None
    # One NetworkPolicy per identity: its Pods admit ingress to Envoy's port only (netpol.py).
    network_policies: bool = True
    # Leader election: replicas compete for a Lease here; the holder acts (leadership.py).
    lease_namespace: str = "default"

    @property
    def public_base_url(self) -> str:
        """The origin the JWKS/discovery endpoints answer for (issuers under it only)."""
        return (self.public_url or f"https://{self.trust_domain}").rstrip("/")


class SourcesMemo:
    """The latest decision over the indexes (who holds which issuer, which revocations take
    effect): recomputed after any change to the objects it reads, or once it is `max_age`
    old (revocations expire with time). Without it every reconcile would redo the whole
    cluster's decision: O(identities) each, O(identities²) per rotation sweep.

    A caller that can use a decision up to `max_stale` seconds behind the last change (the
    scheduler's reconciles, which check that the decision has their identity as they read
    it) gets the memo as it is: while thousands of identities are created or rotated, each
    Secret and status write is an event, and recomputing on each (~80 ms at 10,000
    identities) made creating them quadratic. Everyone else gets a decision as of now."""

    def __init__(self, max_age: float = 1.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_age = max_age
        self._clock = clock
        self._value: Any = None
        self._computed_at = -float("inf")
        self._stale = False
        self.computes = 0

    def invalidate(self) -> None:
        self._stale = True

    @property
    def stale(self) -> bool:
        """Something changed since the decisions were computed."""
        return self._stale

    def get(self, compute: Callable[[], T], max_stale: float = 0.0) -> T:
        now = self._clock()
        age = now - self._computed_at
        if self._value is None or age > self._max_age or (self._stale and age >= max_stale):
            self._stale = False  # changes from here on are not in this computation
            self._value = compute()
            self._computed_at = now
            self.computes += 1
        value: T = self._value
        return value


@dataclass(frozen=True)
class IdentityHealth:
    """What /metrics says of one identity: its Ready condition and its next rotation."""

    ready: bool
    reason: str
    next_rotation: float | None = None


@dataclass
class Counters:
    reconciles: int = 0
    reconcile_errors: int = 0
    keys_generated: int = 0
    bundle_publishes: int = 0
    bundle_bytes: int = 0


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


@dataclass
class OperatorState:
    config: OperatorConfig
    kube: Kube
    publisher: BundlePublisher
    scheduler: Scheduler
    events: EventRecorder
    # The kopf indexes (jwtmesh_operator.indexes.INDEX_NAMES), filled before any handler runs.
    indexes: dict[str, Any] = field(default_factory=dict)
    # The identities and the signing-key Secrets' public keys, from the operator's own
    # watches (informer.py), listed whole before kopf starts (before any handler runs).
    identity_records: dict[tuple[str, str], IdentityRecord] = field(default_factory=dict)
    signing_secrets: dict[tuple[str, str], SecretRecord] = field(default_factory=dict)
    # Set while this replica holds the Lease (always, without leader election): only then
    # does it reconcile, publish and report status.
    acting: asyncio.Event = field(default_factory=asyncio.Event)
    counters: Counters = field(default_factory=Counters)
    keygen: FairExecutor = field(default_factory=keygen_executor)  # never the API calls' pool
    collector: CollectorTime = field(default_factory=CollectorTime)
    clock: Callable[[], float] = time.time
    sources_memo: SourcesMemo = field(default_factory=SourcesMemo)
    # resolve_all alone (identities and grants): what reconciles decide from; Secret
    # events (new keys) do not change it.
    names_memo: SourcesMemo = field(default_factory=lambda: SourcesMemo(max_age=60.0))
    resolver: Resolver = field(default_factory=Resolver)
    readiness: Readiness = field(default_factory=Readiness)
    identities: dict[tuple[str, str], IdentityHealth] = field(default_factory=dict)
    # Identities last reported refused for a name another holds (IssuerConflict,
    # AudienceConflict): woken when an identity is deleted, as one may now take its name.
    conflicted: set[tuple[str, str]] = field(default_factory=set)
    # The newest identities and signing-key Secrets this process knows (latest.py). The
    # watch event of our own Secret write asks for no reconcile; a change by anyone else
    # does. Identities are kept while due again soon (a rotation request's event brings
    # the identity anyway); Secrets while they exist, as a rotation would otherwise start
    # by reading its Secret (1 of its ~5.4 requests), for ~1.7 KB each with two ES256 keys
    # (~17 MB at 10,000; ~6.9 KB with RSA-3072), held during a rotation anyway.
    known_identities: LatestKnown = field(default_factory=LatestKnown)
    known_secrets: LatestKnown = field(default_factory=lambda: LatestKnown(keep_for=math.inf))
    # Secrets whose keys are being read now that their identity owns them (handlers.py).
    secret_reads: dict[tuple[str, str], asyncio.Task[None]] = field(default_factory=dict)
    # (namespace, name) → (uid, generation) whose policy ConfigMap and NetworkPolicy this
    # process wrote or found right (reconcile._write_policy).
    policies_written: dict[tuple[str, str], tuple[Any, Any]] = field(default_factory=dict)
    # What a LIST at the start found of those two (census.py), taken in place of a GET;
    # cleared while that LIST is under way.
    listed_policies: ListedOnce[Stored] = field(default_factory=ListedOnce)
    listed_network_policies: ListedOnce[Stored] = field(default_factory=ListedOnce)
    census_idle: asyncio.Event = field(default_factory=_set_event)
    # Every namespace seen → its rotate annotation as last seen (None: none;
    # handlers.namespace_changed): a new value wakes the namespace's identities.
    namespace_rotations: dict[str, str | None] = field(default_factory=dict)
    namespace_listing: asyncio.Lock = field(default_factory=asyncio.Lock)
    # This container's memory limit (headroom.py; None: none, or not under a cgroup).
    memory_limit: int | None = None

    def identities_known(self) -> int:
        """ServiceIdentities known (every one watched, reconciled or not)."""
        return len(self.identity_records)

    def report(self, key: tuple[str, str], health: IdentityHealth, conflict: bool) -> None:
        self.identities[key] = health
        if conflict:
            self.conflicted.add(key)
        else:
            self.conflicted.discard(key)

    def forget(self, key: tuple[str, str]) -> None:
        self.identities.pop(key, None)
        self.policies_written.pop(key, None)
        self.conflicted.discard(key)
        self.known_identities.deleted(key)
        self.publisher.publication.wait(key, {})  # no key of it awaits a publish any more
