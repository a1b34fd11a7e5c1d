"""What a reconcile may start from instead of reading the API (latest.py)."""

from __future__ import annotations

import math
from typing import Any

from jwtmesh_operator.kube import secret_object, secret_of
from jwtmesh_operator.latest import KEEP_FOR, LatestKnown, pack, unpack

KEY = ("team-a", "census")


def at(version: str, note: str = "") -> dict[str, Any]:
    return {"metadata": {"name": "census", "resourceVersion": version}, "status": {"note": note}}


def never() -> dict[str, Any]:
    raise AssertionError("an event's object was taken although it must not be")


def test_our_own_write_is_known_and_its_event_changes_nothing() -> None:
    known = LatestKnown()
    known.remember(KEY, at("10", "as we wrote it"))
    assert known.seen(KEY, "10", never) is True
    assert known.get(KEY) == at("10", "as we wrote it")


def test_an_event_at_another_version_drops_the_entry_and_never_replaces_it() -> None:
    """Newer (someone else's change) or older (the watch lagging behind our write): either
    way the next reconcile reads the API."""
    known = LatestKnown()
    known.remember(KEY, at("10"))
    assert known.seen(KEY, "9", never) is False
    assert known.get(KEY) is None


def test_an_event_fills_an_empty_entry_only_for_an_object_this_process_never_wrote() -> None:
    known = LatestKnown()
    assert known.seen(KEY, "3", lambda: at("3", "from the watch")) is False
    assert known.get(KEY) == at("3", "from the watch")
    assert known.seen(KEY, "3", never) is True  # the same version again (a re-list)

    known.remember(KEY, at("10"))
    known.writing(KEY)
    known.written(KEY, None)  # say, a write conflicted
    assert known.seen(KEY, "9", never) is False  # may be older than our write: not taken
    assert known.get(KEY) is None


def test_once_the_watch_shows_our_last_write_every_later_event_may_fill() -> None:
    """A watch delivers an object's versions in order: after the event of our own write,
    each event is newer than anything this process knew."""
    known = LatestKnown()
    known.remember(KEY, at("10", "as we wrote it"))
    known.release(KEY, due=10_000.0, now=0.0)  # idle: let go before its event came
    assert known.seen(KEY, "9", never) is False, "older than our write: not taken"
    assert known.seen(KEY, "10", never) is True, "our own write coming back"
    assert known.get(KEY) is None
    assert known.seen(KEY, "11", lambda: at("11", "a rotation request")) is False
    assert known.get(KEY) == at("11", "a rotation request")


def test_a_deleted_object_is_forgotten_and_a_new_one_under_its_name_can_be_seen() -> None:
    known = LatestKnown()
    known.remember(KEY, at("10"))
    known.deleted(KEY)
    assert known.get(KEY) is None
    known.seen(KEY, "20", lambda: at("20", "the new object"))
    assert known.get(KEY) == at("20", "the new object")


def test_kept_for_ever_an_entry_stays_until_its_object_changes_or_goes() -> None:
    """How the operator keeps Secrets: however far off the next rotation."""
    known = LatestKnown(keep_for=math.inf)
    known.remember(KEY, at("10"))
    known.release(KEY, due=1000.0 + 30 * 86400, now=1000.0)
    assert known.get(KEY) == at("10")
    known.deleted(KEY)
    assert known.get(KEY) is None


def test_entries_are_kept_only_for_objects_due_again_soon() -> None:
    known = LatestKnown()
    known.remember(KEY, at("10"))
    known.release(KEY, due=1000.0 + KEEP_FOR, now=1000.0)
    assert known.get(KEY) == at("10")
    known.release(KEY, due=1000.0 + KEEP_FOR + 1, now=1000.0)
    assert known.get(KEY) is None
    assert len(known) == 0


def test_an_object_is_kept_compressed_without_its_managed_fields() -> None:
    body = {**at("7", "x" * 2000), "spec": {"audience": "census.team-a"}}
    body["metadata"]["managedFields"] = [{"manager": "kubectl"}]
    packed = pack(body)
    assert len(packed) < 300
    assert unpack(packed) == {**body, "metadata": {"name": "census", "resourceVersion": "7"}}
    assert body["metadata"]["managedFields"], "the object given is left as it was"


