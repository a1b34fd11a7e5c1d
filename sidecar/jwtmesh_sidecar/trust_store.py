"""Where the sidecar's trust comes from: bundle files, bundle directories (the sharded
bundle, bundle_dir.py) and JWKS URLs, merged into one Verifier.

Each source keeps its last good content. A new merged bundle builds a new Verifier
(and so drops the verified-token cache). The poller thread reads the files; each JWKS URL
has a fetcher thread of its own (jwks_source.py), so a JWKS host that hangs delays nothing
else. A request never waits for a source: an unknown `kid` or issuer is refused at once,
and wakes the poller and every URL's fetcher (which refetches within its rate limit).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from jwtmesh.tokens.trust import EMPTY_BUNDLE, BundleError, parse_bundle
from jwtmesh.tokens.verify import Verifier, VerifierSettings
from jwtmesh_sidecar.bundle_dir import BundleDirectory
from jwtmesh_sidecar.jwks_source import JwksUrl, UrlSource
from jwtmesh_sidecar.watch import LoadOutcome, WatchedFile

__all__ = ["JwksUrl", "TrustStore"]
log = logging.getLogger("jwtmesh.trust")
INITIAL_FETCH_WAIT = 2.0  # seconds start-up gives the JWKS URLs' first fetches, in all


class TrustStore:
    """The current Verifier, rebuilt whenever any trust source changes."""

    def __init__(
        self,
        files: list[Path],
        urls: list[JwksUrl],
        settings: VerifierSettings,
        on_outcome: Callable[[LoadOutcome], None] = lambda _: None,
        directories: list[Path] | None = None,
    ) -> None:
        self.settings = settings
        self._files = [WatchedFile(path, parse_bundle, on_outcome) for path in files]
        self._dirs = [BundleDirectory(path, on_outcome) for path in directories or []]
        self._urls = [UrlSource(spec, on_outcome, self._rebuild) for spec in urls]
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
        """Read every file once, refusing to start if a bundle file has no good version or a
        bundle directory does not exist (one that holds nothing usable yet is waited for,
        unready: bundle_dir.py); start every URL's fetcher and give their first fetches (in
        parallel) up to INITIAL_FETCH_WAIT. A URL that fails or hangs never stops start-up:
        until fetched, its issuer's tokens are refused, and its fetcher keeps trying with
        backoff."""
        for watched in self._files:
            watched.poll(force=True)
            if watched.value is None:
                raise BundleError(f"no usable trust bundle at {watched.path}: {watched.last_error}")
        for directory in self._dirs:
            if not directory.path.is_dir():
                raise BundleError(f"no trust bundle directory at {directory.path}")
            directory.poll(force=True)
        self._rebuild()
        for source in self._urls:
            source.start()
        deadline = time.monotonic() + INITIAL_FETCH_WAIT
        for source in self._urls:
            source.first_attempt_done.wait(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Stop the URL fetchers (they are daemon threads; this is for orderly shutdowns)."""
        for source in self._urls:
            source.stop()

    def attach_poller(self, wake: Callable[[], None]) -> None:
        """How `unknown_key_seen` makes the poller look at once."""
        self._wake_poller = wake

    def unknown_key_seen(self) -> None:
        """A token named a kid or issuer we do not have: look at the files now, refetch
        URLs early (each within its rate limit). Called on the request path: it only sets
        flags and wakes threads."""
        self._wake_poller()
        for source in self._urls:
            source.request_refetch()

    def poll(self) -> bool:
        """Called by the background poller: re-read changed files. URLs are not read here
        (their fetchers rebuild when they change). True when the bundle in force changed."""
        changed = any([watched.poll() for watched in self._files])
        changed = any([directory.poll() for directory in self._dirs]) or changed
        return self._rebuild() if changed else False

    def _rebuild(self) -> bool:
        with self._rebuild_lock:
            bundle = EMPTY_BUNDLE
            for local in [*(w.value for w in self._files), *(d.value for d in self._dirs)]:
                if local is not None:
                    bundle = bundle.merged_with(local)
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

    def problems(self, now: float, max_stale: float) -> list[str]:
        """Why this store is not fit to verify (empty when it is), for /readyz: a bundle
        file with no good version, a JWKS URL never fetched or not for `max_stale` s."""
        found = [
            f"trust.bundleFiles: no good version of {watched.path}"
            for watched in self._files
            if watched.value is None
        ]
        found += [
            f"trust.bundleDirs: no good version of {directory.path} yet"
            for directory in self._dirs
            if directory.value is None
        ]
        for source in self._urls:
            if source.fetched_at is None:
                found.append(f"trust.jwksUrls: {source.spec.url} not fetched yet")
            elif now - source.fetched_at > max_stale:
                found.append(
                    f"trust.jwksUrls: {source.spec.url} last fetched {now - source.fetched_at:.0f}"
                    f" s ago, more than maxStaleSeconds ({max_stale:g})"
                )
        return found
