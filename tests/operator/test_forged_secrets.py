"""Anyone who may create Secrets in a namespace can make one of type jwtmesh.io/signing-key
with the label jwtmesh.io/identity: the operator's watch brings it. Only a Secret its
identity owns is ever published, so only such a Secret's keys are read, and at most
MAX_KEYS of them (indexes.secret_record, keystore.read_published, handlers.secret_event)."""

from __future__ import annotations

import asyncio
import base64
import json
from types import SimpleNamespace
from typing import Any

import pytest

from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh_operator import handlers, indexes
from jwtmesh_operator.keystore import (
    MAX_PUBLISHED_BYTES,
    PUBLISHED_KEYS,
    SIGNING_KEYS,
    read_published,
    read_secret_data,
    render_secret_data,
)
from jwtmesh_operator.latest import LatestKnown
from jwtmesh_operator.planning import MAX_KEYS, KeySchedule
from jwtmesh_operator.readiness import Readiness
from jwtmesh_operator.sources import SecretRecord, gather
from jwtmesh_operator.spec import MAX_RSA_BITS
from jwtmesh_operator.state import SourcesMemo
from jwtmesh_operator.tenancy import IdentityRecord

WEB = IdentityRecord("dev", "web", "uid-web", "2026-01-01T00:00:00Z", secret_name="web-key")
KEYS = [generate_signing_key() for _ in range(MAX_KEYS + 1)]


def published(count: int) -> bytes:
    entries = [
        {"jwk": key.public.to_jwk(), "activatesAt": 0, "retiresAt": None, "removeAt": None}
        for key in KEYS[:count]
    ]
    return json.dumps({"version": 1, "issuer": "x", "keys": entries}).encode()


def secret(
    name: str = "web-key", *, label: str = "web", owner: str | None = "uid-web", keys: int = 2
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "namespace": "dev",
        "name": name,
        "resourceVersion": "7",
        "labels": {"jwtmesh.io/identity": label},
    }
    if owner is not None:
        meta["ownerReferences"] = [{"kind": "ServiceIdentity", "name": label, "uid": owner}]
    data = {PUBLISHED_KEYS: base64.b64encode(published(keys)).decode()}
    return {"metadata": meta, "type": "jwtmesh.io/signing-key", "data": data}


def refuse_to_parse(_raw: bytes | None) -> Any:
    raise AssertionError("published-keys.json parsed")


@pytest.mark.parametrize(
    "forged",
    [
        secret(owner=None),
        secret(owner="uid-someone-else"),
        secret("junk-1"),  # owned by web's UID, but not the Secret web names
        secret(label="nobody"),
    ],
    ids=["no owner", "another owner", "not the identity's Secret", "another identity's label"],
)
def test_a_secret_its_identity_does_not_own_is_kept_without_its_keys(
    forged: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexes, "read_published", refuse_to_parse)
    record = indexes.secret_record(forged, {WEB.key: WEB})
    assert not record.read
    assert record.keys == {}


def test_the_secret_its_identity_owns_keeps_its_keys() -> None:
    record = indexes.secret_record(secret(), {WEB.key: WEB})
    assert record.read
    assert set(record.keys) == {key.kid for key in KEYS[:2]}


def test_published_keys_beyond_the_cap_are_refused_whole_with_a_reason() -> None:
    schedules, public, damaged = read_published(published(MAX_KEYS + 1))
    assert (schedules, public) == ([], {})
    assert damaged == [
        f"published-keys.json is refused: {MAX_KEYS + 1} keys, over the {MAX_KEYS} keys or "
        f"{MAX_PUBLISHED_BYTES} bytes an identity publishes at most"
    ]
    assert len(read_published(published(MAX_KEYS))[1]) == MAX_KEYS


def test_published_keys_beyond_the_byte_cap_are_refused_unparsed() -> None:
    padded = published(1)[:-1] + b" " * MAX_PUBLISHED_BYTES + b"}"
    assert json.loads(padded)  # valid JSON, only too large
    _schedules, public, damaged = read_published(padded)
    assert public == {}
    assert damaged[0].startswith(f"published-keys.json is refused: {len(padded)} bytes")


def test_an_owned_secret_over_the_cap_is_reported_as_damaged() -> None:
    """The reconcile repairs it from the status backup, its Event saying why."""
    stored = read_secret_data({PUBLISHED_KEYS: published(MAX_KEYS + 1), SIGNING_KEYS: b"{}"})
    assert stored.public == {}
    assert any(f"{MAX_KEYS + 1} keys, over the {MAX_KEYS}" in note for note in stored.damaged)


