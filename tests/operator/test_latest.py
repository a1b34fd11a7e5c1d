"""What a reconcile may start from instead of reading the API (latest.py)."""

from __future__ import annotations

import json

from jwtmesh_operator.latest import KEEP_FOR, LatestKnown, as_json

KEY = ("team-a", "census")


def never() -> str:
    raise AssertionError("an event's object was taken although it must not be")


def test_our_own_write_is_known_and_its_event_changes_nothing() -> None:
    known: LatestKnown[str] = LatestKnown()
    known.remember(KEY, "10", "as we wrote it")
    assert known.seen(KEY, "10", never) is True
    assert known.get(KEY) == "as we wrote it"


def test_an_event_at_another_version_drops_the_entry_and_never_replaces_it() -> None:
    """Newer (someone else's change) or older (the watch lagging behind our write): either
    way the next reconcile reads the API."""
    known: LatestKnown[str] = LatestKnown()
    known.remember(KEY, "10", "as we wrote it")
    assert known.seen(KEY, "9", never) is False
    assert known.get(KEY) is None


def test_an_event_fills_an_empty_entry_only_for_an_object_this_process_never_wrote() -> None:
    known: LatestKnown[str] = LatestKnown()
    assert known.seen(KEY, "3", lambda: "from the watch") is False
    assert known.get(KEY) == "from the watch"
    assert known.seen(KEY, "3", never) is True  # the same version again (a re-list)

    known.remember(KEY, "10", "as we wrote it")
    known.forget(KEY)  # say, a write conflicted
    assert known.seen(KEY, "9", never) is False  # may be older than our write: not taken
    assert known.get(KEY) is None


def test_a_deleted_object_is_forgotten_and_a_new_one_under_its_name_can_be_seen() -> None:
    known: LatestKnown[str] = LatestKnown()
    known.remember(KEY, "10", "as we wrote it")
    known.deleted(KEY)
    assert known.get(KEY) is None
    known.seen(KEY, "20", lambda: "the new object")
    assert known.get(KEY) == "the new object"


def test_entries_are_kept_only_for_objects_due_again_soon() -> None:
    known: LatestKnown[str] = LatestKnown()
    known.remember(KEY, "10", "due soon")
    known.release(KEY, due=1000.0 + KEEP_FOR, now=1000.0)
    assert known.get(KEY) == "due soon"
    known.release(KEY, due=1000.0 + KEEP_FOR + 1, now=1000.0)
    assert known.get(KEY) is None
    assert len(known) == 0


def test_an_identity_is_kept_as_compact_json_without_its_managed_fields() -> None:
    body = {
        "metadata": {"name": "census", "resourceVersion": "7", "managedFields": [{"x": 1}]},
        "spec": {"audience": "census.team-a"},
        "status": {"activeKid": "abc"},
    }
    kept = json.loads(as_json(body))
    assert kept == {**body, "metadata": {"name": "census", "resourceVersion": "7"}}
    assert body["metadata"]["managedFields"], "the object given is left as it was"
