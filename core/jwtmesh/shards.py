"""The sharded trust bundle: the files the operator publishes and the sidecar reads.

One bundle document (`jwtmesh.tokens.trust`) no longer has to fit one ConfigMap: the
issuers are spread over up to MAX_SHARDS shard documents (`shard-<i>.json`, each a whole
bundle document holding some of the issuers, each issuer in exactly one shard), and a
small manifest (`manifest.json`) names the set: a generation and each shard's SHA-256.
A Pod mounts them together in one projected volume (with `bundle.json`, the single-object
form, when it is still published). A reader that finds every shard's digest equal to the
manifest's has a consistent set; anything else is a set the kubelet or the operator is
half-way through updating (`docs/formats.md`, "Sharded trust bundle").

This module is the one home of that format: the file names, the limits, the manifest.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from jwtmesh.tokens.trust import BundleError

MANIFEST_FILE = "manifest.json"
LEGACY_FILE = "bundle.json"  # the single-object bundle, as Pods injected before shards read it
MANIFEST_VERSION = 1
# Shard sources every Pod mounts (optional ones: a shard not published yet is simply
# absent). Fixed at admission, so it caps the trust domain: MAX_SHARDS * SHARD_LIMIT.
MAX_SHARDS = 16
# Each shard stays well under etcd's 1 MiB object limit (room for metadata and growth
# between two publishes).
SHARD_LIMIT = 768 * 1024
_DIGEST_HEX = 64


class ManifestError(BundleError):
    """The manifest is unusable; the last good one must be kept."""


def shard_file(index: int) -> str:
    """The file (and ConfigMap key) of shard `index`."""
    return f"shard-{index}.json"


def shard_index(name: str) -> int | None:
    """The index of a shard file name, or None for any other name."""
    if not (name.startswith("shard-") and name.endswith(".json")):
        return None
    middle = name[len("shard-") : -len(".json")]
    if not middle.isdigit() or str(int(middle)) != middle or int(middle) >= MAX_SHARDS:
        return None
    return int(middle)


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """Which shards form the bundle: shard i is `shard_file(i)` with SHA-256 `digests[i]`.
    `generation` grows by one with every manifest the operator writes (for people and
    logs: consistency is decided by the digests)."""

    generation: int
    digests: tuple[str, ...]

    @property
    def count(self) -> int:
        return len(self.digests)


def render_manifest(manifest: Manifest) -> bytes:
    document = {
        "generation": manifest.generation,
        "shards": list(manifest.digests),
        "version": MANIFEST_VERSION,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def parse_manifest(data: bytes) -> Manifest:
    try:
        document: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ManifestError(f"the bundle manifest is not valid JSON: {exc}") from None
    if not isinstance(document, dict) or document.get("version") != MANIFEST_VERSION:
        raise ManifestError(
            f"the bundle manifest must be an object with version {MANIFEST_VERSION}"
        )
    generation, shards = document.get("generation"), document.get("shards")
    if isinstance(generation, bool) or not isinstance(generation, int) or generation < 0:
        raise ManifestError("the bundle manifest's generation must be a non-negative integer")
    if not isinstance(shards, list) or not 1 <= len(shards) <= MAX_SHARDS:
        raise ManifestError(f"the bundle manifest must list 1 to {MAX_SHARDS} shards")
    for value in shards:
        if not isinstance(value, str) or len(value) != _DIGEST_HEX or not _is_hex(value):
            raise ManifestError("each shard of the bundle manifest is a SHA-256 in hex")
    return Manifest(generation, tuple(shards))


def _is_hex(value: str) -> bool:
    return all(c in "0123456789abcdef" for c in value)