def test_the_largest_secret_the_operator_writes_fits_the_cap() -> None:
    """MAX_KEYS keys of the largest size the operator makes, as render_secret_data writes
    them (one key scheduled MAX_KEYS times: the same bytes as MAX_KEYS such keys)."""
    key = generate_signing_key("RS256", MAX_RSA_BITS)
    schedules = tuple(KeySchedule(key.kid, float(i), float(i + 1), 1e10) for i in range(MAX_KEYS))
    data = render_secret_data(
        issuer="https://mesh.test/ns/dev/" + "x" * 400,
        subject="web.dev",
        max_lifetime=900.0,
        schedules=schedules,
        public={key.kid: key.public},
        private={},
        now=0.0,
    )
    assert len(data[PUBLISHED_KEYS]) <= MAX_PUBLISHED_BYTES
    assert len(read_published(data[PUBLISHED_KEYS])[0]) == MAX_KEYS


class Scheduler:
    def __init__(self) -> None:
        self.due: list[tuple[str, str]] = []

    def now(self, key: tuple[str, str]) -> None:
        self.due.append(key)

    def forget(self, key: tuple[str, str]) -> None:
        pass


class Kube:
    def __init__(self, found: dict[str, Any]) -> None:
        self.found, self.reads = found, 0

    async def read_secret_object(self, namespace: str, name: str) -> dict[str, Any]:
        self.reads += 1
        return self.found


def state(identities: dict[tuple[str, str], IdentityRecord], kube: Any = None) -> Any:
    acting = asyncio.Event()
    acting.set()
    return SimpleNamespace(
        identity_records=identities,
        signing_secrets={},
        secret_reads={},
        known_secrets=LatestKnown(),
        known_identities=LatestKnown(),
        acting=acting,
        scheduler=Scheduler(),
        sources_memo=SourcesMemo(),
        names_memo=SourcesMemo(),
        readiness=Readiness(synced=False),
        conflicted=set(),
        kube=kube,
    )


def test_a_forged_secret_wakes_no_identity_and_leaves_no_copy() -> None:
    """Its event asks for no reconcile (each a GET of an identity that does not exist) and
    no compressed copy of it is kept for one."""
    operator = state({WEB.key: WEB})
    handlers.secret_event(operator, "ADDED", secret("junk-1", label="nobody", keys=MAX_KEYS))
    assert operator.scheduler.due == []
    assert len(operator.known_secrets) == 0
    assert not operator.signing_secrets[("dev", "junk-1")].read


def test_the_owned_secrets_copy_is_kept_for_its_reconcile() -> None:
    operator = state({WEB.key: WEB})
    handlers.secret_event(operator, "ADDED", secret())
    assert operator.known_secrets.get(("dev", "web-key")) is not None
    assert operator.scheduler.due == [WEB.key]  # not our own write: web looks at it


def test_a_secret_that_came_before_its_identity_is_read_once_the_identity_comes() -> None:
    """A standby's two watches lag apart: the Secret first, kept unread; the identity next.
    The bundle it writes once it acts must have the identity's keys."""
    kube = Kube(secret())
    operator = state({}, kube)
    early = indexes.secret_record(secret(), {})
    operator.signing_secrets[("dev", "web-key")] = early
    body = {
        "metadata": {
            "namespace": "dev",
            "name": "web",
            "uid": "uid-web",
            "creationTimestamp": WEB.created,
            "resourceVersion": "3",
            "generation": 1,
        },
        "spec": {"secretName": "web-key"},
    }

    async def identity_comes() -> None:
        handlers.identity_event(operator, "ADDED", body)
        handlers.identity_event(operator, "MODIFIED", body)  # one read, however many events
        await asyncio.gather(*operator.secret_reads.values())

    asyncio.run(identity_comes())
    record: SecretRecord = operator.signing_secrets[("dev", "web-key")]
    assert record.read
    assert set(record.keys) == {key.kid for key in KEYS[:2]}
    assert kube.reads == 1


def test_an_identity_naming_anothers_secret_does_not_unpublish_it() -> None:
    """`spec.secretName` may name a Secret another identity of the namespace owns: the keys
    stay its owner's (by UID), published under its issuer, whoever else names it."""
    key = generate_signing_key().public
    billing = IdentityRecord(
        "dev", "billing", "u-b", "2026-01-01T00:00:00Z", secret_name="billing-jwtmesh-key"
    )
    squatter = IdentityRecord(
        "dev", "x", "u-x", "2026-02-01T00:00:00Z", secret_name="billing-jwtmesh-key"
    )
    secret = SecretRecord("dev", "billing-jwtmesh-key", frozenset({"u-b"}), {key.kid: key})
    for order in ([billing, squatter], [squatter, billing]):
        found = gather(
            identities=order,
            grants=[],
            secrets=[secret],
            revocations=[],
            labeled_namespaces=[],
            trust_domain="mesh.test",
            now=0.0,
        )
        assert found.published == {"https://mesh.test/ns/dev/billing": {key.kid: key}}
