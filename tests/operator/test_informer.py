"""The operator's own list and watch of a kind (informer.py): the pure parts. The watch
against a real API server (events in order, only what the selectors ask for, an expired
version listed again) is in tests/k8s/test_informer.py."""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from jwtmesh_operator import informer as informer_module
from jwtmesh_operator.informer import Informer, lines, relist_changes, tombstone


def secret(name: str, version: str) -> dict[str, Any]:
    meta = {"namespace": "team-a", "name": name, "resourceVersion": version}
    return {"metadata": meta, "data": {"tls.key": "private"}}


def test_a_relist_hands_on_what_the_expired_watch_missed() -> None:
    known = {("team-a", "same"): "10", ("team-a", "changed"): "11", ("team-a", "gone"): "12"}
    listed = {
        ("team-a", "same"): secret("same", "10"),
        ("team-a", "changed"): secret("changed", "20"),
        ("team-a", "new"): secret("new", "21"),
    }
    changes = {(kind, body["metadata"]["name"]) for kind, body in relist_changes(known, listed)}
    assert changes == {("MODIFIED", "changed"), ("ADDED", "new"), ("DELETED", "gone")}


def test_a_vanished_object_comes_with_its_name_and_last_version_only() -> None:
    (kind, body), *_ = relist_changes({("team-a", "gone"): "12"}, {})
    assert kind == "DELETED"
    assert body == tombstone(("team-a", "gone"), "12")
    assert body == {"metadata": {"namespace": "team-a", "name": "gone", "resourceVersion": "12"}}


def test_nothing_changed_nothing_handed_on() -> None:
    listed = {("team-a", "a"): secret("a", "1")}
    assert relist_changes({("team-a", "a"): "1"}, listed) == []


events = st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip())


@given(
    st.lists(events, max_size=8),
    st.lists(st.integers(min_value=1, max_value=17), min_size=1, max_size=5),
)
def test_lines_come_whole_however_the_stream_is_cut(events: list[bytes], cuts: list[int]) -> None:
    body = b"".join(event + b"\n" for event in events)
    chunks, at, turn = [], 0, 0
    while at < len(body):
        size = cuts[turn % len(cuts)]
        chunks.append(body[at : at + size])
        at, turn = at + size, turn + 1
    assert list(lines(chunks)) == events


def test_a_last_line_without_newline_and_blank_lines() -> None:
    assert list(lines([b'{"a":1}\n\n', b"  \n", b'{"b"', b":2}"])) == [b'{"a":1}', b'{"b":2}']


def test_a_relist_keeps_only_what_changed_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """The objects a relist finds unchanged are not held until the last page comes (a
    tenant's forged Secrets are up to 1 MiB each): their versions are enough."""
    big = {**secret("big", "5"), "data": {"published-keys.json": "A" * 100_000}}
    page = {"metadata": {"resourceVersion": "9"}, "items": [big, secret("new", "8")]}
    response = SimpleNamespace(data=json.dumps(page).encode())
    informer = Informer("Secrets", lambda _scope: lambda **_: response, [], lambda *_: None)
    informer._known[None] = {("team-a", "big"): "5"}
    compared: list[Mapping[Any, Any]] = []

    def changes(known: Mapping[Any, str], listed: Mapping[Any, Any]) -> list[Any]:
        compared.append(listed)
        return relist_changes(known, listed)

    monkeypatch.setattr(informer_module, "relist_changes", changes)
    informer._relist(None)
    (listed,) = compared
    assert listed[("team-a", "big")] == tombstone(("team-a", "big"), "5")
    assert listed[("team-a", "new")] == secret("new", "8")
    assert informer._known[None] == {("team-a", "big"): "5", ("team-a", "new"): "8"}


def test_a_list_asks_for_pages_small_enough_for_a_tenants_largest_objects() -> None:
    """A tenant can make each Secret or identity it may write up to ~1.5 MiB (etcd's
    request limit): a page of 500 forged ones was ~750 MiB parsed at once, at every start."""
    asked: list[dict[str, Any]] = []

    def list_call(**options: Any) -> Any:
        asked.append(options)
        return SimpleNamespace(data=json.dumps({"metadata": {}, "items": []}).encode())

    informer = Informer("Secrets", lambda _scope: list_call, [], lambda *_: None)
    list(informer._pages(None))
    (options,) = asked
    largest_object = 3 * 1024 * 1024 // 2
    assert options["limit"] * largest_object <= 100 * 1024 * 1024
