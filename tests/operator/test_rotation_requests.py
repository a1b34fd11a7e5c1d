"""What the rotate annotations (on an identity, on its Namespace) ask of one identity."""

from __future__ import annotations

from jwtmesh_operator.rotation_requests import (
    IDENTITY_RECORD,
    NAMESPACE_RECORD,
    RotationRequests,
    identity_request,
    rotation_requests,
)

ROTATE = "jwtmesh.io/rotate"


def test_no_annotation_asks_nothing() -> None:
    assert rotation_requests(None, None, {}, has_keys=True) == RotationRequests(rotate=False)
    assert rotation_requests({"other": "1"}, None, {}, has_keys=True).rotate is False


def test_a_new_namespace_value_rotates_an_identity_with_keys_once() -> None:
    asked = rotation_requests(None, "v1", {}, has_keys=True)
    assert asked == RotationRequests(rotate=True, record={NAMESPACE_RECORD: "v1"})
    done = {NAMESPACE_RECORD: "v1"}
    assert rotation_requests(None, "v1", done, has_keys=True) == RotationRequests(rotate=False)
    assert rotation_requests(None, "v2", done, has_keys=True).rotate is True


def test_an_identity_without_keys_records_the_namespace_value_without_rotating() -> None:
    """Its first keys are made after the request: rotating them would only churn."""
    asked = rotation_requests(None, "v1", {}, has_keys=False)
    assert asked == RotationRequests(rotate=False, record={NAMESPACE_RECORD: "v1"})


def test_the_identity_annotation_is_unchanged_by_the_namespace_one() -> None:
    both = rotation_requests({ROTATE: "mine"}, "ns", {}, has_keys=True)
    assert both == RotationRequests(
        rotate=True, record={IDENTITY_RECORD: "mine", NAMESPACE_RECORD: "ns"}
    )
    own_done = {IDENTITY_RECORD: "mine", NAMESPACE_RECORD: "ns"}
    assert rotation_requests({ROTATE: "mine"}, "ns", own_done, has_keys=True).rotate is False
    # An identity's own request rotates even before it has keys (as it always did).
    assert rotation_requests({ROTATE: "x"}, None, {}, has_keys=False).rotate is True


def test_a_removed_namespace_annotation_asks_nothing_and_keeps_the_record() -> None:
    assert rotation_requests(None, None, {NAMESPACE_RECORD: "v1"}, has_keys=True) == (
        RotationRequests(rotate=False)
    )


def test_identity_request_compares_as_text() -> None:
    assert identity_request({ROTATE: 5}, {IDENTITY_RECORD: "5"}) is None
    assert identity_request({ROTATE: 6}, {IDENTITY_RECORD: "5"}) == "6"


def test_a_long_value_is_recorded_by_its_hash_and_still_asks_once() -> None:
    """An annotation may hold 256 KiB; the status of every identity of the namespace would
    carry a copy."""
    long_value = "x" * 10_000
    asked = rotation_requests({ROTATE: long_value}, long_value, {}, has_keys=True)
    assert asked.rotate is True
    assert all(v.startswith("sha256:") and len(v) == 71 for v in asked.record.values())
    assert rotation_requests({ROTATE: long_value}, long_value, asked.record, has_keys=True) == (
        RotationRequests(rotate=False)
    )
    other = rotation_requests(None, long_value + "y", asked.record, has_keys=True)
    assert other.rotate is True
    assert rotation_requests(None, "x" * 128, {}, has_keys=True).record == {
        NAMESPACE_RECORD: "x" * 128
    }
