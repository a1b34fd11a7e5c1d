"""A mounted trust-bundle directory: the sharded bundle (`manifest.json` and
`shard-<i>.json`), or the single-object `bundle.json` where there has never been a
manifest. Once a manifest was read, a missing one is a missing file (reported, the last
good one kept): `bundle.json` stops being updated once the bundle outgrows one ConfigMap,
and falling back to it would bring back keys removed since.

The kubelet writes a projected volume as a whole (a new `..<timestamp>` directory, then
the `..data` symlink swap), so one read resolves `..data` once and reads every file from
that version. What the read means is `shard_merge.merge`'s decision. Each shard keeps its
last good parse (by digest: an unchanged shard is not parsed again) and the keys it
loaded (`KeyCache`: a changed shard loads only its new keys). A file that fails to parse
is reported (`jwtmesh_reloads_total{source="bundle",result="error"}`) and its last good
version stays.

A directory that exists but holds nothing usable yet (a Pod started before the operator's
first publish) is waited for: the sidecar starts unready and refuses every token until it
is there. A directory that does not exist stops start-up (a wrong path).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from jwtmesh.shards import (
    LEGACY_FILE,
    MANIFEST_FILE,
    Manifest,
    digest,
    parse_manifest,
    shard_file,
    shard_index,
)
from jwtmesh.tokens.trust import BundleError, KeyCache, TrustBundle, parse_bundle
from jwtmesh_sidecar.shard_merge import Shard, merge
from jwtmesh_sidecar.watch import LoadOutcome

log = logging.getLogger("jwtmesh.trust")
DATA_LINK = "..data"
READ_ATTEMPTS = 3  # a version removed while we read it: read the new one


def _wanted(name: str) -> bool:
    return name in (MANIFEST_FILE, LEGACY_FILE) or shard_index(name) is not None


def read_snapshot(root: Path) -> dict[str, bytes]:
    """The bundle files of one version of the volume (name → bytes)."""
    for _attempt in range(READ_ATTEMPTS):
        base = root
        if (root / DATA_LINK).is_symlink():
            base = root / os.readlink(root / DATA_LINK)
        try:
            return {name: (base / name).read_bytes() for name in os.listdir(base) if _wanted(name)}
        except FileNotFoundError:
            continue  # the kubelet replaced that version meanwhile
    raise OSError(f"{root} kept changing while it was read")


def _signature(root: Path) -> object:
    """Changes whenever the volume does: the `..data` target, else each file's stat."""
    try:
        if (root / DATA_LINK).is_symlink():
            return os.readlink(root / DATA_LINK)
        found = []
        for name in sorted(filter(_wanted, os.listdir(root))):
            st = os.stat(root / name)
            found.append((name, st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(found)
    except OSError:
        return None


class BundleDirectory:
    """Holds the bundle in force from one mounted directory; `poll()` re-reads it."""

    def __init__(self, path: Path, on_outcome: Callable[[LoadOutcome], None] | None = None):
        self.path = path
        self._on_outcome = on_outcome
        self._lock = threading.Lock()
        self._seen: object = None
        self._manifest: Manifest | None = None  # the last good manifest
        self._shards: dict[int, Shard] = {}  # the last good version of each shard
        self._caches: dict[int, KeyCache] = {}
        self._single: Shard | None = None  # the last good bundle.json
        self._single_cache = KeyCache()
        self._sharded = False  # a manifest was seen: bundle.json is never read again
        # Shards past the count of the last consistent set, as they were then: stale
        # leftovers, not counted until they change (growth) or a manifest names them.
        self._retired: dict[int, str] = {}
        self._in_force: TrustBundle | None = None  # what the last sharded read put in force
        self.value: TrustBundle | None = None
        self.consistent = False
        self.loaded_at: float | None = None
        self.last_error: str | None = None

    def poll(self, force: bool = False) -> bool:
        """Re-read if the volume changed (or if forced). True when the bundle in force changed."""
        with self._lock:
            signature = _signature(self.path)
            if not force and signature == self._seen:
                return False
            self._seen = signature
            errors: list[str] = []
            try:
                files = read_snapshot(self.path)
            except OSError as exc:
                errors.append(str(exc))
                files = {}
            value = self._take(files, errors) if files or not errors else self.value
            return self._settle(value, errors)

    def _take(self, files: dict[str, bytes], errors: list[str]) -> TrustBundle | None:
        manifest = files.get(MANIFEST_FILE)
        if manifest is None and not self._sharded:
            return self._take_single(files.get(LEGACY_FILE), errors)
        if manifest is None:
            # Missing like a shard, not a roll-back: bundle.json may be frozen and stale.
            errors.append(f"{MANIFEST_FILE} is missing; keeping the last good one")
        else:
            self._sharded = True
            try:
                self._manifest = parse_manifest(manifest)
            except BundleError as exc:
                errors.append(f"{MANIFEST_FILE}: {exc}")
        for name, data in files.items():
            index = shard_index(name)
            if index is not None:
                self._take_shard(index, data, errors)
        if self._manifest is None:
            return self.value
        merged = merge(self._manifest, self._shards, self._in_force)
        self._in_force = merged.bundle
        if merged.consistent:
            # Shards the manifest does not name are not kept (their keys are gone).
            count = self._manifest.count
            past = [i for i in self._shards if i >= count]
            self._retired = {i: d for i, d in self._retired.items() if i >= count}
            self._retired.update((i, self._shards[i].digest) for i in past)
            for index in past:
                del self._shards[index]
                self._caches.pop(index, None)
        if merged.consistent != self.consistent:
            log.info(
                "trust bundle generation %d: %s",
                self._manifest.generation,
                "consistent" if merged.consistent else "half-updated, keeping the last good keys",
                extra={"event": "bundle_generation", "path": str(self.path)},
            )
        self.consistent = merged.consistent
        return merged.bundle

    def _take_shard(self, index: int, data: bytes, errors: list[str]) -> None:
        seen = self._shards.get(index)
        wanted = digest(data)
        if seen is not None and seen.digest == wanted:
            return
        named = self._manifest is not None and index < self._manifest.count
        if not named and self._retired.get(index) == wanted:
            return
        try:
            bundle = parse_bundle(data, self._caches.setdefault(index, KeyCache()))
        except BundleError as exc:
            errors.append(f"{shard_file(index)}: {exc}")
            return
        self._shards[index] = Shard(wanted, bundle)

    def _take_single(self, data: bytes | None, errors: list[str]) -> TrustBundle | None:
        """No manifest ever: the single-object form (an operator without shards wrote it)."""
        self.consistent = False
        if data is None:
            errors.append(f"neither {MANIFEST_FILE} nor {LEGACY_FILE} is there")
            return self.value
        if self._single is None or self._single.digest != digest(data):
            try:
                self._single = Shard(digest(data), parse_bundle(data, self._single_cache))
            except BundleError as exc:
                errors.append(f"{LEGACY_FILE}: {exc}")
                return self.value
        return self._single.bundle

    def _settle(self, value: TrustBundle | None, errors: list[str]) -> bool:
        changed = value is not None and value != self.value
        if value is not None:
            self.value = value
            self.loaded_at = time.time()
        self.last_error = "; ".join(errors) or None
        if errors:
            log.warning(
                "%s %s: %s",
                "keeping the last good parts of"
                if self.value is not None
                else "no good version of",
                self.path,
                self.last_error,
                extra={
                    "event": "reload_failed" if self.value is not None else "load_failed",
                    "path": str(self.path),
                },
            )
        if self._on_outcome is not None:
            self._on_outcome(LoadOutcome(str(self.path), not errors, self.last_error))
        return changed
