"""The shell around `decide_identity`: gather from the API, decide, apply, report.

Order matters for "no key is ever lost": a new private key is written to the Secret
first; the status (our backup of the public keys) and the bundle follow from it. If the
operator dies between two steps, the next run reads the Secret and carries on.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import astuple, replace
from typing import Any

import yaml
from kubernetes.client.exceptions import ApiException

from jwtmesh.tokens.keys import PublicKey, SigningKey, generate_signing_key, slow_to_generate
from jwtmesh_operator import conditions as cond
from jwtmesh_operator import netpol
from jwtmesh_operator.census import listed_else_read
from jwtmesh_operator.desired import (
    IdentityDecision,
    active_kid,
    decide_identity,
    iso,
    next_rotation,
    status_keys,
)
from jwtmesh_operator.keystore import SECRET_TYPE, StoredKeys, read_secret_data, render_secret_data
from jwtmesh_operator.kube import Conflict, Stored, owner_reference, secret_object, secret_of
from jwtmesh_operator.planning import (
    ROTATION_HELD,
    UP_TO_DATE,
    KeySchedule,
    Plan,
    awaited_kids,
)
from jwtmesh_operator.publication import Deferral
from jwtmesh_operator.rendering import size_condition
from jwtmesh_operator.rotation_requests import identity_request, rotation_requests
from jwtmesh_operator.spec import (
    API_GROUP,
    API_VERSION,
    IDENTITY_LABEL,
    IdentitySpec,
    SpecError,
    parse_spec,
    period_refusal,
)
from jwtmesh_operator.state import IdentityHealth, OperatorState
from jwtmesh_operator.tenancy import AUDIENCE_CONFLICT, ISSUER_CONFLICT, Resolved

log = logging.getLogger("jwtmesh.operator")
PLURAL = "serviceidentities"
RETRY_AFTER_ERROR = 5.0
RECHECK_INVALID = 300.0
CONFLICTS = frozenset({ISSUER_CONFLICT, AUDIENCE_CONFLICT})


async def reconcile_identity(
    state: OperatorState,
    body: Any,
    resolved: Resolved,
    compromised: frozenset[str],
    *,
    namespace_rotation: str | None = None,
    fresh: bool | None = None,
) -> float:
    """Bring one identity's Secret, policy and status to what they should be now; returns
    when it next needs attention (Unix time). `namespace_rotation`: its Namespace's rotate
    annotation (rotation_requests.py). `fresh` (default: never reconciled, no
    observedGeneration): its objects are created without a lookup first (a conflict reads
    the one that exists and carries on as usual)."""
    status: dict[str, Any] = dict(body.get("status") or {})
    fresh = status.get("observedGeneration") is None if fresh is None else fresh
    now, meta = state.clock(), body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    try:
        spec = parse_spec(namespace, name, body.get("spec") or {}, state.config.trust_domain)
    except SpecError as exc:
        return await _refuse(state, body, status, now, cond.INVALID_SPEC, str(exc))
    too_often = period_refusal(spec.rotation, state.config.min_rotation_period)
    if too_often is not None:
        return await _refuse(state, body, status, now, cond.INVALID_SPEC, too_often)
    if resolved.refusal is not None:
        # Another namespace's (or an older identity's) issuer or audience: never published.
        return await _refuse(state, body, status, now, *astuple(resolved.refusal))
    spec = replace(spec, issuer=resolved.issuer, audience=resolved.audience)
    secret = None if fresh else await _latest_secret(state, namespace, spec.secret_name)
    taken = _secret_taken(secret, name, meta.get("uid"))
    if taken is not None:
        return await _refuse(state, body, status, now, "SecretNameTaken", taken)
    stored: StoredKeys | None = read_secret_data(secret.data) if secret is not None else None

    # Keys in the Secret or in the status backup (a deleted Secret is repaired from it).
    has_keys = bool(stored and stored.public) or bool(status.get("keys"))
    requests = rotation_requests(
        meta.get("annotations"), namespace_rotation, status, has_keys=has_keys
    )
    decision = decide_identity(
        spec,
        stored,
        status,
        now,
        rotate_requested=requests.rotate,
        compromised=compromised,
        publication=state.publisher.publication.view(),
    )
    planned, public, data = await _desired_secret(state, spec, decision, stored, resolved, now)
    # Before the Secret is written: the publish its watch event asks for must find them.
    ledger = state.publisher.publication
    published = ledger.view().published_at
    plan = decision.plan
    check = Deferral(plan.wake_at, plan.wake_at_once_written)
    awaited = awaited_kids(planned, spec.rotation, now, published)
    ledger.wait((namespace, name), awaited, check if check.check_at < check.then else None)
    if (secret is None or secret.data != data) and not await _write_secret(
        state, body, spec, secret, data
    ):
        if fresh:  # it existed after all: decide again from what it holds
            return await reconcile_identity(
                state,
                body,
                resolved,
                compromised,
                namespace_rotation=namespace_rotation,
                fresh=False,
            )
        return now + 0.5  # someone wrote meanwhile: start over from what is there now

    await _write_policy(state, body, spec, fresh)
    final = replace(decision.plan, keys=planned)
    extra = _ready_status(spec, final, public, now, requests.record)
    await _report_ready(state, body, status, now, extra, next_rotation(final, now))
    _announce(state, body, decision, final, now)
    state.counters.reconciles += 1
    state.known_secrets.release((namespace, spec.secret_name), final.wake_at, now)
    return final.wake_at


async def _latest_secret(state: OperatorState, namespace: str, name: str) -> Stored | None:
    """The Secret as last written or seen by this process (latest.py), else as the API
    server has it now."""
    known = state.known_secrets.get((namespace, name))
    if known is not None:
        return secret_of(known)
    found = await state.kube.read_secret_object(namespace, name)
    if found is None:
        return None
    state.known_secrets.remember((namespace, name), found)
    return secret_of(found)


async def _desired_secret(
    state: OperatorState,
    spec: IdentitySpec,
    decision: IdentityDecision,
    stored: StoredKeys | None,
    resolved: Resolved,
    now: float,
) -> tuple[tuple[KeySchedule, ...], dict[str, PublicKey], dict[str, bytes]]:
    """The keys the identity should have now (new ones generated) and its Secret's data."""
    planned, public, private = await _generate_new_keys(state, spec, decision, stored)
    data = render_secret_data(
        issuer=spec.issuer,
        subject=spec.audience,
        max_lifetime=spec.max_lifetime,
        schedules=planned,
        public=public,
        private=private,
        now=now,
        claims=resolved.claims,
    )
    return planned, public, data


