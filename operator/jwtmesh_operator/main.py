"""`jwtmesh-operator`: kopf with our handlers, peering, and the HTTP endpoint."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf
from aiohttp import web

from jwtmesh.logs import configure_logging
from jwtmesh_operator import handlers, indexes  # noqa: F401 - handlers registers with kopf
from jwtmesh_operator.http import make_app
from jwtmesh_operator.kube import Kube, load_kube_config
from jwtmesh_operator.memory import tune_malloc
from jwtmesh_operator.publisher import BundlePublisher
from jwtmesh_operator.readiness import watch_peers
from jwtmesh_operator.session import SessionPerCredentials
from jwtmesh_operator.sources import BundleSources
from jwtmesh_operator.state import OperatorConfig, OperatorState
from jwtmesh_operator.webhook_server import ListeningWebhookServer

log = logging.getLogger("jwtmesh.operator")
PEERING_NAME = "jwtmesh"
IDENTITY_CRD = "serviceidentities.jwtmesh.io"  # owns the trust bundles
_config = OperatorConfig()
_sessions = SessionPerCredentials()
_priority = 0
_peering = False
_namespaces: list[str] = []


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
    settings.posting.level = logging.INFO
    # kopf ignores changes to annotations under its own prefix; ours (jwtmesh.io/rotate)
    # must stay visible, so kopf keeps its bookkeeping under a sub-domain.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(
        prefix="operator.jwtmesh.io"
    )
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="operator.jwtmesh.io"
    )
    settings.watching.server_timeout = 300
    # kopf keeps a worker (and the object's last event) per object for this long after its
    # last event; with a thousand identities the default 5 s held ~17 MiB during a sweep.
    settings.queueing.idle_timeout = 0.5
    webhook = configure_admission(settings, _config) if _config.webhook_address else None
    kube = Kube(load_kube_config(_config.kubeconfig))
    # API calls run in threads (the `kubernetes` client is synchronous); as many as its
    # connection pool holds, since more threads would only open connections to drop them.
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=kube.pool_size))
    state = OperatorState(
        config=_config,
        kube=kube,
        publisher=BundlePublisher(kube, _config.bundle_name, time.time),
        # Twice the API threads keeps them busy; more reconciles at once would only wait for
        # a thread while holding their keys and bodies in memory.
        reconcile_slots=asyncio.Semaphore(2 * kube.pool_size),
    )
    if webhook is not None:
        state.readiness.webhook_listening = lambda: webhook.listening
    state.publisher.owner = await kube.crd_owner(IDENTITY_CRD)
    if state.publisher.owner is None:
        log.warning("cannot read CRD %s: trust bundles are written without an owner", IDENTITY_CRD)
    memo["state"] = state
    found = indexes.pick(kwargs)

    def sources() -> BundleSources | None:
        return state.sources_memo.get(lambda: indexes.sources(found, state))

    if _peering:
        memo["peers_task"] = asyncio.create_task(
            watch_peers(state.readiness, _priority, lambda: read_peers(kube, _namespaces))
        )
    runner = web.AppRunner(make_app(state, sources), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, _config.http_address, _config.http_port).start()
    memo["http_runner"] = runner
    log.info(
        "jwtmesh operator started (trust domain %s)",
        _config.trust_domain,
        extra={"event": "started"},
    )


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


def read_peers(kube: Kube, namespaces: list[str]) -> Any:
    """kopf's peers (the peering object's status): cluster-wide, or the first namespace's."""
    found: Any
    if namespaces:
        found = kube.custom.get_namespaced_custom_object(
            "kopf.dev", "v1", namespaces[0], "kopfpeerings", PEERING_NAME
        )
    else:
        found = kube.custom.get_cluster_custom_object(
            "kopf.dev", "v1", "clusterkopfpeerings", PEERING_NAME
        )
    return found.get("status") or {}


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    state: OperatorState = memo["state"]
    task = memo.get("peers_task")
    if task is not None:
        task.cancel()
    await state.publisher.stop()
    runner: web.AppRunner = memo["http_runner"]
    await runner.cleanup()


def run(config: OperatorConfig, namespaces: list[str], peering: bool) -> None:
    """Blocks until SIGTERM/SIGINT."""
    global _config, _priority, _peering, _namespaces
    _config = config
    # Replicas of one Deployment share a spec; distinct random priorities let exactly
    # one act (kopf pauses every operator that sees a peer with the same priority).
    _priority, _peering, _namespaces = random.randint(1, 1_000_000), peering, namespaces  # noqa: S311
    tune_malloc()  # before any thread starts
    if config.webhook_address:
        from jwtmesh_operator import admission  # noqa: F401 - registers the mutate handler
    configure_logging(config.log_level)
    kopf.run(
        # Given here, not in a startup handler: peering starts before those run.
        priority=_priority,
        clusterwide=not namespaces,
        namespaces=namespaces,
        peering_name=PEERING_NAME if peering else None,
        standalone=not peering,
    )
