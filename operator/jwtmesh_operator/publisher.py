"""Writes the trust bundle ConfigMap into every namespace that needs it.

Requests are coalesced: any number of changes within the debounce window cause one
render and one write per namespace, and under a burst (a rotation sweep) the window
stretches to the time the last publish took (at most MAX_STRETCH), so publishing does
not crowd out reconciling. Each write is a replace carrying a resourceVersion
(optimistic concurrency): the one our own last write returned, or one read just before;
on a conflict the namespace is re-read and retried, so no update is lost however many
identities change at once, and a hand-edited bundle is put back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from jwtmesh.cluster import BUNDLE_KEY
from jwtmesh_operator.bundles import RenderedBundle, build_bundle, render_for_configmap
from jwtmesh_operator.kube import Conflict, Kube
from jwtmesh_operator.sources import BundleSources

log = logging.getLogger("jwtmesh.operator.publisher")
MAX_STRETCH = 1.0  # seconds: the longest a burst may delay the next publish


@dataclass(frozen=True)
class _Written:
    """What our last write to a namespace stored, and the resourceVersion it got."""

    resource_version: str
    data: bytes


class BundlePublisher:
    def __init__(
        self,
        kube: Kube,
        name: str,
        clock: Callable[[], float],
        debounce: float = 0.2,
    ) -> None:
        self._kube = kube
        self._name = name
        self._clock = clock
        self._debounce = debounce
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sources: Callable[[], BundleSources] | None = None
        self.last: RenderedBundle | None = None
        self.publishes = 0
        self.on_size: Callable[[RenderedBundle], None] = lambda _: None
        self._written: dict[str, _Written] = {}
        # Set while this replica acts (holds the Lease); a standing-by replica never writes.
        self.acting: asyncio.Event | None = None

    def request(self, sources: Callable[[], BundleSources]) -> None:
        """Ask for a publish soon. Only an acting (not standing-by) operator calls this."""
        self._sources = sources
        self._dirty.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="bundle-publisher"
            )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        took = 0.0
        while True:
            await self._dirty.wait()
            if self.acting is not None:
                # A standing-by replica never writes. When it takes over, a bundle written
                # by the former holder makes its remembered versions stale: the write
                # conflicts, and the namespace is re-read (see _write).
                await self.acting.wait()
            # Stretched by the last publish's duration, capped well below any sensible
            # pre-publication time: a new key must still reach the bundles promptly.
            await asyncio.sleep(max(self._debounce, min(took, MAX_STRETCH)))
            self._dirty.clear()
            started = time.monotonic()
            try:
                await self.publish_once()
            except Exception:
                log.exception("publishing the trust bundle failed; retrying")
                await asyncio.sleep(1.0)
                self._dirty.set()
            took = time.monotonic() - started

    async def publish_once(self) -> None:
        assert self._sources is not None
        sources = self._sources()
        bundle = build_bundle(sources.published, sources.revocations, self._clock(), sources.meshes)
        rendered = render_for_configmap(bundle)
        self.last = rendered
        self.on_size(rendered)
        if rendered.over_limit:
            log.error(
                "trust bundle is %d bytes, over the ConfigMap limit: not written",
                len(rendered.data),
            )
            return
        await asyncio.gather(*(self._write(ns, rendered.data) for ns in sorted(sources.namespaces)))
        self.publishes += 1

    async def _write(self, namespace: str, data: bytes) -> None:
        text = data.decode()
        ours = self._written.get(namespace)
        for _attempt in range(10):
            if ours is not None and ours.data != data:
                # A change to write: no need to read first. If anyone else wrote since our
                # last write, the resourceVersion no longer matches and we re-read below.
                version: str | None = ours.resource_version
            else:
                # Nothing new from us (or nothing known): read, to put back a hand edit.
                current = await self._kube.read_configmap(namespace, self._name)
                if current is not None and current.data.get(BUNDLE_KEY) == data:
                    self._written[namespace] = _Written(current.resource_version, data)
                    return
                version = None if current is None else current.resource_version
            try:
                written = await self._kube.write_configmap(
                    namespace,
                    self._name,
                    {BUNDLE_KEY: text},
                    labels={"jwtmesh.io/trust-bundle": "true"},
                    owner=None,
                    resource_version=version,
                )
            except Conflict:
                ours = None
                continue
            self._written[namespace] = _Written(written, data)
            return
        raise Conflict(f"{namespace}/{self._name}: too many concurrent writers")