def _ready_status(
    spec: IdentitySpec,
    final: Plan,
    public: dict[str, PublicKey],
    now: float,
    requests_done: dict[str, str],
) -> dict[str, Any]:
    """What a Ready identity's status says beyond its condition (with the rotation
    requests this reconcile carried out)."""
    extra: dict[str, Any] = {
        "issuer": spec.issuer,
        "audience": spec.audience,
        "secretName": spec.secret_name,
        "activeKid": active_kid(final, now),
        "nextRotation": iso(next_rotation(final, now)),
        "keys": status_keys(final, public, now),
    }
    return extra | requests_done


def spec_seen(body: Any) -> bool:
    """Whether the last reconcile saw this identity's spec (the generation its status
    reports) and it is not being deleted."""
    meta, status = body["metadata"], body.get("status") or {}
    return meta.get("generation") == status.get("observedGeneration") and not meta.get(
        "deletionTimestamp"
    )


def nothing_new(body: Any) -> bool:
    """Whether the last reconcile saw everything this version of the identity asks for:
    its spec and no rotation request it has not done (so a watch event of our own status
    write asks for no reconcile)."""
    return (
        spec_seen(body)
        and identity_request(body["metadata"].get("annotations"), body.get("status") or {}) is None
    )


async def _write_secret(
    state: OperatorState, body: Any, spec: IdentitySpec, secret: Stored | None, data: Any
) -> bool:
    """Create or replace the identity's Secret; False when someone else wrote it first."""
    key, labels = (spec.namespace, spec.secret_name), {IDENTITY_LABEL: spec.name}
    owner = owner_reference(body)
    written: dict[str, Any] | None = None
    state.known_secrets.writing(key)
    try:
        version = await state.kube.write_secret(
            spec.namespace,
            spec.secret_name,
            data,
            secret_type=SECRET_TYPE,
            labels=labels,
            owner=owner,
            resource_version=None if secret is None else secret.resource_version,
        )
        written = secret_object(spec.namespace, spec.secret_name, data, version, labels, owner)
    except Conflict:
        pass  # someone else wrote first
    finally:
        taken_whole = state.known_secrets.written(key, written)
    if not taken_whole:
        state.scheduler.now((spec.namespace, spec.name))  # a change after ours came meanwhile
    return written is not None


def _secret_taken(secret: Stored | None, name: str, uid: str | None) -> str | None:
    """A Secret under our name that this identity did not make is never adopted."""
    if secret is None:
        return None
    if IDENTITY_LABEL not in secret.labels and uid and uid in secret.owner_uids:
        # Its keys left every bundle with the label (only labelled Secrets are watched).
        return (
            f"Secret {secret.name} lost its label {IDENTITY_LABEL}={name}: put the label "
            "back, or delete the Secret to have new keys made"
        )
    if secret.labels.get(IDENTITY_LABEL) != name or (uid and uid not in secret.owner_uids):
        return f"Secret {secret.name} exists and was not made by the operator for this identity"
    return None