def test_a_secret_we_wrote_reads_back_as_the_api_would_serve_it() -> None:
    data = {"signing-keys.json": b'{"keys": []}', "published-keys.json": b"{}"}
    owner = {"api_version": "jwtmesh.io/v1alpha1", "kind": "ServiceIdentity", "uid": "u-1"}
    written = secret_object(
        "team-a", "census-key", data, "42", {"jwtmesh.io/identity": "census"}, owner
    )
    stored = secret_of(unpack(pack(written)))
    assert stored.data == data
    assert stored.resource_version == "42"
    assert stored.labels["jwtmesh.io/identity"] == "census"
    assert stored.owner_uids == frozenset({"u-1"})
    assert stored.name == "census-key"


def test_a_standing_by_replica_fills_nothing_from_the_watch() -> None:
    known = LatestKnown()
    assert known.seen(KEY, "3", never, fill=False) is False
    assert known.get(KEY) is None
    assert len(known) == 0


def test_our_writes_own_event_before_its_reply_keeps_the_entry_and_the_watch_caught_up() -> None:
    """Events are handled as they come: ours may be handled while the write still waits
    for its reply. It must neither drop what the reply brings nor leave us waiting for an
    event that has already gone by."""
    known = LatestKnown()
    known.remember(KEY, at("10", "read"))
    known.writing(KEY)
    assert known.seen(KEY, "11", never) is True  # our write, before its reply
    assert known.written(KEY, at("11", "as we wrote it")) is True
    assert known.get(KEY) == at("11", "as we wrote it")
    known.release(KEY, due=10_000.0, now=0.0)
    assert known.seen(KEY, "12", lambda: at("12", "next")) is False
    assert known.get(KEY) == at("12", "next"), "the watch is past our write: later events fill"


def test_an_older_event_during_a_write_changes_nothing_and_ours_is_recognised_later() -> None:
    known = LatestKnown()
    known.writing(KEY)
    assert known.seen(KEY, "9", never) is True
    assert known.written(KEY, at("11", "as we wrote it")) is True
    assert known.seen(KEY, "11", never) is True, "our own write coming back"
    assert known.get(KEY) == at("11", "as we wrote it")


def test_a_change_after_ours_shown_before_our_reply_drops_the_entry_and_asks_again() -> None:
    known = LatestKnown()
    known.writing(KEY)
    assert known.seen(KEY, "11", never) is True
    assert known.seen(KEY, "12", never) is True  # someone else's, after ours
    assert known.written(KEY, at("11")) is False
    assert known.get(KEY) is None
    assert known.seen(KEY, "13", lambda: at("13")) is False
    assert known.get(KEY) == at("13")


def test_a_failed_write_or_a_deletion_during_it_keeps_nothing() -> None:
    known = LatestKnown()
    known.remember(KEY, at("10"))
    known.writing(KEY)
    known.seen(KEY, "11", never)
    assert known.written(KEY, None) is True  # the caller reconciles again anyway
    assert known.get(KEY) is None

    known.writing(KEY)
    known.seen(KEY, "12", never)
    known.deleted(KEY)
    assert known.written(KEY, at("12")) is False
    assert known.get(KEY) is None


def test_a_listed_object_never_replaces_a_newer_one_known() -> None:
    """A LIST is read before the events that follow it: an entry from the watch or from a
    write of ours is newer, and a write in flight decides by its reply."""
    known = LatestKnown()
    known.seen(KEY, "12", lambda: at("12", "from the watch"))
    known.remember_listed(KEY, at("11", "listed"))
    assert known.get(KEY) == at("12", "from the watch")

    writing = LatestKnown()
    writing.writing(KEY)
    writing.remember_listed(KEY, at("11", "listed"))
    assert writing.get(KEY) is None

    empty = LatestKnown()
    empty.remember_listed(KEY, at("11", "listed"))
    assert empty.get(KEY) == at("11", "listed")
    assert empty.seen(KEY, "13", never) is False  # a later change drops it: read anew
    assert empty.get(KEY) is None
