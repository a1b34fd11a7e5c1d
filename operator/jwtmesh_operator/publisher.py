"""Publishes the trust bundle into every namespace that needs it.

Requests are coalesced: any number of changes within the debounce window cause one
render and one write per namespace, and under a burst (a rotation sweep) the window
stretches to the time the last publish took (at most MAX_WAIT_FOR_WRITES) and to three
times the event loop's time it took to render (at most MAX_WAIT_FOR_RENDER), so
publishing does not crowd out reconciling: at 10,000 identities a render (over every
issuer) costs ~0.5 s of the loop, and waiting only as long as the last publish took, the
publisher had half the operator's CPU during a sweep.

Publishes also keep to a write budget (write_budget.py: `write_rate` bytes a second on
average, `write_burst` at once): each copy of a shard is up to 768 KiB in every namespace,
so while thousands of identities are created or rotated
(every shard changing) unbudgeted publishes wrote gigabytes within minutes, more than etcd
keeps between two compactions (the API server compacts every 5 minutes; etcd's default
quota is 2 GiB, and past it every write in the cluster fails). Once the burst is spent, a
publish that wrote W bytes delays the next by W / write_rate, so under sustained writing a
key's way into every bundle takes up to about two full publishes' budget (docs/scaling.md:
prePublish must cover it).

The bundle is rendered once per publish (rendering.py: only what changed is rendered
again) and written as shards, a manifest and, while it fits one ConfigMap, the
single-object form (bundle_writer.py). Over its capacity nothing is written: the bundle
in force stays, and every identity says so (BundleOverLimit). Each publish is told to the
publication ledger (publication.py), so that no key signs before a written bundle has it.

Every bundle object is owned by the ServiceIdentity CRD (`set_owner`): no one identity owns
it, and it must outlive `helm uninstall` (which keeps CRDs and identities, whose Pods still
mount it), but removing the CRDs removes every bundle with them (garbage collection).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from jwtmesh.shards import SHARD_LIMIT
from jwtmesh.tokens.trust import TrustBundle
from jwtmesh_operator.bundle_writer import BundleWriter
from jwtmesh_operator.bundles import build_bundle
from jwtmesh_operator.kube import Kube
from jwtmesh_operator.publication import Deferral, Key, PublicationLedger
from jwtmesh_operator.rendering import BundleRenderer, Rendered
from jwtmesh_operator.sources import BundleSources
from jwtmesh_operator.write_budget import WRITE_BURST, WRITE_RATE, WriteBudget

log = logging.getLogger("jwtmesh.operator.publisher")
# Under a burst, how long the next publish waits (seconds): at least as long as the last
# one took, up to MAX_WAIT_FOR_WRITES; at least RENDER_SHARE times its render, up to
# MAX_WAIT_FOR_RENDER (so rendering takes at most a quarter of the loop).
MAX_WAIT_FOR_WRITES = 1.0
RENDER_SHARE = 3.0
MAX_WAIT_FOR_RENDER = 5.0


class BundlePublisher:
    def __init__(
        self,
        kube: Kube,
        name: str,
        clock: Callable[[], float],
        debounce: float = 0.2,
        shard_limit: int = SHARD_LIMIT,
        write_rate: float = WRITE_RATE,
        write_burst: float = WRITE_BURST,
    ) -> None:
        self._clock = clock
        self._debounce = debounce
        self._dirty = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._sources: Callable[[], BundleSources] | None = None
        self._renderer = BundleRenderer(shard_limit=shard_limit)
        self._writer = BundleWriter(kube, name)
        self._count = 0  # shards in use (0: not known yet); grows, never shrinks
        self._publishing = False
        self._budget = WriteBudget(write_rate, write_burst)
        self._render_seconds = 0.0  # the event loop's time the last publish took
        self.last: Rendered | None = None
        self.publishes = 0
        self.on_size: Callable[[Rendered], None] = lambda _: None
        self.publication = PublicationLedger()
        # Reconciles these identities soon (the scheduler's): a publish changed what they may sign.
        self.wake: Callable[[Iterable[Key]], None] = lambda _: None
        # Moves on the wake-ups that only checked their keys were written (the scheduler's).
        self.defer: Callable[[Iterable[tuple[Key, Deferral]]], None] = lambda _: None
        # Set while this replica acts (holds the Lease); a standing-by replica never writes.
        self.acting: asyncio.Event | None = None

    def set_owner(self, owner: dict[str, Any] | None) -> None:
        """The bundles' ownerReference (the ServiceIdentity CRD); None: written without one."""
        self._writer.owner = owner

    def request(self, sources: Callable[[], BundleSources]) -> None:
        """Ask for a publish soon. Only an acting (not standing-by) operator calls this."""
        self._sources = sources
        self._dirty.set()
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="bundle-publisher"
            )

    @property
    def pending(self) -> bool:
        """A publish is asked for and not yet written, or being written."""
        return self._dirty.is_set() or self._publishing

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    @property
    def bytes_written(self) -> int:
        return self._writer.bytes_written

    async def _run(self) -> None:
        took = 0.0
        while True:
            await self._dirty.wait()
            if self.acting is not None:
                # A standing-by replica never writes. When it takes over, objects written
                # by the former holder have versions it did not write: it reads the
                # manifests it does not know and rewrites what differs (bundle_writer.py).
                await self.acting.wait()
            # Stretched by the last publish (module docstring), capped well below any
            # sensible pre-publication time: a new key must still reach the bundles
            # promptly; and not before the write budget allows.
            rendering = RENDER_SHARE * self._render_seconds
            await asyncio.sleep(
                max(
                    self._debounce,
                    min(took, MAX_WAIT_FOR_WRITES),
                    min(rendering, MAX_WAIT_FOR_RENDER),
                )
            )
            await asyncio.sleep(self._budget.wait(time.monotonic()))
            self._dirty.clear()
            started = time.monotonic()
            written = self._writer.bytes_written
            self._publishing = True
            try:
                await self.publish_once()
            except Exception:
                log.exception("publishing the trust bundle failed; retrying")
                await asyncio.sleep(1.0)
                self._dirty.set()
            finally:
                self._publishing = False
            took = time.monotonic() - started
            self._budget.spend(self._writer.bytes_written - written, time.monotonic())

    async def publish_once(self) -> None:
        assert self._sources is not None
        started = time.perf_counter()
        sources = self._sources()
        namespaces = sorted(sources.namespaces)
        rendering = time.perf_counter() - started
        await self._writer.learn(namespaces)
        started = time.perf_counter()
        bundle = build_bundle(sources.published, sources.revocations, self._clock(), sources.meshes)
        previous = max(self._count, self._writer.carried_count())
        rendered = self._renderer.render(bundle, previous)
        self._render_seconds = rendering + time.perf_counter() - started
        self._report(rendered)
        if rendered.over_limit:
            if self.publication.refused():
                self.wake(sources.identities.keys())
            return
        self._count = rendered.count
        first = not self.publication.written_once
        in_force = self.in_force(bundle, rendered, namespaces) if first else set()
        await asyncio.gather(*(self._writer.write(ns, rendered) for ns in namespaces))
        self.publishes += 1
        kids = (kid for trust in bundle.issuers.values() for kid in trust.keys)
        arrivals = self.publication.written(kids, self._clock(), in_force)
        self.wake(arrivals.woken)
        self.defer(arrivals.settled)

    def in_force(self, bundle: TrustBundle, rendered: Rendered, namespaces: list[str]) -> set[str]:
        """Before this process first writes: the kids of each shard every namespace's
        bundle already has as rendered now (its manifests, read by `learn`, name it). A
        key made just before a restart, whose bundle was not written, is not among them."""
        return {
            kid
            for index, shard_digest in enumerate(rendered.digests)
            if self._writer.named_everywhere(namespaces, shard_digest)
            for issuer in rendered.issuers[index]
            for kid in bundle.issuers[issuer].keys
        }

    def _report(self, rendered: Rendered) -> None:
        last, self.last = self.last, rendered
        self.on_size(rendered)
        if rendered.over_limit:
            log.error(
                "trust bundle is %d bytes, over its capacity (%d shards of at most %d bytes): "
                "not written",
                rendered.total_bytes,
                self._renderer.max_shards,
                self._renderer.shard_limit,
                extra={"event": "bundle_over_limit"},
            )
        elif rendered.single_frozen and (last is None or not last.single_frozen):
            log.warning(
                "trust bundle is %d bytes, too big for one ConfigMap: the single-object form "
                "(read by Pods injected before sharded bundles) is no longer updated; restart "
                "those Pods (docs/scaling.md)",
                rendered.total_bytes,
                extra={"event": "single_bundle_frozen"},
            )
        if last is None or last.count != rendered.count:
            log.info(
                "trust bundle: %d bytes in %d shards",
                rendered.total_bytes,
                rendered.count,
                extra={"event": "bundle_shards"},
            )
