"""Due identities take turns by namespace (fairqueue.py): a flood in one namespace does not
hold back another's. Each group still pops earliest first, rescheduling replaces, and
a hypothesis model checks that every due key pops once, and only when due."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from jwtmesh_operator.fairqueue import FairDueQueue

Key = tuple[str, str]


def queue() -> FairDueQueue[Key, str]:
    return FairDueQueue(group=lambda key: key[0])


def test_a_flood_in_one_namespace_does_not_hold_back_another() -> None:
    """5,000 identities of `flood` due since t=0..; `shop`'s one due only at t=4,999: it is
    among the first two popped, not the 5,001st."""
    due = queue()
    for n in range(5000):
        due.schedule(("flood", f"id{n}"), float(n))
    due.schedule(("shop", "cart"), 4999.0)
    first = due.pop_due(5000.0, limit=2)
    assert ("shop", "cart") in first
    assert ("flood", "id0") in first, "the flood's earliest first"


def test_groups_take_turns_across_pops() -> None:
    due = queue()
    for n in range(3):
        due.schedule(("a", f"a{n}"), float(n))
        due.schedule(("b", f"b{n}"), 10.0 + n)
    popped = [key for _ in range(6) for key in due.pop_due(100.0, limit=1)]
    assert popped == [
        ("a", "a0"),
        ("b", "b0"),
        ("a", "a1"),
        ("b", "b1"),
        ("a", "a2"),
        ("b", "b2"),
    ]
    assert due.pop_due(100.0) == []
    assert len(due) == 0


def test_only_due_keys_pop_and_next_due_is_the_earliest() -> None:
    due = queue()
    due.schedule(("a", "x"), 30.0)
    due.schedule(("b", "y"), 10.0)
    assert due.next_due() == 10.0
    assert due.pop_due(5.0) == []
    assert due.pop_due(10.0) == [("b", "y")]
    assert due.next_due() == 30.0
    due.schedule(("a", "x"), 50.0)  # later: the hint at 30 is stale
    assert due.next_due() == 50.0
    assert due.pop_due(40.0) == []
    due.forget(("a", "x"))
    assert due.next_due() is None
    assert ("a", "x") not in due


def test_earlier_only_never_postpones_and_due_at_reads_back() -> None:
    due = queue()
    due.schedule(("a", "x"), 10.0)
    due.schedule(("a", "x"), 50.0, earlier_only=True)
    assert due.due_at(("a", "x")) == 10.0
    due.schedule(("a", "x"), 5.0, earlier_only=True)
    assert due.due_at(("a", "x")) == 5.0
    assert due.count_due(6.0) == 1
    assert due.pop_due(6.0) == [("a", "x")]
    assert due.due_at(("a", "x")) is None


def test_hints_stay_bounded_under_reschedules() -> None:
    """100 namespaces of 100 identities, rescheduled 20 times each."""
    rng = random.Random(7)
    due = queue()
    for _ in range(20):
        for n in range(10_000):
            due.schedule((f"ns{n % 100}", f"id{n}"), rng.uniform(0, 1e6))
    assert len(due) == 10_000
    assert len(due._hints) <= 4 * 100 + 64
    assert len(due.pop_due(2e6)) == 10_000


operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("schedule"),
            st.sampled_from(["a", "b", "c"]),
            st.integers(0, 5),
            st.integers(0, 50),
            st.booleans(),
        ),
        st.tuples(st.just("forget"), st.sampled_from(["a", "b", "c"]), st.integers(0, 5)),
        st.tuples(st.just("pop"), st.integers(0, 60), st.integers(1, 4)),
    ),
    max_size=80,
)


@settings(max_examples=300, derandomize=True, deadline=None)
@given(operations)
def test_it_behaves_as_a_plain_due_time_map_served_in_turns(ops: list[tuple]) -> None:  # type: ignore[type-arg]
    """Against a dict of due times: each pop returns only due keys, earliest first within a
    group, at most one per group until every group with something due had one; next_due is
    the earliest due time; nothing is lost or popped twice."""
    due, model = queue(), {}
    for op in ops:
        if op[0] == "schedule":
            _, group, n, at, earlier_only = op
            key = (group, f"k{n}")
            if not (earlier_only and key in model and model[key] <= at):
                model[key] = float(at)
            due.schedule(key, float(at), earlier_only=earlier_only)
        elif op[0] == "forget":
            key = (op[1], f"k{op[2]}")
            model.pop(key, None)
            due.forget(key)
        else:
            _, now, limit = op
            ready = {key: at for key, at in model.items() if at <= now}
            popped = due.pop_due(float(now), limit=limit)
            assert len(popped) == min(limit, len(ready))
            assert len(set(popped)) == len(popped)
            groups_due = {group for group, _ in ready}
            first_round = popped[: len(groups_due)]
            assert len({group for group, _ in first_round}) == len(first_round), "in turns"
            for key in popped:
                assert key in ready, f"{key} popped before it was due"
                group_ready = [at for (group, _), at in ready.items() if group == key[0]]
                assert model.pop(key) == min(group_ready), "earliest of its group first"
                ready.pop(key)
        assert due.next_due() == (min(model.values()) if model else None)
        assert len(due) == len(model)
        assert all(due.due_at(key) == at for key, at in model.items())