async def _generate_new_keys(
    state: OperatorState, spec: IdentitySpec, decision: IdentityDecision, stored: StoredKeys | None
) -> tuple[tuple[KeySchedule, ...], dict[str, PublicKey], dict[str, SigningKey]]:
    """The plan's new keys made real: (schedules with kids, public keys, private keys)."""
    private: dict[str, SigningKey] = dict(stored.private) if stored is not None else {}
    public: dict[str, PublicKey] = dict(decision.public)
    schedules: list[KeySchedule] = []
    for schedule in decision.plan.keys:
        if schedule.kid is None:
            key = await _new_key(state, spec)
            state.counters.keys_generated += 1
            private[key.kid] = key
            public[key.kid] = key.public
            schedule = replace(schedule, kid=key.kid)
        schedules.append(schedule)
    return tuple(schedules), public, private


async def _new_key(state: OperatorState, spec: IdentitySpec) -> SigningKey:
    if not slow_to_generate(spec.algorithm):
        # Well under a millisecond: made here, so it never queues behind RSA keys (another
        # namespace's flood of RSA-4096 identities can fill the keygen threads).
        return generate_signing_key(spec.algorithm, spec.rsa_bits)
    # RSA generation takes a while: off the event loop, and in threads of its own
    # (state.KEYGEN_THREADS), never ahead of an API call in the default pool; namespaces
    # take turns for them.
    made = state.keygen.submit(spec.namespace, generate_signing_key, spec.algorithm, spec.rsa_bits)
    return await asyncio.wrap_future(made)


async def _report_ready(
    state: OperatorState,
    body: Any,
    status: dict[str, Any],
    now: float,
    extra: dict[str, Any],
    next_at: float | None,
) -> None:
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    state.report(key, IdentityHealth(True, cond.KEYS_PUBLISHED, next_at), conflict=False)
    await _patch_status(
        state,
        meta["namespace"],
        meta["name"],
        status,
        meta.get("generation"),
        now,
        ready=True,
        reason=cond.KEYS_PUBLISHED,
        message="a key signs and every bundle has it",
        extra=extra,
    )


def _announce(
    state: OperatorState, body: Any, decision: IdentityDecision, final: Plan, now: float
) -> None:
    """Events for what changed: a repaired Secret (warning), a new or rotated key (info)."""
    if decision.repair is not None:
        state.events.warn(body, decision.repair, "; ".join(decision.notes))
    kid = active_kid(final, now) or "-"
    kids = [schedule.kid for schedule in final.keys]
    if final.reason == ROTATION_HELD:
        state.events.warn(
            body,
            final.reason,
            f"the next key is in no written trust bundle (over its capacity: BundleSizeOK): "
            f"{kid} signs on until a publish carries it; keys now {kids}",
        )
    elif final.reason != UP_TO_DATE:
        state.events.info(body, final.reason, f"keys now {kids}, signing {kid}")


async def _refuse(
    state: OperatorState, body: Any, status: dict[str, Any], now: float, reason: str, message: str
) -> float:
    """The identity cannot be acted on: say why (event + Degraded), look again later."""
    state.events.warn(body, reason, message)
    meta = body["metadata"]
    key = (meta["namespace"], meta["name"])
    state.report(key, IdentityHealth(False, reason), conflict=reason in CONFLICTS)
    await _patch_status(
        state,
        meta["namespace"],
        meta["name"],
        status,
        meta.get("generation"),
        now,
        ready=False,
        reason=reason,
        message=message,
        extra={},
    )
    return now + RECHECK_INVALID


async def _write_policy(state: OperatorState, body: Any, spec: IdentitySpec, fresh: bool) -> None:
    """Render the identity's inbound policy where its sidecar reads it, and (unless
    turned off) the NetworkPolicy that admits its Pods' traffic through Envoy only.
    Both follow the spec alone: once written or found right for this generation of the
    identity, this process does not look at them again until the spec changes (a
    rotation needs neither), so a hand edit is undone at the next spec change or start."""
    meta = body["metadata"]
    key, seen = (spec.namespace, spec.name), (meta.get("uid"), meta.get("generation"))
    if state.policies_written.get(key) == seen:
        return
    done = await _write_policy_configmap(state, body, spec, fresh)
    if state.config.network_policies:
        done = await _write_network_policy(state, body, spec, fresh) and done
    if done:
        state.policies_written[key] = seen


