"""No key signs before a written bundle has it: the planner's gate (planning.Publication)
and the ledger the publisher keeps (publication.py). Pure, driven by a fake clock.

The hazard: a bundle over its capacity is not written, yet rotations went on, so a
successor signed at its scheduled time while no verifier had its public key, and every
token it signed was refused until the bundle fit again."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import example, given, settings
from hypothesis import strategies as st

from jwtmesh_operator.planning import (
    HELD_FOR,
    KEY_COMPROMISED,
    ROTATION_DELAYED,
    ROTATION_HELD,
    ROTATION_RESUMED,
    UP_TO_DATE,
    KeySchedule,
    KeyState,
    Plan,
    Publication,
    Rotation,
    awaited_kids,
    plan_keys,
    publish_slack,
)
from jwtmesh_operator.publication import CARRIED, Deferral, PublicationLedger

ROTATION = Rotation(period=100.0, pre_publish=20.0, retain=30.0)
SIGNER = KeySchedule(kid="old", activates_at=0.0)


def materialise(plan: Plan, kid: str) -> list[KeySchedule]:
    """The shell: new keys get kids `kid`, `kid-1`, ..."""
    kids = iter([kid, *(f"{kid}-{i}" for i in range(1, len(plan.keys)))])
    return [replace(key, kid=next(kids)) if key.kid is None else key for key in plan.keys]


def signing(keys: tuple[KeySchedule, ...] | list[KeySchedule], now: float) -> str | None:
    active = [key.kid for key in keys if key.state(now) is KeyState.ACTIVE]
    assert len(active) == 1
    return active[0]


def test_a_successor_due_while_publishes_are_refused_is_held_and_the_signer_signs_on() -> None:
    refused = Publication(published_at={"old": 0.0}, refused=True)
    plan = plan_keys(ROTATION, [SIGNER], now=80.0, publication=refused)
    assert plan.reason == ROTATION_HELD
    (successor,) = plan.new_keys
    assert successor.activates_at == 80.0 + 20.0 + HELD_FOR
    assert signing(plan.keys, 100.0) == "old", "the rotation waits instead of breaking tokens"
    assert signing(plan.keys, 80.0 + HELD_FOR) == "old"
    assert awaited_kids(materialise(plan, "new"), ROTATION, 80.0, {}) == {"new": None}


def test_a_successor_made_just_before_a_refusal_is_held_before_it_signs() -> None:
    made = materialise(plan_keys(ROTATION, [SIGNER], now=80.0), "new")
    refused = Publication(published_at={"old": 0.0}, refused=True)
    plan = plan_keys(ROTATION, made, now=81.0, publication=refused)
    assert plan.reason == ROTATION_HELD
    assert signing(plan.keys, 100.0) == "old"
    assert awaited_kids(plan.keys, ROTATION, 81.0, {}) == {"new": None}


def test_a_key_in_the_bundle_in_force_is_not_held_by_a_later_refusal() -> None:
    made = materialise(plan_keys(ROTATION, [SIGNER], now=80.0), "new")
    refused = Publication(published_at={"old": 0.0, "new": 80.5}, refused=True)
    plan = plan_keys(ROTATION, made, now=90.0, publication=refused)
    assert plan.reason == UP_TO_DATE
    assert list(plan.keys) == made, "unchanged: no Secret write"
    assert signing(plan.keys, 100.0) == "new"


def test_the_publish_that_carries_a_held_key_brings_it_back_pre_publish_later() -> None:
    refused = Publication(published_at={"old": 0.0}, refused=True)
    held = materialise(plan_keys(ROTATION, [SIGNER], now=80.0, publication=refused), "new")
    written = Publication(published_at={"old": 0.0, "new": 500.0})
    plan = plan_keys(ROTATION, held, now=500.2, publication=written)
    assert plan.reason == ROTATION_RESUMED
    assert signing(plan.keys, 519.9) == "old"
    assert signing(plan.keys, 520.2) == "new", "pre_publish after the publish that carried it"
    assert awaited_kids(plan.keys, ROTATION, 500.2, written.published_at) == {}


def test_a_held_key_stays_held_while_nothing_says_it_was_published() -> None:
    refused = Publication(published_at={"old": 0.0}, refused=True)
    held = materialise(plan_keys(ROTATION, [SIGNER], now=80.0, publication=refused), "new")
    restarted = Publication()  # a restart: nothing written yet, nothing refused yet
    plan = plan_keys(ROTATION, held, now=300.0, publication=restarted)
    assert plan.reason == UP_TO_DATE
    assert signing(plan.keys, 400.0) == "old"
    assert awaited_kids(plan.keys, ROTATION, 300.0, {}) == {"new": None}


def test_the_usual_rotation_is_not_moved_by_its_own_publish() -> None:
    """A successor is written a moment after it is made: no second Secret write for it."""
    made = materialise(plan_keys(ROTATION, [SIGNER], now=80.0), "new")
    written = Publication(published_at={"old": 0.0, "new": 80.3})
    plan = plan_keys(ROTATION, made, now=100.0, publication=written)
    assert [key.activates_at for key in plan.keys] == [0.0, 100.0]


def test_a_successor_written_late_signs_pre_publish_after_it_was_written() -> None:
    """A slow key generation or a spent write budget: the bundle came 3 s after the key
    was scheduled, so it signs 3 s later, and the signer signs on until then."""
    made = materialise(plan_keys(ROTATION, [SIGNER], now=80.0), "new")
    assert awaited_kids(made, ROTATION, 80.0, {}) == {"new": 80.0 + publish_slack(ROTATION)}
    written = Publication(published_at={"old": 0.0, "new": 83.0})
    plan = plan_keys(ROTATION, made, now=83.1, publication=written)
    assert plan.reason == ROTATION_DELAYED
    assert signing(plan.keys, 102.9) == "old"
    assert signing(plan.keys, 103.0) == "new"
    again = plan_keys(ROTATION, list(plan.keys), now=90.0, publication=written)
    assert again.reason == UP_TO_DATE
    assert again.keys == plan.keys, "settled: no second write"


def test_a_key_every_bundle_had_before_a_restart_is_not_put_later() -> None:
    ledger = PublicationLedger()
    made = materialise(plan_keys(ROTATION, [SIGNER], now=80.0), "new")
    ledger.written(["old", "new"], now=95.0, in_force={"old", "new"})  # the first write
    plan = plan_keys(ROTATION, made, now=95.0, publication=ledger.view())
    assert plan.reason == UP_TO_DATE


def test_a_key_whose_bundle_a_restart_cut_off_waits_pre_publish_after_the_next_write() -> None:
    """Its Secret was written just before the operator stopped, its bundle was not: the
    restarted process's first write is the first that carries it."""
    ledger = PublicationLedger()
    made = materialise(plan_keys(ROTATION, [SIGNER], now=80.0), "new")
    ledger.written(["old", "new"], now=95.0, in_force={"old"})
    plan = plan_keys(ROTATION, made, now=95.0, publication=ledger.view())
    assert plan.reason == ROTATION_DELAYED
    assert signing(plan.keys, 114.9) == "old"
    assert signing(plan.keys, 115.0) == "new"


