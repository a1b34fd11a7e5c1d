"""Mounted files (with the kubelet's ..data swap) and JWKS URLs as trust sources."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jwtmesh.tokens.keys import SigningKey, generate_signing_key, jwks
from jwtmesh.tokens.trust import BundleError, IssuerTrust, TrustBundle, parse_bundle, render_bundle
from jwtmesh.tokens.verify import VerifierSettings
from jwtmesh_sidecar.trust_store import JwksUrl, TrustStore
from jwtmesh_sidecar.watch import LoadOutcome, WatchedFile
from jwtmesh_testing.kubelet_volume import KubeletVolume

ISS = "https://mesh.test/herald"


def bundle_bytes(*keys: SigningKey) -> bytes:
    return render_bundle(TrustBundle({ISS: IssuerTrust({k.kid: k.public for k in keys})}))


def test_a_watched_file_follows_the_kubelet_symlink_swap(tmp_path: Path) -> None:
    first, second = generate_signing_key(), generate_signing_key()
    volume = KubeletVolume(tmp_path / "bundle")
    volume.write({"bundle.json": bundle_bytes(first)})
    outcomes: list[LoadOutcome] = []
    watched = WatchedFile(volume.path("bundle.json"), parse_bundle, outcomes.append)
    assert watched.poll(force=True)
    assert watched.value is not None
    assert set(watched.value.issuers[ISS].keys) == {first.kid}
    assert not watched.poll(), "unchanged: nothing re-read"
    volume.write({"bundle.json": bundle_bytes(first, second)})
    assert watched.poll()
    assert set(watched.value.issuers[ISS].keys) == {first.kid, second.kid}
    assert [o.ok for o in outcomes] == [True, True]


def test_a_corrupt_version_keeps_the_last_good_one_and_says_so(tmp_path: Path) -> None:
    key = generate_signing_key()
    volume = KubeletVolume(tmp_path / "bundle")
    volume.write({"bundle.json": bundle_bytes(key)})
    outcomes: list[LoadOutcome] = []
    watched = WatchedFile(volume.path("bundle.json"), parse_bundle, outcomes.append)
    watched.poll(force=True)
    for broken in (b"", b"{", b'{"version": 1, "issuers": {"x": 1}}'):
        volume.write({"bundle.json": broken})
        assert not watched.poll()
        assert watched.value is not None
        assert key.kid in watched.value.issuers[ISS].keys
        assert watched.last_error
    assert [o.ok for o in outcomes] == [True, False, False, False]


def test_a_missing_file_keeps_the_last_good_one(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(generate_signing_key()))
    watched = WatchedFile(path, parse_bundle)
    watched.poll(force=True)
    path.unlink()
    assert not watched.poll()
    assert watched.value is not None


def test_the_store_refuses_to_start_without_a_usable_bundle(tmp_path: Path) -> None:
    path = tmp_path / "bundle.json"
    path.write_bytes(b"not json")
    store = TrustStore([path], [], VerifierSettings(audience="census"))
    with pytest.raises(BundleError, match="no usable trust bundle"):
        store.load_initial()


def test_an_unknown_key_wakes_the_poller_and_the_next_poll_takes_the_new_file(
    tmp_path: Path,
) -> None:
    first, second = generate_signing_key(), generate_signing_key()
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(first))
    store = TrustStore([path], [], VerifierSettings(audience="census"))
    woken: list[bool] = []
    store.attach_poller(lambda: woken.append(True))
    store.load_initial()
    path.write_bytes(bundle_bytes(first, second) + b" ")
    store.unknown_key_seen()
    assert woken == [True], "the request path only wakes the poller"
    assert second.kid not in store.verifier.bundle.issuers[ISS].keys
    assert store.poll(), "the poller's next tick takes the new bundle"
    assert second.kid in store.verifier.bundle.issuers[ISS].keys
    assert not store.poll(), "nothing changed since"


class JwksServer:
    """A real JWKS endpoint on loopback that can go down."""

    def __init__(self) -> None:
        self.document: dict[str, Any] = {"keys": []}
        self.up = True
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                return

            def do_GET(self) -> None:
                if not server.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(server.document).encode()
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/jwks.json"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.http.shutdown()
    server.http.server_close()


def test_a_jwks_url_is_fetched_refetched_on_unknown_kid_and_kept_when_down(
    jwks_server: JwksServer,
) -> None:
    first, second = generate_signing_key(), generate_signing_key()
    jwks_server.document = jwks([first.public])
    spec = JwksUrl(issuer=ISS, url=jwks_server.url, refresh_seconds=300, min_refetch_seconds=10)
    store = TrustStore([], [spec], VerifierSettings(audience="census"))
    store.load_initial()
    assert set(store.verifier.bundle.issuers[ISS].keys) == {first.kid}
    jwks_server.document = jwks([first.public, second.public])
    assert not store.poll(time.time() + 5), "not due yet, and no unknown key seen"
    store.unknown_key_seen()
    assert not store.poll(time.time() + 5), "an early refetch waits min_refetch_seconds"
    store.unknown_key_seen()
    assert store.poll(time.time() + 11), "an unknown kid refetches early"
    assert second.kid in store.verifier.bundle.issuers[ISS].keys
    jwks_server.up = False
    store.poll(time.time() + 400)
    assert set(store.verifier.bundle.issuers[ISS].keys) == {first.kid, second.kid}, "last good kept"


def test_a_jwks_url_that_is_down_at_start_does_not_stop_the_sidecar(
    jwks_server: JwksServer,
) -> None:
    jwks_server.up = False
    store = TrustStore(
        [], [JwksUrl(issuer=ISS, url=jwks_server.url)], VerifierSettings(audience="census")
    )
    store.load_initial()
    assert store.verifier.bundle.issuers == {}
