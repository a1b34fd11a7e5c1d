"""Faults around the data plane, with real processes: Envoy fails closed, the sidecar keeps
its last good bundle, and refuses to start without one."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from jwtmesh.envoy_config import AuthzEndpoint, PodEnvoy
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_testing.kubeapply import wait_for
from jwtmesh_testing.processes import (
    AUTHZ_MODES,
    EchoUpstream,
    authz_mode,
    free_port,
    start_envoy,
    start_sidecar,
)

# Not `timing`: its bounds are several times Envoy's 0.5 s ext_authz timeout, and it waits
# for the sidecar to notice a damaged bundle rather than for a fixed time.
pytestmark = pytest.mark.envoy
ISS = "https://mesh.test/herald"
KEY = generate_signing_key()


def token() -> str:
    return mint_token(
        KEY, issuer=ISS, subject="herald", audience="census", now=time.time(), lifetime=300
    )


def status(port: int, bearer: str | None) -> int:
    headers = {"authorization": f"Bearer {bearer}"} if bearer else {}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{port}/x", headers=headers), timeout=10
        ) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def stopped(pid: int) -> bool:
    """Whether every thread of the process is stopped (state T in /proc)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            state = (task / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:  # a thread that just ended
            continue
        if state not in ("T", "t"):
            return False
    return True


class Stack:
    def __init__(self, workdir: Path, mode: str) -> None:
        self.bundle = workdir / "bundle.json"
        self.bundle.write_bytes(
            render_bundle(TrustBundle({ISS: IssuerTrust({KEY.kid: KEY.public})}))
        )
        self.upstream = EchoUpstream().start()
        authz = free_port()
        wire, settings = authz_mode(mode)
        self.sidecar = start_sidecar(
            {
                "identity": "census",
                "listen": {wire: f"127.0.0.1:{authz}"},
                "trust": {"bundleFiles": [str(self.bundle)]},
                "noPolicy": True,
                **settings,
            },
            workdir,
            f"sidecar-{mode}",
        )
        self.port = free_port()
        self.envoy = start_envoy(
            PodEnvoy(
                inbound_port=self.port,
                app_port=self.upstream.port,
                admin_port=free_port(),
                listen_address="127.0.0.1",
                authz=AuthzEndpoint(wire, port=authz),
            ),
            workdir,
            f"envoy-{mode}",
        )

    def stop(self) -> None:
        self.envoy.stop()
        self.sidecar.stop()
        self.upstream.stop()


@pytest.fixture(params=AUTHZ_MODES)
def stack(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stack]:
    built = Stack(tmp_path, request.param)
    yield built
    built.stop()


def test_a_killed_sidecar_means_refused_requests_never_unauthenticated_ones(stack: Stack) -> None:
    assert status(stack.port, token()) == 200
    stack.sidecar.kill(signal.SIGKILL)
    stack.sidecar.popen.wait(5)
    for bearer in (token(), None, "garbage"):
        assert status(stack.port, bearer) == 503, "Envoy fails closed"


def test_a_stalled_sidecar_times_out_into_a_refusal_and_recovers(stack: Stack) -> None:
    assert status(stack.port, token()) == 200
    stack.sidecar.kill(signal.SIGSTOP)
    try:
        # Stopped for sure before the request (a loaded machine delivers the signal late).
        wait_for(lambda: stopped(stack.sidecar.popen.pid), 5, "the sidecar to stop", interval=0.01)
        started = time.monotonic()
        assert status(stack.port, token()) == 503
        assert time.monotonic() - started < 5, "Envoy gives up after its 0.5 s ext_authz timeout"
    finally:
        stack.sidecar.kill(signal.SIGCONT)
    deadline = time.monotonic() + 10
    while status(stack.port, token()) != 200:
        assert time.monotonic() < deadline, "the sidecar serves again after it resumes"
        time.sleep(0.1)


@pytest.mark.parametrize("damage", ["missing", "empty", "corrupt", "huge"])
def test_a_damaged_bundle_keeps_the_last_good_keys(stack: Stack, damage: str) -> None:
    good = token()
    assert status(stack.port, good) == 200
    if damage == "missing":
        stack.bundle.unlink()
    elif damage == "empty":
        stack.bundle.write_bytes(b"")
    elif damage == "corrupt":
        stack.bundle.write_bytes(b'{"version": 1, "issuers": {"x": {"jwks": 42}}}')
    else:
        stack.bundle.write_bytes(b'{"version": 1, "issuers": {' + b'"a":{},' * 800_000 + b"}}")
    wait_for(
        lambda: "keeping last good" in stack.sidecar.log_tail(50),
        10,
        f"the sidecar to notice the {damage} bundle",
        interval=0.1,
    )
    assert status(stack.port, good) == 200
    assert stack.sidecar.popen.poll() is None


@pytest.mark.parametrize("content", [None, b"", b"{corrupt"], ids=["missing", "empty", "corrupt"])
def test_the_sidecar_refuses_to_start_without_a_usable_bundle(
    tmp_path: Path, content: bytes | None
) -> None:
    bundle = tmp_path / "bundle.json"
    if content is not None:
        bundle.write_bytes(content)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jwtmesh_sidecar.cli",
            "sidecar",
            "--identity",
            "census",
            "--grpc",
            f"127.0.0.1:{free_port()}",
            "--bundle",
            str(bundle),
            "--no-policy",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "no usable trust bundle" in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: sidecar: trust: no usable trust")
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1].startswith("Error: sidecar: trust: no usable trust")
    assert "Traceback" not in result.stderr
