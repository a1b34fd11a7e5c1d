"""Wiring: build the stores, the decision service and the servers from a SidecarConfig."""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from jwtmesh.boundary import EXIT_USAGE
from jwtmesh.identity import IdentityKeys, active_key, parse_identity
from jwtmesh.logs import configure_logging
from jwtmesh.policy import ALLOW_ALL, Policy, parse_policy
from jwtmesh_sidecar.answer_memo import MAX_ENTRIES as MEMO_ENTRIES
from jwtmesh_sidecar.answer_memo import AnswerMemo
from jwtmesh_sidecar.config import SidecarConfig
from jwtmesh_sidecar.decide import Egress, Inbound
from jwtmesh_sidecar.errors import StartupError
from jwtmesh_sidecar.grpc_server import GrpcServer
from jwtmesh_sidecar.health import POLLER_STALE_AFTER, OpsServer
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.outbound import OutboundMinter
from jwtmesh_sidecar.servers import (
    AuthzHttp,
    check_can_listen,
    start_grpc,
    start_ops,
    start_token,
)
from jwtmesh_sidecar.service import DecisionLog, DecisionService
from jwtmesh_sidecar.token_endpoint import TokenServer
from jwtmesh_sidecar.trust_store import TrustStore
from jwtmesh_sidecar.watch import Poller, WatchedFile

log = logging.getLogger("jwtmesh.sidecar")
__all__ = ["Sidecar", "StartupError", "run"]


class _CacheCollector:
    """Exports the verified-token cache counters kept by the current Verifier."""

    def __init__(self, store: TrustStore) -> None:
        self._store = store

    def collect(self) -> Any:
        family = CounterMetricFamily(
            "jwtmesh_token_cache", "Verified-token cache lookups by result", labels=["result"]
        )
        for result, count in self._store.cache_totals().items():
            family.add_metric([result], count)
        yield family
        yield GaugeMetricFamily(
            "jwtmesh_token_cache_bytes",
            "Bytes the verified-token cache holds",
            self._store.cache_bytes(),
        )


