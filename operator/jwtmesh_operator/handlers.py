"""The map of the operator: which Kubernetes events lead where. Handlers stay thin.

The indexes (jwtmesh_operator.indexes) hold what the decisions read; every handler here
translates an event into "reconcile this identity", "judge this revocation" or "publish".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import kopf

from jwtmesh_operator.bundles import compromised_kids
from jwtmesh_operator.indexes import (
    CLUSTER_REVOCATIONS,
    GRANTS,
    IDENTITIES,
    REVOCATIONS,
    operator_state,
    pick,
    sources,
)
from jwtmesh_operator.kopf_finalizer import without_finalizer
from jwtmesh_operator.reconcile import RETRY_AFTER_ERROR, reconcile_identity
from jwtmesh_operator.revocation_status import report_revocation
from jwtmesh_operator.revocations import RevocationRecord
from jwtmesh_operator.spec import API_GROUP, API_VERSION, IDENTITY_LABEL
from jwtmesh_operator.state import OperatorState

log = logging.getLogger("jwtmesh.operator")
# A reconcile stuck on the API gives its slot back and retries (each step is safe to redo).
RECONCILE_TIMEOUT = 60.0


def current_sources(memo: Any, kwargs: dict[str, Any]) -> Any:
    state = operator_state(memo)
    indexes = pick(kwargs)
    return state.sources_memo.get(lambda: sources(indexes, state))


def request_publish(memo: Any, kwargs: dict[str, Any]) -> None:
    state = operator_state(memo)
    indexes = pick(kwargs)
    state.publisher.request(lambda: state.sources_memo.get(lambda: sources(indexes, state)))


def changed(memo: Any) -> OperatorState:
    """Something the decisions read changed: recompute them on the next read."""
    state = operator_state(memo)
    state.sources_memo.invalidate()
    return state


# --- identities ----------------------------------------------------------------------


@kopf.daemon(*IDENTITIES, cancellation_timeout=10)
async def keep_identity(
    body: Any, namespace: Any, name: str, stopped: Any, memo: Any, **kwargs: Any
) -> None:
    """One per ServiceIdentity: reconcile, then sleep until the next key transition or
    until something wakes it (a spec change, its Secret changing, a revocation)."""
    state = operator_state(memo)
    waker = state.wakers.register(namespace, name)
    try:
        while not stopped:
            waker.clear()
            found = current_sources(memo, kwargs)
            resolved = found.identities.get((namespace, name))
            try:
                if resolved is None and await _gone(state, body):
                    return  # no finalizer: kopf does not stop the daemon of a deleted object
                if resolved is None:  # not in the index yet: look again shortly
                    wake_at = state.clock() + 0.5
                else:
                    compromised = compromised_kids(found.revocations, resolved.issuer)
                    async with state.reconcile_slots:
                        wake_at = await asyncio.wait_for(
                            reconcile_identity(state, body, resolved, compromised),
                            RECONCILE_TIMEOUT,
                        )
            except Exception as exc:
                state.counters.reconcile_errors += 1
                log.exception(
                    "reconciling %s/%s failed",
                    namespace,
                    name,
                    extra={"event": "reconcile_failed", "namespace": namespace, "name": name},
                )
                kopf.warn(body, reason="ReconcileFailed", message=f"{type(exc).__name__}; retrying")
                wake_at = state.clock() + RETRY_AFTER_ERROR
            request_publish(memo, kwargs)
            delay = max(0.0, wake_at - state.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(waker.wait(), timeout=min(delay, 3600.0))
    finally:
        state.wakers.forget(namespace, name, waker)
        state.identities.pop((namespace, name), None)


without_finalizer(keep_identity)


async def _gone(state: OperatorState, body: Any) -> bool:
    """The identity this daemon serves is deleted (or replaced by a new one of its name)."""
    meta = body.get("metadata", {})
    current = await state.kube.read_custom(
        API_GROUP, API_VERSION, "serviceidentities", meta.get("namespace"), meta.get("name")
    )
    return current is None or current.get("metadata", {}).get("uid") != meta.get("uid")


@kopf.on.event(*IDENTITIES)
async def identity_event(namespace: Any, name: str, memo: Any, event: Any, **kwargs: Any) -> None:
    """A new, changed or deleted identity can change who holds which issuer and audience:
    every identity looks again (the losers of a conflict take over when the holder goes)."""
    state = changed(memo)
    if event.get("type") in ("ADDED", "MODIFIED"):
        state.wakers.wake(namespace, name)
    if event.get("type") == "DELETED":
        state.wakers.wake_all()
    request_publish(memo, kwargs)


@kopf.on.event(*GRANTS)
async def grant_event(memo: Any, **kwargs: Any) -> None:
    changed(memo).wakers.wake_all()  # names and claims of the granted identity change
    request_publish(memo, kwargs)


@kopf.on.event("", "v1", "secrets", labels={IDENTITY_LABEL: kopf.PRESENT})
async def identity_secret_changed(namespace: Any, labels: Any, memo: Any, **kwargs: Any) -> None:
    """A Secret edited or deleted by hand: its identity repairs it; bundles follow."""
    changed(memo).wakers.wake(namespace, labels[IDENTITY_LABEL])
    request_publish(memo, kwargs)


# --- revocations and namespaces ------------------------------------------------------


async def _revocation_event(record: RevocationRecord, body: Any, memo: Any, kwargs: Any) -> None:
    state = changed(memo)
    if record.spec.get("kid"):
        state.wakers.wake_all()  # the identity owning the kid re-keys at once
    request_publish(memo, kwargs)
    await report_revocation(state, body, record, current_sources(memo, kwargs).identities)


@kopf.on.event(*REVOCATIONS)
async def revocation_event(
    namespace: Any, name: str, spec: Any, body: Any, event: Any, memo: Any, **kwargs: Any
) -> None:
    record = RevocationRecord(name=name, namespace=namespace, spec=dict(spec))
    if event.get("type") == "DELETED":
        changed(memo)
        request_publish(memo, kwargs)
        return
    await _revocation_event(record, body, memo, kwargs)


@kopf.on.event(*CLUSTER_REVOCATIONS)
async def cluster_revocation_event(
    name: str, spec: Any, body: Any, event: Any, memo: Any, **kwargs: Any
) -> None:
    record = RevocationRecord(name=name, namespace=None, spec=dict(spec))
    if event.get("type") == "DELETED":
        changed(memo)
        request_publish(memo, kwargs)
        return
    await _revocation_event(record, body, memo, kwargs)


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(labels: Any, memo: Any, **kwargs: Any) -> None:
    state = operator_state(memo)
    if not state.readiness.synced:
        # kopf runs no resource handler before every index is filled: this first namespace
        # event means the operator holds the whole cluster (readiness.py).
        state.readiness.synced = True
        log.info("synced: every index is filled", extra={"event": "synced"})
    if state.config.bundle_label in labels:
        changed(memo)
        request_publish(memo, kwargs)
