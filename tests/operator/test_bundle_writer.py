"""The bundle writer against an in-memory API server: what is written, in which order,
and what is left alone."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from jwtmesh.shards import Manifest, parse_manifest
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh.tokens.trust import IssuerTrust, TrustBundle, parse_bundle
from jwtmesh_operator.bundle_writer import WRITES_AT_ONCE, BundleWriter
from jwtmesh_operator.kube import Conflict, Stored
from jwtmesh_operator.publication import CARRIED
from jwtmesh_operator.publisher import BundlePublisher
from jwtmesh_operator.rendering import BundleRenderer, Rendered
from jwtmesh_operator.sources import BundleSources

NS = "shop"
KEYS = [generate_signing_key().public for _ in range(2 * 160)]


class FakeApi:
    """ConfigMaps of one namespace with resourceVersions, as the API server keeps them:
    a replace must carry the current version, a create must not find the object, and an
    update that changes nothing keeps the version."""

    def __init__(self) -> None:
        self.objects: dict[str, tuple[int, dict[str, str]]] = {}
        self.version = 0
        self.writes: list[str] = []
        self.reads: list[str] = []
        self.before_write: Any = None

    async def configmap_versions(self, namespace: str, label_selector: str) -> dict[str, str]:
        assert (namespace, label_selector) == (NS, "jwtmesh.io/trust-bundle=true")
        return {name: str(rv) for name, (rv, _) in self.objects.items()}

    async def read_configmap(self, namespace: str, name: str) -> Stored | None:
        self.reads.append(name)
        if name not in self.objects:
            return None
        rv, data = self.objects[name]
        return Stored({k: v.encode() for k, v in data.items()}, str(rv), {}, name)

    async def write_configmap(
        self, namespace: str, name: str, data: dict[str, str], **kwargs: Any
    ) -> str:
        if self.before_write is not None:
            hook, self.before_write = self.before_write, None
            hook()
        version = kwargs["resource_version"]
        current = self.objects.get(name)
        if (version is None) != (current is None) or (
            current is not None and str(current[0]) != version
        ):
            raise Conflict(name)
        if current is not None and current[1] == data:
            return str(current[0])
        self.version += 1
        self.objects[name] = (self.version, dict(data))
        self.writes.append(name)
        return str(self.version)

    def edit(self, name: str, data: dict[str, str]) -> None:
        self.version += 1
        self.objects[name] = (self.version, data)


def bundle(count: int, rotated: int | None = None) -> TrustBundle:
    issuers = {}
    for i in range(count):
        keys = KEYS[2 * i : 2 * i + 2]
        if i == rotated:
            keys = [*keys, KEYS[-1]]
        issuers[f"https://d/ns/shop/svc-{i}"] = IssuerTrust({k.kid: k for k in keys})
    return TrustBundle(issuers)


def publish(writer: BundleWriter, rendered: Rendered) -> None:
    asyncio.run(writer.write(NS, rendered))


def shard_names(api: FakeApi) -> list[str]:
    return [name for name in api.writes if name[-1].isdigit()]


def test_a_first_publish_writes_every_shard_then_the_manifest_then_the_single_form() -> None:
    api, renderer = FakeApi(), BundleRenderer(shard_limit=6_000)
    writer = BundleWriter(api, "tb")  # type: ignore[arg-type]
    rendered = renderer.render(bundle(40), 0)
    publish(writer, rendered)
    assert rendered.count > 1
    assert sorted(shard_names(api)) == sorted(f"tb-{i}" for i in range(rendered.count))
    assert api.writes[-2:] == ["tb-manifest", "tb"]
    manifest = parse_manifest(api.objects["tb-manifest"][1]["manifest.json"].encode())
    assert (manifest.generation, manifest.digests) == (1, rendered.digests)
    assert parse_bundle(api.objects["tb"][1]["bundle.json"].encode()) == bundle(40)


def test_one_changed_identity_writes_one_shard_and_the_manifest_and_reads_nothing() -> None:
    api, renderer = FakeApi(), BundleRenderer(shard_limit=6_000)
    writer = BundleWriter(api, "tb")  # type: ignore[arg-type]
    first = renderer.render(bundle(40), 0)
    publish(writer, first)
    api.writes.clear()
    api.reads.clear()
    second = renderer.render(bundle(40, rotated=5), first.count)
    publish(writer, second)
    assert len(shard_names(api)) == 1
    assert api.writes[1:] == ["tb-manifest", "tb"]
    assert api.reads == [], "objects nobody touched since our write are not read"
    manifest = parse_manifest(api.objects["tb-manifest"][1]["manifest.json"].encode())
    assert manifest.generation == 2


def test_nothing_changed_nothing_written() -> None:
    api, renderer = FakeApi(), BundleRenderer(shard_limit=6_000)
    writer = BundleWriter(api, "tb")  # type: ignore[arg-type]
    publish(writer, renderer.render(bundle(40), 0))
    api.writes.clear()
    publish(writer, renderer.render(bundle(40), 0))
    assert api.writes == []


def test_growth_writes_the_new_shards_before_the_old_ones_lose_their_issuers() -> None:
    api, renderer = FakeApi(), BundleRenderer(shard_limit=6_000)
    writer = BundleWriter(api, "tb")  # type: ignore[arg-type]
    small = renderer.render(bundle(40), 0)
    publish(writer, small)
    api.writes.clear()
    large = renderer.render(bundle(100), small.count)
    assert large.count > small.count
    publish(writer, large)
    indexes = [int(name.rsplit("-", 1)[1]) for name in shard_names(api)]
    new = [i for i in indexes if i >= small.count]
    assert sorted(new) == list(range(small.count, large.count))
    assert indexes[: len(new)] == new, "every new shard before any old one"
    assert api.writes[len(indexes)] == "tb-manifest"


def test_a_hand_edited_or_deleted_shard_is_written_again() -> None:
    api, renderer = FakeApi(), BundleRenderer(shard_limit=6_000)
    writer = BundleWriter(api, "tb")  # type: ignore[arg-type]
    rendered = renderer.render(bundle(40), 0)
    publish(writer, rendered)
    api.edit("tb-1", {"shard-1.json": json.dumps({"version": 1, "issuers": {}})})
    del api.objects["tb-0"]
    api.writes.clear()
    publish(writer, renderer.render(bundle(40), 0))
    assert sorted(api.writes) == ["tb-0", "tb-1"], "put back; the manifest was right already"
    assert api.objects["tb-1"][1]["shard-1.json"].encode() == rendered.shards[1]


def test_a_concurrent_write_is_met_by_reading_again() -> None:
    api, renderer = FakeApi(), BundleRenderer(shard_limit=6_000)
    writer = BundleWriter(api, "tb")  # type: ignore[arg-type]
    first = renderer.render(bundle(40), 0)
    publish(writer, first)
    second = renderer.render(bundle(40, rotated=5), first.count)
    changed = next(i for i in range(second.count) if second.digests[i] != first.digests[i])
    api.before_write = lambda: api.edit(f"tb-{changed}", {"x": "someone else"})
    publish(writer, second)
    assert api.objects[f"tb-{changed}"][1] == {
        f"shard-{changed}.json": second.shards[changed].decode()
    }


def test_a_restarted_writer_carries_on_the_count_and_the_generation() -> None:
    api, renderer = FakeApi(), BundleRenderer(shard_limit=6_000)
    publish(BundleWriter(api, "tb"), renderer.render(bundle(40), 0))  # type: ignore[arg-type]
    count = parse_manifest(api.objects["tb-manifest"][1]["manifest.json"].encode()).count
    again = BundleWriter(api, "tb")  # type: ignore[arg-type]
    asyncio.run(again.learn([NS]))
    assert again.carried_count() == count
    api.writes.clear()
    publish(again, BundleRenderer(shard_limit=6_000).render(bundle(40, rotated=3), count))
    assert len(shard_names(api)) == 1, "unchanged shards: same bytes, the API keeps them"
    assert parse_manifest(api.objects["tb-manifest"][1]["manifest.json"].encode()).generation == 2


def test_publishes_keep_to_the_write_budget_and_count_what_they_wrote() -> None:
    """A burst of changes with no burst allowance left: after a publish that wrote W bytes,
    the next one starts no sooner than W / write_rate later (the etcd budget), and nothing
    is lost meanwhile."""
    api = FakeApi()
    publisher = BundlePublisher(
        api,  # type: ignore[arg-type]
        "tb",
        time.time,
        debounce=0.01,
        shard_limit=6_000,
        write_rate=100_000,  # bytes a second: a 40-issuer bundle takes ~0.2 s of budget
        write_burst=0,
    )
    starts: list[float] = []
    rotated = [0]

    def sources() -> BundleSources:
        starts.append(time.monotonic())
        published = {iss: dict(trust.keys) for iss, trust in bundle(40, rotated[0]).issuers.items()}
        return BundleSources(published=published, meshes={}, revocations=[], namespaces={NS})

    async def scenario() -> None:
        for change in range(1, 4):
            rotated[0] = change
            publisher.request(sources)
            await asyncio.sleep(0.02)
        while publisher.pending:
            await asyncio.sleep(0.01)
        await publisher.stop()

    asyncio.run(scenario())
    assert publisher.publishes == 2, "the changes during the budget wait share one publish"
    first_bytes = sum(len(v) for _, data in api.objects.values() for v in data.values())
    assert publisher.bytes_written >= first_bytes
    assert starts[1] - starts[0] >= 0.9 * first_bytes / 100_000
    assert parse_bundle(api.objects["tb"][1]["bundle.json"].encode()) == bundle(40, 3)


def test_at_most_a_few_shard_writes_are_in_flight_at_once() -> None:
    """Each write in flight holds its shard several times over (text, JSON body, bytes):
    all of a publish's writes at once were the operator's memory peak."""

    class SlowApi(FakeApi):
        in_flight = 0
        most = 0

        async def write_configmap(
            self, namespace: str, name: str, data: dict[str, str], **kwargs: Any
        ) -> str:
            self.in_flight += 1
            self.most = max(self.most, self.in_flight)
            await asyncio.sleep(0.01)
            self.in_flight -= 1
            return await super().write_configmap(namespace, name, data, **kwargs)

    api, renderer = SlowApi(), BundleRenderer(shard_limit=6_000)
    writer = BundleWriter(api, "tb")  # type: ignore[arg-type]
    rendered = renderer.render(bundle(80), 0)
    publish(writer, rendered)
    assert rendered.count > WRITES_AT_ONCE
    assert sorted(shard_names(api)) == sorted(f"tb-{i}" for i in range(rendered.count))
    assert api.most == WRITES_AT_ONCE


def test_one_namespaces_forged_manifest_does_not_set_the_count_for_all() -> None:
    """A tenant may edit its namespace's manifest ConfigMap; the count carried on after a
    restart is what most namespaces' manifests say, so a forged 16 re-shards nothing."""
    writer = BundleWriter(FakeApi(), "tb")  # type: ignore[arg-type]
    honest = Manifest(3, ("a",))
    writer._manifests.update({"prod": honest, "shop": honest, "dev": Manifest(9, ("f",) * 16)})
    assert writer.carried_count() == 1
    writer._manifests["dev"] = Manifest(9, ())
    assert writer.carried_count() == 1, "nor lower it"


