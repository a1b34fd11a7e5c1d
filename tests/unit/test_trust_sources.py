"""Mounted files (with the kubelet's ..data swap) and JWKS URLs as trust sources."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
import urllib.error
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jwtmesh.tokens.keys import SigningKey, generate_signing_key, jwks
from jwtmesh.tokens.trust import (
    BundleError,
    IssuerTrust,
    TrustBundle,
    parse_bundle,
    render_bundle,
)
from jwtmesh.tokens.verify import VerifierSettings
from jwtmesh_sidecar.jwks_source import FetchState, UrlSource, fetch_jwks, next_fetch_at
from jwtmesh_sidecar.trust_store import INITIAL_FETCH_WAIT, JwksUrl, TrustStore
from jwtmesh_sidecar.watch import LoadOutcome, Poller, WatchedFile
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


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, what
        time.sleep(0.01)
    return time.monotonic() - started


def keys_of(store: TrustStore) -> set[str]:
    trust = store.verifier.bundle.issuers.get(ISS)
    return set(trust.keys) if trust else set()


def test_a_jwks_url_is_fetched_refetched_on_unknown_kid_and_kept_when_down(
    jwks_server: JwksServer,
) -> None:
    first, second = generate_signing_key(), generate_signing_key()
    jwks_server.document = jwks([first.public])
    spec = JwksUrl(issuer=ISS, url=jwks_server.url, refresh_seconds=300, min_refetch_seconds=0.3)
    outcomes: list[LoadOutcome] = []
    store = TrustStore([], [spec], VerifierSettings(audience="census"), outcomes.append)
    store.load_initial()
    try:
        assert keys_of(store) == {first.kid}, "fetched at start"
        jwks_server.document = jwks([first.public, second.public])
        time.sleep(0.5)
        assert keys_of(store) == {first.kid}, "not due for 300 s, and no unknown key seen"
        store.unknown_key_seen()
        wait_for(lambda: second.kid in keys_of(store), 2, "an unknown kid refetches early")
        jwks_server.up = False
        store.unknown_key_seen()
        # A check after the failed fetch, not after a sleep (a slow fetch would pass it unseen).
        wait_for(lambda: not outcomes[-1].ok, 2, "a refetch while the JWKS host is down")
        assert keys_of(store) == {first.kid, second.kid}, "the last good set is kept"
    finally:
        store.close()


def test_a_jwks_url_that_is_down_at_start_does_not_stop_the_sidecar(
    jwks_server: JwksServer,
) -> None:
    jwks_server.up = False
    store = TrustStore(
        [], [JwksUrl(issuer=ISS, url=jwks_server.url)], VerifierSettings(audience="census")
    )
    store.load_initial()
    store.close()
    assert store.verifier.bundle.issuers == {}


S = JwksUrl(issuer=ISS, url="http://x", refresh_seconds=300, min_refetch_seconds=10)


@pytest.mark.parametrize(
    ("state", "due"),
    [
        (FetchState(), float("-inf")),
        (FetchState(last_attempt=100), 400),
        (FetchState(last_attempt=100, early_requested=True), 110),
        (FetchState(last_attempt=100, failures=1), 110),
        (FetchState(last_attempt=100, failures=2), 120),
        (FetchState(last_attempt=100, failures=4), 180),
        (FetchState(last_attempt=100, failures=9), 400),
        (FetchState(last_attempt=100, failures=3, early_requested=True), 140),
    ],
    ids=[
        "never fetched: at once",
        "after a success: on schedule",
        "an unknown key: early, within the rate limit",
        "after a failure: the rate limit",
        "two failures: twice that",
        "four failures: eight times",
        "many failures: never beyond the refresh interval",
        "an unknown key does not shorten a backoff",
    ],
)
def test_when_a_jwks_url_is_fetched_next(state: FetchState, due: float) -> None:
    assert next_fetch_at(S, state) == due


class SilentServer:
    """Accepts connections and never answers: a JWKS host that hangs."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"


