"""Health and logs: the sidecar's /healthz and /readyz, the operator's readiness and JWKS
answers while it has nothing trustworthy, and one JSON log schema for every line."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from jwtmesh.identity import IdentityKeys, ScheduledKey, render_identity
from jwtmesh.logs import JsonFormatter
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.mint import mint_token
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, render_bundle
from jwtmesh_operator.http import make_app
from jwtmesh_operator.readiness import Readiness
from jwtmesh_sidecar.app import Sidecar
from jwtmesh_sidecar.config import config_from_dict

KEY = generate_signing_key()
ISSUER = "https://mesh.test/ns/a/herald"
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SCHEMA = ("ts", "level", "event", "logger", "msg")
DECISION = ("status", "reason", "method", "path", "direction")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def bundle_file(tmp_path: Path) -> Path:
    path = tmp_path / "bundle.json"
    path.write_bytes(render_bundle(TrustBundle({ISSUER: IssuerTrust({KEY.kid: KEY.public})})))
    return path


def sidecar(document: dict[str, Any]) -> Sidecar:
    running = Sidecar(config_from_dict(document))
    running.start()
    return running


def test_the_sidecar_is_ready_once_it_serves_a_good_bundle(bundle_file: Path) -> None:
    ops = free_port()
    running = sidecar(
        {
            "identity": "census.a",
            "listen": {"http": f"127.0.0.1:{free_port()}", "metrics": f"127.0.0.1:{ops}"},
            "trust": {"bundleFiles": [str(bundle_file)]},
            "noPolicy": True,
        }
    )
    try:
        assert get(f"http://127.0.0.1:{ops}/healthz") == (200, "ok\n")
        assert get(f"http://127.0.0.1:{ops}/readyz") == (200, "ready\n")
        status, metrics = get(f"http://127.0.0.1:{ops}/metrics")
        assert status == 200
        assert "# HELP jwtmesh_decisions_total" in metrics
    finally:
        running.stop()


def test_the_sidecar_is_not_ready_without_what_it_needs(bundle_file: Path, tmp_path: Path) -> None:
    """A JWKS URL never fetched, a signing key that does not sign yet: 503 with reasons."""
    ops = free_port()
    later = IdentityKeys(ISSUER, "herald.a", 300, (ScheduledKey(KEY, time.time() + 3600, None),))
    (tmp_path / "signing-keys.json").write_bytes(render_identity(later))
    running = sidecar(
        {
            "identity": "census.a",
            "listen": {"http": f"127.0.0.1:{free_port()}", "metrics": f"127.0.0.1:{ops}"},
            "trust": {
                "bundleFiles": [str(bundle_file)],
                "jwksUrls": [{"issuer": "https://idp", "url": f"http://127.0.0.1:{free_port()}/"}],
            },
            "identityKeys": str(tmp_path / "signing-keys.json"),
            "egress": {"audiences": {"census": "census.a"}},
            "noPolicy": True,
        }
    )
    try:
        status, body = get(f"http://127.0.0.1:{ops}/readyz")
        assert status == 503
        assert "trust.jwksUrls: http://127.0.0.1:" in body
        assert "not fetched yet" in body
        assert "identityKeys: no key of this identity signs now" in body
        assert get(f"http://127.0.0.1:{ops}/healthz")[0] == 200
    finally:
        running.stop()


def test_the_injected_probes_use_healthz_and_readyz() -> None:
    from jwtmesh_operator.injection import (
        METRICS_PORT,
        SIDECAR,
        IdentityRef,
        InjectionSettings,
        inject,
    )

    pod = {
        "metadata": {},
        "spec": {"containers": [{"name": "app", "ports": [{"containerPort": 80}]}]},
    }
    injected = inject(pod, IdentityRef("census", "census.a", "s"), InjectionSettings("e", "j", "b"))
    assert injected is not None
    (container,) = [c for c in injected.containers if c["name"] == SIDECAR]
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": METRICS_PORT}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": METRICS_PORT}


def _operator_app(readiness: Readiness, published: dict[str, Any]) -> Any:
    state: Any = SimpleNamespace(
        readiness=readiness,
        config=SimpleNamespace(public_base_url="https://jwtmesh.test"),
        counters=SimpleNamespace(reconciles=0, reconcile_errors=0, keys_generated=0),
        publisher=SimpleNamespace(publishes=0, last=None),
        identities={},
    )
    return make_app(state, lambda: SimpleNamespace(published=published))


def test_the_operator_answers_503_until_it_has_something_trustworthy() -> None:
    async def scenario() -> list[tuple[str, int, str | None]]:
        readiness = Readiness()
        published: dict[str, Any] = {}
        seen = []
        async with TestClient(TestServer(_operator_app(readiness, published))) as client:

            async def ask(step: str) -> None:
                for path in ("/readyz", "/ns/a/h/jwks.json"):
                    answer = await client.get(path)
                    seen.append(
                        (f"{step} {path}", answer.status, answer.headers.get("cache-control"))
                    )

            await ask("before sync")
            readiness.synced = True
            await ask("synced, no keys")
            published["https://jwtmesh.test/ns/a/h"] = {KEY.kid: KEY.public}
            await ask("synced, a key")
        return seen

    assert asyncio.run(scenario()) == [
        ("before sync /readyz", 503, "no-store"),
        ("before sync /ns/a/h/jwks.json", 503, "no-store"),
        ("synced, no keys /readyz", 200, None),
        ("synced, no keys /ns/a/h/jwks.json", 404, None),
        ("synced, a key /readyz", 200, None),
        ("synced, a key /ns/a/h/jwks.json", 200, "max-age=60"),
    ]


def test_no_merged_jwks_is_served() -> None:
    """One set of every issuer's keys would let a verifier that reads an issuer's keys from
    it accept any namespace's key for that issuer: only per-issuer sets are served."""

    async def scenario() -> tuple[int, str]:
        readiness = Readiness()
        readiness.synced = True
        published = {"https://jwtmesh.test/ns/a/h": {KEY.kid: KEY.public}}
        async with TestClient(TestServer(_operator_app(readiness, published))) as client:
            answer = await client.get("/.well-known/jwks.json")
            return answer.status, await answer.text()

    status, text = asyncio.run(scenario())
    assert status == 404
    assert "per issuer: <issuer>/jwks.json" in text


