"""Wiring: build the stores, the decision service and the servers from a SidecarConfig."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from prometheus_client import start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from jwtmesh.addresses import split_host_port
from jwtmesh.identity import IdentityKeys, parse_identity
from jwtmesh.policy import ALLOW_ALL, Policy, parse_policy
from jwtmesh_sidecar.config import SidecarConfig
from jwtmesh_sidecar.decide import Egress, Inbound
from jwtmesh_sidecar.errors import SidecarError
from jwtmesh_sidecar.grpc_adapter import CHECK_METHOD, HEALTH_METHOD, check_method, health_method
from jwtmesh_sidecar.grpc_server import (
    GrpcServer,
    PublicServer,
    UnaryServer,
    choose_server,
    missing_from_core,
)
from jwtmesh_sidecar.http_adapter import start_http_server as start_authz_http_server
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.outbound import OutboundMinter
from jwtmesh_sidecar.service import DecisionService
from jwtmesh_sidecar.token_endpoint import TokenServer
from jwtmesh_sidecar.trust_store import TrustStore
from jwtmesh_sidecar.watch import Poller, WatchedFile

log = logging.getLogger("jwtmesh.sidecar")


class StartupError(SidecarError, RuntimeError):
    """The sidecar cannot start (no trust bundle, bad policy, port in use...)."""


class _CacheCollector:
    """Exports the verified-token cache counters kept by the current Verifier."""

    def __init__(self, store: TrustStore) -> None:
        self._store = store

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "jwtmesh_token_cache", "Verified-token cache lookups", labels=["result"]
        )
        for result, count in self._store.cache_totals().items():
            family.add_metric([result], count)
        yield family
        yield GaugeMetricFamily(
            "jwtmesh_token_cache_bytes", "Bytes the cache holds", self._store.cache_bytes()
        )


@dataclass
class Sidecar:
    config: SidecarConfig
    metrics: SidecarMetrics = field(default_factory=SidecarMetrics)
    trust: TrustStore | None = None
    policy: WatchedFile[Policy] | None = None
    identity: WatchedFile[IdentityKeys] | None = None
    service: DecisionService | None = None
    _grpc: GrpcServer | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _loop_thread: threading.Thread | None = None
    _poller: Poller | None = None
    _token_server: TokenServer | None = None
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._load()
        self._serve()
        log.info("jwtmesh sidecar started for identity %s", self.config.identity)

    def _load(self) -> None:
        config, metrics = self.config, self.metrics
        inbound = egress = None
        if config.identity is not None:
            self.trust = TrustStore(
                list(config.bundle_files),
                list(config.jwks_urls),
                config.verifier_settings(),
                on_outcome=metrics.record_load,
            )
            try:
                self.trust.load_initial()
            except ValueError as exc:
                raise StartupError(str(exc)) from exc
            trust = self.trust
            metrics.track_bundle_age(lambda: trust.changed_at)
            metrics.registry.register(_CacheCollector(trust))
            if config.policy_file is not None:
                self.policy = WatchedFile(config.policy_file, parse_policy, metrics.record_load)
                self.policy.poll(force=True)
                if self.policy.value is None:
                    raise StartupError(
                        f"unusable policy {config.policy_file}: {self.policy.last_error}"
                    )
            policy_file = self.policy
            inbound = Inbound(
                get_verifier=lambda: trust.verifier,
                get_policy=lambda: (
                    policy_file.value if policy_file and policy_file.value else ALLOW_ALL
                ),
                token=config.token,
                max_body_bytes=config.max_body_bytes,
            )
        minter = None
        if config.identity_keys is not None:
            self.identity = WatchedFile(config.identity_keys, parse_identity, metrics.record_load)
            self.identity.poll(force=True)
            identity_file = self.identity
            minter = OutboundMinter(lambda: identity_file.value, config.egress_token_lifetime)
            if config.egress_audiences:
                egress = Egress(config.egress_audiences, minter.token_for)
        self.service = DecisionService(
            inbound,
            egress,
            metrics,
            on_unknown_key=self.trust.unknown_key_seen if self.trust else lambda: None,
        )
        self._minter = minter

    def _poll_all(self) -> None:
        if self.trust is not None:
            self.trust.poll()
        for watched in (self.policy, self.identity):
            if watched is not None:
                watched.poll()

    def _serve(self) -> None:
        config, listen = self.config, self.config.listen
        assert self.service is not None
        self._poller = Poller(self._poll_all, config.poll_interval, "jwtmesh-poller")
        if self.trust is not None:
            self.trust.attach_poller(self._poller.wake)
        self._poller.start()
        if listen.grpc or listen.unix_socket:
            choice = choose_server(config.grpc_server, grpc.__version__, missing_from_core())
            log.info("%s", choice.log_line)
            server: GrpcServer = (UnaryServer if choice.core else PublicServer)(
                {
                    CHECK_METHOD: check_method(self.service),
                    HEALTH_METHOD: health_method(
                        frozenset({"envoy.service.auth.v3.Authorization"})
                    ),
                },
                threads=config.grpc_threads,
                options=(
                    ("grpc.so_reuseport", 0),
                    # channelz bookkeeping costs ~5% per Check and nobody reads it here.
                    ("grpc.enable_channelz", 0),
                    # Write each answer at once instead of batching writes for throughput:
                    # Envoy holds the request until it arrives (~150 µs CPU per Check at
                    # 1,000 req/s instead of ~175; docs/performance.md).
                    ("grpc.optimization_target", "latency"),
                ),
            )
            if listen.grpc:
                host, port = split_host_port(listen.grpc)
                if server.add_port(f"{host}:{port}") == 0:
                    raise StartupError(f"cannot listen on {listen.grpc}")
            if listen.unix_socket:
                Path(listen.unix_socket).unlink(missing_ok=True)
                if server.add_port(f"unix:{listen.unix_socket}") == 0:
                    raise StartupError(f"cannot listen on unix:{listen.unix_socket}")
            server.start()
            self._grpc = server
        if listen.http:
            host, port = split_host_port(listen.http)
            self._loop = asyncio.new_event_loop()
            ready = threading.Event()
            errors: list[BaseException] = []

            def run_loop() -> None:
                assert self._loop is not None
                assert self.service is not None
                asyncio.set_event_loop(self._loop)
                try:
                    self._loop.run_until_complete(start_authz_http_server(self.service, host, port))
                except OSError as exc:
                    errors.append(exc)
                    ready.set()
                    return
                ready.set()
                self._loop.run_forever()

            self._loop_thread = threading.Thread(target=run_loop, name="jwtmesh-http", daemon=True)
            self._loop_thread.start()
            ready.wait(10)
            if errors:
                raise StartupError(f"cannot listen on {listen.http}: {errors[0]}")
        if listen.metrics:
            host, port = split_host_port(listen.metrics)
            start_http_server(port, addr=host, registry=self.metrics.registry)
        if listen.token:
            if self._minter is None:
                raise StartupError("listen.token needs identityKeys")
            host, port = split_host_port(listen.token)
            self._token_server = TokenServer((host, port), self._minter)
            self._token_server.start()

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=1)
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._token_server is not None:
            self._token_server.shutdown()
        if self._poller is not None:
            self._poller.stop()
        if self.trust is not None:
            self.trust.close()
        self._stopped.set()

    def run_until_signalled(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopped.set())
        self._stopped.wait()
        self.stop()


def run(config: SidecarConfig) -> None:
    logging.basicConfig(
        level=os.environ.get("JWTMESH_LOG_LEVEL", "INFO"),
        format='{"ts":"%(asctime)s","level":"%(levelname)s","logger":"%(name)s","msg":"%(message)s"}',
    )
    sidecar = Sidecar(config)
    sidecar.start()
    sidecar.run_until_signalled()
