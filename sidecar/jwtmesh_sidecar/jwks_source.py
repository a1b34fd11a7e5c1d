"""A remote JWKS for one issuer, fetched in the background by its own thread.

Nothing else waits for it: not a request (an unknown key is refused at once from what is
loaded), not the poller that watches the bundle files, not another URL. Each source keeps
its last good key set and decides on its own when to fetch (`next_fetch_at`, pure):

- on schedule, every `refresh_seconds` after a success;
- early when a request met a key or issuer it did not know, but never sooner than
  `min_refetch_seconds` after the last attempt (the rate limit);
- after a failure, again after `min_refetch_seconds`, then twice as long each time up to
  `refresh_seconds` (the backoff); early requests do not shorten a backoff.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass

from jwtmesh.tokens.trust import (
    EMPTY_BUNDLE,
    BundleError,
    IssuerTrust,
    TrustBundle,
    parse_idp_jwks,
)
from jwtmesh_sidecar.watch import LoadOutcome

log = logging.getLogger("jwtmesh.trust")
MAX_JWKS_BYTES = 1 << 20
# What each URL's last JWKS skipped (one fetcher thread per URL writes its own entry).
_SKIPPED: dict[str, list[str]] = {}


@dataclass(frozen=True)
class JwksUrl:
    issuer: str
    url: str
    refresh_seconds: float = 300.0
    min_refetch_seconds: float = 10.0  # rate limit for early refetches, first backoff step
    timeout_seconds: float = 5.0  # one fetch, connect to last byte (on the source's thread)


@dataclass(frozen=True)
class FetchState:
    last_attempt: float | None = None  # monotonic seconds; None: never tried
    failures: int = 0  # consecutive failed attempts
    early_requested: bool = False


def next_fetch_at(spec: JwksUrl, state: FetchState) -> float:
    """When the source fetches next (monotonic seconds), from its history. Pure."""
    if state.last_attempt is None:
        return float("-inf")  # at once
    if state.failures:
        backoff = spec.min_refetch_seconds * 2.0 ** min(state.failures - 1, 32)
        return state.last_attempt + min(spec.refresh_seconds, backoff)
    scheduled = state.last_attempt + spec.refresh_seconds
    if state.early_requested:
        return min(scheduled, state.last_attempt + spec.min_refetch_seconds)
    return scheduled


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Keys come from the configured URL only: a redirect (to plain http, another host, an
    internal address) is a failed fetch, never followed."""

    def redirect_request(self, *_: object, **__: object) -> None:
        return None  # urllib then raises HTTPError for the 3xx


_OPENER = urllib.request.build_opener(_NoRedirects)


def fetch_jwks(spec: JwksUrl) -> TrustBundle:
    """One fetch; raises (OSError, ValueError, http.client.HTTPException...) when it fails.
    It gives up once `timeout_seconds` have passed, however slowly the bytes come (each
    read also waits at most that long)."""
    deadline = time.monotonic() + spec.timeout_seconds
    # The scheme is checked to be http(s) when the configuration is loaded.
    request = urllib.request.Request(spec.url, headers={"Accept": "application/json"})  # noqa: S310
    try:
        opened = _OPENER.open(request, timeout=spec.timeout_seconds)
    except urllib.error.HTTPError as exc:  # a 3xx among them: its connection is let go now
        exc.close()
        raise
    with opened as response:
        data = bytearray()
        while chunk := response.read1(65536):
            data += chunk
            if len(data) > MAX_JWKS_BYTES:
                raise BundleError("JWKS document larger than 1 MiB")
            if time.monotonic() > deadline:
                raise TimeoutError(f"JWKS fetch not done after {spec.timeout_seconds:g} s")
    keys, skipped = parse_idp_jwks(json.loads(bytes(data)), spec.url)
    if _SKIPPED.get(spec.url) != skipped:  # said once, not at every refresh
        _SKIPPED[spec.url] = skipped
        if skipped:
            log.info(
                "%s: %d keys skipped, not for verifying tokens: %s",
                spec.url,
                len(skipped),
                "; ".join(skipped),
                extra={"event": "jwks_keys_skipped"},
            )
    return TrustBundle({spec.issuer: IssuerTrust(keys=keys)})


class UrlSource:
    """One JWKS URL and its fetcher thread. `bundle` is the last good key set."""

    def __init__(
        self,
        spec: JwksUrl,
        on_outcome: Callable[[LoadOutcome], None],
        on_change: Callable[[], object],
        fetch: Callable[[JwksUrl], TrustBundle] = fetch_jwks,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.spec = spec
        self.bundle: TrustBundle = EMPTY_BUNDLE
        self.state = FetchState()
        self.fetched_at: float | None = None  # wall clock of the last good fetch (/readyz)
        self.first_attempt_done = threading.Event()
        self._on_outcome = on_outcome
        self._on_change = on_change
        self._fetch = fetch
        self._clock = clock
        self._lock = threading.Lock()  # state: read and written by two threads
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"jwks {spec.issuer}"[:60], daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; a fetch in flight ends with its timeout (daemon thread)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=0.5)

    def request_refetch(self) -> None:
        """An unknown key or issuer was seen: fetch early, within the rate limit.
        Safe on the request path: it sets a flag and returns."""
        with self._lock:
            if not self.state.early_requested:
                self.state = FetchState(self.state.last_attempt, self.state.failures, True)
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                due = next_fetch_at(self.spec, self.state)
            wait = due - self._clock()
            if wait > 0:
                self._wake.wait(wait)
                self._wake.clear()
                continue
            try:
                self.attempt()
            except Exception:  # a fetcher must never die; the error is logged
                log.exception("JWKS fetcher for %s failed", self.spec.url)

    def attempt(self) -> bool:
        """Fetch now (on the calling thread). True when the key set changed."""
        started = self._clock()
        try:
            bundle = self._fetch(self.spec)
        except Exception as exc:  # OSError, ValueError, http.client.HTTPException...
            with self._lock:
                self.state = FetchState(started, self.state.failures + 1, False)
            log.warning("keeping last good JWKS of %s: %s", self.spec.url, exc)
            self._on_outcome(LoadOutcome(self.spec.url, False, str(exc)))
            self.first_attempt_done.set()
            return False
        with self._lock:
            self.state = FetchState(started, 0, False)
        self.fetched_at = time.time()
        changed = bundle != self.bundle
        self.bundle = bundle
        self._on_outcome(LoadOutcome(self.spec.url, True))
        if changed:
            self._on_change()
        self.first_attempt_done.set()
        return changed
