"""Where the sidecar's trust comes from: bundle files and JWKS URLs, merged into one Verifier.

Each source keeps its last good content. A new merged bundle builds a new Verifier
(and so drops the verified-token cache). Only the poller thread reads sources; a request
never waits for one. An unknown `kid` or issuer makes the next poll come at once and
refetch URL sources early (at most once per `min_refetch_seconds` each).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from jwtmesh.tokens.trust import (
    EMPTY_BUNDLE,
    BundleError,
    IssuerTrust,
    TrustBundle,
    parse_bundle,
    parse_jwks,
)
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.watch import LoadOutcome, WatchedFile

log = logging.getLogger("jwtmesh.trust")
MAX_JWKS_BYTES = 1 << 20


@dataclass(frozen=True)
class JwksUrl:
    issuer: str
    url: str
    refresh_seconds: float = 300.0
    min_refetch_seconds: float = 10.0  # rate limit for refetches on an unknown kid


class UrlSource:
    """A remote JWKS for one issuer: fetched in the background, last good set kept."""

    def __init__(self, spec: JwksUrl, on_outcome: Callable[[LoadOutcome], None]) -> None:
        self.spec = spec
        self._on_outcome = on_outcome
        self.bundle: TrustBundle = EMPTY_BUNDLE
        self.fetched_at: float | None = None
        self._last_attempt = 0.0

    def due(self, now: float) -> bool:
        return now - self._last_attempt >= self.spec.refresh_seconds

    def may_refetch(self, now: float) -> bool:
        return now - self._last_attempt >= self.spec.min_refetch_seconds

    def fetch(self, now: float) -> bool:
        self._last_attempt = now
        try:
            # The scheme is checked to be http(s) when the configuration is loaded.
            request = urllib.request.Request(  # noqa: S310
                self.spec.url, headers={"Accept": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
                data = response.read(MAX_JWKS_BYTES + 1)
            if len(data) > MAX_JWKS_BYTES:
                raise BundleError("JWKS document larger than 1 MiB")
            keys = parse_jwks(json.loads(data), self.spec.url)
        except (OSError, ValueError) as exc:
            log.warning("keeping last good JWKS of %s: %s", self.spec.url, exc)
            self._on_outcome(LoadOutcome(self.spec.url, False, str(exc)))
            return False
        bundle = TrustBundle({self.spec.issuer: IssuerTrust(keys=keys)})
        changed = bundle != self.bundle
        self.bundle = bundle
        self.fetched_at = now
        self._on_outcome(LoadOutcome(self.spec.url, True))
        return changed


class TrustStore:
    """The current Verifier, rebuilt whenever any trust source changes."""

    def __init__(
        self,
        files: list[Path],
        urls: list[JwksUrl],
        settings: VerifierSettings,
        on_outcome: Callable[[LoadOutcome], None] = lambda _: None,
    ) -> None:
        self.settings = settings
        self._files = [WatchedFile(path, parse_bundle, on_outcome) for path in files]
        self._urls = [UrlSource(spec, on_outcome) for spec in urls]
        self._unknown_key_seen = threading.Event()
        self._wake_poller: Callable[[], None] = lambda: None
        self._rebuild_lock = threading.Lock()
        self.verifier = Verifier(EMPTY_BUNDLE, settings)
        self.changed_at = time.time()
        self._retired = {"hit": 0, "miss": 0, "uncacheable": 0}

    def cache_totals(self) -> dict[str, int]:
        """Cache lookups by result (hit, miss, uncacheable: verified but too big to keep)
        over every Verifier this store has had."""
        cache = self.verifier.cache
        now = {"hit": cache.hits, "miss": cache.misses, "uncacheable": cache.uncacheable}
        return {result: self._retired[result] + count for result, count in now.items()}

    def cache_bytes(self) -> int:
        """What the current cache holds, by its own accounting (`entry_cost`)."""
        return self.verifier.cache.bytes

    def load_initial(self) -> None:
        """Read every file once; refuse to start if a bundle file has no good version.
        URL sources never block start-up: until fetched, their tokens are simply refused."""
        for watched in self._files:
            watched.poll(force=True)
            if watched.value is None:
                raise BundleError(f"no usable trust bundle at {watched.path}: {watched.last_error}")
        now = time.time()
        for source in self._urls:
            source.fetch(now)
        self._rebuild()

    def attach_poller(self, wake: Callable[[], None]) -> None:
        """How `unknown_key_seen` makes the poller look at once."""
        self._wake_poller = wake

    def unknown_key_seen(self) -> None:
        """A token named a kid or issuer we do not have: poll now, refetch URLs early.
        Called on the request path: it only sets a flag and wakes the poller."""
        self._unknown_key_seen.set()
        self._wake_poller()

    def poll(self, now: float | None = None) -> bool:
        """Called by the background poller: files every tick, URLs when due (or early,
        rate-limited, after an unknown key). True when the bundle in force changed."""
        now = time.time() if now is None else now
        early = self._unknown_key_seen.is_set()
        self._unknown_key_seen.clear()
        changed = any([watched.poll() for watched in self._files])
        for source in self._urls:
            if source.due(now) or (early and source.may_refetch(now)):
                changed = source.fetch(now) or changed
        return self._rebuild() if changed else False

    def _rebuild(self) -> bool:
        with self._rebuild_lock:
            bundle = EMPTY_BUNDLE
            for watched in self._files:
                if watched.value is not None:
                    bundle = bundle.merged_with(watched.value)
            for source in self._urls:
                bundle = bundle.merged_with(source.bundle)
            if bundle != self.verifier.bundle:
                for result, count in self.cache_totals().items():
                    self._retired[result] = count
                self.verifier = Verifier(bundle, self.settings)
                self.changed_at = time.time()
                log.info(
                    "trust bundle in force: %d issuers, %d keys",
                    len(bundle.issuers),
                    bundle.key_count(),
                )
                return True
            return False
