"""ServiceIdentities carry no kopf finalizer: they must stay deletable without a running
operator (after `helm uninstall`, deleting them, their namespace or the CRDs hung)."""

from __future__ import annotations

import kopf
import pytest

from jwtmesh_operator import handlers
from jwtmesh_operator.kopf_finalizer import without_finalizer


def test_no_registered_daemon_or_timer_asks_for_a_finalizer() -> None:
    """kopf's registry as the operator runs it (kopf 1.45: `_spawning._handlers`)."""
    spawning = kopf.get_default_registry()._spawning.get_all_handlers()
    assert handlers.keep_identity in [h.fn for h in spawning]
    assert [h.id for h in spawning if h.requires_finalizer] == []


def test_only_a_registered_daemon_can_be_released() -> None:
    registry = kopf.OperatorRegistry()

    @kopf.daemon("example.com", "v1", "things", registry=registry)
    async def daemon(**_: object) -> None: ...

    assert registry._spawning.get_all_handlers()[0].requires_finalizer
    without_finalizer(daemon, registry)
    assert not registry._spawning.get_all_handlers()[0].requires_finalizer
    with pytest.raises(LookupError):
        without_finalizer(lambda: None, registry)
