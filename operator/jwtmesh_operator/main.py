"""`jwtmesh-operator`: kopf with our handlers, the scheduler, leader election, and the HTTP
endpoint.

Every replica runs kopf on its own (standalone), so each one's indexes follow the cluster
and any of them answers the injection webhook and the JWKS endpoints from current data.
With leader election, the replica holding the `jwtmesh-operator` Lease acts: its scheduler
reconciles, its publisher writes bundles; the others wait, ready to take over.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from aiohttp import web

from jwtmesh.logs import configure_logging
from jwtmesh_operator import handlers, indexes, toggles
from jwtmesh_operator.census import start_census
from jwtmesh_operator.collector import keep_long_lived_frozen
from jwtmesh_operator.diffbase import NoDiffBase
from jwtmesh_operator.events import EventRecorder
from jwtmesh_operator.handlers import reconcile_one
from jwtmesh_operator.headroom import container_memory_limit, restart_warning
from jwtmesh_operator.http import make_app
from jwtmesh_operator.informer import Informer
from jwtmesh_operator.keystore import SECRET_TYPE
from jwtmesh_operator.kube import LIST_PAGE, Kube, load_kube_config
from jwtmesh_operator.lease import LeaseKeeper
from jwtmesh_operator.memory import tune_malloc
from jwtmesh_operator.publisher import BundlePublisher
from jwtmesh_operator.scheduler import Scheduler
from jwtmesh_operator.session import SessionPerCredentials
from jwtmesh_operator.sources import BundleSources
from jwtmesh_operator.spec import API_GROUP, API_VERSION, IDENTITY_LABEL
from jwtmesh_operator.state import OperatorConfig, OperatorState
from jwtmesh_operator.webhook_server import ListeningWebhookServer

log = logging.getLogger("jwtmesh.operator")
LEASE_NAME = "jwtmesh-operator"
IDENTITY_CRD = "serviceidentities.jwtmesh.io"  # owns the trust bundles
_config = OperatorConfig()
_sessions = SessionPerCredentials()
_elect = False
_namespaces: list[str] = []  # watched (empty: every namespace)
_census_tasks: set[asyncio.Task[None]] = set()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    settings.posting.level = logging.INFO
    # kopf ignores changes to annotations under its own prefix; ours (jwtmesh.io/rotate)
    # must stay visible, so kopf keeps its bookkeeping under a sub-domain.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="operator.jwtmesh.io"
    )
    settings.persistence.diffbase_storage = NoDiffBase()  # no on.create/update handlers
    settings.watching.server_timeout = 300
    # kopf's initial LISTs in pages (by default one response holds every object: at 10,000
    # identities tens of MB of JSON read and parsed at once).
    settings.watching.chunk_size = LIST_PAGE
    # kopf keeps a worker (and the object's last event) per object for this long after its
    # last event; with a thousand identities the default 5 s held ~17 MiB during a sweep.
    settings.queueing.idle_timeout = 0.5
    webhook = configure_admission(settings, _config) if _config.webhook_address else None
    kube = Kube(load_kube_config(_config.kubeconfig))
    # API calls run in threads (the `kubernetes` client is synchronous); as many as its
    # connection pool holds, since more threads would only open connections to drop them.
    # Nothing else long runs in them: key generation has its own (OperatorState.keygen).
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=kube.pool_size))
    state = OperatorState(
        config=_config,
        kube=kube,
        publisher=BundlePublisher(
            kube,
            _config.bundle_name,
            time.time,
            shard_limit=_config.bundle_shard_bytes,
            write_rate=_config.bundle_write_rate,
        ),
        # Twice the API threads keeps them busy; more reconciles at once would only wait for
        # a thread while holding their keys and bodies in memory.
        scheduler=Scheduler(
            lambda key: reconcile_one(memo["state"], key), concurrency=2 * kube.pool_size
        ),
        # Reconciles run outside kopf's handlers, where kopf cannot post Events.
        events=EventRecorder(kube.create_event),
        indexes=indexes.pick(kwargs),
    )
    if webhook is not None:
        state.readiness.webhook_listening = lambda: webhook.listening
    owner = await kube.crd_owner(IDENTITY_CRD)
    state.publisher.set_owner(owner)
    state.publisher.wake = state.scheduler.now_all
    state.publisher.defer = state.scheduler.defer_all
    if owner is None:
        log.warning("cannot read CRD %s: trust bundles are written without an owner", IDENTITY_CRD)
    memo["state"] = state
    memo["tasks"], memo["lease"] = _start_acting(state, owner)
    state.collector.install()
    memo["tasks"].append(asyncio.get_running_loop().create_task(keep_long_lived_frozen()))
    state.memory_limit = container_memory_limit()
    memo["tasks"].append(asyncio.get_running_loop().create_task(warn_of_restart_memory(state)))

    def sources() -> BundleSources | None:
        return state.sources_memo.get(lambda: indexes.sources(state.indexes, state))

    runner = web.AppRunner(make_app(state, sources), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, _config.http_address, _config.http_port).start()
    memo["http_runner"] = runner
    # Last, once acting is decided (an object listed while acting is kept for its
    # identity's reconcile): kopf starts its watchers, and so its handlers, only after this.
    memo["informers"] = informers = _informers(state, Kube(load_kube_config(_config.kubeconfig)))
    listed = [await informer.list_all() for informer in informers]
    for informer in informers:
        informer.start()
    log.info(
        "jwtmesh operator started (trust domain %s, %d identities, %d signing-key Secrets)",
        _config.trust_domain,
        *listed,
        extra={"event": "started"},
    )


def _informers(state: OperatorState, kube: Kube) -> list[Informer]:
    """The identities and their Secrets, watched by the operator itself (informer.py):
    only signing-key Secrets, selected by the API server (no other Secret of the cluster
    reaches this process). `kube`: a client of their own, so that their long-lived watches
    hold none of the connections the reconciles take turns on (nor are counted with them)."""
    identities = kube.lister_of_custom(API_GROUP, API_VERSION, "serviceidentities")
    return [
        Informer(
            "ServiceIdentities",
            identities,
            _namespaces,
            functools.partial(handlers.identity_event, state),
        ),
        Informer(
            "signing-key Secrets",
            kube.list_secrets,
            _namespaces,
            functools.partial(handlers.secret_event, state),
            label_selector=IDENTITY_LABEL,  # the label present, whatever its value
            field_selector=f"type={SECRET_TYPE}",
        ),
    ]


def _start_acting(
    state: OperatorState, owner: dict[str, Any] | None
) -> tuple[list[asyncio.Task[None]], LeaseKeeper | None]:
    """The scheduler, and the Lease keeper that tells it (and the publisher) when to act."""
    loop = asyncio.get_running_loop()
    keeper = _lease_keeper(state, owner) if _elect else None
    if keeper is None:
        state.acting.set()  # alone: always acting
        _census_soon(state)
    else:
        state.acting = keeper.acting
        state.readiness.standby = True
    state.publisher.acting = state.acting
    tasks = [loop.create_task(state.scheduler.run(state.acting), name="scheduler")]
    if keeper is not None:
        tasks.append(loop.create_task(keeper.run(), name="lease"))
    return tasks, keeper


def _census_soon(state: OperatorState) -> None:
    task = start_census(state, _namespaces)
    _census_tasks.add(task)  # a task nobody holds may be collected before it ends
    task.add_done_callback(_census_tasks.discard)


def _lease_keeper(state: OperatorState, owner: dict[str, Any] | None) -> LeaseKeeper:
    def on_change(acting: bool) -> None:
        state.readiness.standby = not acting
        if acting:  # taking over: every identity is looked at, the bundle rewritten
            _census_soon(state)
            for key in state.sources_memo.get(
                lambda: indexes.sources(state.indexes, state)
            ).identities:
                state.scheduler.now(key)
            handlers.publish(state)

    me = f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
    return LeaseKeeper(
        state.kube.api, _config.lease_namespace, LEASE_NAME, me, on_change=on_change, owner=owner
    )


async def warn_of_restart_memory(state: OperatorState, every: float = 300.0) -> None:
    """Log when a restart over the identities known now would not fit the memory limit
    (headroom.py), and when it fits again; the metrics say it all the time."""
    warned = False
    while True:
        await asyncio.sleep(every)
        if not state.readiness.synced:
            continue
        message = restart_warning(state.identities_known(), state.memory_limit)
        if message is not None and not warned:
            log.warning(message, extra={"event": "restart_memory_at_risk"})
        elif message is None and warned:
            log.info("a restart fits the memory limit again", extra={"event": "restart_memory_ok"})
        warned = message is not None


def configure_admission(
    settings: kopf.OperatorSettings, config: OperatorConfig
) -> ListeningWebhookServer:
    """Serve the injection webhook. In a cluster the chart provides the certificate and the
    MutatingWebhookConfiguration; elsewhere kopf makes a self-signed certificate and
    registers the webhook itself (`webhook_managed`)."""
    assert config.webhook_address is not None
    host, _, port = config.webhook_address.rpartition(":")
    cert_dir = config.webhook_cert_dir
    server = ListeningWebhookServer(
        addr=host or "0.0.0.0",  # noqa: S104 - the API server must reach it
        port=int(port),
        host=config.webhook_url_host,
        certfile=f"{cert_dir}/tls.crt" if cert_dir else None,
        pkeyfile=f"{cert_dir}/tls.key" if cert_dir else None,
        # Like a cert-manager Secret: ca.crt, when present, is the bundle the API server trusts.
        cafile=f"{cert_dir}/ca.crt" if cert_dir and os.path.exists(f"{cert_dir}/ca.crt") else None,
    )
    settings.admission.server = server
    if config.webhook_managed:
        settings.admission.managed = config.webhook_managed
    return server


@kopf.on.login()
async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
    """kopf's usual credentials (in-cluster, else kubeconfig), on a connection-capped session
    (the same one for the same credentials: `SessionPerCredentials`). Async: aiohttp builds
    its session inside the running loop."""
    info = kopf.login_via_client(**kwargs)
    return _sessions.session_for(info) if info is not None else None


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    state: OperatorState = memo["state"]
    for task in memo.get("tasks", []):
        task.cancel()
    for informer in memo.get("informers", []):
        informer.stop()
    keeper: LeaseKeeper | None = memo.get("lease")
    if keeper is not None:
        try:
            await keeper.release()
        except Exception:  # shutting down: the Lease then simply expires
            log.warning("could not release the Lease", exc_info=True)
    await state.publisher.stop()
    await state.events.stop()
    state.keygen.shutdown(wait=False, cancel_futures=True)
    runner: web.AppRunner = memo["http_runner"]
    await runner.cleanup()


def run(config: OperatorConfig, namespaces: list[str], elect: bool) -> None:
    """Blocks until SIGTERM/SIGINT. `elect`: compete for the Lease (several replicas)."""
    global _config, _elect, _namespaces
    _config, _elect, _namespaces = config, elect, list(namespaces)
    tune_malloc()  # before any thread starts
    configure_logging(config.log_level)
    if config.log_level != "debug":
        # kopf says "Handler 'x' succeeded." at info for every watch event handled: tens of
        # thousands of lines (and ~3% of the CPU) in a sweep. Its warnings and errors stay.
        logging.getLogger("kopf.objects").setLevel(logging.WARNING)
    toggles.install()  # kopf's index wait, O(1) per change: restarts over thousands of objects
    if config.webhook_address:
        from jwtmesh_operator import admission  # noqa: F401 - registers the mutate handler
    # Standalone: kopf's own peering would pause every replica but one, and a paused
    # replica's indexes stop following the cluster. The Lease decides who acts instead.
    kopf.run(clusterwide=not namespaces, namespaces=namespaces, standalone=True)
