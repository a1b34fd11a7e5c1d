"""Which identity updates make the operator look again at its decisions and reconcile
(handlers.identity_event reads these two)."""

from __future__ import annotations

from typing import Any

from jwtmesh_operator.reconcile import nothing_new, spec_seen


def identity(generation: int, observed: int | None, **meta: Any) -> dict[str, Any]:
    status = {} if observed is None else {"observedGeneration": observed}
    return {"metadata": {"generation": generation, **meta}, "status": status}


def test_our_own_status_write_is_nothing_new() -> None:
    body = identity(3, 3)
    assert spec_seen(body)
    assert nothing_new(body)


def test_a_rotation_request_needs_a_reconcile_but_leaves_the_spec_seen() -> None:
    """So the decisions over every identity (who holds which name) are not redone."""
    body = identity(3, 3, annotations={"jwtmesh.io/rotate": "now-1"})
    assert spec_seen(body)
    assert not nothing_new(body)
    done = {**body, "status": {"observedGeneration": 3, "lastRotationRequest": "now-1"}}
    assert nothing_new(done)


def test_a_new_spec_or_a_deletion_is_not_seen_yet() -> None:
    assert not spec_seen(identity(4, 3))
    assert not spec_seen(identity(1, None))
    assert not spec_seen(identity(3, 3, deletionTimestamp="2026-11-26T19:00:00Z"))
    assert not nothing_new(identity(4, 3))
