"""The whole per-identity decision, including recovery from a deleted or edited Secret."""

from __future__ import annotations

import json
from dataclasses import replace

from jwtmesh.identity import active_key, parse_identity
from jwtmesh.tokens.keys import generate_signing_key
from jwtmesh_operator.desired import SECRET_RECREATED, SECRET_REPAIRED, decide_identity, status_keys
from jwtmesh_operator.keystore import (
    PUBLISHED_KEYS,
    SIGNING_KEYS,
    read_secret_data,
    render_secret_data,
)
from jwtmesh_operator.planning import KeySchedule, KeyState
from jwtmesh_operator.spec import parse_spec

SPEC = parse_spec(
    "default",
    "census",
    {
        "rotation": {"period": "100s", "prePublish": "20s", "retain": "60s"},
        "maxTokenLifetime": "20s",
    },
    "jwtmesh.test",
)


def first_secret(now: float = 0.0) -> tuple[dict[str, bytes], str]:
    key = generate_signing_key()
    schedules = (KeySchedule(key.kid, activates_at=now),)
    data = render_secret_data(
        issuer=SPEC.issuer,
        subject=SPEC.audience,
        max_lifetime=SPEC.max_lifetime,
        schedules=schedules,
        public={key.kid: key.public},
        private={key.kid: key},
        now=now,
    )
    return data, key.kid


def test_spec_defaults_derive_issuer_audience_and_secret_name() -> None:
    spec = parse_spec("payments", "ledger", {}, "mesh.example")
    assert spec.issuer == "https://mesh.example/ns/payments/ledger"
    assert spec.audience == "ledger.payments"
    assert spec.secret_name == "ledger-jwtmesh-key"
    assert spec.algorithm == "ES256"


def test_a_round_trip_through_the_secret_keeps_every_key_and_time() -> None:
    data, kid = first_secret()
    stored = read_secret_data(data)
    assert stored.damaged == ()
    assert [s.kid for s in stored.schedules] == [kid]
    assert set(stored.private) == {kid}
    identity = parse_identity(data[SIGNING_KEYS])
    signing = active_key(identity, 1.0)
    assert signing is not None
    assert signing.kid == kid


def test_the_secret_holds_the_next_key_before_it_signs() -> None:
    data, _kid = first_secret()
    decision = decide_identity(
        SPEC, read_secret_data(data), None, 85.0, rotate_requested=False, compromised=frozenset()
    )
    assert len(decision.plan.new_keys) == 1
    assert decision.repair is None


def test_a_deleted_secret_is_rekeyed_and_old_public_keys_stay_published() -> None:
    data, kid = first_secret()
    stored = read_secret_data(data)
    before = decide_identity(
        SPEC, stored, None, 10.0, rotate_requested=False, compromised=frozenset()
    )
    status = {"keys": status_keys(before.plan, before.public, 10.0)}
    after = decide_identity(
        SPEC, None, status, 50.0, rotate_requested=False, compromised=frozenset()
    )
    assert after.repair == SECRET_RECREATED
    states = {s.kid: s.state(50.0) for s in after.plan.keys}
    assert states[kid] is KeyState.RETIRED, "its tokens may be in flight: still published"
    assert len(after.plan.new_keys) == 1, "a new key signs at once"


def test_a_hand_edited_private_key_never_signs_again() -> None:
    data, kid = first_secret()
    stranger = generate_signing_key()
    document = json.loads(data[SIGNING_KEYS])
    document["keys"][0]["privateKeyPem"] = stranger.private_pem()
    tampered = {**data, SIGNING_KEYS: json.dumps(document).encode()}
    stored = read_secret_data(tampered)
    assert stored.damaged, "the mismatch is detected"
    assert stranger.private_pem() not in " ".join(stored.damaged), "no key material in messages"
    decision = decide_identity(
        SPEC, stored, None, 10.0, rotate_requested=False, compromised=frozenset()
    )
    assert decision.repair == SECRET_REPAIRED
    assert {s.kid: s.state(10.0) for s in decision.plan.keys}[kid] is KeyState.RETIRED
    assert len(decision.plan.new_keys) == 1


def test_a_published_key_removed_by_hand_comes_back_from_status() -> None:
    data, kid = first_secret()
    stored = read_secret_data(data)
    before = decide_identity(
        SPEC, stored, None, 85.0, rotate_requested=False, compromised=frozenset()
    )
    status = {"keys": status_keys(before.plan, before.public, 85.0)}
    emptied = {
        **data,
        PUBLISHED_KEYS: json.dumps({"version": 1, "issuer": SPEC.issuer, "keys": []}).encode(),
    }
    decision = decide_identity(
        SPEC,
        read_secret_data(emptied),
        status,
        86.0,
        rotate_requested=False,
        compromised=frozenset(),
    )
    assert kid in {s.kid for s in decision.plan.keys}
    assert decision.repair == SECRET_REPAIRED


def test_status_keys_hold_public_material_only() -> None:
    data, _kid = first_secret()
    decision = decide_identity(
        SPEC, read_secret_data(data), None, 1.0, rotate_requested=False, compromised=frozenset()
    )
    rendered = json.dumps(status_keys(decision.plan, decision.public, 1.0))
    assert '"d"' not in rendered
    assert "PRIVATE KEY" not in rendered


def test_retired_private_keys_leave_the_secret() -> None:
    old, new = generate_signing_key(), generate_signing_key()
    schedules = (
        KeySchedule(old.kid, activates_at=0.0, retires_at=100.0, remove_at=160.0),
        KeySchedule(new.kid, activates_at=100.0),
    )
    data = render_secret_data(
        issuer=SPEC.issuer,
        subject=SPEC.audience,
        max_lifetime=20.0,
        schedules=schedules,
        public={old.kid: old.public, new.kid: new.public},
        private={old.kid: old, new.kid: new},
        now=120.0,
    )
    signing_kids = [k["kid"] for k in json.loads(data[SIGNING_KEYS])["keys"]]
    assert signing_kids == [new.kid]
    published = [k["jwk"]["kid"] for k in json.loads(data[PUBLISHED_KEYS])["keys"]]
    assert published == [old.kid, new.kid]
    assert replace(schedules[0]).state(120.0) is KeyState.RETIRED
