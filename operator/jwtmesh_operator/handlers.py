"""The map of the operator: which Kubernetes events lead where. Handlers stay thin.

The indexes (jwtmesh_operator.indexes) hold what the decisions read; every handler here
translates an event into "reconcile this identity now" (the scheduler), "judge this
revocation" or "publish". Every replica handles every event, so its indexes stay current;
only the replica holding the Lease acts on them (the scheduler and the publisher wait).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf
from kubernetes.client.exceptions import ApiException

from jwtmesh_operator.bundles import Revocation, compromised_kids
from jwtmesh_operator.indexes import (
    CLUSTER_REVOCATIONS,
    GRANTS,
    REVOCATIONS,
    identity_record,
    namespace_rotation,
    operator_state,
    resolved_identities,
    revocation_records,
    secret_record,
    sources,
)
from jwtmesh_operator.reconcile import (
    CONFLICTS,
    RETRY_AFTER_ERROR,
    nothing_new,
    reconcile_identity,
    spec_seen,
)
from jwtmesh_operator.revocation_status import report_revocation
from jwtmesh_operator.revocations import RevocationRecord, effective, judge
from jwtmesh_operator.sources import owns
from jwtmesh_operator.spec import (
    API_GROUP,
    API_VERSION,
    IDENTITY_LABEL,
    LEFTOVER_FINALIZER,
    ROTATE_ANNOTATION,
)
from jwtmesh_operator.state import OperatorState
from jwtmesh_operator.tenancy import IdentityRecord, Resolved

log = logging.getLogger("jwtmesh.operator")
# A reconcile stuck on the API gives its slot back and retries (each step is safe to redo).
RECONCILE_TIMEOUT = 60.0
# How far behind the last change a reconcile's decisions may be (SourcesMemo).
STALE_OK = 0.5
RETRY_READ = (1.0, 5.0, 30.0)  # seconds between the attempts to read a Secret


def current_sources(state: OperatorState) -> Any:
    return state.sources_memo.get(lambda: sources(state.indexes, state))


def publish(state: OperatorState) -> None:
    """Ask for a bundle publish soon (the publisher writes only while this replica acts).
    Never before every index is filled: a bundle built from part of the identities would
    take the others' keys out of every Pod's trust. The sync itself asks for one."""
    if state.readiness.synced:
        state.publisher.request(lambda: current_sources(state))


def changed(state: OperatorState, *, names: bool = True) -> OperatorState:
    """Something the decisions read changed: recompute them on the next read. `names`:
    an identity or grant changed, so who holds which name may have too."""
    state.sources_memo.invalidate()
    if names:
        state.names_memo.invalidate()
    return state


# --- identities ----------------------------------------------------------------------


async def reconcile_one(state: OperatorState, key: tuple[str, str]) -> float | None:
    """The scheduler's work for one identity: read it as the API server has it now,
    reconcile, publish. Returns when it is due again (None: it is gone).

    Who holds which name (`names_memo`, identities and grants only: our own Secret
    writes do not change it) may be up to STALE_OK behind the last change, but only if it
    holds this identity as just read; otherwise it looks again once that is new."""
    namespace, name = key
    if not state.readiness.synced:
        # Asked before every index is filled (a Secret event, the Lease taken at start):
        # decisions over part of the identities and grants could refuse this one wrongly.
        return state.clock() + STALE_OK

    def names() -> dict[tuple[str, str], Resolved]:
        return resolved_identities(state.indexes, state)

    identities = state.names_memo.get(names, max_stale=STALE_OK)
    resolved = identities.get(key)
    body = await _latest_identity(state, key)
    if body is None:
        state.forget(key)
        return None
    if LEFTOVER_FINALIZER in (body["metadata"].get("finalizers") or ()):
        await state.kube.drop_finalizer(
            API_GROUP, API_VERSION, "serviceidentities", body, LEFTOVER_FINALIZER
        )
    current = identity_record(namespace, name, body["metadata"], body.get("spec") or {})
    if resolved is not None and resolved.refusal is not None and state.names_memo.stale:
        # Never refuse on old decisions: the holder of the name may have just left.
        identities = state.names_memo.get(names)
        resolved = identities.get(key)
    if resolved is None or resolved.record != current:
        return state.clock() + STALE_OK  # the index or the decisions are behind: soon
    revocations = effective(revocation_records(state.indexes), identities, state.clock())
    compromised = compromised_kids(revocations, resolved.issuer)
    try:
        wake_at = await asyncio.wait_for(
            reconcile_identity(
                state,
                body,
                resolved,
                compromised,
                namespace_rotation=namespace_rotation(state.indexes, namespace),
            ),
            RECONCILE_TIMEOUT,
        )
    except Exception as exc:
        state.counters.reconcile_errors += 1
        log.exception(
            "reconciling %s/%s failed",
            namespace,
            name,
            # `name` is a LogRecord attribute of its own: the identity goes as one field.
            extra={"event": "reconcile_failed", "identity": f"{namespace}/{name}"},
        )
        state.events.warn(body, "ReconcileFailed", f"{type(exc).__name__}; retrying")
        wake_at = state.clock() + RETRY_AFTER_ERROR
    publish(state)
    state.known_identities.release(key, wake_at, state.clock())
    return wake_at


async def _latest_identity(state: OperatorState, key: tuple[str, str]) -> Any:
    """The identity as last written or seen by this process (latest.py), else as the API
    server has it now (None: it is gone)."""
    known = state.known_identities.get(key)
    if known is not None:
        return known
    body = await state.kube.read_custom(API_GROUP, API_VERSION, "serviceidentities", *key)
    if body is not None:
        state.known_identities.remember(key, body)
    return body


def _refused_now(state: OperatorState) -> set[tuple[str, str]]:
    """Identities the decisions as of now refuse for a name another holds."""
    found = current_sources(state)
    return {
        key
        for key, resolved in found.identities.items()
        if resolved.refusal is not None and resolved.refusal.reason in CONFLICTS
    }


def identity_event(state: OperatorState, kind: str, body: dict[str, Any]) -> None:
    """A ServiceIdentity from the operator's own watch (informer.py): LISTED at the start
    (each one is reconciled once kopf's indexes are filled: `namespace_changed`), then
    ADDED, MODIFIED or DELETED. A new or changed identity is reconciled at once; a deleted
    one leaves the bundle, and the identities last refused for a name another holds look
    again (one may now hold it: the decisions as of now no longer refuse it, so only that
    report says so). An update with nothing the last reconcile did not see (our own status
    write) is ignored: the identity is already due when it next needs attention."""
    meta = body["metadata"]
    key = (str(meta["namespace"]), str(meta["name"]))
    ignored = kind == "MODIFIED" and nothing_new(body)
    if kind == "DELETED":
        state.identity_records.pop(key, None)
    else:
        record = state.identity_records[key] = identity_record(*key, meta, body.get("spec") or {})
        _read_secret_now_owned(state, record)
        # Kept for the reconcile this event asks for (none: nothing to keep it for).
        fill = state.acting.is_set() and not ignored
        version = str(meta.get("resourceVersion"))
        state.known_identities.seen(key, version, lambda: body, fill=fill)
    if ignored:
        return
    # A change outside the spec (a rotation request) changes nothing the decisions read:
    # only a new spec generation, a new identity or a deleted one make them look again
    # (over every identity: at 10,000, a tenth of the operator's CPU in a rotation sweep).
    if kind != "MODIFIED" or not spec_seen(body):
        changed(state)
    if kind == "LISTED":
        return
    if kind == "DELETED":
        state.scheduler.forget(key)
        state.forget(key)
        for conflicted in set(state.conflicted):
            state.scheduler.now(conflicted)
    else:
        state.scheduler.now(key)
    publish(state)


@kopf.on.event(*GRANTS)
async def grant_event(spec: Any, memo: Any, **_: Any) -> None:
    """A grant changes its identity's names and claims (and maybe frees a name)."""
    state = changed(operator_state(memo))
    identity = spec.get("identity") or {}
    state.scheduler.now((str(identity.get("namespace")), str(identity.get("name"))))
    for key in _refused_now(state) | state.conflicted:
        state.scheduler.now(key)
    publish(state)


def secret_event(state: OperatorState, kind: str, secret: dict[str, Any]) -> None:
    """A signing-key Secret from the operator's own watch (informer.py): LISTED at the
    start, then ADDED, MODIFIED or DELETED. Its public keys are kept for the bundle, which
    follows every change, our own writes included (their new keys are published from
    here). One edited or deleted by hand is repaired by its identity. Only labelled
    signing-key Secrets come (the API server selects them); one whose label was taken off
    comes as DELETED, and its owner looks again. One no identity owns (anyone may make
    them) is kept as its name only (indexes.secret_record), and wakes no unknown identity."""
    meta = secret["metadata"]
    key = (str(meta["namespace"]), str(meta["name"]))
    changed(state, names=False)
    if kind == "DELETED":
        state.signing_secrets.pop(key, None)
        state.known_secrets.deleted(key)
        own = False
    else:
        record = state.signing_secrets[key] = secret_record(secret, state.identity_records)
        version = str(meta.get("resourceVersion"))
        fill = state.acting.is_set() and record.read  # a copy of an owned Secret only
        own = state.known_secrets.seen(key, version, lambda: secret, fill=fill)
    if kind == "LISTED":
        return  # before kopf starts: every identity is reconciled, and published, anyway
    if not own:  # edited or deleted by someone else: its identity repairs it
        identity = (meta.get("labels") or {}).get(IDENTITY_LABEL) or _owning_identity(meta)
        for owner in [identity] if identity else _identities_keeping(state, key):
            if (key[0], owner) in state.identity_records:
                state.scheduler.now((key[0], owner))
    publish(state)


def _read_secret_now_owned(state: OperatorState, identity: IdentityRecord) -> None:
    """The identity's Secret came before the identity did (a standby's two watches lag
    apart): owned by no identity then, its keys were not read. They are read now, by one
    GET, so that the bundle this replica writes once it acts has them."""
    key = (identity.namespace, identity.secret_name)
    secret = state.signing_secrets.get(key)
    if secret is None or secret.read or not owns(identity, secret) or key in state.secret_reads:
        return
    task = asyncio.get_running_loop().create_task(_read_secret(state, key))
    state.secret_reads[key] = task
    task.add_done_callback(lambda _: state.secret_reads.pop(key, None))


async def _read_secret(state: OperatorState, key: tuple[str, str]) -> None:
    for delay in RETRY_READ:
        try:
            found = await state.kube.read_secret_object(*key)
            break
        except Exception:  # the API server away: again later
            log.warning("reading Secret %s/%s failed; again in %.0f s", *key, delay, exc_info=True)
            await asyncio.sleep(delay)
    else:
        return
    record = state.signing_secrets.get(key)
    if found is None or record is None or record.read:
        return  # gone, or an event since has read it
    state.signing_secrets[key] = secret_record(found, state.identity_records)
    publish(changed(state, names=False))


def _identities_keeping(state: OperatorState, secret: tuple[str, str]) -> list[str]:
    """The identities whose keys the Secret is to hold (for a deletion a new LIST found:
    its event carries the name only)."""
    return [
        name
        for (namespace, name), record in state.identity_records.items()
        if namespace == secret[0] and record.secret_name == secret[1]
    ]


def _owning_identity(meta: Any) -> str | None:
    """The ServiceIdentity a Secret names as its controller, if any."""
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "ServiceIdentity" and ref.get("controller"):
            return str(ref.get("name"))
    return None


# --- revocations and namespaces ------------------------------------------------------


async def _revocation_event(record: RevocationRecord, body: Any, memo: Any) -> None:
    state = changed(operator_state(memo), names=False)
    found = current_sources(state)
    verdict = judge(record, found.identities, state.clock())
    if record.spec.get("kid") and isinstance(verdict, Revocation):
        # The identity owning the kid re-keys at once.
        for key, resolved in found.identities.items():
            if resolved.issuer == verdict.issuer:
                state.scheduler.now(key)
    publish(state)
    if state.acting.is_set():
        records = revocation_records(state.indexes)
        await report_revocation(state, body, record, records, found.identities)


@kopf.on.event(*REVOCATIONS)
async def revocation_event(
    namespace: Any, name: str, spec: Any, body: Any, event: Any, memo: Any, **_: Any
) -> None:
    record = RevocationRecord(name=name, namespace=namespace, spec=dict(spec))
    if event.get("type") == "DELETED":
        publish(changed(operator_state(memo), names=False))
        return
    await _revocation_event(record, body, memo)


@kopf.on.event(*CLUSTER_REVOCATIONS)
async def cluster_revocation_event(
    name: str, spec: Any, body: Any, event: Any, memo: Any, **_: Any
) -> None:
    record = RevocationRecord(name=name, namespace=None, spec=dict(spec))
    if event.get("type") == "DELETED":
        publish(changed(operator_state(memo), names=False))
        return
    await _revocation_event(record, body, memo)


@kopf.on.event("", "v1", "namespaces")
async def namespace_changed(name: str, labels: Any, annotations: Any, memo: Any, **_: Any) -> None:
    state = operator_state(memo)
    if not state.readiness.synced:
        # kopf runs no resource handler before every index is filled: this first namespace
        # event means the operator holds the whole cluster (readiness.py).
        state.readiness.synced = True
        log.info("synced: every index is filled", extra={"event": "synced"})
        # Every identity is reconciled once, and the bundle written: nothing asked before
        # now was done (`publish`, `reconcile_one`).
        for key in list(state.identity_records):
            state.scheduler.now(key)
        publish(changed(state))
    if state.config.bundle_label in labels:
        publish(changed(state, names=False))
    asked = annotations.get(ROTATE_ANNOTATION)
    first_sight = name not in state.namespace_rotations
    if first_sight or state.namespace_rotations[name] != asked:
        state.namespace_rotations[name] = asked
        if asked is not None:
            await _rotation_asked_of_namespace(state, name, prefetch=not first_sight)


async def _rotation_asked_of_namespace(
    state: OperatorState, namespace: str, *, prefetch: bool
) -> None:
    """Every identity in the namespace looks at the request (each rotates once per value).
    Read with one paged LIST first (not a GET per identity), unless the namespace is seen
    for the first time: at start every identity was just listed, and is reconciled anyway."""
    keys = [key for key in list(state.identity_records) if key[0] == namespace]
    if prefetch and keys and state.acting.is_set():

        def keep(body: dict[str, Any]) -> None:
            meta = body["metadata"]
            state.known_identities.remember_listed((meta["namespace"], meta["name"]), body)

        # One namespace at a time: several at once would hold several pages in memory.
        async with state.namespace_listing:
            try:
                await state.kube.visit_custom(
                    API_GROUP, API_VERSION, "serviceidentities", namespace, keep
                )
            except ApiException as exc:
                log.warning(
                    "listing the identities of %s failed (%s): read one by one",
                    namespace,
                    exc.status,
                )
    for key in keys:
        state.scheduler.now(key)
