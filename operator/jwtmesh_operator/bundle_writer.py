"""Writes one rendered bundle into one namespace: the shards, the manifest, the
single-object form. The I/O shell around `shard_plan.write_phases`.

Per namespace and publish: one metadata-only LIST of the bundle's ConfigMaps (their
resourceVersions), then a write for each object whose content or version is not the one
our last write left. An object nobody touched since our write is neither read nor
written, so a publish after one identity changed writes one shard and the manifest (and
the single-object form while it is published). An object someone else changed (a hand
edit, a deletion, another replica) has another version: it is written again, carrying
the version just listed (optimistic concurrency: a conflict re-reads and retries).

Order, for "no key is lost": shards that gain issuers moved by growth first, then the
other changed shards, then the manifest naming them all; readers treat anything between
as a half-updated set (docs/formats.md).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from jwtmesh.cluster import BUNDLE_KEY, BUNDLE_OBJECT_LABEL, manifest_configmap, shard_configmap
from jwtmesh.shards import (
    MANIFEST_FILE,
    Manifest,
    ManifestError,
    digest,
    parse_manifest,
    render_manifest,
    shard_file,
)
from jwtmesh_operator.kube import Conflict, Kube
from jwtmesh_operator.rendering import Rendered
from jwtmesh_operator.shard_plan import write_phases

log = logging.getLogger("jwtmesh.operator.publisher")
LABELS = {BUNDLE_OBJECT_LABEL: "true"}
SELECTOR = f"{BUNDLE_OBJECT_LABEL}=true"
MAX_ATTEMPTS = 10
# Shard writes in flight at once, over every namespace. Each holds its shard (up to
# 768 KiB) as text, then as the JSON body, then as the bytes sent: with every namespace's
# shards written at once (50 at 10,000 identities in 10 namespaces) a publish added ~50 MiB
# to the operator's RSS for a moment, its peak. The API server takes them no faster.
WRITES_AT_ONCE = 4


@dataclass(frozen=True)
class _Written:
    """What our last write of one object stored, and the resourceVersion it got."""

    resource_version: str
    digest: str


class BundleWriter:
    def __init__(self, kube: Kube, bundle_name: str) -> None:
        self._kube = kube
        self._name = bundle_name
        self._written: dict[tuple[str, str], _Written] = {}
        # The ownerReference every object is written with (the ServiceIdentity CRD).
        self.owner: dict[str, Any] | None = None
        # What each namespace's manifest says (None: it has none), as last read or written.
        self._manifests: dict[str, Manifest | None] = {}
        self.bytes_written = 0  # the data of every object written, for the write budget
        self._slots = asyncio.Semaphore(WRITES_AT_ONCE)

    def carried_count(self) -> int:
        """The shard count to carry on from (0: none known): the lower middle of what the
        namespaces' manifests name, not the largest. A manifest is a ConfigMap in a
        tenant's namespace, which that tenant may edit: one forged count of 16 must not
        re-shard every namespace of the trust domain."""
        counts = sorted(m.count for m in self._manifests.values() if m is not None)
        return counts[(len(counts) - 1) // 2] if counts else 0

    def named_everywhere(self, namespaces: list[str], shard_digest: str) -> bool:
        """Every namespace's manifest, as last read or written, names this shard: the
        bundle in force has it everywhere. A tenant editing its own manifest can only make
        this False (its keys are then taken as published now: later, never sooner)."""
        manifests = [self._manifests.get(namespace) for namespace in namespaces]
        return bool(manifests) and all(
            manifest is not None and shard_digest in manifest.digests for manifest in manifests
        )

    async def learn(self, namespaces: list[str]) -> None:
        """Read the manifests of namespaces not seen yet (after a start or a take-over), so
        the shard count carries on from what was published."""
        unknown = [namespace for namespace in namespaces if namespace not in self._manifests]
        await asyncio.gather(*(self._read_manifest(namespace) for namespace in unknown))

    async def write(self, namespace: str, rendered: Rendered) -> None:
        versions = await self._kube.configmap_versions(namespace, SELECTOR)
        manifest_name = manifest_configmap(self._name)
        if not self._untouched(namespace, manifest_name, versions):
            await self._read_manifest(namespace)
        old = self._manifests.get(namespace)
        changed = [
            index
            for index, wanted in enumerate(rendered.digests)
            if not self._current(namespace, shard_configmap(self._name, index), wanted, versions)
        ]
        for phase in write_phases(old.count if old is not None else 0, changed):
            await asyncio.gather(
                *(
                    self._put(
                        namespace,
                        shard_configmap(self._name, index),
                        shard_file(index),
                        rendered.shards[index],
                        versions,
                    )
                    for index in phase
                )
            )
        if old is None or old.digests != rendered.digests:
            manifest = Manifest((old.generation if old is not None else 0) + 1, rendered.digests)
            await self._put(
                namespace, manifest_name, MANIFEST_FILE, render_manifest(manifest), versions
            )
            self._manifests[namespace] = manifest
        if rendered.single is not None:
            await self._put(namespace, self._name, BUNDLE_KEY, rendered.single, versions)

    def _untouched(self, namespace: str, name: str, versions: dict[str, str]) -> bool:
        ours = self._written.get((namespace, name))
        return ours is not None and ours.resource_version == versions.get(name)

    def _current(self, namespace: str, name: str, wanted: str, versions: dict[str, str]) -> bool:
        """The object holds `wanted` (by digest) as our last write left it."""
        ours = self._written.get((namespace, name))
        return (
            self._untouched(namespace, name, versions)
            and ours is not None
            and (ours.digest == wanted)
        )

    async def _read_manifest(self, namespace: str) -> None:
        name = manifest_configmap(self._name)
        stored = await self._kube.read_configmap(namespace, name)
        manifest = None
        if stored is not None:
            data = stored.data.get(MANIFEST_FILE, b"")
            try:
                manifest = parse_manifest(data)
            except ManifestError as exc:
                log.warning("%s/%s: rewriting an unusable manifest: %s", namespace, name, exc)
            self._written[(namespace, name)] = _Written(stored.resource_version, digest(data))
        self._manifests[namespace] = manifest

    async def _put(
        self, namespace: str, name: str, key: str, data: bytes, versions: dict[str, str]
    ) -> None:
        """Create or replace one object unless it already holds `data` as we left it."""
        wanted = digest(data)
        if self._current(namespace, name, wanted, versions):
            return
        async with self._slots:
            await self._put_now(namespace, name, key, data, wanted, versions.get(name))

    async def _put_now(
        self, namespace: str, name: str, key: str, data: bytes, wanted: str, version: str | None
    ) -> None:
        for _attempt in range(MAX_ATTEMPTS):
            try:
                written = await self._kube.write_configmap(
                    namespace,
                    name,
                    {key: data.decode()},
                    labels=LABELS,
                    owner=self.owner,
                    resource_version=version,
                )
            except Conflict:
                current = await self._kube.read_configmap(namespace, name)
                if current is not None and current.data.get(key) == data:
                    written = current.resource_version
                else:
                    version = None if current is None else current.resource_version
                    continue
            self._written[(namespace, name)] = _Written(written, wanted)
            self.bytes_written += len(data)
            return
        raise Conflict(f"{namespace}/{name}: too many concurrent writers")