def test_a_compromised_signer_is_replaced_even_by_a_held_key() -> None:
    """Nothing else can sign: a key no verifier has fails closed, a compromised one must go."""
    refused = Publication(published_at={"old": 0.0}, refused=True)
    held = materialise(plan_keys(ROTATION, [SIGNER], now=80.0, publication=refused), "new")
    plan = plan_keys(ROTATION, held, now=90.0, compromised=frozenset({"old"}), publication=refused)
    assert plan.reason == KEY_COMPROMISED
    assert signing(plan.keys, 90.0) == "new"


def test_the_ledger_wakes_an_identity_when_its_held_or_late_key_is_written() -> None:
    ledger = PublicationLedger()
    assert ledger.refused() is True, "the first refusal wakes every identity"
    assert ledger.refused() is False, "a second one does not"
    ledger.wait(("shop", "a"), {"a1": None})
    ledger.wait(("shop", "b"), {"b1": 20.0, "b2": None})
    ledger.wait(("shop", "c"), {"c1": 11.0})
    ledger.wait(("shop", "d"), {})
    assert ledger.written(["a1", "b1", "c1"], now=10.0).woken == [("shop", "a")], "c1 on time"
    assert ledger.view() == Publication(
        published_at={"a1": 10.0, "b1": 10.0, "c1": 10.0}, refused=False
    )
    assert ledger.written(["a1", "b1", "b2", "c1"], now=12.0).woken == [("shop", "b")]
    assert ledger.view().published_at["b2"] == 12.0
    ledger.wait(("shop", "e"), {"e1": 12.5})
    assert ledger.written(["b2", "e1"], now=13.0).woken == [("shop", "e")], "e1 came late"
    assert ledger.view().published_at == {"b2": 12.0, "e1": 13.0}, "unwritten kids forgotten"
    assert ledger.refused() is True


def test_the_first_write_of_a_process_counts_keys_in_force_as_published_long_ago() -> None:
    ledger = PublicationLedger()
    assert not ledger.written_once
    ledger.written(["before", "mine"], now=50.0, in_force={"before", "gone"})
    assert ledger.written_once
    assert ledger.view().published_at == {"before": CARRIED, "mine": 50.0}
    ledger.written(["before", "mine", "later"], now=60.0, in_force={"later"})
    assert ledger.view().published_at["later"] == 60.0, "only the first write is told"


def blocked(windows: list[tuple[int, int]], second: int) -> bool:
    return any(start <= second < start + length for start, length in windows)