def test_a_standby_replica_is_ready_and_serves_keys_once_synced() -> None:
    # A replica standing by (another holds the Lease) still indexes the whole cluster, so
    # its JWKS is as current as the acting one's: it must not be taken out of the Service.
    readiness = Readiness(standby=True)
    assert readiness.problems() != [], "not synced yet"
    assert readiness.serving() is not None
    readiness.synced = True
    assert readiness.problems() == []
    assert readiness.serving() is None


def check_schema(line: str) -> dict[str, Any]:
    entry: dict[str, Any] = json.loads(line)
    for key in SCHEMA:
        assert key in entry, (key, line)
    assert RFC3339.match(entry["ts"]), line
    assert entry["level"] in ("debug", "info", "warning", "error", "critical")
    return entry


def test_a_library_line_keeps_the_schema_and_drops_its_private_objects() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("kopf.objects.test")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(handler)
    try:
        logger.warning("Handler failed", extra={"settings": object(), "k8s_skip": True})
        logger.info("synced", extra={"event": "synced", "namespace": "a"})
    finally:
        logger.removeHandler(handler)
    first, second = (check_schema(line) for line in stream.getvalue().splitlines())
    assert first["event"] == "log"
    assert "settings" not in first
    assert "k8s_skip" not in first
    assert second == {**second, "event": "synced", "namespace": "a", "level": "info"}


def test_every_line_of_a_short_sidecar_run_parses(bundle_file: Path, tmp_path: Path) -> None:
    """Start, refuse two requests (no token; a token for another audience, with Envoy's
    x-request-id), a corrupt bundle version, stop: every line is one schema."""
    authz, ops = free_port(), free_port()
    config = tmp_path / "sidecar.json"
    config.write_text(
        json.dumps(
            {
                "identity": "census.a",
                "listen": {"http": f"127.0.0.1:{authz}", "metrics": f"127.0.0.1:{ops}"},
                "trust": {"bundleFiles": [str(bundle_file)]},
                "noPolicy": True,
                "logLevel": "debug",
            }
        )
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "jwtmesh_sidecar.cli", "sidecar", "--config", str(config)],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while get_or_none(f"http://127.0.0.1:{ops}/readyz") != 200:
            assert time.monotonic() < deadline
            assert process.poll() is None
            time.sleep(0.1)
        token = mint_token(
            KEY, issuer=ISSUER, subject="herald.a", audience="other.a", now=time.time(), lifetime=60
        )
        for headers in ({}, {"authorization": f"Bearer {token}", "x-request-id": "req-42"}):
            request = urllib.request.Request(f"http://127.0.0.1:{authz}/inbound/x", headers=headers)
            assert get_status(request) == 401
        bundle_file.write_text("{corrupt")
        time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    entries = [check_schema(line) for line in stderr.splitlines()]
    events = [entry["event"] for entry in entries]
    assert "started" in events
    assert "reload_failed" in events
    assert "policy_disabled" in events
    denials = [entry for entry in entries if entry["event"] == "denied"]
    assert [d["reason"] for d in denials] == ["missing_token", "wrong_audience"]
    for denial in denials:
        assert all(key in denial for key in DECISION)
    refused = denials[1]
    assert (refused["iss"], refused["sub"], refused["kid"]) == (ISSUER, "herald.a", KEY.kid)
    assert refused["jti"]
    assert refused["verified"] is False
    assert refused["request_id"] == "req-42"
    assert "aud is 'other.a', this service is 'census.a'" in refused["msg"]


def get_or_none(url: str) -> int | None:
    try:
        return get(url)[0]
    except OSError:
        return None


def get_status(request: urllib.request.Request) -> int:
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
