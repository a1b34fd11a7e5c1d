"""Key lifecycle decisions: pure functions driven by a fake clock."""

from __future__ import annotations

from dataclasses import replace

import pytest

from jwtmesh_operator.planning import (
    KEY_COMPROMISED,
    KEY_CREATED,
    MAX_KEYS,
    ROTATION_REQUESTED,
    ROTATION_SCHEDULED,
    KeySchedule,
    KeyState,
    Plan,
    Rotation,
    plan_keys,
)

ROTATION = Rotation(period=100.0, pre_publish=20.0, retain=30.0)


def materialise(plan: Plan, prefix: str) -> list[KeySchedule]:
    """What the shell does: give every new key a kid."""
    return [
        replace(key, kid=f"{prefix}{i}") if key.kid is None else key
        for i, key in enumerate(plan.keys)
    ]


def simulate(until: float, step: float = 1.0) -> list[tuple[float, list[KeySchedule]]]:
    keys: list[KeySchedule] = []
    history = []
    now = 0.0
    while now <= until:
        plan = plan_keys(ROTATION, keys, now)
        keys = materialise(plan, f"k{int(now)}-")
        history.append((now, keys))
        now += step
    return history


def signer(keys: list[KeySchedule], now: float) -> KeySchedule:
    active = [k for k in keys if k.state(now) is KeyState.ACTIVE]
    assert len(active) == 1, f"exactly one key signs at {now}: {active}"
    return active[0]


def test_a_new_identity_gets_one_key_that_signs_at_once() -> None:
    plan = plan_keys(ROTATION, [], now=5.0)
    assert plan.reason == KEY_CREATED
    assert len(plan.keys) == 1
    assert plan.keys[0].activates_at == 5.0
    assert plan.keys[0].kid is None
    assert plan.wake_at == 5.0 + 100 - 20, "wakes up when the successor must be published"


def test_the_successor_is_published_pre_publish_before_it_signs() -> None:
    first = KeySchedule("a", activates_at=0.0)
    plan = plan_keys(ROTATION, [first], now=80.0)
    assert plan.reason == ROTATION_SCHEDULED
    current, successor = plan.keys
    assert successor.activates_at == 100.0
    assert current.retires_at == 100.0
    assert current.remove_at == 130.0


def test_nothing_changes_between_transitions() -> None:
    first = KeySchedule("a", activates_at=0.0)
    plan = plan_keys(ROTATION, [first], now=50.0)
    assert plan.keys == (first,)
    assert plan.wake_at == 80.0


def test_a_late_operator_never_activates_an_unpublished_key() -> None:
    """Down when the rotation was due: the old key signs a little longer instead."""
    first = KeySchedule("a", activates_at=0.0)
    plan = plan_keys(ROTATION, [first], now=150.0)
    successor = plan.keys[-1]
    assert successor.activates_at == 170.0, "published for pre_publish before it signs"
    assert plan.keys[0].retires_at == 170.0


def test_retired_keys_are_removed_after_retain() -> None:
    old = KeySchedule("old", activates_at=0.0, retires_at=100.0, remove_at=130.0)
    new = KeySchedule("new", activates_at=100.0)
    assert {k.kid for k in plan_keys(ROTATION, [old, new], now=129.0).keys} == {"old", "new"}
    plan = plan_keys(ROTATION, [old, new], now=130.0)
    assert [k.kid for k in plan.keys] == ["new"]
    assert plan.removed == ("old",)


def test_on_demand_rotation_publishes_a_successor_first() -> None:
    first = KeySchedule("a", activates_at=0.0)
    plan = plan_keys(ROTATION, [first], now=10.0, rotate_requested=True)
    assert plan.reason == ROTATION_REQUESTED
    assert plan.keys[-1].activates_at == 30.0
    assert plan.keys[0].retires_at == 30.0


def test_on_demand_rotation_brings_an_existing_successor_forward() -> None:
    first = KeySchedule("a", activates_at=0.0, retires_at=100.0, remove_at=130.0)
    pending = KeySchedule("b", activates_at=100.0)
    plan = plan_keys(ROTATION, [first, pending], now=81.0, rotate_requested=True)
    assert [k.kid for k in plan.keys] == ["a", "b"]
    assert plan.keys[1].activates_at == 100.0, "already within pre_publish: unchanged"
    plan = plan_keys(
        ROTATION, [first, replace(pending, activates_at=200.0)], now=50.0, rotate_requested=True
    )
    assert plan.keys[1].kid == "b"
    assert plan.keys[1].activates_at == 70.0


