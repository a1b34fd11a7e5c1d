"""The operator's own list and watch of signing-key Secrets (secret_watch.py): the pure
parts. The watch against a real API server (events, an expired version listed again) is in
tests/k8s/test_secret_watch.py."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from jwtmesh_operator.secret_watch import Seen, lines, relist_changes, seen, tombstone


def secret(name: str, version: str, identity: str | None = "web") -> dict[str, Any]:
    labels = {"jwtmesh.io/identity": identity} if identity else {}
    owners = [{"kind": "ServiceIdentity", "name": identity, "uid": "u1", "controller": True}]
    return {
        "metadata": {
            "namespace": "team-a",
            "name": name,
            "resourceVersion": version,
            "labels": {**labels, "other": "kept out"},
            "ownerReferences": owners,
        },
        "data": {"tls.key": "private"},
    }


def test_a_relist_hands_on_what_the_expired_watch_missed() -> None:
    known = {
        ("team-a", "same"): seen(secret("same", "10")),
        ("team-a", "changed"): seen(secret("changed", "11")),
        ("team-a", "gone"): seen(secret("gone", "12", identity="api")),
    }
    listed = {
        ("team-a", "same"): secret("same", "10"),
        ("team-a", "changed"): secret("changed", "20"),
        ("team-a", "new"): secret("new", "21"),
    }
    changes = {(kind, body["metadata"]["name"]) for kind, body in relist_changes(known, listed)}
    assert changes == {("MODIFIED", "changed"), ("ADDED", "new"), ("DELETED", "gone")}


def test_a_vanished_secret_says_whose_it_was_and_nothing_else() -> None:
    """The DELETED event a relist makes up names the identity (its label and owner), as
    the API server's own would; no key material is remembered for it."""
    last = seen(secret("gone", "12", identity="api"))
    (kind, body), *_ = relist_changes({("team-a", "gone"): last}, {})
    assert kind == "DELETED"
    assert body == tombstone(("team-a", "gone"), last)
    assert body["metadata"]["labels"] == {"jwtmesh.io/identity": "api"}
    assert body["metadata"]["ownerReferences"][0]["name"] == "api"
    assert "data" not in body
    assert last == Seen(
        "12", {"jwtmesh.io/identity": "api"}, tuple(body["metadata"]["ownerReferences"])
    )


def test_nothing_changed_nothing_handed_on() -> None:
    listed = {("team-a", "a"): secret("a", "1")}
    assert relist_changes({key: seen(value) for key, value in listed.items()}, listed) == []


@given(
    st.lists(
        st.binary(min_size=1, max_size=40).filter(lambda b: b"\n" not in b and b.strip()),
        max_size=8,
    ),
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
