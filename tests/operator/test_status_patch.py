"""A status that already says what a reconcile would write is not patched again."""

from __future__ import annotations

from jwtmesh_operator import conditions as cond
from jwtmesh_operator.reconcile import _says_already

SIZE = {"type": cond.BUNDLE_SIZE, "status": "True", "reason": "Healthy", "message": "1000 bytes"}
READY = {"type": cond.READY, "status": "True", "reason": "KeysPublished", "message": "ok"}


def test_a_merge_patch_null_is_a_field_the_status_does_not_have() -> None:
    status = {"keys": [{"kid": "a", "state": "Active"}], "conditions": [READY]}
    patch = {"keys": [{"kid": "a", "state": "Active", "retiresAt": None}], "conditions": [READY]}
    assert _says_already(status, patch)


def test_only_the_bundle_size_in_bytes_is_not_worth_a_write() -> None:
    status = {"conditions": [READY, SIZE]}
    assert _says_already(status, {"conditions": [READY, {**SIZE, "message": "2000 bytes"}]})
    assert not _says_already(
        status, {"conditions": [READY, {**SIZE, "status": "False", "reason": "BundleNearLimit"}]}
    )
    assert not _says_already(status, {"conditions": [{**READY, "message": "other"}, SIZE]})


def test_anything_else_new_is_written() -> None:
    status = {"activeKid": "a", "conditions": [READY]}
    assert not _says_already(status, {"activeKid": "b", "conditions": [READY]})
    assert not _says_already(status, {"activeKid": "a", "lastRotationRequest": "now-1"})
    assert not _says_already({}, {"observedGeneration": 1})