def test_a_compromised_signer_is_replaced_by_the_published_successor_at_once() -> None:
    first = KeySchedule("a", activates_at=0.0, retires_at=100.0, remove_at=130.0)
    pending = KeySchedule("b", activates_at=100.0)
    plan = plan_keys(ROTATION, [first, pending], now=90.0, compromised=frozenset({"a"}))
    assert plan.reason == KEY_COMPROMISED
    assert [k.kid for k in plan.keys] == ["b"]
    assert plan.keys[0].state(90.0) is KeyState.ACTIVE
    assert plan.removed == ("a",)


def test_a_compromised_only_key_is_replaced_by_a_new_one_at_once() -> None:
    plan = plan_keys(
        ROTATION, [KeySchedule("a", activates_at=0.0)], now=10.0, compromised=frozenset({"a"})
    )
    assert plan.reason == KEY_COMPROMISED
    assert len(plan.keys) == 1
    assert plan.keys[0].kid is None
    assert plan.keys[0].activates_at == 10.0


def test_over_many_periods_the_bundle_always_holds_the_signer_and_the_next_key() -> None:
    history = simulate(until=650.0)
    activated: dict[str, float] = {}
    for now, keys in history:
        current = signer(keys, now)
        published = {k.kid for k in keys}
        assert current.kid in published
        successor_due = current.activates_at + ROTATION.period
        if now >= successor_due - ROTATION.pre_publish:
            nxt = [k for k in keys if k.state(now) is KeyState.PENDING]
            assert nxt, f"at {now} the next key must already be published"
        for key in keys:
            assert key.kid is not None
            activated.setdefault(key.kid, now)  # first moment it was published
    # Every key was published at least pre_publish before it first signed (but the first).
    for _now, keys in history:
        for key in keys:
            if key.activates_at > 0:
                assert key.activates_at - activated[str(key.kid)] >= ROTATION.pre_publish - 1.0
    kids_over_time = {k.kid for _, keys in history for k in keys}
    assert len(kids_over_time) == 7, "one key per period over 650 s of 100 s periods"


def test_retired_keys_stay_published_for_retain_after_they_stop_signing() -> None:
    history = simulate(until=400.0)
    last_seen: dict[str, float] = {}
    retired_at: dict[str, float] = {}
    for now, keys in history:
        for key in keys:
            last_seen[str(key.kid)] = now
            if key.retires_at is not None:
                retired_at[str(key.kid)] = key.retires_at
    for kid, retired in retired_at.items():
        if retired + ROTATION.retain < 400.0:
            assert last_seen[kid] >= retired + ROTATION.retain - 1.0


@pytest.mark.parametrize(
    "state_at",
    [(0, KeyState.PENDING), (10, KeyState.ACTIVE), (20, KeyState.RETIRED), (30, KeyState.REMOVED)],
)
def test_key_state_follows_its_times(state_at: tuple[float, KeyState]) -> None:
    key = KeySchedule("a", activates_at=10, retires_at=20, remove_at=30)
    now, expected = state_at
    assert key.state(now - 0.5 if expected is KeyState.PENDING else now) is expected


def test_an_identity_never_publishes_more_than_max_keys() -> None:
    """A retain of many periods (or rotations asked faster than tokens expire): the oldest
    retired keys leave early, never the signer or its successor. The cap is what a Secret
    is read back with (keystore.read_published): a plan beyond it would be refused."""
    rotation = Rotation(period=1.0, pre_publish=0.0, retain=1000.0)
    keys: list[KeySchedule] = []
    for step in range(3 * MAX_KEYS):
        now = float(step)
        plan = plan_keys(rotation, keys, now)
        assert len(plan.keys) <= MAX_KEYS
        before = {key.kid for key in keys}
        keys = materialise(plan, f"k{step}-")
        states = [key.state(now) for key in keys]
        assert KeyState.ACTIVE in states
        # What left is what had retired longest.
        for gone in before - {key.kid for key in keys}:
            assert gone is not None
            assert int(gone[1:].split("-")[0]) <= step - MAX_KEYS + 2