def test_a_restarted_publisher_counts_as_long_published_only_what_every_bundle_had() -> None:
    """The operator stopped after writing a successor's Secret and before its bundle: the
    restarted process's first write is the first to carry that key, so the key is taken
    as published then (publication.py), not long ago like the keys already in force."""
    api = FakeApi()

    def publisher_of(trust: TrustBundle) -> BundlePublisher:
        publisher = BundlePublisher(api, "tb", lambda: 500.0, shard_limit=6_000)  # type: ignore[arg-type]
        published = {issuer: dict(each.keys) for issuer, each in trust.issuers.items()}
        publisher._sources = lambda: BundleSources(  # the shell's request(), without the task
            published=published, meshes={}, revocations=[], namespaces={NS}
        )
        return publisher

    asyncio.run(publisher_of(bundle(40)).publish_once())
    restarted = publisher_of(bundle(40, rotated=5))  # the new key's Secret only
    asyncio.run(restarted.publish_once())
    published_at = restarted.publication.view().published_at
    assert restarted.last is not None
    cut_off = next(
        index
        for index, issuers in enumerate(restarted.last.issuers)
        if "https://d/ns/shop/svc-5" in issuers
    )
    in_cut_off_shard = {
        kid
        for issuer in restarted.last.issuers[cut_off]
        for kid in bundle(40, rotated=5).issuers[issuer].keys
    }
    assert published_at[KEYS[-1].kid] == 500.0, "the key no bundle had: published now"
    assert {kid for kid, at in published_at.items() if at == 500.0} == in_cut_off_shard
    assert len(published_at) - len(in_cut_off_shard) >= 60, "the others: long ago"
    assert all(at == CARRIED for kid, at in published_at.items() if kid not in in_cut_off_shard)