async def _write_policy_configmap(
    state: OperatorState, body: Any, spec: IdentitySpec, fresh: bool
) -> bool:
    namespace, name, document = spec.namespace, spec.name, spec.policy_document
    cm_name = f"{name}{state.config.policy_suffix}"
    text = yaml.safe_dump(dict(document) if document else {"rules": []}, sort_keys=True)
    current = None
    if not fresh:
        current = await listed_else_read(
            state,
            state.listed_policies,
            (namespace, cm_name),
            lambda: state.kube.read_configmap(namespace, cm_name),
        )
    if current is not None and current.data.get("policy.yaml") == text.encode():
        return True
    try:
        await state.kube.write_configmap(
            namespace,
            cm_name,
            {"policy.yaml": text},
            labels={IDENTITY_LABEL: name},
            owner=owner_reference(body),
            resource_version=None if current is None else current.resource_version,
        )
    except Conflict:  # it existed after all, or changed meanwhile: look (or next time)
        return await _write_policy_configmap(state, body, spec, False) if fresh else False
    return True


async def _write_network_policy(
    state: OperatorState, body: Any, spec: IdentitySpec, fresh: bool
) -> bool:
    desired = netpol.render_network_policy(
        spec.namespace, spec.name, IDENTITY_LABEL, spec.open_ports, {}
    )
    wanted = desired["metadata"]["annotations"][netpol.DIGEST_ANNOTATION].encode()
    try:
        current = None
        if not fresh:
            policy_name = netpol.policy_name(spec.name)
            current = await listed_else_read(
                state,
                state.listed_network_policies,
                (spec.namespace, policy_name),
                lambda: state.kube.read_network_policy(spec.namespace, policy_name),
            )
        if current is not None and current.data.get(netpol.DIGEST_ANNOTATION) == wanted:
            return True
        try:
            await state.kube.write_network_policy(
                desired,
                owner=owner_reference(body),
                resource_version=None if current is None else current.resource_version,
            )
        except Conflict:  # it existed after all, or changed meanwhile: look (or next time)
            return await _write_network_policy(state, body, spec, False) if fresh else False
        return True
    except ApiException as exc:
        if exc.status not in (403, 404):
            raise
        # No RBAC for NetworkPolicies, or no such API: keys are still published; say so.
        message = f"NetworkPolicy {netpol.policy_name(spec.name)} not applied: {exc.reason}"
        log.warning("%s/%s: %s", spec.namespace, spec.name, message)
        state.events.warn(body, "NetworkPolicyNotApplied", message)
        return False


async def _patch_status(
    state: OperatorState,
    namespace: str,
    name: str,
    status: dict[str, Any],
    generation: int | None,
    now: float,
    *,
    ready: bool,
    reason: str,
    message: str,
    extra: dict[str, Any],
) -> None:
    stamp = iso(now) or ""
    conditions = list(status.get("conditions") or [])
    conditions = cond.set_condition(
        conditions, cond.READY, ready, reason, message, generation, stamp
    )
    conditions = cond.set_condition(
        conditions,
        cond.DEGRADED,
        not ready,
        cond.HEALTHY if ready else reason,
        "" if ready else message,
        generation,
        stamp,
    )
    rendered = state.publisher.last
    if rendered is not None:
        ok, size_reason, size_message = size_condition(rendered)
        conditions = cond.set_condition(
            conditions, cond.BUNDLE_SIZE, ok, size_reason, size_message, generation, stamp
        )
    patch = {**extra, "conditions": conditions, "observedGeneration": generation}
    if _says_already(status, patch):
        return  # e.g. a restart's reconcile of an identity with nothing due
    patched = None
    state.known_identities.writing((namespace, name))
    try:
        patched = await state.kube.patch_status(
            API_GROUP, API_VERSION, PLURAL, namespace, name, patch
        )
    finally:
        # An identity's own events ask for its reconciles (handlers.identity_event).
        state.known_identities.written((namespace, name), patched)


def _says_already(status: dict[str, Any], patch: dict[str, Any]) -> bool:
    """Whether the status already says what the patch would (a merge patch: a null field
    is one the status does not have), but for the bundle's size in bytes (it changes with
    every publish: not worth a write per identity by itself)."""

    def comparable(value: Any) -> Any:
        if isinstance(value, dict):
            if value.get("type") == cond.BUNDLE_SIZE:
                value = {**value, "message": ""}
            return {k: comparable(v) for k, v in value.items() if v is not None}
        if isinstance(value, list):
            return [comparable(item) for item in value]
        return value

    return all(comparable(status.get(field)) == comparable(value) for field, value in patch.items())