class _MemoCollector:
    """Exports how many Checks the answer memos answered (answer_memo.py): one memo per
    transport, each used by its own event loop's thread."""

    def __init__(self, *memos: AnswerMemo) -> None:
        self._memos = memos

    def collect(self) -> Any:
        yield CounterMetricFamily(
            "jwtmesh_answer_memo_hits",
            "Checks answered from the answer memo (the same request allowed before, same "
            "bundle and policy, token not expired); also in jwtmesh_decisions",
            sum(memo.hits for memo in self._memos),
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
    _http: AuthzHttp | None = None
    _poller: Poller | None = None
    _ops: OpsServer | None = None
    _token_server: TokenServer | None = None
    _minter: OutboundMinter | None = None
    _serving: bool = False
    _last_poll: float = field(default_factory=time.monotonic)
    _stopped: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self._load()
        self._serve()
        log.info(
            "jwtmesh sidecar started for identity %s",
            self.config.identity,
            extra={"event": "started"},
        )

    def _load_trust(self) -> Inbound:
        config, metrics = self.config, self.metrics
        trust = self.trust = TrustStore(
            list(config.bundle_files),
            list(config.jwks_urls),
            config.verifier_settings(),
            on_outcome=metrics.loader("trust"),
            directories=list(config.bundle_dirs),
        )
        try:
            trust.load_initial()
        except ValueError as exc:
            raise StartupError(f"trust: {exc}", EXIT_USAGE) from None
        metrics.track_bundle_age(lambda: trust.changed_at)
        metrics.registry.register(_CacheCollector(trust))
        if config.policy_file is not None:
            policy = self.policy = WatchedFile(
                config.policy_file, parse_policy, metrics.loader("policy")
            )
            policy.poll(force=True)
            if policy.value is None:
                raise StartupError(
                    f"policyFile: unusable policy {config.policy_file}: {policy.last_error}",
                    EXIT_USAGE,
                )
        else:
            log.warning(
                "no policy: every caller with a valid token is allowed (noPolicy: true)",
                extra={"event": "policy_disabled"},
            )
        watched = self.policy
        return Inbound(
            get_verifier=lambda: trust.verifier,
            get_policy=lambda: watched.value if watched and watched.value else ALLOW_ALL,
            token=config.token,
            max_body_bytes=config.max_body_bytes,
        )

    def _load(self) -> None:
        config, metrics = self.config, self.metrics
        inbound = self._load_trust() if config.identity is not None else None
        egress = None
        if config.identity_keys is not None:
            identity = self.identity = WatchedFile(
                config.identity_keys, parse_identity, metrics.loader("identity")
            )
            identity.poll(force=True)
            trust = self.trust
            self._minter = OutboundMinter(
                lambda: identity.value,
                config.egress_token_lifetime,
                (lambda: trust.verifier.bundle) if trust is not None else lambda: None,
            )
            if config.egress_audiences:
                egress = Egress(config.egress_audiences, self._minter.token_for)
        self.service = DecisionService(
            inbound,
            egress,
            metrics,
            DecisionLog(least_level=config.log_level),
            on_unknown_key=self.trust.unknown_key_seen if self.trust else lambda: None,
        )

    def _poll_all(self) -> None:
        self._last_poll = time.monotonic()
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
        for key, address in (("listen.grpc", listen.grpc), ("listen.http", listen.http)):
            if address:
                check_can_listen(key, address)
        # No verified-token cache (cacheSize 0) means nothing remembered here either. The
        # metric is served (0) whichever listeners run: one dashboard for every mode.
        grpc_memo = AnswerMemo(min(MEMO_ENTRIES, config.cache_size))
        memo = AnswerMemo(min(MEMO_ENTRIES, config.cache_size))
        self.metrics.registry.register(_MemoCollector(grpc_memo, memo))
        if listen.grpc or listen.unix_socket:
            self._grpc = start_grpc(
                self.service,
                listen.grpc,
                listen.unix_socket,
                config.grpc_threads,
                config.grpc_server,
                self.readiness,
                grpc_memo,
            )
        if listen.http:
            self._http = AuthzHttp(self.service, listen.http, memo).start()
        if listen.metrics:
            self._ops = start_ops(
                listen.metrics, self.metrics.registry, self.liveness, self.readiness
            )
        if listen.token:
            if self._minter is None:
                raise StartupError("listen.token: needs identityKeys", EXIT_USAGE)
            self._token_server = start_token(listen.token, self._minter)
        self._serving = True

    def liveness(self) -> list[str]:
        """Why the process should be restarted (empty: alive)."""
        if self._poller is None or not self._poller.alive():
            return ["the file poller thread is not running"]
        return []

    def readiness(self) -> list[str]:
        """Why Envoy should not be sent traffic yet (empty: ready)."""
        config, now = self.config, time.time()
        problems = [] if self._serving else ["listeners are not all up yet"]
        stale_after = max(POLLER_STALE_AFTER, 50 * config.poll_interval)
        if time.monotonic() - self._last_poll > stale_after:
            problems.append(f"mounted files not checked for more than {stale_after:g} s")
        if self.trust is not None:
            problems += self.trust.problems(now, config.max_stale)
        if self.policy is not None and self.policy.value is None:
            problems.append(f"policyFile: no good version of {self.policy.path}")
        if self.identity is not None:
            keys = self.identity.value
            if keys is None:
                problems.append(f"identityKeys: no good version of {self.identity.path}")
            elif active_key(keys, now) is None:
                problems.append("identityKeys: no key of this identity signs now")
        return problems

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=1)
        if self._http is not None:
            self._http.stop()
        for server in (self._token_server, self._ops):
            if server is not None:
                server.shutdown()
                server.server_close()
        if self._poller is not None:
            self._poller.stop()
        if self.trust is not None:
            self.trust.close()  # the JWKS fetcher threads
        self._stopped.set()

    def run_until_signalled(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self._stopped.set())
        self._stopped.wait()
        self.stop()


def run(config: SidecarConfig) -> None:
    configure_logging(config.log_level)
    sidecar = Sidecar(config)
    sidecar.start()
    sidecar.run_until_signalled()