def test_a_hanging_jwks_url_delays_neither_requests_nor_file_reloads(tmp_path: Path) -> None:
    """Finding 3: the URL fetch ran on the poller thread that also re-reads the files."""
    first, second = generate_signing_key(), generate_signing_key()
    path = tmp_path / "bundle.json"
    path.write_bytes(bundle_bytes(first))
    silent = SilentServer()
    spec = JwksUrl(
        issuer="https://hangs.test",
        url=silent.url,
        min_refetch_seconds=0.05,
        timeout_seconds=30,
    )
    store = TrustStore([path], [spec], VerifierSettings(audience="census"))
    started = time.monotonic()
    store.load_initial()
    assert time.monotonic() - started < INITIAL_FETCH_WAIT + 1, "start-up waits 2 s at most"
    assert keys_of(store) == {first.kid}
    poller = Poller(store.poll, 0.05, "test-poller")
    store.attach_poller(poller.wake)
    poller.start()
    try:
        for _ in range(100):
            tick = time.perf_counter()
            store.unknown_key_seen()
            assert time.perf_counter() - tick < 0.01, "the request path never waits"
        path.write_bytes(bundle_bytes(first, second) + b" ")
        took = wait_for(lambda: second.kid in keys_of(store), 1, "the file reload waited")
        assert took < 0.5, "the hanging fetch does not hold the file poller"
    finally:
        poller.stop()
        silent.sock.close()  # the hanging fetch fails now, while this test's output is captured
        store.close()  # else its fetcher retries and logs "Connection refused" into later tests


def test_a_fetch_that_fails_in_any_way_backs_off_instead_of_spinning() -> None:
    calls: list[float] = []

    def broken(spec: JwksUrl) -> TrustBundle:
        calls.append(time.monotonic())
        raise http.client.IncompleteRead(b"")  # not an OSError

    spec = JwksUrl(issuer=ISS, url="http://x", min_refetch_seconds=0.2)
    source = UrlSource(spec, lambda _: None, lambda: None, fetch=broken)
    source.start()
    time.sleep(0.5)
    source.stop()
    assert 2 <= len(calls) <= 3, "at once, after 0.2 s, after 0.4 s more: a backoff, no spin"
    assert source.state.failures == len(calls)


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_jwks_url_that_redirects_is_a_failed_fetch_never_followed() -> None:
    """Keys come from the configured URL only, not from wherever it points (plain http,
    another host, an internal address)."""
    elsewhere: list[str] = []

    class Target(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            elsewhere.append(self.path)
            body = json.dumps(jwks([generate_signing_key().public])).encode()
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    target = _serve(Target)

    class Configured(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(302)
            self.send_header("location", f"http://127.0.0.1:{target.server_port}/internal")
            self.send_header("content-length", "0")
            self.end_headers()

    configured = _serve(Configured)
    try:
        spec = JwksUrl(issuer=ISS, url=f"http://127.0.0.1:{configured.server_port}/jwks")
        with pytest.raises(urllib.error.HTTPError):
            fetch_jwks(spec)
        assert elsewhere == []
    finally:
        for server in (target, configured):
            server.shutdown()
            server.server_close()


def test_a_jwks_fetch_gives_up_after_its_timeout_however_slowly_bytes_come() -> None:
    class Drip(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", "100000")
            self.end_headers()
            for _ in range(40):  # a byte every 0.25 s: 10 s in all, each read well in time
                try:
                    self.wfile.write(b" ")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.25)

    drip = _serve(Drip)
    try:
        spec = JwksUrl(ISS, f"http://127.0.0.1:{drip.server_port}/jwks", timeout_seconds=1.0)
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            fetch_jwks(spec)
        assert time.monotonic() - started < 6, "the whole fetch, not each read, is bounded"
    finally:
        drip.shutdown()
        drip.server_close()


def test_an_idps_jwks_with_an_encryption_key_gives_its_signing_keys(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Keycloak serves its RSA-OAEP key next to its signing key: the signing key is taken,
    the other skipped, and that is said once, not at every refresh."""
    signer, enc = generate_signing_key("RS256", 2048), generate_signing_key("RS256", 2048)
    enc_jwk = {**enc.public.to_jwk(), "kid": "enc-1", "use": "enc", "alg": "RSA-OAEP"}
    body = json.dumps({"keys": [enc_jwk, signer.public.to_jwk()]}).encode()

    class Keycloak(BaseHTTPRequestHandler):
        def log_message(self, *_: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = _serve(Keycloak)
    try:
        spec = JwksUrl(issuer=ISS, url=f"http://127.0.0.1:{server.server_port}/certs")
        with caplog.at_level("INFO", logger="jwtmesh.trust"):
            for _ in range(3):
                bundle = fetch_jwks(spec)
        assert list(bundle.issuers[ISS].keys) == [signer.kid]
        said = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
        assert len(said) == 1, said
        assert "enc-1" in said[0]
    finally:
        server.shutdown()
        server.server_close()
