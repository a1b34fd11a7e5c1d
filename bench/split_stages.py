"""The in-process stack `miss_split.py` times: a mesh issuer's bundle, the sidecar's
DecisionService, the two adapters, and the wire requests Envoy sends them."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_envoy import AUDIENCE, ISSUER
from envoy.service.auth.v3 import external_auth_pb2

from jwtmesh.envoy_config import EGRESS_EXTENSION
from jwtmesh.policy import ALLOW_ALL, Caller, Policy, evaluate, parse_policy
from jwtmesh.tokens import verify as verify_module
from jwtmesh.tokens.cache import VerifiedTokenCache
from jwtmesh.tokens.keys import SigningKey, verify_signature
from jwtmesh.tokens.trust import IssuerTrust, MeshIdentity, TrustBundle
from jwtmesh.tokens.verify import ParsedToken, VerifiedToken, Verifier, VerifierSettings
from jwtmesh_sidecar import grpc_adapter, http_adapter
from jwtmesh_sidecar.answer_memo import MAX_ENTRIES, AnswerMemo
from jwtmesh_sidecar.decide import CheckInput, Decision, Inbound
from jwtmesh_sidecar.metrics import SidecarMetrics
from jwtmesh_sidecar.service import DecisionService
from jwtmesh_testing.http_connection import RecordingTransport

EXAMPLE_POLICY = Path(__file__).resolve().parents[1] / "examples/policies/lra-coordinator.yaml"
SUBJECT = "herald.default"


def http_bytes(token: str) -> bytes:
    """What Envoy's `http_service` sends the sidecar for `GET /users/1`."""
    return (
        "GET /inbound/users/1 HTTP/1.1\r\n"
        "host: census.default:8080\r\n"
        f"authorization: Bearer {token}\r\n"
        f"x-request-id: {uuid.uuid4()}\r\n"
        "x-envoy-expected-rq-timeout-ms: 250\r\n"
        "content-length: 0\r\n\r\n"
    ).encode("latin-1")


def grpc_bytes(token: str) -> bytes:
    """A CheckRequest as Envoy's `grpc_service` sends it for `GET /users/1`."""
    request = external_auth_pb2.CheckRequest()
    attributes = request.attributes
    attributes.source.address.socket_address.address = "10.0.0.7"
    attributes.source.address.socket_address.port_value = 51234
    attributes.destination.address.socket_address.address = "10.0.0.9"
    attributes.destination.address.socket_address.port_value = 8080
    attributes.request.time.GetCurrentTime()
    http = attributes.request.http
    http.id, http.method, http.path = "12345", "GET", "/users/1"
    http.host, http.scheme, http.protocol = "census.default:8080", "http", "HTTP/1.1"
    http.headers.update(
        {
            ":authority": "census.default:8080",
            ":method": "GET",
            ":path": "/users/1",
            "authorization": f"Bearer {token}",
            "x-request-id": str(uuid.uuid4()),
        }
    )
    attributes.context_extensions[EGRESS_EXTENSION] = "inbound"
    return bytes(request.SerializeToString())


def http_protocol(service: DecisionService, memo: AnswerMemo) -> Callable[[bytes], bytes]:
    """Wire bytes → answer bytes through the sidecar's AuthzHttpProtocol, as on a socket."""
    transport = RecordingTransport()
    protocol = http_adapter.AuthzHttpProtocol(service, memo)
    protocol.connection_made(transport)

    def whole(wire: bytes) -> bytes:
        protocol.data_received(wire)
        return transport.written.pop()

    return whole


@dataclass
class Stack:
    key: SigningKey
    bundle: TrustBundle
    settings: VerifierSettings
    verifier: Verifier
    now: float = field(default_factory=time.time)
    policy: Policy = ALLOW_ALL
    service: DecisionService = field(init=False)

    def __post_init__(self) -> None:
        inbound = Inbound(get_verifier=lambda: self.verifier, get_policy=lambda: self.policy)
        self.service = DecisionService(inbound, None, SidecarMetrics())

    def renew_verifier(self) -> None:
        self.verifier = Verifier(self.bundle, self.settings)

    def use_example_policy(self) -> None:
        self.policy = parse_policy(EXAMPLE_POLICY.read_bytes())

    def use_no_policy(self) -> None:
        self.policy = ALLOW_ALL

    def http_input(self, wire: bytes) -> CheckInput:
        raw = http_adapter.parse_request(wire)
        assert raw is not None
        request = http_adapter.to_check_input(raw.method, raw.target, raw.headers, raw.body)
        assert request is not None
        return request

    def check_signature(self, parsed: ParsedToken) -> None:
        assert verify_signature(
            self.key.alg, self.key.public.key, parsed.signing_input, parsed.signature
        )

    def claims_pass(self, parsed: list[ParsedToken]) -> Callable[[], None]:
        """The Verifier's checks after parsing, with the signature check taken out."""

        def run() -> None:
            real = verify_module.verify_signature
            verify_module.verify_signature = lambda *_: True
            try:
                for token in parsed:
                    self.verifier._verify_parsed(token, self.now)
            finally:
                verify_module.verify_signature = real

        return run

    def cache_pass(self, tokens: list[str], verified: list[VerifiedToken]) -> Callable[[], None]:
        """A miss and an insertion per token, in an empty cache of the sidecar's size."""

        def run() -> None:
            cache = VerifiedTokenCache(self.settings.cache_size, self.settings.cache_bytes)
            for token, result in zip(tokens, verified, strict=True):
                cache.get(token, self.now, self.settings.leeway)
                cache.put(token, result)

        return run

    def evaluate_policy(self, verified: VerifiedToken) -> None:
        caller = Caller.of(verified)
        evaluate(self.policy, method="GET", path="/users/1", caller=caller)

    def adapter(
        self, mode: str
    ) -> tuple[Callable[[bytes], Any], Callable[[Decision], Any], Callable[[bytes], Any]]:
        """(wire → CheckInput, Decision → wire, wire → wire through the service). "http" and
        "grpc" are the sidecar's protocols with their answer memo, "-nomemo" the same
        without."""
        if mode in ("http", "http-nomemo"):
            memo = AnswerMemo(MAX_ENTRIES if mode == "http" else 0)
            return self.http_input, http_adapter.render_response, http_protocol(self.service, memo)

        def grpc_in(wire: bytes) -> CheckInput:
            return grpc_adapter.to_check_input(grpc_adapter.CheckRequest.FromString(wire))

        def grpc_out(decision: Decision) -> bytes:
            return bytes(grpc_adapter.to_check_response(decision).SerializeToString())

        memo = AnswerMemo(MAX_ENTRIES) if mode == "grpc" else None
        return grpc_in, grpc_out, grpc_adapter.check_method(self.service, memo)


def build_stack(key: SigningKey) -> Stack:
    """A bundle in which ISSUER is a mesh identity (sub bound, no grants) holding `key`."""
    trust = IssuerTrust({key.kid: key.public}, mesh=MeshIdentity(SUBJECT, "default"))
    bundle = TrustBundle({ISSUER: trust})
    settings = VerifierSettings(audience=AUDIENCE)
    return Stack(key, bundle, settings, Verifier(bundle, settings))