@settings(max_examples=150, derandomize=True, deadline=None)
@given(
    refusals=st.lists(st.tuples(st.integers(0, 600), st.integers(1, 200)), max_size=3),
    stalls=st.lists(st.tuples(st.integers(0, 600), st.integers(1, 60)), max_size=3),
    requests=st.lists(st.integers(0, 800), max_size=4),
    restarts=st.lists(st.integers(1, 800), max_size=2),
)
# A restart after a successor's Secret was written and before any bundle had it.
@example(refusals=[], stalls=[(80, 10)], requests=[], restarts=[85])
def test_no_key_signs_before_it_was_written_pre_publish_earlier(
    refusals: list[tuple[int, int]],
    stalls: list[tuple[int, int]],
    requests: list[int],
    restarts: list[int],
) -> None:
    """An operator and its publisher over 800 s. Publishes are refused (over capacity) or
    stall (nothing written: a spent write budget) in the given windows; rotations are
    asked for and the operator restarts (its ledger forgotten) at the given seconds. The
    identity is planned only when the operator would: at its plan's wake-up, when the
    ledger wakes it, on a request or a restart.

    - Every key that signs (but the first) was written pre_publish earlier, less the
      slack; across restarts too (a restarted ledger is told what the bundle in force had).
    - Rotations go on: a key starts signing after the last blocked window ends."""
    ledger = PublicationLedger()
    keys: list[KeySchedule] = []
    first_written: dict[str, float] = {}
    in_force: list[str] = []  # what the last written bundle had
    due, woken = 0.0, False
    changes: list[float] = []
    signer_before: str | None = None
    for tick in range(1600):  # half seconds: the operator on whole ones, the publisher between
        now, second = tick / 2, tick // 2
        asked = tick % 2 == 0 and second in requests
        if tick % 2 == 0 and second in restarts:
            ledger, woken = PublicationLedger(), True
        if now >= due or woken or asked:
            plan = plan_keys(ROTATION, keys, now, rotate_requested=asked, publication=ledger.view())
            keys = materialise(plan, f"k{tick}")
            published = ledger.view().published_at
            check = Deferral(plan.wake_at, plan.wake_at_once_written)
            awaited = awaited_kids(keys, ROTATION, now, published)
            ledger.wait(("shop", "a"), awaited, check if check.check_at < check.then else None)
            due, woken = plan.wake_at, False
        if tick % 2 == 1 and blocked(refusals, second):
            woken = ledger.refused() or woken
        elif tick % 2 == 1 and not blocked(stalls, second):
            kids = [key.kid for key in keys if key.kid]
            arrivals = ledger.written(kids, now, in_force)
            in_force = kids
            woken = bool(arrivals.woken) or woken
            for _, deferral in arrivals.settled:  # the scheduler's defer
                due = deferral.then if due == deferral.check_at else due
            for kid in kids:
                first_written.setdefault(kid, now)
        signer = signing(keys, now)
        if signer != signer_before:
            changes.append(now)
            signer_before = signer
        if signer != "k0":  # the first key signs at once
            assert signer in first_written, f"{signer} signs at {now} and was never written"
            assert now >= first_written[signer] + ROTATION.pre_publish - publish_slack(ROTATION)
    last_blocked = max((start + length for start, length in [*refusals, *stalls]), default=0)
    if last_blocked < 800 - 2 * ROTATION.period:
        assert changes[-1] > last_blocked, f"no rotation since {last_blocked}: {changes}"


def test_a_successor_just_made_is_checked_early_only_until_its_bundle_is_written() -> None:
    made = plan_keys(ROTATION, [SIGNER], now=80.0, publication=Publication({"old": 0.0}))
    assert made.wake_at == 100.0 - publish_slack(ROTATION), "checked before it signs"
    assert made.wake_at_once_written == 100.0, "else due when it signs"
    settled = plan_keys(
        ROTATION,
        materialise(made, "new"),
        now=made.wake_at,
        publication=Publication(published_at={"old": 0.0, "new": 80.3}),
    )
    assert settled.wake_at == settled.wake_at_once_written == 100.0


def test_the_ledger_defers_a_check_only_when_every_awaited_key_came_in_time() -> None:
    ledger = PublicationLedger()
    check = Deferral(check_at=98.0, then=100.0)
    ledger.wait(("shop", "a"), {"a1": 82.0}, check)
    ledger.wait(("shop", "b"), {"b1": 82.0, "b2": 82.0}, check)
    ledger.wait(("shop", "c"), {"c1": 80.5}, check)
    ledger.wait(("shop", "d"), {"d1": 82.0}, check)
    ledger.wait(("shop", "d"), {"d1": 82.0})  # reconciled again: no deferral now
    arrivals = ledger.written(["a1", "b1", "c1", "d1"], now=81.0)
    assert arrivals.settled == [(("shop", "a"), check)]
    assert arrivals.woken == [("shop", "c")], "c1 came late: its identity is planned again"
    arrivals = ledger.written(["a1", "b1", "b2", "c1", "d1"], now=81.5)
    assert arrivals.settled == [(("shop", "b"), check)], "b2 in time too"
    assert arrivals.woken == []
